"""Which xDS variant each sidecar speaks: the mesh default, per-pod exceptions, friendly refusals."""

from __future__ import annotations

import pytest

from meshkit.daemon import with_xds
from meshkit.errors import InvalidInput
from meshkit.model import bookinfo


def test_every_sidecar_gets_the_default_but_the_pods_named_by_deployment_or_name() -> None:
    topology = bookinfo("10.244.7.0/24")
    reviews_v2 = topology.workload("reviews-v2").name
    mixed = with_xds(topology, "SOTW", {"reviews-v1": "delta", reviews_v2: "DELTA"})
    variants = {w.deployment: w.xds for w in mixed.sidecars()}
    assert variants.pop("reviews-v1") == variants.pop("reviews-v2") == "DELTA"
    assert set(variants.values()) == {"SOTW"}
    assert {w.xds for w in with_xds(topology, "DELTA", {}).workloads} == {"DELTA"}


def test_an_unknown_pod_or_variant_is_refused_naming_the_choices() -> None:
    topology = bookinfo("10.244.7.0/24")
    with pytest.raises(InvalidInput, match="names no pod: nosuch; choose among details-v1"):
        with_xds(topology, "DELTA", {"nosuch": "sotw"})
    with pytest.raises(InvalidInput, match="choose delta or sotw"):
        with_xds(topology, "DELTA", {"reviews-v1": "incremental"})
