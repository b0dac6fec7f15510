"""The private line between the boss process and its clients (CLI, notebooks).

One JSON request per connection over a unix socket in the mesh's home folder (mode 0600):
`{"op": "status", "args": {...}}` → `{"ok": true, "result": ...}` or
`{"ok": false, "error": "...", "problem": "..."}`. Nothing listens on a network port.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

Handler = Callable[[dict], Awaitable[object]]
MAX_MESSAGE = 64 * 1024 * 1024


class ControlError(RuntimeError):
    """The boss answered with an error; `problem` classifies it (e.g. 'nack', 'invalid')."""

    def __init__(self, message: str, problem: str = "error", detail: object = None) -> None:
        super().__init__(message)
        self.problem = problem
        self.detail = detail


class NotRunning(ControlError):
    """No mesh answers at this home."""


async def serve(path: Path, handlers: dict[str, Handler]) -> asyncio.AbstractServer:
    """Answer requests on `path` with the handler named by each request's `op`."""

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = json.loads(await reader.readline())
            handler = handlers.get(request.get("op", ""))
            if handler is None:
                reply: dict = {"ok": False, "error": f"unknown operation {request.get('op')!r}"}
            else:
                try:
                    reply = {"ok": True, "result": await handler(request.get("args") or {})}
                except ControlError as exc:
                    reply = {"ok": False, "error": str(exc), "problem": exc.problem, "detail": exc.detail}
                except Exception as exc:  # report, never kill the boss
                    reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "problem": "error"}
            writer.write(json.dumps(reply, default=str).encode() + b"\n")
            await writer.drain()
        finally:
            writer.close()

    if path.exists():
        path.unlink()
    old_umask = os.umask(0o177)
    try:
        server = await asyncio.start_unix_server(on_connection, path=str(path), limit=MAX_MESSAGE)
    finally:
        os.umask(old_umask)
    return server


def call(socket_path: Path, op: str, args: dict | None = None, timeout: float = 60.0) -> object:
    """Send one request to the boss listening on `socket_path`; its result, or ControlError."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(socket_path))
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        sock.close()
        raise NotRunning(
            f"no mesh is running at {socket_path.parent} (start one with `meshkit up`)", "not-running"
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
