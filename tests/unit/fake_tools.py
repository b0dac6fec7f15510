"""The fake docker, kind and kubectl of tests/fakes/bin, put first on PATH with every call logged."""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable
from pathlib import Path

import pytest

FAKES = Path(__file__).resolve().parents[1] / "fakes" / "bin"


def use_fake_tools(monkeypatch: pytest.MonkeyPatch, log: Path, unset: Iterable[str]) -> Path:
    """The fakes first on PATH, logging to `log` (made, empty), with the `unset` variables gone; returns `log`."""
    log.touch()
    monkeypatch.setenv("PATH", f"{FAKES}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOG", str(log))
    for var in unset:
        monkeypatch.delenv(var, raising=False)
    return log


def calls(log: Path) -> list[list[str]]:
    """Every call the fakes logged, as argv lists, in order."""
    return [shlex.split(line) for line in log.read_text().splitlines()]
