"""`PushTimeline`: config time travel. Every push as a row; two selected show what changed; replay one.

    >>> timeline = mw.PushTimeline(mesh)
    >>> timeline.select(3, 5)          # or pick two rows: the diff in Envoy's own YAML, per resource
    >>> timeline.replay(3)             # or the Replay button: push the config in force after push 3

Rows come from `mesh.history_rows()` (reason, types, resources changed, who ACKed or NACKed, ms),
diffs from `mesh.push_diff(a, b)` (the boss keeps the last 50 pushes' resources), replay from
`mesh.replay(push_id)`. The list redraws when the boss pushes (its sync events).
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as w

from ..inspect.timeline import diff_summary, diff_text, push_rows, timeline_text
from ..inspect.trace import short_pod
from .base import View, status_html, weak_callback
from .messages import t

__all__ = ["PushTimeline", "diff_html"]

PUSH_EVENTS = ("SENT", "ACK", "NACK")


def diff_html(text: str) -> str:
    """A unified diff as HTML: added lines green, removed red, headers bold."""
    out = []
    for line in text.splitlines():
        style = ("color:#38761d" if line.startswith("+") and not line.startswith("+++") else
                 "color:#cc0000" if line.startswith("-") and not line.startswith("---") else
                 "font-weight:bold" if line.startswith(("##", "@@", "push ")) else "")
        out.append(f'<span style="{style}">{html.escape(line)}</span>' if style else html.escape(line))
    return '<pre style="font-size:12px;max-height:32em;overflow:auto">' + "\n".join(out) + "</pre>"


class PushTimeline(View):
    """Every push of the boss; select two to diff, one (or the older of two) to replay."""

    def __init__(self, mesh: Any, *, watch: bool = True) -> None:
        super().__init__()
        self.mesh = mesh
        self.rows: list[dict] = []
        self.selected: tuple[int, ...] = ()
        self.diff: list[dict] = []
        self.problem = ""
        self.last_replay: dict | None = None
        self._list = w.SelectMultiple(options=[], rows=10, layout=w.Layout(width="100%"))
        self._redrawing = False  # options being replaced: the selection flickers, it does not change
        self._list.observe(lambda change: self._redrawing or self._picked(change["new"]), names="value")
        self._replay = w.Button(description=t("Replay"), icon="undo", disabled=True, layout=w.Layout(width="auto"),
                                tooltip="push the Istio config and raw overrides in force after this push")
        self._replay.on_click(weak_callback(self._replay_clicked))
        self._status = w.HTML()
        self._diff = w.HTML()
        help_ = w.HTML(t("<i>Select two pushes (Ctrl/Shift-click) to see what changed; one to replay it.</i>"))
        self.widget = w.VBox([help_, self._list, w.HBox([self._replay, self._status]), self._diff])
        self.refresh()
        if watch:
            self.watch(mesh)

    # -- data ------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Read the pushes again; keeps the selection."""
        with self._lock:
            self.rows = self.read_mesh(lambda: push_rows(self.mesh.history_rows()), self.rows)
            self._draw_list()

    def select(self, *ids: int) -> None:
        """Select pushes by id: two show their diff, one enables Replay (a push the list lacks reloads it)."""
        if not set(ids) <= {value for _, value in self._list.options}:
            self.refresh()
        with self._lock:  # the watcher may be redrawing the list: select among what it shows
            shown = {value for _, value in self._list.options}
            self._list.value = tuple(i for i in ids if i in shown)
        self._picked(self._list.value)

    def _picked(self, ids: tuple[int, ...]) -> None:
        ids = tuple(sorted(ids))
        if ids == self.selected:
            return
        self.selected = ids
        self._replay.disabled = not ids
        self._replay.description = t(f"Replay push {ids[0]}" if ids else "Replay")
        self.diff = []
        if len(ids) == 2:
            try:
                self.diff = self.mesh.push_diff(ids[0], ids[1])
            except Exception as exc:  # a push the boss no longer keeps: the error says which it keeps
                self._status.value = status_html(f"no diff of pushes {ids[0]} and {ids[1]}: {exc}", "error")
                self._diff.value = ""
                return
            self._status.value = status_html(diff_summary(self.diff))
            self._diff.value = diff_html(diff_text(self.diff, *ids))
        else:
            self._diff.value = ""
            self._status.value = status_html("select a second push to compare" if ids else "")

    def replay(self, push_id: int) -> dict:
        """Re-apply the config in force after `push_id` and push it; returns the new push's record."""
        result = self.mesh.replay(push_id)
        self.last_replay = result
        self.refresh()
        return result

    def _replay_clicked(self) -> None:
        if not self.selected:
            return
        target = self.selected[0]
        self._status.value = status_html(f"replaying push {target} …", "busy")
        try:
            result = self.replay(target)
        except Exception as exc:  # NACK or a push no longer kept: show the boss's words
            self._status.value = status_html(f"replay of push {target} failed: {exc}", "error")
            return
        acked = sum(1 for r in result.get("results", {}).values() if r and set(r.values()) == {"ACK"})
        self._status.value = status_html(f"push {result['id']}: replayed push {target}, {acked} proxies ACKed", "ok")

    # -- live ------------------------------------------------------------------------------
    def on_events(self, events: list[dict]) -> None:
        if any(e.get("kind") in PUSH_EVENTS for e in events):
            self.refresh()

    def on_watch_error(self, error: Exception) -> None:
        self._status.value = status_html(f"waiting for the mesh: {error}", "busy")

    # -- drawing -----------------------------------------------------------------------------
    def _draw_list(self) -> None:
        options = []
        for r in reversed(self.rows):  # newest first
            nack = f"  NACK {', '.join(short_pod(p) for p in r['nacked'])}" if r["nacked"] else ""
            label = (f"#{r['id']:<3} {r['time']}  {r['reason'][:60]:<60}  {','.join(r['types']) or '-':<15} "
                     f"{r['changed']:>3} changed  ACK {len(r['acked'])}{nack}  {r['ms']:g} ms")
            options.append((label, r["id"]))
        keep = tuple(i for i in self._list.value if i in {r["id"] for r in self.rows})
        self._redrawing = True
        try:
            self._list.options = options
            self._list.value = keep
        finally:
            self._redrawing = False
        if self.problem:
            self._status.value = status_html(self.problem, "error")

    def text(self) -> str:
        parts = [f"({self.problem})"] if self.problem else []
        parts.append(timeline_text(self.rows))
        if len(self.selected) == 2:
            parts.append(diff_text(self.diff, *self.selected))
        return "\n".join(parts)

    def html(self) -> str:
        return f"<pre>{html.escape(timeline_text(self.rows))}</pre>" + self._diff.value
