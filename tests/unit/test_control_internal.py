"""The control socket answers a handler's unexpected failure as 'internal', pointing at the log."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import pytest

from meshkit import control
from meshkit.control import ControlError


def test_unexpected_exception_is_logged_and_answered_as_internal(tmp_path: Path, caplog):
    async def broken(args: dict) -> object:
        return args["missing"]  # a KeyError: a bug in the boss, not the learner's input

    async def invalid(args: dict) -> object:
        raise ControlError("document 1: bad", "invalid")

    sock = tmp_path / "control.sock"
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(control.serve(sock, {"broken": broken, "invalid": invalid}))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        with caplog.at_level(logging.ERROR, logger="meshkit.control"), pytest.raises(ControlError) as error:
            control.call(sock, "broken", timeout=10)
        assert error.value.problem == "internal"
        assert str(error.value) == f"internal error (see {tmp_path / 'daemon.log'})"
        assert "KeyError" not in str(error.value)
        assert any(r.exc_info and r.exc_info[0] is KeyError for r in caplog.records), "the traceback is logged"
        with pytest.raises(ControlError, match="document 1: bad") as error:
            control.call(sock, "invalid", timeout=10)
        assert error.value.problem == "invalid"
    finally:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
