"""One sidecar switched to the other xDS variant at run time: State of the World on a mesh of delta
sidecars (Istio's default), or delta on a mesh started with `--xds sotw` (CI runs both).

`mesh.set_xds` restarts that Envoy with the other bootstrap; the test reads the variant back
from Envoy itself (its bootstrap's `ads_config.api_type`) and from the boss's stream, then
weighs one CDS-heavy edit on both kinds of pod, and puts the pod back.
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


API_TYPES = {"DELTA": "DELTA_GRPC", "SOTW": "GRPC"}


def test_one_sidecar_speaks_the_other_xds_and_sotw_gets_every_cluster_again(mesh):
    mine = _row(mesh, "productpage-v1")["xds"]  # the mesh's variant: delta unless MESHKIT_XDS=sotw
    other = "SOTW" if mine == "DELTA" else "DELTA"
    assert _row(mesh, "details-v1")["xds"] == mine and _api_type(mesh, "details-v1") == API_TYPES[mine]
    try:
        switched = mesh.set_xds("details-v1", other.lower())
        assert (switched["xds"], switched["was"]) == (other, mine)
        assert _api_type(mesh, "details-v1") == API_TYPES[other]
        row = _row(mesh, "details-v1")
        assert row["xds"] == other and all(t["state"] == "SYNCED" for t in row["types"].values())
        push = mesh.apply(SUBSETS)
        pods = {other: row["pod"], mine: _row(mesh, "productpage-v1")["pod"]}
        assert push["xds"][pods["SOTW"]] == "SOTW" and push["xds"][pods["DELTA"]] == "DELTA"
        assert push["bytes"][pods["SOTW"]] > 1.5 * push["bytes"][pods["DELTA"]], push["bytes"]
        assert mesh.curl_rows("details-v1", "http://reviews:9080/reviews/0")[0]["status"] == 200
    finally:
        mesh.delete(SUBSETS)
        back = mesh.set_xds("details-v1", mine.lower())
    assert back["xds"] == mine and _api_type(mesh, "details-v1") == API_TYPES[mine]


def test_an_unknown_variant_names_the_choices(mesh):
    with pytest.raises(InvalidInput, match="delta"):
        mesh.set_xds("details-v1", "incremental")
