"""`TraceView`: one request hop by hop across every sidecar it crossed, from their access logs.

    >>> mw.TraceView(mesh, "productpage-v1", "http://productpage:9080/productpage")
    >>> mw.TraceView(mesh, "productpage-v1", row=mesh.curl_rows("productpage-v1", url)[0])  # a request already sent

It sends one request (or takes a curl row), reads each sidecar's JSON access-log lines for its
x-request-id (`mesh.access_log`), joins them (`inspect.trace`) and draws client → call → call,
each call with the caller's outbound hop (listener, route, cluster, endpoint, attempts) and the
callee's inbound hop (15006, its chain, `inbound|9080||`). A call that failed is red and says
where it stopped and why (NR, UH, FI, UT, BlackHoleCluster ... in words). "Send again" traces a
new request. Without Graphviz it shows the table only.
"""

from __future__ import annotations

import html
import json
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

import ipywidgets as w

from ..inspect.trace import Trace, build_trace, incomplete, intended_clusters, stops, trace_graph, trace_text
from .base import View, status_html, weak_callback
from .graphs import render_svg
from .messages import t

__all__ = ["TraceView", "collect_trace", "fit_svg"]

MAX_WIDTH_PX = 900
PX_PER_PT = 96 / 72
SETTLE_S = 3.0  # how long to wait for the sidecars to flush the request's lines


def collect_trace(mesh: Any, row: Mapping[str, Any], client: str, wait_s: float = SETTLE_S) -> Trace:
    """Read every sidecar's lines for the request in `row` (a curl row) until the trace is whole.

    Inner calls are logged before outer ones end, but each Envoy flushes on its own timer, so this
    reads again until no call misses its inbound line and nothing new arrived, or `wait_s` passed.
    """
    workloads = mesh.topology()["workloads"]
    ips = {wl["name"]: wl["ip"] for wl in workloads}
    sidecars = [wl["name"] for wl in workloads if wl.get("sidecar", True)]
    client_pod = next((wl["name"] for wl in workloads if client in (wl["name"], wl.get("deployment"))), client)
    request_id, address = str(row.get("request_id") or ""), str(row.get("client_address") or "")
    deadline, seen = time.monotonic() + wait_s, -1
    while True:
        found = mesh.access_log(request_id=request_id, client=address)
        lines = {pod: part["lines"] for pod, part in found.items() if part["lines"]}
        trace = build_trace(lines, request_id, client_pod, address, ips)
        count = sum(map(len, lines.values()))
        if (count and count == seen and not incomplete(trace, sidecars)) or time.monotonic() > deadline:
            _add_wanted_clusters(mesh, trace)
            return trace
        seen = count
        time.sleep(0.15)


def fit_svg(svg: str, max_px: int = MAX_WIDTH_PX) -> str:
    """Graphviz's SVG (sized in pt) sized in px, scaled down to `max_px` wide if it is wider.

    The trace's nodes are kept narrow enough that a three-deep call chain scales to about 0.9,
    so Graphviz's 10 pt labels stay above 11 px.
    """
    size = re.search(r'width="([\d.]+)pt" height="([\d.]+)pt"', svg)
    if size is None:
        return svg
    width, height = float(size.group(1)) * PX_PER_PT, float(size.group(2)) * PX_PER_PT
    scale = min(1.0, max_px / width)
    return svg.replace(size.group(0), f'width="{width * scale:.0f}px" height="{height * scale:.0f}px"', 1)


def _add_wanted_clusters(mesh: Any, trace: Trace) -> None:
    """For calls that found no cluster (NC) or no route (NR): what the caller's routes name, from its Envoy."""
    dumps: dict[str, dict] = {}
    for _, call in trace.walk():
        out = call.outbound
        if out is not None and not out.cluster and {"NC", "NR"} & set(out.flags.split(",")):
            if out.pod not in dumps:
                dumps[out.pod] = json.loads(mesh.admin(out.pod, "/config_dump"))
            call.wanted = intended_clusters(dumps[out.pod], out)


class TraceView(View):
    """One request from `pod` to `url`, drawn hop by hop; or the request of a curl `row`."""

    def __init__(self, mesh: Any, pod: str, url: str = "", headers: Mapping[str, str] | None = None, *,
                 row: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.mesh, self.pod, self.url = mesh, pod, url
        self.headers = dict(headers or {})
        self.row: dict = dict(row or {})
        self.trace: Trace | None = None
        self.problem = ""
        self._status = w.HTML()
        self._picture = w.HTML()
        self._table = w.HTML()
        again = w.Button(description=t("Send again"), icon="paper-plane", layout=w.Layout(width="auto"),
                         disabled=not url)
        again.on_click(weak_callback(self.send))
        self.widget = w.VBox([w.HBox([again, self._status]), self._picture, self._table])
        if row is not None:
            self.show()
        elif url:
            self.send()
        else:
            raise ValueError("TraceView needs a url to send to, or row= (a curl row) to trace")

    def send(self) -> None:
        """Send one request with a fresh x-request-id and trace it."""
        headers = {k: v for k, v in self.headers.items() if k.lower() != "x-request-id"}
        headers["x-request-id"] = str(uuid.uuid4())
        self._status.value = status_html(f"sending GET {self.url} from {self.pod} …", "busy")
        try:
            self.row = self.mesh.curl_rows(self.pod, self.url, headers)[0]
        except Exception as exc:  # the mesh is down, or the pod/URL is wrong: say which
            self.problem = f"could not send: {exc}"
            self._status.value = status_html(self.problem, "error")
            return
        self.show()

    def show(self) -> None:
        """Read the sidecars' lines for `row`'s request and redraw."""
        with self._lock:
            try:
                self.trace, self.problem = collect_trace(self.mesh, self.row, self.pod), ""
            except Exception as exc:
                self.problem = f"could not read the access logs: {exc}"
            self._draw()

    def _summary(self) -> tuple[str, str]:
        row = self.row
        answer = f"HTTP {row['status']}" if row.get("status") else f"no answer ({row.get('error') or 'unknown'})"
        line = f"{answer} in {row.get('elapsed_ms', 0):.0f} ms, request id {row.get('request_id', '?')}"
        problems = stops(self.trace) if self.trace else []
        if self.problem:
            return f"{line}\n{self.problem}", "error"
        return (line + "".join(f"\n✗ {p}" for p in problems)), ("error" if problems else "ok")

    def _draw(self) -> None:
        summary, tone = self._summary()
        self._status.value = status_html(summary, tone)
        if self.trace is None:
            return
        svg, why = render_svg(trace_graph(self.trace))
        self._picture.value = f"<div>{fit_svg(svg)}</div>" if svg else status_html(why, "busy")
        self._table.value = f"<pre style='font-size:11px'>{html.escape(trace_text(self.trace))}</pre>"

    def text(self) -> str:
        summary, _ = self._summary()
        body = trace_text(self.trace) if self.trace else ""
        return f"{summary}\n{body}".rstrip()

    def html(self) -> str:
        return self._status.value + self._picture.value + self._table.value
