"""The contract every runtime implements (placeholder until the runtime contract lands)."""

from __future__ import annotations

from typing import Any as Runtime  # noqa: F401
