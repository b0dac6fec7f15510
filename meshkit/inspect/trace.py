"""One request, hop by hop, from the JSON access-log lines of every sidecar it crossed.

Each sidecar logs a request once per side: *outbound* (the caller's sidecar: listener
`0.0.0.0_9080`, route, cluster `outbound|9080||reviews…`, chosen endpoint, attempts) and
*inbound* (the callee's sidecar: listener `virtualInbound`, chain `0.0.0.0_9080`, cluster
`inbound|9080||`). `build_trace` joins them into calls by x-request-id (which the apps
forward): an outbound line and the inbound line whose downstream address is the outbound's
upstream local address are one call; an outbound line logged by a pod while that pod's inbound
line was open is a call its app made for it. TCP lines (no request id) join by the client's ip:port.

    >>> t = traces["no_route"]          # one request's lines from every sidecar, captured live
    >>> trace = build_trace(t["lines"], t["request_id"], t["client"], t["reply"]["client_address"], t["ips"])
    >>> print(trace_text(trace))        # one row per hop, then where it stopped and why
    request ... from productpage-v1
    #  CALL                    SIDECAR         SIDE  LISTENER/CHAIN  ROUTE  CLUSTER  ENDPOINT  TRY  CODE  FLAGS  MS
    1  reviews:9080/reviews/0  productpage-v1  out   0.0.0.0_9080    -      -        -         -    404   NR     0
    ✗ reviews:9080/reviews/0: HTTP 404 NR at productpage-v1's sidecar (outbound). no route: ...
    >>> graph = trace_graph(trace)      # a Graph for graph.to_dot / the widgets' Graphviz helper
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import dump
from .graph import Graph, Node
from .tables import istioctl_table, render

__all__ = ["FLAG_WORDS", "Call", "Hop", "Trace", "build_trace", "explain", "incomplete", "intended_clusters",
           "short_pod", "stops", "trace_graph", "trace_text"]

# Envoy's %RESPONSE_FLAGS%, in words (envoy/stream_info/stream_info.h; Istio's docs list the same).
FLAG_WORDS = {
    "NR": "no route: no route of this sidecar matched the request (or no filter chain matched the connection)",
    "NC": "no cluster: the route names a cluster this sidecar does not have",
    "UH": "no healthy upstream: the cluster has no healthy endpoint (no pod matches, or all are ejected)",
    "UF": "upstream connection failure: the sidecar could not connect to the endpoint",
    "UO": "upstream overflow: the circuit breaker (connection pool limits) tripped",
    "URX": "retries exhausted: the route's retry limit (or the TCP connect attempts) was reached",
    "UT": "upstream request timeout: the route's timeout passed before the upstream answered",
    "UC": "upstream connection termination: the upstream closed the connection",
    "UR": "upstream remote reset: the upstream reset the stream",
    "LR": "local reset: this Envoy reset the connection itself",
    "LH": "local health check failed",
    "DC": "downstream connection termination: the caller went away before the answer (e.g. it timed out)",
    "FI": "fault injection abort: a VirtualService `fault.abort` answered instead of the upstream",
    "DI": "fault injection delay: a VirtualService `fault.delay` held the request first",
    "RL": "rate limited",
    "UAEX": "denied by an external authorizer",
    "RLSE": "rate limit service error",
    "DPE": "downstream protocol error: the caller's request was not valid HTTP",
    "UPE": "upstream protocol error: the upstream's answer was not valid HTTP",
    "UMSDR": "upstream max stream duration reached",
    "SI": "stream idle timeout",
    "DT": "downstream max stream duration reached",
    "OM": "overload manager: Envoy sheds load",
    "DF": "DNS resolution failed",
    "IH": "invalid header: a strictly checked header had a bad value",
    "NFCF": "no filter chain found for the connection",
}
CLUSTER_WORDS = {
    "BlackHoleCluster": "BlackHoleCluster: REGISTRY_ONLY and the destination is in no Service or ServiceEntry",
    "PassthroughCluster": "PassthroughCluster: ALLOW_ANY lets the connection out to its original destination",
}
ROUTE_WORDS = {
    "block_all": "route block_all: REGISTRY_ONLY and the host is in no Service or ServiceEntry (502)",
    "allow_any": "route allow_any: ALLOW_ANY passes the host through to PassthroughCluster",
}
DETAIL_WORDS = {
    "rbac_access_denied": "an AuthorizationPolicy denied it (RBAC)",
    "cluster_not_found": "the route names a cluster this sidecar does not have",
    "direct_response": "the route answered by itself (direct_response)",
}
INBOUND_LISTENER = "virtualInbound"
SLACK_S = 0.002  # access-log times are whole milliseconds


@dataclass
class Hop:
    """One access-log line: what one sidecar did with the request on one side (outbound or inbound)."""

    pod: str
    side: str  # outbound | inbound
    listener: str
    chain: str
    route: str
    cluster: str
    endpoint: str
    status: int | None
    flags: str
    details: str
    duration_ms: float | None
    attempts: int | None
    method: str
    authority: str
    path: str
    start: float
    downstream_remote: str = ""
    downstream_local: str = ""
    upstream_local: str = ""

    @classmethod
    def from_line(cls, pod: str, entry: Mapping[str, Any]) -> Hop:
        def text(key: str) -> str:
            value = entry.get(key)
            return "" if value in (None, "-") else str(value)

        cluster, listener = text("upstream_cluster"), text("listener_name")
        inbound = listener == INBOUND_LISTENER or cluster.startswith("inbound|")
        code = entry.get("response_code")
        return cls(pod, "inbound" if inbound else "outbound", listener, text("filter_chain_name"), text("route_name"),
                   cluster, text("upstream_host"), int(code) if code else None, text("response_flags") or "-",
                   text("response_code_details"), _number(entry.get("duration")),
                   _count(entry.get("upstream_request_attempt_count")),
                   text("method"), text("authority"), text("path"), _time(text("start_time")),
                   text("downstream_remote_address"), text("downstream_local_address"), text("upstream_local_address"))

    @property
    def end(self) -> float:
        return self.start + (self.duration_ms or 0) / 1000

    @property
    def failed(self) -> bool:
        flags = {f for f in self.flags.split(",") if f not in ("-", "DI")}
        return bool(flags) or self.status is None or self.status >= 500 or self.cluster == "BlackHoleCluster"


@dataclass
class Call:
    """One call to a Service: the caller's outbound hop, the callee's inbound hop, and the callee app's own calls."""

    caller: str
    outbound: Hop | None
    inbound: Hop | None
    callee: str = ""  # the pod that answered (its inbound sidecar), or the endpoint's pod
    retried: list[Hop] = field(default_factory=list)  # inbound hops of earlier attempts
    wanted: list[str] = field(default_factory=list)  # NC/NR: the clusters its route names (intended_clusters)
    calls: list[Call] = field(default_factory=list)

    @property
    def target(self) -> str:
        hop = self.outbound or self.inbound
        assert hop is not None
        return f"{hop.authority or hop.downstream_local}{hop.path}"

    @property
    def status(self) -> int | None:
        return (self.outbound or self.inbound).status  # type: ignore[union-attr]


@dataclass
class Trace:
    request_id: str
    client: str
    calls: list[Call]
    stray: list[Hop] = field(default_factory=list)  # lines of the request that joined nothing

    def walk(self) -> Iterable[tuple[int, Call]]:
        """(depth, call), depth first, in the order the calls started."""
        todo = [(0, c) for c in reversed(self.calls)]
        while todo:
            depth, call = todo.pop()
            yield depth, call
            todo += [(depth + 1, c) for c in reversed(call.calls)]

    def hops(self) -> list[Hop]:
        return [h for _, c in self.walk() for h in (c.outbound, *c.retried, c.inbound) if h is not None]


def build_trace(lines: Mapping[str, Iterable[Mapping[str, Any]]], request_id: str, client: str,
                client_address: str = "", ips: Mapping[str, str] | None = None) -> Trace:
    """Join each pod's access-log lines ({pod: [parsed JSON line]}) of one request into calls.

    `client` is the pod that sent it, `client_address` its socket's ip:port (this picks the
    client's own outbound line among the app's, and finds TCP lines); `ips` ({pod: ip}) names
    the pod behind an endpoint that logged nothing (no sidecar, or the line is not flushed yet).
    """
    hops = []
    for pod, entries in lines.items():
        for entry in entries:
            rid = entry.get("request_id")
            tcp = not rid and client_address and entry.get("downstream_remote_address") == client_address
            if rid == request_id or tcp:
                hops.append(Hop.from_line(pod, entry))
    hops.sort(key=lambda h: h.start)
    inbound = [h for h in hops if h.side == "inbound"]
    pod_of_ip = {ip: pod for pod, ip in (ips or {}).items()}
    calls, used = [], set()
    for out in (h for h in hops if h.side == "outbound"):
        match = next((i for i in inbound if id(i) not in used and out.upstream_local
                      and i.downstream_remote == out.upstream_local), None)
        match = match or next((i for i in inbound if id(i) not in used and out.endpoint and i.path == out.path
                               and i.downstream_local == out.endpoint and i.start >= out.start - SLACK_S), None)
        call = Call(out.pod, out, match)
        if match is not None:
            used.add(id(match))
            call.callee = match.pod
        elif out.endpoint:
            call.callee = pod_of_ip.get(out.endpoint.rsplit(":", 1)[0], "")
        calls.append(call)
    for call in calls:  # earlier attempts: inbound lines of the same path inside the call's time
        out = call.outbound
        assert out is not None
        if (out.attempts or 1) > 1:
            for i in inbound:
                if id(i) not in used and i.path == out.path and out.start - SLACK_S <= i.start <= out.end + SLACK_S:
                    used.add(id(i))
                    call.retried.append(i)
    calls += [Call("", None, i, i.pod) for i in inbound if id(i) not in used]
    calls.sort(key=lambda c: (c.outbound or c.inbound).start)  # type: ignore[union-attr]
    return Trace(request_id, client, _nest(calls, client, client_address))


def _nest(calls: list[Call], client: str, client_address: str) -> list[Call]:
    """Hang each call under the call whose callee app made it (its outbound line inside that inbound's time)."""
    roots = []
    for call in calls:
        out = call.outbound
        parent = None
        if out is not None and not (client_address and out.downstream_remote == client_address):
            open_ = [c for c in calls if c is not call and c.inbound is not None and c.inbound.pod == out.pod
                     and c.inbound.start - SLACK_S <= out.start <= c.inbound.end + SLACK_S]
            parent = max(open_, key=lambda c: c.inbound.start, default=None)  # type: ignore[union-attr]
        if parent is None:
            roots.append(call)
        else:
            parent.calls.append(call)
    client_first = sorted(roots, key=lambda c: (c.caller != client, (c.outbound or c.inbound).start))  # type: ignore[union-attr]
    return client_first


def intended_clusters(config_dump: Mapping[str, Any], hop: Hop) -> list[str]:
    """The clusters the routes for `hop`'s host point at in this sidecar's config (for NC/NR: what it wanted).

    The outbound route configuration is named by the port (`9080`); the virtual host is the one
    whose domains hold the request's authority.
    """
    port = hop.downstream_local.rsplit(":", 1)[-1]
    host = hop.authority.rsplit(":", 1)[0] if hop.authority.endswith(f":{port}") else hop.authority
    found: list[str] = []
    for config in dump.route_configs(dict(config_dump)):
        if config.get("name") != port:
            continue
        for vhost in config.get("virtual_hosts", []):
            domains = set(vhost.get("domains", []))
            if hop.authority in domains or host in domains:
                for route in vhost.get("routes", []):
                    action = route.get("route", {})
                    names = [action["cluster"]] if "cluster" in action else [
                        c["name"] for c in action.get("weighted_clusters", {}).get("clusters", [])]
                    found += [n for n in names if n not in found]
    return found


def incomplete(trace: Trace, sidecars: Iterable[str]) -> list[Call]:
    """Calls that reached a pod with a sidecar whose inbound line is not there (not flushed yet)."""
    pods = set(sidecars)
    return [c for _, c in trace.walk() if c.inbound is None and c.outbound is not None
            and c.outbound.endpoint and c.callee in pods]


def explain(hop: Hop) -> str:
    """Why a hop ended as it did, in words: its flags, a special cluster or route, else its details."""
    words = [FLAG_WORDS.get(f, f"flag {f}") for f in hop.flags.split(",") if f and f != "-"]
    if hop.cluster in CLUSTER_WORDS:
        words.append(CLUSTER_WORDS[hop.cluster])
    if hop.route in ROUTE_WORDS:
        words.append(ROUTE_WORDS[hop.route])
    if not words:
        words += [text for key, text in DETAIL_WORDS.items() if hop.details.startswith(key)]
    if not words and hop.status is not None and hop.status >= 500 and hop.details == "via_upstream":
        words.append(f"the app answered {hop.status} itself")
    return "; ".join(words)


def stops(trace: Trace) -> list[str]:
    """One sentence per call that failed: where it stopped (which sidecar, which side) and why."""
    found = []
    for _, call in trace.walk():
        out, inn = call.outbound, call.inbound
        caller, callee = short_pod(call.caller), short_pod(call.callee)
        if out is not None and out.failed:
            where = f"{caller}'s sidecar (outbound)"
            if inn is not None and not inn.failed:
                where += f"; {callee} had answered {inn.status}"
            elif inn is not None:
                answer = inn.status or "no answer"
                where += f"; {callee}'s sidecar (inbound) logged {answer} {inn.flags}: {explain(inn)}"
            elif out.cluster or out.endpoint:
                where += f", cluster {out.cluster or '?'}{' → ' + out.endpoint if out.endpoint else ''}"
            elif call.wanted:
                where += f"; its route names cluster {', '.join(call.wanted)}"
            found.append(f"{call.target}: {_code(out)} at {where}. {explain(out)}".strip())
        elif inn is not None and inn.failed:
            found.append(f"{call.target}: {_code(inn)} at {callee}'s sidecar (inbound). {explain(inn)}".strip())
    return found


def _code(hop: Hop) -> str:
    return (f"HTTP {hop.status}" if hop.status else "no HTTP answer") + (f" {hop.flags}" if hop.flags != "-" else "")


COLUMNS = ["#", "CALL", "SIDECAR", "SIDE", "LISTENER/CHAIN", "ROUTE", "CLUSTER", "ENDPOINT", "TRY", "CODE", "FLAGS",
           "MS"]


def trace_rows(trace: Trace) -> list[list[str]]:
    """The text table's rows: one per hop, the outbound hop first, indented by call depth.

    TRY is the outbound hop's attempt count, and on inbound hops which attempt reached that pod.
    """
    rows = []
    for number, (depth, call) in enumerate(trace.walk(), 1):
        tries = {id(h): i for i, h in enumerate([*call.retried, call.inbound], 1)}
        for hop in (call.outbound, *call.retried, call.inbound):
            if hop is None:
                continue
            first = hop is (call.outbound or call.inbound)
            attempt = hop.attempts if hop.side == "outbound" else tries.get(id(hop))
            rows.append([str(number) if first else "", ("  " * depth + call.target) if first else "",
                         short_pod(hop.pod), hop.side[:3], "/".join(x for x in (hop.listener, hop.chain) if x) or "-",
                         hop.route or "-", hop.cluster or "-", hop.endpoint or "-", str(attempt or "-"),
                         str(hop.status or "-"), hop.flags,
                         f"{hop.duration_ms:g}" if hop.duration_ms is not None else "-"])
    return rows


def trace_text(trace: Trace) -> str:
    """The trace as a table, then where each failing call stopped and why."""
    if not trace.calls:
        return f"request {trace.request_id}: no sidecar logged it (yet)"
    table = render(istioctl_table(trace_rows(trace), COLUMNS, 2))
    problems = stops(trace)
    tail = "\n".join(f"✗ {p}" for p in problems) if problems else "✓ every hop answered without an error flag"
    return f"request {trace.request_id} from {trace.client}\n{table}\n{tail}"


def trace_graph(trace: Trace, width: int = 30) -> Graph:
    """Client → one node per call (outbound sidecar line, inbound sidecar line, answer), left to right."""
    graph = Graph(title=f"request {trace.request_id[:8]}… from {trace.client}")
    client = graph.add(Node("client", trace.client or "client", "pod", "client"))
    parents: dict[int, str] = {}
    for number, (depth, call) in enumerate(trace.walk(), 1):
        node_id = f"call{number}"
        parents[depth + 1] = node_id
        out, inn = call.outbound, call.inbound
        lines = [_fit(call.target, width)]
        if out is not None:
            tries = f" ×{out.attempts}" if (out.attempts or 1) > 1 else ""
            lines += [f"out @{short_pod(out.pod)}", f"{out.listener or '-'} · route {out.route or '-'}",
                      f"→ {_short_cluster(out.cluster) or _missing(call)}",
                      f"→ {out.endpoint or '(no endpoint)'}{tries}"]
        if inn is not None:
            port = "15006" if inn.listener == INBOUND_LISTENER else inn.listener
            if call.retried:
                lines.append("tried first: " + ", ".join(short_pod(h.pod) for h in call.retried))
            lines += [f"in @{short_pod(inn.pod)} {port}", f"{inn.chain or '-'} → {inn.cluster or '-'}"]
        hop = out or inn
        assert hop is not None
        took = f" · {hop.duration_ms:g} ms" if hop.duration_ms is not None else ""
        lines = [_fit(line, width) for line in [*lines, _code(hop) + took]]
        failed = (out is not None and out.failed) or (inn is not None and inn.failed)
        why = explain(out) if out is not None and (out.failed or out.flags != "-") else (
            explain(inn) if inn is not None and inn.failed else "")
        blackhole = hop.cluster == "BlackHoleCluster" or hop.route == "block_all"
        state = "blackhole" if blackhole else "error" if failed else "ok"
        graph.add(Node(node_id, "\n".join(lines), "call", _fit(why.split(":")[0], width) if why else "", state))
        graph.link(parents.get(depth, client), node_id, "", "error" if failed else "")
    return graph


def _missing(call: Call) -> str:
    return f"✗ {_short_cluster(call.wanted[0])}" if call.wanted else "(no cluster)"


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _short_cluster(name: str) -> str:
    """`outbound|9080|v2|reviews.default.svc.cluster.local` → `outbound|9080|v2|reviews`."""
    return name.replace(".svc.cluster.local", "").replace(".default", "")


def short_pod(pod: str) -> str:
    """`reviews-v2-jjh7zkdq6x-bctg4` → `reviews-v2` (Kubernetes' deployment-hash-hash naming)."""
    parts = pod.split("-")
    return "-".join(parts[:-2]) if len(parts) > 3 else pod


def _count(value: object) -> int | None:
    number = _number(value)
    return int(number) if number else None


def _number(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _time(text: str) -> float:
    """Envoy's %START_TIME% (`2026-12-01T08:52:10.386Z`) as a Unix time."""
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0

