"""Live Graphviz pictures: one sidecar's config (`ProxyGraph`) and the mesh's traffic (`MeshGraph`).

Both read Envoy (admin `/config_dump`, `/clusters`) through the mesh, draw with `dot` to SVG,
and redraw from a background thread as soon as the boss reports an ACK or NACK from a proxy
they show. `last_redraw_latency_s` is the time from that ACK to the finished redraw.

    >>> graph = mw.ProxyGraph(mesh, "productpage-v1", listeners=["0.0.0.0_9080"])
    >>> graph                      # the SVG; redraws when productpage-v1 ACKs a push
    >>> print(graph.text())        # the same as an indented tree

Without Graphviz's `dot` program the widgets say how to install it and show the text instead.
"""

from __future__ import annotations

import html
import json
import shutil
import subprocess
import time
from collections.abc import Iterable
from typing import Any

import ipywidgets as w

from ..inspect.graph import Graph, mesh_graph, proxy_graph, to_dot, to_text
from .base import View, status_html, weak_callback

__all__ = ["DOT_MISSING", "MeshGraph", "ProxyGraph", "render_svg"]

DOT_MISSING = ("Graphviz's `dot` program is not installed, so this is the text view. Install it with "
               "`sudo apt-get install graphviz` (Debian/Ubuntu) or `brew install graphviz` (macOS), "
               "then run the cell again.")
DOT_TIMEOUT_S = 20.0


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


class _GraphView(View):
    """A graph that redraws itself; subclasses say how to build it and which events matter."""

    def __init__(self, mesh: Any, watch: bool) -> None:
        super().__init__()
        self.mesh = mesh
        self.graph = Graph()
        self.problem = ""  # why the last redraw could not read the mesh, or why there is no SVG
        self.redraws = 0
        self.last_redraw_latency_s: float | None = None
        self._status = w.HTML()
        self._body = w.HTML()
        refresh = w.Button(description="Redraw", icon="refresh", layout=w.Layout(width="auto"))
        refresh.on_click(weak_callback(self.refresh))
        self.widget = w.VBox([w.HBox([refresh, self._status]), self._body])
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
            try:
                self.graph = self.build()
                self.problem = ""
            except Exception as exc:  # the mesh is not there (yet): keep the last picture, say why
                self.problem = f"could not read the mesh: {exc}"
            svg, why = render_svg(self.graph)
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
        return f'<div style="overflow:auto;max-width:100%">{svg}</div>'


class ProxyGraph(_GraphView):
    """One sidecar's listeners → chains → routes → clusters → endpoints, redrawn on its ACK/NACK.

    `listeners` keeps only those listeners (by name, e.g. `["0.0.0.0_9080"]`) and what they lead to.
    """

    def __init__(self, mesh: Any, pod: str, *, listeners: Iterable[str] | None = None, watch: bool = True) -> None:
        self.pod = pod
        self.listeners = list(listeners) if listeners is not None else None
        self._names = _pod_names(mesh, pod)
        super().__init__(mesh, watch)

    def build(self) -> Graph:
        dump = json.loads(self.mesh.admin(self.pod, "/config_dump?include_eds"))
        clusters = json.loads(self.mesh.admin(self.pod, "/clusters?format=json"))
        return proxy_graph(dump, clusters, listeners=self.listeners, title=f"{self.pod}: what its Envoy holds")

    def relevant(self, event: dict) -> bool:
        # events name the pod in full (productpage-v1-cg8bj5pwlv-z7g5w); `pod` may be its Deployment
        name = str(event.get("pod", ""))
        return name in self._names or (not self._names and name.rsplit("-", 2)[0] == self.pod)


def _pod_names(mesh: Any, pod: str) -> set[str]:
    """The full pod names `pod` (a pod or Deployment name) stands for; {pod} when the mesh cannot say."""
    try:
        workloads = mesh.topology()["workloads"]
    except Exception:  # the mesh is not up yet: fall back to Kubernetes' deployment-hash-hash naming
        return set()
    names = {wl["name"] for wl in workloads if pod in (wl["name"], wl.get("deployment"))}
    return names or {pod}


class MeshGraph(_GraphView):
    """Pods boxed by Service, edges with the requests each sidecar counted since the last redraw.

    Redraws on every ACK/NACK and at least every `refresh_s` seconds (so the numbers stay live);
    `idle=True` also draws edges that carried no request.
    """

    def __init__(self, mesh: Any, *, refresh_s: float = 2.0, idle: bool = False, watch: bool = True) -> None:
        self.refresh_s = refresh_s
        self.idle = idle
        self._topology: dict | None = None
        self._previous: dict[str, dict] = {}
        self._previous_at: float | None = None
        super().__init__(mesh, watch)

    def watch(self, mesh: Any, poll_s: float | None = None) -> None:
        super().watch(mesh, self.refresh_s if poll_s is None else poll_s)

    def build(self) -> Graph:
        if self._topology is None:
            self._topology = self.mesh.topology()
        pods = [wl["name"] for wl in self._topology["workloads"] if wl.get("sidecar", True)]
        samples = {pod: json.loads(self.mesh.admin(pod, "/clusters?format=json")) for pod in pods}
        taken = time.time()
        graph = mesh_graph(self._topology, samples, since=self._previous or None, idle=self.idle)
        window = (f"requests in the last {taken - self._previous_at:.1f} s" if self._previous_at is not None
                  else "requests since each Envoy started")
        graph.title = f"mesh: {window}"
        self._previous, self._previous_at = samples, taken
        return graph

    def relevant(self, event: dict) -> bool:
        return True

    def on_events(self, events: list[dict]) -> None:
        if any(e.get("kind") in ("ACK", "NACK") for e in events):
            super().on_events(events)
        elif self._previous_at is None or time.time() - self._previous_at >= 0.9 * self.refresh_s:
            self.refresh("live")  # refresh_s went by: show the new numbers
