"""The boss's end of the private control line: answer one protocol request per connection.

The local mesh listens on a unix socket in its home folder (mode 0600: only its owner may
connect) and on no network port. The kind path speaks the same protocol over TCP
(`serve_tcp`): the in-cluster boss listens on 127.0.0.1 inside its pod, so only a `kubectl
port-forward` (which needs the cluster's credentials) reaches it, on 127.0.0.1 of the host.

A handler that raises a `meshkit.errors.MeshError` answers with it; anything else is a bug:
logged with its traceback and answered as an internal error pointing at the log.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from .errors import InternalError, InvalidInput, MeshError
from .protocol import MAX_MESSAGE, OPERATIONS, decode_request, encode_error, encode_result, split_address
from .service import Handler

log = logging.getLogger("meshkit.control")
Answerer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def answerer(handlers: Mapping[str, Handler], log_path: Path | str = "the daemon log") -> Answerer:
    """The connection callback: one request line in, one reply line out."""

    async def answer(line: bytes) -> bytes:
        try:
            name, args = decode_request(line)
            handler = handlers.get(name)
            if handler is None or name not in OPERATIONS:
                raise InvalidInput(f"unknown operation {name!r}; this boss answers {', '.join(sorted(handlers))}")
            args = OPERATIONS[name].request(args)
            try:
                inspect.signature(handler).bind(**args)
            except TypeError as exc:
                raise InvalidInput(f"{name}: {exc}") from exc
            return encode_result(await handler(**args))
        except MeshError as exc:
            return encode_error(exc)
        except Exception:  # a bug: keep the boss up, keep the traceback, tell the caller where it is
            log.exception("internal error answering %r", line[:200])
            return encode_error(InternalError(f"internal error (see {log_path})"))

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(await answer(await reader.readline()))
            await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass  # the caller went away or sent more than MAX_MESSAGE: nothing to answer
        finally:
            writer.close()

    return on_connection


async def serve(path: Path, handlers: Mapping[str, Handler], log_path: Path | str = "") -> asyncio.AbstractServer:
    """Answer requests on the unix socket `path` (created 0600) with the handler each request names."""
    path.unlink(missing_ok=True)
    old_umask = os.umask(0o177)
    try:
        return await asyncio.start_unix_server(answerer(handlers, log_path or path.parent / "daemon.log"),
                                               path=str(path), limit=MAX_MESSAGE)
    finally:
        os.umask(old_umask)


async def serve_tcp(listen: str, handlers: Mapping[str, Handler]) -> asyncio.AbstractServer:
    """Answer requests on TCP `listen` ("127.0.0.1:15011"); keep it on a loopback address."""
    host, port = split_address(listen)
    return await asyncio.start_server(answerer(handlers, "the boss's log"), host=host, port=port, limit=MAX_MESSAGE)
