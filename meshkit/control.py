"""The private line between the boss process and its clients (CLI, notebooks).

One JSON request per connection over a unix socket in the mesh's home folder (mode 0600):
`{"op": "status", "args": {...}}` → `{"ok": true, "result": ...}` or
`{"ok": false, "error": "...", "problem": "..."}`. The local mesh listens on no network port.

The kind path speaks the same protocol over TCP (`serve_tcp`, and `call` with a "host:port"
address): the in-cluster boss listens on 127.0.0.1 inside its pod, so only a `kubectl
port-forward` (which needs the cluster's credentials) reaches it, on 127.0.0.1 of the host.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

Handler = Callable[[dict], Awaitable[object]]
MAX_MESSAGE = 64 * 1024 * 1024
DAEMON_LOG = "daemon.log"  # next to control.sock: where the daemon's stderr goes (api.up)
log = logging.getLogger("meshkit.control")


class ControlError(RuntimeError):
    """The boss answered with an error; `problem` classifies it (e.g. 'nack', 'invalid')."""

    def __init__(self, message: str, problem: str = "error", detail: object = None) -> None:
        super().__init__(message)
        self.problem = problem
        self.detail = detail


class NotRunning(ControlError):
    """No mesh answers at this home."""


Address = Path | str  # a unix socket path, or "host:port" for TCP


def _answerer(handlers: dict[str, Handler], log_path: Path | None = None,
              ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    """The connection handler; an unexpected exception is logged with its traceback (to `log_path`,
    the daemon's log) and answered as problem 'internal', never with Python's words."""
    where = str(log_path) if log_path else "the boss's log"

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                request = json.loads(await reader.readline())
                op = request.get("op", "") if isinstance(request, dict) else None
            except ValueError:
                request, op = {}, None
            handler = handlers.get(op) if isinstance(op, str) else None
            if handler is None:
                reply: dict = {"ok": False, "error": f"unknown operation {op!r}", "problem": "invalid"}
            else:
                try:
                    reply = {"ok": True, "result": await handler(request.get("args") or {})}
                except ControlError as exc:
                    reply = {"ok": False, "error": str(exc), "problem": exc.problem, "detail": exc.detail}
                except Exception as exc:  # report, never kill the boss
                    reply = _failure(exc, op, where)
            writer.write(json.dumps(reply, default=str).encode() + b"\n")
            await writer.drain()
        finally:
            writer.close()

    return on_connection


def _failure(exc: Exception, op: str, log_where: str) -> dict:
    """The answer for an exception a handler did not turn into a ControlError."""
    if isinstance(getattr(exc, "fix", None), str):  # the runtime's RuntimeProblem: already said for learners
        return {"ok": False, "error": str(exc), "problem": "runtime"}
    log.exception("operation %r failed", op)
    return {"ok": False, "error": f"internal error (see {log_where})", "problem": "internal"}


async def serve(path: Path, handlers: dict[str, Handler]) -> asyncio.AbstractServer:
    """Answer requests on `path` with the handler named by each request's `op`."""
    on_connection = _answerer(handlers, path.parent / DAEMON_LOG)
    if path.exists():
        path.unlink()
    old_umask = os.umask(0o177)
    try:
        server = await asyncio.start_unix_server(on_connection, path=str(path), limit=MAX_MESSAGE)
    finally:
        os.umask(old_umask)
    return server


async def serve_tcp(listen: str, handlers: dict[str, Handler]) -> asyncio.AbstractServer:
    """Answer requests on TCP `listen` ("127.0.0.1:15011"); keep it on a loopback address."""
    host, port = split_address(listen)
    return await asyncio.start_server(_answerer(handlers), host=host, port=port, limit=MAX_MESSAGE)


def split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"want host:port, not {address!r}")
    return host, int(port)


def call(address: Address, op: str, args: dict | None = None, timeout: float = 60.0) -> object:
    """Send one request to the boss at `address` (unix socket path or "host:port"); its result,
    or ControlError."""
    if isinstance(address, str):
        host, port = split_address(address)
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except (ConnectionRefusedError, TimeoutError) as exc:
            raise NotRunning(
                f"no mesh answers on {address} (kind: is the port-forward up? `meshkit cluster status`; "
                "`meshkit cluster up` starts it again)", "not-running") from exc
    else:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(str(address))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            sock.close()
            raise NotRunning(
                f"no mesh is running at {address.parent} (start one with `meshkit up`)", "not-running"
            ) from exc
    with sock, sock.makefile("rwb") as stream:
        stream.write(json.dumps({"op": op, "args": args or {}}).encode() + b"\n")
        stream.flush()
        line = stream.readline(MAX_MESSAGE)
    if not line:
        raise ControlError("the mesh closed the connection without an answer", "error")
    reply = json.loads(line)
    if not reply.get("ok"):
        problem, detail = reply.get("problem", "error"), reply.get("detail")
        raise ControlError(reply.get("error", "unknown error"), problem, detail)
    return reply["result"]
