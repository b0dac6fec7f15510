"""Names the docstring examples of meshkit's pure modules use (`pytest --doctest-modules`): real
Envoy admin JSON captured from a live mesh (tests/fixtures), so every example runs on true data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "tests" / "fixtures"


@pytest.fixture(autouse=True)
def _doctest_data(doctest_namespace: dict) -> None:
    from meshkit.client.fake import FakeTransport, Mesh

    envoy = FIXTURES / "envoy"
    doctest_namespace.update(
        mesh=Mesh(FakeTransport((envoy / "config_dump.json").read_text(), (envoy / "clusters.json").read_text())),
        dump=json.loads((FIXTURES / "envoy" / "config_dump.json").read_text()),
        nacked_dump=json.loads((FIXTURES / "envoy" / "config_dump_nack.json").read_text()),
        clusters_json=json.loads((FIXTURES / "envoy" / "clusters.json").read_text()),
        before=json.loads((FIXTURES / "traffic" / "clusters_1.json").read_text()),
        after=json.loads((FIXTURES / "traffic" / "clusters_2.json").read_text()),
        traces=json.loads((FIXTURES / "traffic" / "traces.json").read_text()),
    )
