"""Unit-test fixtures: the real Envoy 1.40 admin dumps of tests/fixtures/envoy (see its generate.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ENVOY_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "envoy"


def envoy_fixture(name: str) -> dict:
    """One committed admin answer, parsed: `config_dump`, `config_dump_nack` or `clusters`."""
    return json.loads((ENVOY_FIXTURES / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def config_dump() -> dict:
    """`/config_dump?include_eds` of the sidecar-shaped Envoy: every xDS type accepted."""
    return envoy_fixture("config_dump")


@pytest.fixture(scope="module")
def nack_dump() -> dict:
    """The same Envoy's config dump after it rejected a second LDS version (`error_state` set)."""
    return envoy_fixture("config_dump_nack")


@pytest.fixture(scope="module")
def clusters_json() -> dict:
    """`/clusters?format=json` of the same Envoy: hosts with their health and stats."""
    return envoy_fixture("clusters")
