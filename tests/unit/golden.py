"""Golden-file comparison for tests: JSON that reads well in a diff, rewritten on request.

`MESHKIT_UPDATE_GOLDEN=1 pytest ...` rewrites every golden a test touches; review the change
with `git diff tests/golden`.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Iterable
from pathlib import Path

import pytest
from google.protobuf import json_format
from google.protobuf.message import Message

GOLDEN_DIR = Path(__file__).resolve().parent.parent / "golden"
UPDATE_ENV = "MESHKIT_UPDATE_GOLDEN"


def messages_json(messages: Iterable[Message]) -> str:
    """Protobufs as a JSON list: snake_case as in Envoy's config_dump, sorted keys, 2-space indent."""
    data = [json_format.MessageToDict(m, preserving_proto_field_name=True) for m in messages]
    return json.dumps(data, sort_keys=True, indent=2) + "\n"


def assert_golden(relative: str, text: str) -> None:
    """Compare `text` with `tests/golden/<relative>`, or rewrite it when MESHKIT_UPDATE_GOLDEN=1."""
    path = GOLDEN_DIR / relative
    if os.environ.get(UPDATE_ENV) == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    if not path.exists():
        pytest.fail(f"no golden file {path}; create it with {UPDATE_ENV}=1")
    expected = path.read_text()
    if text != expected:
        diff = difflib.unified_diff(
            expected.splitlines(keepends=True), text.splitlines(keepends=True), str(path), "generated", n=2
        )
        pytest.fail(f"{path} differs (rerun with {UPDATE_ENV}=1 if intended):\n{''.join(diff)}")
