"""A tiny HTTP/1.1 client for Envoy's admin API, over any socket the caller can open.

The admin port of a sidecar listens on 127.0.0.1 *inside the pod*, so each runtime hands it a
socket factory that reaches there: a connection from within the pod's network namespace
(iptables capture), the pod IP (userspace capture), a port-forward (kind, `client/kind.py`); tests
simply connect to a local port. The one admin client of meshkit. Only the standard library is used.

    >>> admin = AdminClient(lambda: socket.create_connection(("127.0.0.1", 15000)))
    >>> admin.server_info()["state"]
    'LIVE'
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

__all__ = ["AdminClient", "AdminError"]


class AdminError(RuntimeError):
    """Envoy's admin API answered with something other than 200 OK (or not HTTP at all)."""

    def __init__(self, method: str, path: str, status: int, body: bytes) -> None:
        text = body.decode(errors="replace").strip()
        super().__init__(f"{method} {path} -> HTTP {status}: {text[:500]}")
        self.status = status
        self.body = body


class AdminClient:
    """Reads (and pokes) one Envoy through its admin API: one connection per request.

    `connect` returns a fresh connected socket each time it is called.
    """

    def __init__(self, connect: Callable[[], socket.socket], *, timeout: float = 10.0) -> None:
        self._connect = connect
        self._timeout = timeout

    def text(self, path: str) -> str:
        """GET `path` (query included) and return the body whatever the status.

        Envoy's own words (`PRE_INITIALIZING` from /ready with a 503, the list of endpoints for
        an unknown path with a 404) say more to a learner than a status code.
        """
        return self._exchange("GET", path)[2].decode("utf-8", "replace")

    def get(self, path: str, params: Mapping[str, str | int | None] | None = None) -> bytes:
        """GET `path` (plus query `params`; a None value adds a bare flag) and return the body."""
        return self._request("GET", _with_query(path, params))

    def post(self, path: str, params: Mapping[str, str | int | None] | None = None) -> bytes:
        """POST to `path`, e.g. `/healthcheck/fail` or `/drain_listeners`; returns the body."""
        return self._request("POST", _with_query(path, params))

    def get_json(self, path: str, params: Mapping[str, str | int | None] | None = None) -> Any:
        """GET `path` and decode its JSON body."""
        return json.loads(self.get(path, params))

    def config_dump(self, include_eds: bool = True) -> dict[str, Any]:
        """`/config_dump` (with EDS when `include_eds`): snake_case JSON, as Envoy holds it."""
        return self.get_json("/config_dump", {"include_eds": None} if include_eds else None)

    def clusters(self) -> dict[str, Any]:
        """`/clusters?format=json`: every cluster's live hosts with their health flags."""
        return self.get_json("/clusters", {"format": "json"})

    def server_info(self) -> dict[str, Any]:
        """`/server_info`: version, state (`LIVE`, `PRE_INITIALIZING`…), node, uptime."""
        return self.get_json("/server_info")

    def stats(self, filter: str | None = None) -> dict[str, int | str]:
        """Counters, gauges and text readouts by name; `filter` is Envoy's regex filter.

        >>> admin.stats(r"^cluster\\.outbound\\|9080\\|\\|reviews.*upstream_rq_total$")
        {'cluster.outbound|9080||reviews.default.svc.cluster.local.upstream_rq_total': 3}
        """
        params: dict[str, str | int | None] = {"format": "json"}
        if filter is not None:
            params["filter"] = filter
        entries = self.get_json("/stats", params).get("stats", [])
        return {e["name"]: e["value"] for e in entries if "name" in e and "value" in e}

    def _request(self, method: str, target: str) -> bytes:
        status, _, body = self._exchange(method, target)
        if status != 200:
            raise AdminError(method, target, status, body)
        return body

    def _exchange(self, method: str, target: str) -> tuple[int, dict[str, str], bytes]:
        head = f"{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        if method == "POST":
            head += "Content-Length: 0\r\n"
        with self._connect() as sock:
            sock.settimeout(self._timeout)
            sock.sendall((head + "\r\n").encode())
            raw = _read_all(sock)
        status, headers, body = _parse_response(raw, method, target)
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = _dechunk(body)
        return status, headers, body


def _with_query(path: str, params: Mapping[str, str | int | None] | None) -> str:
    if not params:
        return path
    flags = [k for k, v in params.items() if v is None]
    pairs = urlencode({k: v for k, v in params.items() if v is not None})
    query = "&".join([*flags, pairs] if pairs else flags)
    return f"{path}{'&' if '?' in path else '?'}{query}"


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_response(raw: bytes, method: str, target: str) -> tuple[int, dict[str, str], bytes]:
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if not sep or len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise AdminError(method, target, 0, b"not an HTTP response: " + raw[:200])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = body[: int(headers["content-length"])]
    return int(parts[1]), headers, body


def _dechunk(body: bytes) -> bytes:
    out, rest = [], body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out.append(rest[:size])
        rest = rest[size + 2 :]
    return b"".join(out)
