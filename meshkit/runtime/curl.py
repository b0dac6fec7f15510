"""One HTTP exchange from inside a pod, and what the pod's sidecar logged about it.

The runtime opens the TCP connection inside the pod (so iptables hands it to the sidecar on
15001, exactly as the app's own calls); this module speaks HTTP/1.1 over it and then reads the
sidecar's JSON access log (Istio's `accessLogFile: /dev/stdout` format) for the response flags.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.client import HTTPResponse
from pathlib import Path
from urllib.parse import urlsplit


@dataclass
class Reply:
    """What the client saw, plus what its sidecar logged (flags, upstream) when it is known."""

    request_id: str
    status: int | None
    elapsed_ms: float
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    error: str = ""
    pod: str = ""  # the upstream pod that answered, from the demo apps' JSON
    version: str = ""
    flags: str = ""  # Envoy's %RESPONSE_FLAGS% ("-" when none)
    upstream_cluster: str = ""
    upstream_host: str = ""
    route_name: str = ""  # the Envoy route that matched (`block_all`, `allow_any`, a VS route's name)
    client_address: str = ""  # the client socket's ip:port: a TCP access-log line's downstream_remote_address

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Target:
    """Where a URL points: the address to dial, the Host header, the path."""

    address: str
    port: int
    host_header: str
    path: str


def parse_url(url: str) -> tuple[str, int, str]:
    """`http://reviews:9080/reviews/0` → ('reviews', 9080, '/reviews/0')."""
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise ValueError(f"only http:// URLs are supported, not {parts.scheme}://")
    if not parts.hostname:
        raise ValueError(f"no host in {url!r}")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.hostname, parts.port or 80, path


def exchange(
    sock: socket.socket,
    target: Target,
    headers: Mapping[str, str] | None = None,
    method: str = "GET",
    timeout: float = 10.0,
) -> Reply:
    """Send one request on a connected socket and read the full reply (the socket is closed)."""
    request_id = str(uuid.uuid4())
    sent = {k.lower() for k in (headers or {})}
    host = next((v for k, v in (headers or {}).items() if k.lower() == "host"), target.host_header)
    lines = [f"{method} {target.path} HTTP/1.1", f"Host: {host}"]  # a given Host replaces the URL's
    lines += [f"{k}: {v}" for k, v in (headers or {}).items() if k.lower() != "host"]
    if "x-request-id" not in sent:
        lines.append(f"x-request-id: {request_id}")
    else:
        request_id = next(v for k, v in (headers or {}).items() if k.lower() == "x-request-id")
    if "user-agent" not in sent:
        lines.append("user-agent: meshkit-curl")
    lines += ["Connection: close", "", ""]
    start = time.perf_counter()
    sock.settimeout(timeout)
    client = _address(sock)
    try:
        with sock:
            sock.sendall("\r\n".join(lines).encode())
            response = HTTPResponse(sock, method=method)
            response.begin()
            body = response.read().decode(errors="replace")
            reply = Reply(request_id, response.status, _ms(start), dict(response.getheaders()), body,
                          client_address=client)
    except OSError as exc:
        return Reply(request_id, None, _ms(start), error=_describe(exc), client_address=client)
    except Exception as exc:  # http.client raises several non-OSError types on bad peers
        return Reply(request_id, None, _ms(start), error=f"{type(exc).__name__}: {exc}", client_address=client)
    _read_app_identity(reply)
    return reply


def requests(
    connect: Callable[[], socket.socket],
    target: Target,
    count: int,
    headers: Mapping[str, str] | None = None,
    method: str = "GET",
    timeout: float = 10.0,
) -> list[Reply]:
    """`count` requests, each on a fresh connection from `connect` (like `curl` run `count` times)."""
    replies = []
    for _ in range(max(1, count)):
        try:
            sock = connect()
        except OSError as exc:
            replies.append(Reply("", None, 0.0, error=f"connect failed: {exc}"))
            continue
        replies.append(exchange(sock, target, headers, method, timeout))
    return replies


def target_of(address: str, host: str, port: int, path: str) -> Target:
    """The Target for a URL's host, port and path once `host` resolved to `address`."""
    return Target(address, port, host if port == 80 else f"{host}:{port}", path)


def tcp_exchange(connect: Callable[[], socket.socket], payload: bytes, timeout: float = 3.0) -> dict:
    """Send `payload` on a fresh connection, half-close it, and read until the peer closes.

    `connect` opens the connection where the caller lives (inside a pod, so it is captured).
    """
    start = time.perf_counter()
    try:
        with connect() as sock:
            sock.settimeout(timeout)
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        reply, error = b"".join(chunks).decode(errors="replace"), ""
    except OSError as exc:
        reply, error = "", str(exc) or type(exc).__name__
    return {"reply": reply, "error": error, "elapsed_ms": _ms(start)}


def log_size(log: Path) -> int:
    """Where the access log ends now: pass it to `attach_access_log` to skip older lines."""
    try:
        return log.stat().st_size
    except OSError:
        return 0


def attach_access_log(replies: Iterable[Reply], log: Path, wait_s: float = 3.0, offset: int = 0) -> None:
    """Fill flags/upstream from the client sidecar's access log, waiting briefly for the flush.

    An HTTP line is matched by its request id; a TCP line (tcp_proxy: the catch-all chains with
    PassthroughCluster or BlackHoleCluster) has none and is matched by the client's ip:port
    (`downstream_remote_address`), which also covers a connection Envoy reset without answering.
    """
    pending = pending_replies(replies)
    deadline = time.monotonic() + wait_s
    while pending and time.monotonic() < deadline:
        if log.exists():
            with log.open("rb") as handle:
                handle.seek(offset)
                chunk = handle.read()
            complete = chunk[: chunk.rfind(b"\n") + 1]
            offset += len(complete)
            _fill(pending, complete.splitlines())
        if pending:
            time.sleep(0.02)  # Envoy flushes its access log every 50 ms


def pending_replies(replies: Iterable[Reply]) -> dict[str, Reply]:
    """Replies still waiting for their access-log line, by request id and by client ip:port."""
    replies = list(replies)
    pending = {r.request_id: r for r in replies if r.request_id}
    pending.update({r.client_address: r for r in replies if r.client_address})
    pending.update({_port_key(r.client_address): r for r in replies if r.client_address})
    return pending


def _port_key(address: str) -> str:
    """`:port` of an ip:port: in userspace capture the PROXY header names the pod IP while the socket
    is bound to the app's address, so an outbound TCP line matches by its (unique) client port."""
    return ":" + address.rsplit(":", 1)[-1]


def attach_lines(pending: dict[str, Reply], lines: Iterable[bytes]) -> None:
    """Fill the `pending` replies from access-log lines got some other way (kind: `kubectl logs`
    of the istio-proxy container); non-JSON lines (Envoy's own log) are skipped."""
    _fill(pending, lines)


def _fill(pending: dict[str, Reply], lines: Iterable[bytes]) -> None:
    for line in lines:
        entry = _json(line)
        # a line with a request id is an HTTP request, maybe the app's own on a reused port
        key = (entry.get("request_id") or entry.get("downstream_remote_address")) if entry else None
        reply = pending.get(str(key)) if key else None
        if reply is None and entry and not entry.get("request_id") and entry.get("listener_name") != "virtualInbound":
            reply = pending.get(_port_key(str(entry.get("downstream_remote_address") or "")))
        if reply is not None:
            pending.pop(reply.request_id, None)
            pending.pop(reply.client_address, None)
            pending.pop(_port_key(reply.client_address), None)
            reply.flags = str(entry.get("response_flags") or "-")
            reply.upstream_cluster = str(entry.get("upstream_cluster") or "")
            reply.upstream_host = str(entry.get("upstream_host") or "")
            reply.route_name = str(entry.get("route_name") or "")


def _read_app_identity(reply: Reply) -> None:
    data = _json(reply.body.encode())
    if data:
        reply.pod = str(data.get("pod", ""))
        reply.version = str(data.get("version", ""))


def _address(sock: socket.socket) -> str:
    """The client's ip:port (empty for a non-IP socket, e.g. a unix socketpair in tests)."""
    try:
        name = sock.getsockname()
    except OSError:
        return ""
    return f"{name[0]}:{name[1]}" if isinstance(name, tuple) else ""


def _json(raw: bytes) -> dict:
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _describe(exc: OSError) -> str:
    if isinstance(exc, ConnectionResetError):
        return "connection reset by peer"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    return str(exc) or type(exc).__name__


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)
