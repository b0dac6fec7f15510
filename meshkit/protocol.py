"""The control protocol between the boss and everything that talks to it, declared once.

Each `Operation` names its request fields, its result type and where it runs: `PLANE` operations
need only the control plane (the in-cluster boss answers them too); `POD` operations reach into a
pod (the local daemon answers them; on kind the client's transport does them with kubectl).

On the wire: one JSON line per connection, `{"op": name, "args": {...}}`, answered by
`{"ok": true, "result": ...}` or `{"ok": false, "error": message, "problem": code, "detail": ...}`
(`meshkit.errors` turns the code back into the exception class).

>>> OPERATIONS["apply"].scope is Scope.PLANE, OPERATIONS["curl"].scope is Scope.POD
(True, True)
>>> decode_request(encode_request("status", {}))
('status', {})
>>> acked_pods({"results": {"a": {"LDS": "ACK"}, "b": {"RDS": "NACK"}, "c": {}}})
['a']
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any, Generic, TypedDict, TypeVar

from .errors import InvalidInput, MeshError, from_wire

MAX_MESSAGE = 64 * 1024 * 1024

R = TypeVar("R")


class Scope(enum.Enum):
    PLANE = "plane"  # the control plane alone answers it
    POD = "pod"  # it reaches into a pod: the runtime (local) or kubectl (kind)


# -- result shapes ----------------------------------------------------------------------------------
class Ping(TypedDict):
    pid: int
    home: str
    ready: bool
    ready_s: float | None
    capture: str
    capture_note: str  # what differs from Istio's listeners in this capture mode ("" for iptables)
    xds: str  # the mesh's default xDS variant: DELTA (Istio's default) or SOTW; rows say each sidecar's


class Change(TypedDict):
    pod: str
    type: str  # CDS, EDS, LDS, RDS, SDS
    name: str
    action: str  # added, changed, removed


class PushRecord(TypedDict, total=False):
    id: int
    started: float
    reason: str
    changes: list[Change]
    versions: dict[str, dict[str, str]]
    results: dict[str, dict[str, str]]  # pod -> type -> ACK / NACK / TIMEOUT
    errors: dict[str, str]  # pod -> Envoy's error text
    duration_ms: float | None
    warnings: list[str]
    xds: dict[str, str]  # pod -> the xDS variant its sidecar speaks: DELTA or SOTW
    bytes: dict[str, int]  # pod -> serialized bytes of the responses this push sent it
    publish_ms: float | None  # the boss's share: translating and packing, before any proxy answers
    merged: list[str]  # the reasons of every change merged into this push (debounce)
    rebuilt: dict[str, list[str]]  # pod -> the xDS types translated anew (CDS, EDS, LDS, RDS, SDS)


class TypeSyncRow(TypedDict):
    state: str  # SYNCED, STALE, NOT SENT, ERROR; DISCONNECTED / BOSS STOPPED while no stream is open
    last_state: str  # what it was when the stream was last open
    version: str
    sent: str
    acked: str
    error: str
    bytes: int  # serialized responses of this type sent on the current stream, summed
    responses: int  # how many responses of this type that stream carried


class SyncRow(TypedDict):
    name: str  # pod.namespace, as istioctl proxy-status shows it
    pod: str
    cluster: str
    connected: bool
    state: str  # the link to the boss: CONNECTED, DISCONNECTED, BOSS STOPPED
    since: float | None  # when that link last changed
    xds: str  # the xDS variant its (latest) stream speaks: DELTA or SOTW
    types: dict[str, TypeSyncRow]
    istiod: str
    version: str


class CurlRow(TypedDict):
    request_id: str
    status: int | None
    elapsed_ms: float
    headers: dict[str, str]
    body: str
    error: str
    pod: str
    version: str
    flags: str
    upstream_cluster: str
    upstream_host: str
    route_name: str
    client_address: str


class TcpReply(TypedDict):
    reply: str
    error: str
    elapsed_ms: float


class SyncEventRow(TypedDict):
    seq: int
    kind: str
    node_id: str
    pod: str
    time: float
    type: str
    version: str
    nonce: str
    error: str


class Events(TypedDict):
    last: int
    events: list[SyncEventRow]


class ServiceInfo(TypedDict):
    name: str
    namespace: str
    fqdn: str
    vip: str
    ports: list[dict[str, Any]]
    selector: dict[str, str]


class WorkloadInfo(TypedDict):
    name: str
    deployment: str
    namespace: str
    ip: str
    labels: dict[str, str]
    service_account: str
    node_id: str
    sidecar: bool
    calls: list[str]  # the Services its app calls: the call graph views draw before any traffic
    listens: list[int]  # a gateway's ports its Gateways open (none: a sidecar, or a gate no Gateway opens)


class TopologyInfo(TypedDict):
    mesh: dict[str, Any]
    outside: dict[str, Any] | None
    services: list[ServiceInfo]
    workloads: list[WorkloadInfo]


class PodRow(TypedDict, total=False):
    NAME: str
    READY: str  # "2/2": app and sidecar ready
    STATUS: str  # Running, Error, CrashLoopBackOff, Completed
    RESTARTS: str  # kubectl's "1 (5s ago)"
    AGE: str
    restarts: int
    ready: bool


class BossState(TypedDict):
    running: bool


class Identity(TypedDict):
    ttl_s: float
    rotations: int
    certificates: dict[str, dict[str, Any]]
    push: PushRecord | None


class Ingress(TypedDict):
    """Where the host (a notebook, a browser) reaches the ingress gateway."""

    address: str
    http_port: int
    https_port: int
    url: str


class XdsVariant(TypedDict):
    pod: str
    xds: str  # the variant its sidecar speaks now: DELTA or SOTW
    was: str  # the one it spoke before
    restart_ms: float  # from stopping the old Envoy to the new one synced on every type


class Stopping(TypedDict):
    stopping: bool


# -- the operations -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Operation(Generic[R]):
    """One control operation: its name, where it runs, its request fields and its result type."""

    name: str
    scope: Scope
    fields: tuple[str, ...]
    result: Any  # the result's type, for readers and the contract test
    doc: str

    def request(self, args: dict[str, Any]) -> dict[str, Any]:
        """`args` checked against this operation's fields (a typo is an InvalidInput, not a silent no-op)."""
        unknown = sorted(set(args) - set(self.fields))
        if unknown:
            raise InvalidInput(f"{self.name}: unknown argument(s) {', '.join(unknown)}; "
                               f"it takes {', '.join(self.fields) or 'none'}")
        return args


def _op(name: str, scope: Scope, fields: tuple[str, ...], result: Any, doc: str) -> Operation[Any]:
    return Operation(name, scope, fields, result, doc)


PING: Operation[Ping] = _op("ping", Scope.PLANE, (), Ping, "who answers, and whether it is ready")
TOPOLOGY: Operation[TopologyInfo] = _op("topology", Scope.PLANE, (), TopologyInfo,
                                        "Services, workloads, mesh settings, the outside world")
STATUS: Operation[list[SyncRow]] = _op("status", Scope.PLANE, (), list[SyncRow], "istioctl proxy-status rows")
APPLY: Operation[PushRecord] = _op("apply", Scope.PLANE, ("text", "pods"), PushRecord,
                                   "Istio documents change the book; raw Envoy ones override per pod")
DELETE: Operation[PushRecord] = _op("delete", Scope.PLANE, ("text",), PushRecord,
                                    "delete the Istio resources a file names")
GET: Operation[list[dict]] = _op("get", Scope.PLANE, ("kind",), list[dict], "the Istio resources of a kind")
XDS: Operation[dict[str, list[dict]]] = _op("xds", Scope.PLANE, ("pod", "text"), dict[str, list[dict]],
                                            "the xDS a file would produce for one pod, without applying it")
REVERT: Operation[PushRecord] = _op("revert", Scope.PLANE, ("pods",), PushRecord, "drop raw overrides")
HISTORY: Operation[list[PushRecord]] = _op("history", Scope.PLANE, (), list[PushRecord], "every push")
EVENTS: Operation[Events] = _op("events", Scope.PLANE, ("after", "wait"), Events,
                                "sync events after a sequence number, waiting up to `wait` s for one")
BOSS: Operation[BossState] = _op("boss", Scope.PLANE, ("action",), BossState, "stop or start the ADS server")
IDENTITY: Operation[Identity] = _op("identity", Scope.PLANE, ("ttl_s", "rotate", "pods"), Identity,
                                    "the certificates the boss issued; change their lifetime or rotate them")
CURL: Operation[list[CurlRow]] = _op("curl", Scope.POD, ("pod", "url", "headers", "n", "method", "timeout_s"),
                                     list[CurlRow], "HTTP requests from inside a pod, through its sidecar")
TCP: Operation[TcpReply] = _op("tcp", Scope.POD, ("pod", "host", "port", "text", "timeout_s"), TcpReply,
                               "a TCP exchange from inside a pod, captured like the app's")
ADMIN: Operation[str] = _op("admin", Scope.POD, ("pod", "path"), str, "GET from a pod's Envoy admin API")
POD_INFO: Operation[str] = _op("pod_info", Scope.POD, ("pod", "what"), str,
                               "a read-only look inside a pod: iptables, sockets, hosts, addresses")
PUSH_DIFF: Operation[list[dict]] = _op("push_diff", Scope.PLANE, ("a", "b", "pods", "types"), list[dict],
                                      "what changed in Envoy's own YAML from push a to push b")
REPLAY: Operation[PushRecord] = _op("replay", Scope.PLANE, ("push_id",), PushRecord,
                                    "put back the config in force after an earlier push, and push it")
PODS: Operation[list[PodRow]] = _op("pods", Scope.POD, (), list[PodRow],
                                    "kubectl get pods: READY, STATUS, RESTARTS, AGE as the supervisor sees them")
ACCESS_LOG: Operation[dict[str, dict]] = _op("access_log", Scope.POD, ("pods", "request_id", "client", "since"),
                                             dict[str, dict], "sidecars' access-log lines for one request")
INGRESS: Operation[Ingress] = _op("ingress", Scope.PLANE, (), Ingress,
                                  "where the host reaches the ingress gateway: address, ports, URL")
SET_XDS: Operation[XdsVariant] = _op("set_xds", Scope.POD, ("pod", "variant"), XdsVariant,
                                         "restart a pod's sidecar speaking DELTA or SOTW xDS, and wait for its sync")
DOWN: Operation[Stopping] = _op("down", Scope.POD, (), Stopping, "stop the mesh and everything it started")

OPERATIONS: dict[str, Operation[Any]] = {
    op.name: op for op in (PING, TOPOLOGY, STATUS, APPLY, DELETE, GET, XDS, REVERT, HISTORY, EVENTS, BOSS,
                           IDENTITY, PUSH_DIFF, REPLAY, INGRESS, CURL, TCP, ADMIN, POD_INFO, PODS, ACCESS_LOG,
                           SET_XDS, DOWN)
}
PLANE_OPS = frozenset(name for name, op in OPERATIONS.items() if op.scope is Scope.PLANE)


# -- the wire -----------------------------------------------------------------------------------------
def split_address(address: str) -> tuple[str, int]:
    """("127.0.0.1", 15011) for "127.0.0.1:15011"."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise InvalidInput(f"want host:port, not {address!r}")
    return host, int(port)


def encode_request(op: str, args: dict[str, Any]) -> bytes:
    return json.dumps({"op": op, "args": args}).encode() + b"\n"


def decode_request(line: bytes) -> tuple[str, dict[str, Any]]:
    try:
        request = json.loads(line)
        return str(request["op"]), dict(request.get("args") or {})
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(f"not a control request: {line[:200]!r}") from exc


def encode_result(result: object) -> bytes:
    return json.dumps({"ok": True, "result": result}, default=str).encode() + b"\n"


def encode_error(error: MeshError) -> bytes:
    reply = {"ok": False, "error": str(error), "problem": error.problem, "detail": error.detail}
    return json.dumps(reply, default=str).encode() + b"\n"


def decode_reply(line: bytes) -> object:
    """The result in a reply line, or the error it carries raised as its class."""
    reply = json.loads(line)
    if not reply.get("ok"):
        raise from_wire(reply.get("problem", "error"), reply.get("error", "unknown error"), reply.get("detail"))
    return reply["result"]


# -- shapes every consumer reads the same way -------------------------------------------------------------
def acked_pods(push: PushRecord) -> list[str]:
    """The pods that ACKed every type this push sent them, sorted."""
    return sorted(pod for pod, types in (push.get("results") or {}).items() if types and set(types.values()) == {"ACK"})


def format_push(push: PushRecord) -> str:
    """A push as the CLI and the YAML editor print it: what changed, and each proxy's verdicts."""
    lines = [f"push {push['id']}: {push['reason']} ({push.get('duration_ms') or 0:.1f} ms)"]
    for change in push.get("changes", []):
        lines.append(f"  {change['action']:<8} {change['type']} {change['name']!r} on {change['pod']}")
    errors = push.get("errors") or {}
    for pod, results in sorted((push.get("results") or {}).items()):
        verdicts = ", ".join(f"{t} {r}" for t, r in sorted(results.items()))
        sent = (push.get("bytes") or {}).get(pod)
        variant = (push.get("xds") or {}).get(pod, "")
        wire = f" ({sent} bytes{', ' + variant.lower() if variant else ''})" if sent is not None else ""
        lines.append(f"  {pod}: {verdicts}{wire}")
        if pod in errors:
            lines.append(f"    Envoy said: {errors[pod]}")
    if not push.get("changes"):
        lines.append("  nothing changed: the proxies already hold this config")
    lines += [f"  {warning}" for warning in push.get("warnings", [])]
    return "\n".join(lines)
