"""One sidecar switched to State of the World at run time, on a live mesh of delta sidecars.

`mesh.set_xds` restarts that Envoy with the other bootstrap; the test reads the variant back
from Envoy itself (its bootstrap's `ads_config.api_type`) and from the boss's stream, then
weighs one CDS-heavy edit on both kinds of pod, and puts the pod back on delta.
"""

from __future__ import annotations

import pytest

from meshkit.errors import InvalidInput
from meshkit.inspect import dump

pytestmark = pytest.mark.mesh

SUBSETS = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: set-xds-subsets}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
"""


def _api_type(mesh, pod: str) -> str:
    boot = dump.section(mesh.pc.config_dump(pod, include_eds=False), "BootstrapConfigDump")
    return boot["bootstrap"]["dynamic_resources"]["ads_config"]["api_type"]


def _row(mesh, pod: str) -> dict:
    return next(r for r in mesh.status_rows() if r["pod"].startswith(pod + "-"))


def test_one_sidecar_speaks_sotw_and_gets_every_cluster_again(mesh):
    assert _row(mesh, "details-v1")["xds"] == "DELTA" and _api_type(mesh, "details-v1") == "DELTA_GRPC"
    try:
        switched = mesh.set_xds("details-v1", "sotw")
        assert (switched["xds"], switched["was"]) == ("SOTW", "DELTA")
        assert _api_type(mesh, "details-v1") == "GRPC"
        row = _row(mesh, "details-v1")
        assert row["xds"] == "SOTW" and all(t["state"] == "SYNCED" for t in row["types"].values())
        push = mesh.apply(SUBSETS)
        sotw = push["bytes"][row["pod"]]
        delta = push["bytes"][_row(mesh, "productpage-v1")["pod"]]
        assert push["xds"][row["pod"]] == "SOTW" and sotw > 1.5 * delta, push["bytes"]
        assert mesh.curl_rows("details-v1", "http://reviews:9080/reviews/0")[0]["status"] == 200
    finally:
        mesh.delete(SUBSETS)
        back = mesh.set_xds("details-v1", "delta")
    assert back["xds"] == "DELTA" and _api_type(mesh, "details-v1") == "DELTA_GRPC"


def test_an_unknown_variant_names_the_choices(mesh):
    with pytest.raises(InvalidInput, match="delta"):
        mesh.set_xds("details-v1", "incremental")
