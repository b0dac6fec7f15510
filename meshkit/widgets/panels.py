"""The sync table (`istioctl proxy-status`, live) and a traffic generator with its answer distribution.

    >>> mw.SyncTable(mesh)                        # redraws on every sync event
    >>> traffic = mw.TrafficPanel(mesh, "productpage-v1", "http://reviews:9080/reviews/0",
    ...                           headers={"end-user": "jason"}, rate=5)
    >>> traffic.start(); ...; traffic.stop()      # or the Start/Stop button
"""

from __future__ import annotations

import collections
import html
import threading
import time
import weakref
from collections.abc import Iterable, Mapping
from typing import Any

import ipywidgets as w

from ..inspect.sync_status import BOSS_STOPPED, DISCONNECTED, TYPES, status_note, status_table
from ..inspect.tables import render
from .base import View, status_html
from .messages import t

__all__ = ["SyncTable", "TrafficPanel", "answer_label", "distribution", "render_distribution"]

STATE_COLOURS = {"SYNCED": "#d9ead3", "STALE": "#fff2cc", "NOT SENT": "#eeeeee", "ERROR": "#f4cccc",
                 "IGNORED": "#ffffff", DISCONNECTED: "#b7b7b7", BOSS_STOPPED: "#f9cb9c"}


class SyncTable(View):
    """Each proxy's state per xDS type (SYNCED / STALE / NOT SENT / ERROR with Envoy's text), live.

    A proxy whose stream closed stays in the table, each type DISCONNECTED (grey), and while the
    boss is stopped every cell reads BOSS STOPPED (orange); the note under the table says since when.
    """

    def __init__(self, mesh: Any, *, watch: bool = True) -> None:
        super().__init__()
        self.mesh = mesh
        self.rows: list[dict] = []
        self.problem = ""
        self._table = w.HTML()
        self.widget = w.VBox([self._table])
        self.refresh()
        if watch:
            self.watch(mesh)

    def refresh(self) -> None:
        with self._lock:
            self.rows = self.read_mesh(self.mesh.status_rows, self.rows)
            self._table.value = self.html()

    def on_events(self, events: list[dict]) -> None:
        if events:
            self.refresh()

    def on_watch_error(self, error: Exception) -> None:
        self._table.value = status_html(f"waiting for the mesh: {error}", "busy") + self.html()

    def text(self) -> str:
        table = render(status_table(self.rows)) if self.rows else "(no proxies)"
        return f"({self.problem})\n{table}" if self.problem else table

    def html(self) -> str:
        head = "".join(f"<th>{h}</th>" for h in ("PROXY", *TYPES, "ERROR DETAIL"))
        body = []
        for row in sorted(self.rows, key=lambda r: r.get("name", "")):
            types = row.get("types", {})
            cells = [f"<td>{html.escape(row.get('name', ''))}</td>"]
            for kind in TYPES:
                state = str(types.get(kind, {}).get("state") or "IGNORED").upper()
                version = html.escape(str(types.get(kind, {}).get("version", "")))
                cells.append(f'<td style="background:{STATE_COLOURS.get(state, "#fff")}" title="{version}">'
                             f"{state}</td>")
            errors = "; ".join(f"{t}: {types[t]['error']}" for t in TYPES if types.get(t, {}).get("error"))
            cells.append(f'<td style="color:#cc0000">{html.escape(errors)}</td>')
            body.append(f"<tr>{''.join(cells)}</tr>")
        note = status_html(self.problem, "error") if self.problem else ""
        links = status_note(self.rows)
        under = f'<pre style="color:#555555">{html.escape(links)}</pre>' if links else ""
        return f'{note}<table style="font-family:monospace"><tr>{head}</tr>{"".join(body)}</table>{under}'


# --- traffic ------------------------------------------------------------------------------------

def answer_label(row: Mapping[str, Any]) -> str:
    """Who answered one request: `reviews-v2 (v2)`, else the status and Envoy's flags, else the error."""
    if row.get("pod"):
        return f"{row['pod']} ({row['version']})" if row.get("version") else str(row["pod"])
    if row.get("status"):
        flags = row.get("flags") or "-"
        return f"HTTP {row['status']}" + (f" {flags}" if flags != "-" else "")
    return f"no answer: {row.get('error') or 'unknown'}"


def distribution(rows: Iterable[Mapping[str, Any]]) -> list[tuple[str, int, float]]:
    """(answer, count, share) per answering pod/version, most frequent first."""
    counts = collections.Counter(answer_label(row) for row in rows)
    total = sum(counts.values())
    return [(label, n, n / total) for label, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def render_distribution(shares: list[tuple[str, int, float]], width: int = 30) -> str:
    """A text bar chart: `reviews-v1 (v1)   42  ████████  84%`."""
    if not shares:
        return "(no answers yet)"
    pad = max(len(label) for label, _, _ in shares)
    return "\n".join(f"{label.ljust(pad)} {n:5d}  {'█' * round(share * width):<{width}} {share:4.0%}"
                     for label, n, share in shares)


def _html_bars(shares: list[tuple[str, int, float]]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(label)}</td><td style='text-align:right'>{n}</td><td style='width:20em'>"
        f"<div style='background:{'#cc0000' if label.startswith(('HTTP', 'no answer')) else '#3d85c6'};"
        f"width:{share * 100:.1f}%;height:1em'></div></td><td>{share:.0%}</td></tr>"
        for label, n, share in shares)
    return f"<table style='font-family:monospace'>{rows}</table>" if rows else "<i>no answers yet</i>"


_SENDING: weakref.WeakValueDictionary[tuple[str, str], TrafficPanel] = weakref.WeakValueDictionary()


class TrafficPanel(View):
    """Sends `rate` requests per second from `pod` (through its sidecar) while running, and shows who answered.

    The distribution covers the last `window` answers, so a weight change shows up quickly.
    """

    def __init__(self, mesh: Any, pod: str, url: str, headers: Mapping[str, str] | None = None, rate: int = 5, *,
                 window: int = 200) -> None:
        super().__init__()
        self.mesh, self.pod, self.url = mesh, pod, url
        self.headers = dict(headers or {})
        self.answers: collections.deque[dict] = collections.deque(maxlen=window)
        self.sent = 0
        self.problem = ""
        self._times: collections.deque[float] = collections.deque(maxlen=window)
        self._running = threading.Event()
        self._wake = threading.Event()  # set by stop(): the loop's pause between batches ends at once
        self.rate = w.IntSlider(value=rate, min=1, max=50, description=t("req/s"), continuous_update=False)
        self.toggle = w.ToggleButton(description=t("Start"), icon="play")
        self.toggle.observe(lambda change: self.start() if change["new"] else self.stop(), names="value")
        clear = w.Button(description=t("Clear"), icon="eraser")
        clear.on_click(lambda _: self.clear())
        self._info = w.HTML()
        self._bars = w.HTML()
        self.widget = w.VBox([w.HBox([self.toggle, self.rate, clear]), self._info, self._bars])
        self._draw()

    @property
    def running(self) -> bool:
        return self._running.is_set()

    def start(self) -> None:
        """Start sending (idempotent). A panel already sending the same requests stops: re-running
        a cell replaces its generator instead of adding a second one nobody can see.
        """
        if self.running or self.closed:
            return
        previous = _SENDING.get((self.pod, self.url))
        if previous is not None and previous is not self:
            previous.stop()
        _SENDING[(self.pod, self.url)] = self
        self._wake.clear()
        self._running.set()
        self.toggle.value, self.toggle.description, self.toggle.icon = True, t("Stop"), "stop"
        self._thread = threading.Thread(target=self._loop, name="meshkit-traffic", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sending; waits for the batch in flight."""
        self._running.clear()
        self._wake.set()
        self.toggle.value, self.toggle.description, self.toggle.icon = False, t("Start"), "play"
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(10.0)

    def close(self) -> None:
        self.stop()
        super().close()

    def clear(self) -> None:
        with self._lock:
            self.answers.clear()
            self._times.clear()
            self.sent = 0
        self._draw()

    def _loop(self) -> None:
        while self.running and not self.closed:
            began = time.monotonic()
            batch = max(1, round(self.rate.value))  # one call per second keeps the control socket quiet
            try:
                rows = self.mesh.curl_rows(self.pod, self.url, self.headers, n=batch)
                self.problem = ""
            except Exception as exc:  # the mesh went away: say so, keep trying while running
                rows, self.problem = [], f"could not send: {exc}"
            with self._lock:
                self.answers.extend(rows)
                self._times.extend([time.monotonic()] * len(rows))
                self.sent += len(rows)
            self._draw()
            rest = 1.0 - (time.monotonic() - began)
            if rest > 0 and self.running:
                self._wake.wait(rest)

    def achieved_rate(self) -> float:
        """Answers per second over the last 10 seconds."""
        recent = [t for t in self._times if t > time.monotonic() - 10.0]
        if len(recent) < 2:
            return float(len(recent))
        return len(recent) / max(1.0, time.monotonic() - recent[0])

    def _info_text(self) -> str:
        headers = ", ".join(f"{k}: {v}" for k, v in self.headers.items()) or "(none)"
        state = "running" if self.running else "stopped"
        line = (f"{state}: GET {self.url} from {self.pod}, {self.rate.value} req/s asked, "
                f"{self.achieved_rate():.1f}/s answered, {self.sent} sent\nheaders: {headers}")
        return f"{line}\n{self.problem}" if self.problem else line

    def _draw(self) -> None:
        with self._lock:
            shares = distribution(self.answers)
        self._info.value = status_html(self._info_text(), "error" if self.problem else "")
        self._bars.value = _html_bars(shares)

    def text(self) -> str:
        with self._lock:
            shares = distribution(self.answers)
        return f"{self._info_text()}\n{render_distribution(shares)}"

    def html(self) -> str:
        return self._info.value + self._bars.value
