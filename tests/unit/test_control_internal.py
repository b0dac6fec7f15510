"""The control socket answers a handler's unexpected failure as an internal error pointing at the log,
and a learner's mistake as what it is."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import pytest

from meshkit import control
from meshkit.client import wire
from meshkit.errors import InternalError, InvalidInput


def test_unexpected_exception_is_logged_and_answered_as_internal(tmp_path: Path, caplog) -> None:
    async def broken() -> object:
        return {}["missing"]  # a KeyError: a bug in the boss, not the learner's input

    async def invalid(kind: str = "") -> object:
        raise InvalidInput("document 1: bad")

    sock = tmp_path / "control.sock"
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(control.serve(sock, {"ping": broken, "get": invalid}))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        with caplog.at_level(logging.ERROR, logger="meshkit.control"), pytest.raises(InternalError) as error:
            wire.call(sock, "ping", {}, timeout=10)
        assert str(error.value) == f"internal error (see {tmp_path / 'daemon.log'})"
        assert "KeyError" not in str(error.value)
        assert any(r.exc_info and r.exc_info[0] is KeyError for r in caplog.records), "the traceback is logged"
        with pytest.raises(InvalidInput, match="document 1: bad"):
            wire.call(sock, "get", {"kind": "x"}, timeout=10)
        with pytest.raises(InvalidInput, match="unknown argument"):
            wire.call(sock, "get", {"knd": "x"}, timeout=10)
        with pytest.raises(InvalidInput, match="unknown operation 'nope'"):
            wire.call(sock, "nope", {}, timeout=10)
    finally:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
