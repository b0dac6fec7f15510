"""The full translation for three Bookinfo sidecars, pinned as readable JSON goldens.

A change in translation shows up as a diff under tests/golden/xds/<deployment>/; accept it with
MESHKIT_UPDATE_GOLDEN=1.
"""

from __future__ import annotations

import pytest

from meshkit.model import bookinfo
from meshkit.xds.generate import generate
from meshkit.xds.resources import CLUSTER, ENDPOINT, LISTENER, ROUTE

from .golden import assert_golden, messages_json

FILES = {LISTENER: "listeners", ROUTE: "routes", CLUSTER: "clusters", ENDPOINT: "endpoints"}


@pytest.mark.parametrize("deployment", ["productpage-v1", "reviews-v2", "tcp-echo-v1"])
@pytest.mark.parametrize("type_url", list(FILES), ids=list(FILES.values()))
def test_translation_matches_golden(deployment, type_url):
    mesh = bookinfo()
    resources = generate(mesh, mesh.workload(deployment))
    assert_golden(f"xds/{deployment}/{FILES[type_url]}.json", messages_json(resources[type_url]))
