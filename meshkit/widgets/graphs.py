"""Live Graphviz pictures: one sidecar's config (`ProxyGraph`) and the whole mesh (`MeshGraph`).

Both read Envoy (admin `/config_dump`, `/clusters`) and the boss (`status_rows`, `events`)
through the mesh, draw with `dot` to an SVG that fits the notebook (`width:100%`, never wider
than Graphviz drew it), and redraw from a background thread as soon as the boss reports an ACK
or NACK. `last_redraw_latency_s` is the time from that event to the finished redraw.

    >>> graph = mw.ProxyGraph(mesh, "productpage-v1")   # outbound, the ports its app calls
    >>> graph.send("http://reviews:9080/reviews/0")      # one request; its path lights up
    >>> mw.MeshGraph(mesh)                               # the boss, its streams, the call graph
    >>> print(graph.text())                              # the same as an indented tree

Without Graphviz's `dot` program the widgets say how to install it and show the text instead.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import html
import json
import re
import shutil
import subprocess
import time
import weakref
from collections.abc import Iterable, Mapping
from typing import Any

import ipywidgets as w

from ..inspect.graph import Graph, changed, fingerprint, mark_changes, to_dot, to_text
from ..inspect.mesh_graph import mesh_graph, tls_clusters
from ..inspect.proxy_graph import DIRECTIONS, listener_ports, proxy_graph, request_path
from .base import View, status_html, weak_callback
from .messages import note, t

__all__ = ["DOT_MISSING", "MeshGraph", "ProxyGraph", "render_svg"]

DOT_MISSING = ("Graphviz's `dot` program is not installed, so this is the text view. Install it with "
               "`sudo apt-get install graphviz` (Debian/Ubuntu) or `brew install graphviz` (macOS), "
               "then run the cell again.")
DOT_TIMEOUT_S = 20.0
RATE_WINDOW_S = 5.0  # rates and counts cover about this long, however often the picture redraws
FLASH_S = 1.2  # how long a stream shows its SENT/ACK/NACK colour: a redraw or two
_KEEP = object()  # focus(): this part of the focus stays


def render_svg(graph: Graph) -> tuple[str | None, str]:
    """(SVG, "") from `dot`, or (None, why not) when `dot` is missing or fails; never raises."""
    dot = shutil.which("dot")
    if dot is None:
        return None, DOT_MISSING
    try:
        done = subprocess.run([dot, "-Tsvg"], input=to_dot(graph), capture_output=True, text=True,
                              timeout=DOT_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"Graphviz failed ({exc}); this is the text view."
    if done.returncode != 0:
        return None, f"Graphviz failed: {done.stderr.strip()[:500]}; this is the text view."
    return done.stdout[done.stdout.find("<svg"):], ""


def fit_svg(svg: str) -> str:
    """The SVG scaled to its output area's width (never above the size Graphviz drew it at)."""
    found = re.match(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"', svg)
    if not found:
        return svg
    px = float(found.group(1)) * 96 / 72
    return (f'<svg class="meshkit-graph" width="100%" style="max-width:{px:.0f}px;height:auto;display:block"'
            + svg[found.end():])


class _GraphView(View):
    """A graph that redraws itself; subclasses say how to build it and which events matter."""

    def __init__(self, mesh: Any, watch: bool, controls: Iterable[w.Widget] = ()) -> None:
        super().__init__()
        self.mesh = mesh
        self.graph = Graph()
        self.problem = ""  # why the last redraw could not read the mesh, or why there is no SVG
        self.redraws = 0
        self.last_redraw_latency_s: float | None = None
        self._drawn: tuple[str, str | None, str] = ("", None, "")  # DOT source, its SVG, why there is none
        self._status = w.HTML()
        self._body = w.HTML(layout=w.Layout(overflow="hidden"))  # a width of 100% plus margins would overflow
        refresh = w.Button(description=t("Redraw"), icon="refresh", layout=w.Layout(width="auto"))
        refresh.on_click(weak_callback(self.refresh))
        bar = w.HBox([refresh, *controls], layout=w.Layout(flex_flow="row wrap"))
        self.widget = w.VBox([bar, self._status, self._body])
        self.refresh()
        if watch:
            self.watch(mesh)

    def build(self) -> Graph:
        raise NotImplementedError

    def relevant(self, event: dict) -> bool:
        raise NotImplementedError

    def refresh(self, reason: str = "", since: float | None = None) -> None:
        """Read the mesh again and redraw; `since` (an event time) records the redraw latency."""
        with self._lock:
            self.graph = self.read_mesh(self.build, self.graph)
            self.graph = dataclasses.replace(self.graph, note=note(self.graph.note))  # in the lab's language
            source = to_dot(self.graph)
            if source != self._drawn[0] or not self._drawn[1]:  # the same picture: no need to run dot again
                self._drawn = (source, *render_svg(self.graph))
            svg, why = self._drawn[1], self._drawn[2]
            self._body.value = self._svg_html(svg) if svg else status_html(why, "error") + self._text_html()
            self.problem = self.problem or why
            self.redraws += 1
            done = time.time()
            if since is not None:
                self.last_redraw_latency_s = done - since
            stamp = time.strftime("%H:%M:%S", time.localtime(done))
            line = f"{stamp} {reason}".strip()
            if self.last_redraw_latency_s is not None and since is not None:
                line += f" (redrawn {self.last_redraw_latency_s * 1000:.0f} ms after it)"
            self._status.value = status_html(self.problem or line, "error" if self.problem else "")

    def on_events(self, events: list[dict]) -> None:
        mine = [e for e in events if e.get("kind") in ("ACK", "NACK") and self.relevant(e)]
        if mine:
            first = min(mine, key=lambda e: e.get("time", 0))
            kinds = ", ".join(sorted({f"{e['kind']} {e.get('type', '')}".strip() for e in mine}))
            self.refresh(f"after {kinds} from {', '.join(sorted({e.get('pod', '') for e in mine}))}",
                         since=first.get("time"))

    def on_watch_error(self, error: Exception) -> None:
        self._status.value = status_html(f"waiting for the mesh: {error}", "busy")

    def text(self) -> str:
        note = f"({self.problem})\n" if self.problem else ""
        return note + to_text(self.graph)

    def html(self) -> str:
        return self._body.value

    def _text_html(self) -> str:
        return f"<pre>{html.escape(to_text(self.graph))}</pre>"

    @staticmethod
    def _svg_html(svg: str) -> str:
        return f'<div class="meshkit-graph-area" style="width:100%;overflow:hidden">{fit_svg(svg)}</div>'


def _menu(description: str, options: list, value: object, width: str = "auto") -> w.Dropdown:
    return w.Dropdown(options=options, value=value, description=description,
                      layout=w.Layout(width=width), style={"description_width": "initial"})


class ProxyGraph(_GraphView):
    """One sidecar's way for a request: Downstream → listener → chain → filter → routes → cluster →
    endpoints (Upstream), redrawn on its ACK/NACK with what changed marked, NACKs in red.

    The focus starts small: outbound, on the ports its app calls (all outbound if it calls
    nothing), and can be changed with the menus or `focus(...)`: `direction` (outbound, inbound,
    all), `port`, `host` (a Service name), `expand_inbound` (the 15006 chains, folded by default).
    `listeners` (names) pins the picture to those listeners. `show_request(row)` lights up the
    path of one request (a row of `mesh.curl_rows`); `send(url)` sends one and shows it;
    `follow(panel)` shows each latest answer of a TrafficPanel.
    """

    def __init__(self, mesh: Any, pod: str, *, listeners: Iterable[str] | None = None, direction: str | None = None,
                 port: int | None = None, host: str = "", expand_inbound: bool = False, watch: bool = True) -> None:
        self.pod = pod
        self.listeners = list(listeners) if listeners is not None else None
        self._names, called = _pod_names(mesh, pod)
        if direction is None:
            direction = "all" if self.listeners is not None else "outbound" if called or port else "inbound"
        self.direction, self.host, self.expand_inbound = direction, host, expand_inbound
        self.port = port if port is not None or self.listeners is not None else (called[0] if len(called) == 1
                                                                                   else None)
        self.request: Mapping[str, Any] | None = None
        self._before: Graph | None = None  # the picture of the previous config version (for "changed")
        self._plain: Graph | None = None
        self._following: weakref.ref | None = None
        self._quiet = False
        self._menus = self._focus_menus(mesh, called)
        super().__init__(mesh, watch, self._menus)

    # -- focus --------------------------------------------------------------------------------
    def _focus_menus(self, mesh: Any, called: list[int]) -> list[w.Widget]:
        try:
            services = sorted(s["name"] for s in mesh.topology().get("services", []))
        except Exception:  # the mesh is not up: menus with what we know
            services = []
        ports = sorted({*called, *([self.port] if self.port else [])})
        self._direction = _menu("direction", list(DIRECTIONS), self.direction)
        self._port = _menu("port", [("all", None)] + [(str(p), p) for p in ports], self.port)
        self._host = _menu("host", [("all", "")] + [(s, s) for s in services] +
                           ([(self.host, self.host)] if self.host and self.host not in services else []), self.host)
        self._expand = w.ToggleButton(value=self.expand_inbound, description=t("expand 15006 chains"),
                                      layout=w.Layout(width="auto"))
        for menu in (self._direction, self._port, self._host, self._expand):
            menu.observe(weak_callback(self._from_menus), names="value")
        return [self._direction, self._port, self._host, self._expand]

    def _from_menus(self) -> None:
        if self._quiet:  # focus() setting the menus, not the learner
            return
        self.focus(direction=self._direction.value, port=self._port.value, host=self._host.value,
                   expand_inbound=self._expand.value)

    def focus(self, *, direction: str | None = None, port: Any = _KEEP, host: str | None = None,
              expand_inbound: bool | None = None, listeners: Any = _KEEP) -> None:
        """Change what the picture shows (arguments left out stay as they are; `port=None`: all) and redraw."""
        if direction is not None and direction not in DIRECTIONS:
            raise ValueError(f"direction {direction!r} is not one of {', '.join(DIRECTIONS)}")
        self.direction = direction or self.direction
        self.port = self.port if port is _KEEP else port
        self.host = self.host if host is None else host
        self.expand_inbound = self.expand_inbound if expand_inbound is None else expand_inbound
        self.listeners = self.listeners if listeners is _KEEP else (list(listeners) if listeners else None)
        self._quiet = True
        try:
            for menu, value in ((self._direction, self.direction), (self._port, self.port), (self._host, self.host),
                                (self._expand, self.expand_inbound)):
                if value in [o[1] if isinstance(o, tuple) else o for o in getattr(menu, "options", [value])]:
                    menu.value = value
        finally:
            self._quiet = False
        self._before = self._plain = None  # another picture: nothing to mark as changed
        self.refresh("focus changed")

    # -- requests -----------------------------------------------------------------------------
    def show_request(self, row: Mapping[str, Any] | None) -> None:
        """Light up the path `row` (one of `mesh.curl_rows(...)`) took; None clears it."""
        self.request = dict(row) if row else None
        self.refresh("request shown" if row else "request cleared")

    def send(self, url: str, headers: Mapping[str, str] | None = None) -> dict:
        """Send one request from this pod through its sidecar and show the path it took."""
        row = self.mesh.curl_rows(self.pod, url, headers, n=1)[-1]
        self.show_request(row)
        return row

    def follow(self, panel: Any) -> None:
        """Show the latest answer of `panel` (a TrafficPanel of this pod) on every poll."""
        self._following = weakref.ref(panel)

    def on_events(self, events: list[dict]) -> None:
        panel = self._following() if self._following is not None else None
        latest = panel.answers[-1] if panel is not None and panel.answers else None
        if latest is not None and latest != self.request and not any(e.get("kind") in ("ACK", "NACK") for e in events):
            self.show_request(latest)
            return
        if latest is not None:
            self.request = dict(latest)
        super().on_events(events)

    # -- drawing ------------------------------------------------------------------------------
    def build(self) -> Graph:
        dump = json.loads(self.mesh.admin(self.pod, "/config_dump"))  # endpoints: from /clusters, with health
        clusters = json.loads(self.mesh.admin(self.pod, "/clusters?format=json"))
        plain = proxy_graph(dump, clusters, listeners=self.listeners, direction=self.direction, port=self.port,
                            host=self.host, expand_inbound=self.expand_inbound,
                            title=f"{self.pod}: what its Envoy holds ({self._focus_text()})")
        self._offer_ports(listener_ports(dump))
        if self._plain is not None and fingerprint(self._plain) != fingerprint(plain):
            self._before = self._plain  # a new version: compare with the one before it
        self._plain = plain
        graph = mark_changes(self._before, plain)
        if self.request:
            graph = request_path(graph, self.request)
        marked = changed(graph)
        if marked:
            graph.note = (graph.note + "; " if graph.note else "") + f"{len(marked)} changed since the last version"
        return graph

    def _focus_text(self) -> str:
        parts = [self.direction] + ([f"port {self.port}"] if self.port else []) + ([f"host {self.host}"]
                                                                                    if self.host else [])
        if self.listeners is not None:
            parts = [", ".join(self.listeners)]
        return ", ".join(parts)

    def _offer_ports(self, ports: Mapping[str, list[int]]) -> None:
        known = [p for _, p in self._port.options]
        wanted = sorted({p for found in ports.values() for p in found} | {p for p in known if p})
        if wanted != [p for p in known if p]:
            self._quiet = True  # new choices, same focus: no redraw from inside this one
            try:
                self._port.options = [("all", None)] + [(str(p), p) for p in wanted]
                self._port.value = self.port if self.port in wanted else None
            finally:
                self._quiet = False

    def relevant(self, event: dict) -> bool:
        # events name the pod in full (productpage-v1-cg8bj5pwlv-z7g5w); `pod` may be its Deployment
        name = str(event.get("pod", ""))
        return name in self._names or (not self._names and name.rsplit("-", 2)[0] == self.pod)


def _pod_names(mesh: Any, pod: str) -> tuple[set[str], list[int]]:
    """The full pod names `pod` (a pod or Deployment name) stands for, and the ports its app calls."""
    try:
        topology = mesh.topology()
    except Exception:  # the mesh is not up yet: fall back to Kubernetes' deployment-hash-hash naming
        return set(), []
    mine = [wl for wl in topology["workloads"] if pod in (wl["name"], wl.get("deployment"))]
    calls = {c for wl in mine for c in wl.get("calls", [])}
    ports = sorted({p["port"] for s in topology.get("services", []) if s["name"] in calls for p in s.get("ports", [])})
    return {wl["name"] for wl in mine} or {pod}, ports


class MeshGraph(_GraphView):
    """The boss and its xDS streams (coloured by sync state, flashing on SENT/ACK/NACK), Services
    and pods, and the call graph with the requests each sidecar counted since the last redraw.

    Redraws on every xDS event and at least every `refresh_s` seconds (so new traffic shows
    within a second); counts and rates cover the last `RATE_WINDOW_S` seconds. `idle=True` also
    draws edges no configured call explains.
    """

    def __init__(self, mesh: Any, *, refresh_s: float = 0.5, idle: bool = False, watch: bool = True) -> None:
        self.refresh_s = refresh_s
        self.idle = idle
        self._topology: dict | None = None
        self._history: collections.deque[tuple[float, dict[str, dict]]] = collections.deque()
        self._previous_at: float | None = None
        self._routes: dict[str, dict] = {}
        self._tls: dict[str, set[str]] = {}
        self._stale: set[str] | None = None  # pods whose routes/TLS must be read again (None: all)
        self._flashes: dict[str, tuple[str, float]] = {}
        self._reuse = False  # this redraw may reuse the last counter samples (an event, not the clock)
        super().__init__(mesh, watch)

    def watch(self, mesh: Any, poll_s: float | None = None) -> None:
        super().watch(mesh, self.refresh_s if poll_s is None else poll_s)

    def build(self) -> Graph:
        if self._topology is None:
            self._topology = self.mesh.topology()
        workloads = self._topology["workloads"]
        pods = [wl["name"] for wl in workloads if wl.get("sidecar", True)]
        callers = [wl["name"] for wl in workloads if wl.get("sidecar", True) and wl.get("calls")]
        stale = callers if self._stale is None else [p for p in callers if p in self._stale]
        self._stale = set()
        last = self._history[-1] if self._history else None
        fresh = last is not None and self._reuse and time.time() - last[0] < self.refresh_s
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:  # the daemon answers them at once
            routes = {p: pool.submit(self.mesh.admin, p, "/config_dump?resource=dynamic_route_configs") for p in stale}
            tls = {p: pool.submit(self.mesh.admin, p, "/config_dump?resource=dynamic_active_clusters") for p in stale}
            asked = {} if fresh else {p: pool.submit(self.mesh.admin, p, "/clusters?format=json") for p in pods}
            status = self.mesh.status_rows()
            self._routes.update({p: json.loads(f.result()) for p, f in routes.items()})
            self._tls.update({p: tls_clusters(json.loads(f.result())) for p, f in tls.items()})
            samples = last[1] if fresh and last is not None else {p: json.loads(f.result()) for p, f in asked.items()}
        taken = last[0] if fresh and last is not None else time.time()
        now = time.time()
        self._flashes = {p: f for p, f in self._flashes.items() if f[1] > now}
        while len(self._history) > 1 and self._history[1][0] <= taken - RATE_WINDOW_S:
            self._history.popleft()  # keep the newest sample at least RATE_WINDOW_S old, and all since
        since_at, since = next(((t, s) for t, s in self._history if t < taken), (None, None))
        window = taken - since_at if since_at is not None else None
        graph = mesh_graph(self._topology, samples, since=since, idle=self.idle, status_rows=status,
                           flashes={p: f[0] for p, f in self._flashes.items()}, routes=self._routes, tls=self._tls,
                           window_s=window)
        # whole seconds: a quiet mesh draws the same DOT again, and dot does not run for it
        graph.title = "mesh: " + (f"requests in the last {max(1, round(window))} s" if window is not None
                                  else "requests since each Envoy started")
        if not fresh:
            self._history.append((taken, samples))
            self._previous_at = taken
        return graph

    def relevant(self, event: dict) -> bool:
        return True

    def on_events(self, events: list[dict]) -> None:
        now = time.time()
        for event in events:
            if event.get("kind") in ("SENT", "ACK", "NACK"):
                self._flashes[str(event.get("pod", ""))] = (event["kind"], now + FLASH_S)
            if event.get("kind") == "ACK" and event.get("type") in ("RDS", "CDS") and self._stale is not None:
                self._stale.add(str(event.get("pod", "")))
        # an xDS event changes the streams and maybe the routes, not the traffic: the counters
        # read less than refresh_s ago still stand, and the redraw is quicker without them
        self._reuse = bool(events)
        if any(e.get("kind") in ("ACK", "NACK") for e in events):
            super().on_events(events)
        elif any(e.get("kind") == "SENT" for e in events) or self._flashes or self._previous_at is None \
                or now - self._previous_at >= 0.9 * self.refresh_s:
            self.refresh("live")  # refresh_s went by (or a push went out): show the new numbers
