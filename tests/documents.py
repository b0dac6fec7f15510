"""The small hand-written YAML documents tests parse and apply, kept as files under tests/data."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"


def document(relative: str) -> str:
    """The text of tests/data/`relative`: one YAML file of one or more documents, as a test feeds it."""
    return (DATA / relative).read_text()
