"""Several meshes on one host (different MESHKIT_HOMEs), in both capture modes; userspace after SIGKILL.

Two meshes start at once, both reach SYNCED and answer through productpage → reviews → ratings;
`down` on one leaves the other answering. Userspace runs anywhere; iptables needs root.
"""

from __future__ import annotations

import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import meshkit
from tests.conftest import leftovers, mesh_unavailable_reason

pytestmark = pytest.mark.mesh


def _synced(mesh) -> bool:
    states = {s["state"] for row in mesh.status_rows() for s in row["types"].values() if s["state"] != "NOT SENT"}
    return states == {"SYNCED"}


def _answers(mesh) -> bool:
    rows = mesh.curl_rows("productpage-v1", "http://productpage:9080/productpage", n=4)
    bodies = [json.loads(r["body"]) for r in rows if r["status"] == 200]
    return len(bodies) == 4 and all(b["reviews"]["status"] == 200 for b in bodies)


@pytest.mark.parametrize("capture", ["userspace", "iptables"])
def test_two_meshes_side_by_side(capture: str, tmp_path: Path):
    if capture == "iptables" and mesh_unavailable_reason():
        pytest.skip(mesh_unavailable_reason())
    homes = [tmp_path / "a", tmp_path / "b"]
    try:
        with ThreadPoolExecutor(2) as pool:
            meshes = list(pool.map(lambda h: meshkit.up(h, capture=capture), homes))
        assert [m.capture for m in meshes] == [capture, capture]
        ips = [m.topology()["workloads"][0]["ip"] for m in meshes]
        assert ips[0] != ips[1]  # each mesh on its own addresses
        for mesh in meshes:
            assert _synced(mesh)
            assert _answers(mesh)
        meshkit.down(homes[0])
        assert not leftovers(homes[0])
        assert _synced(meshes[1]) and _answers(meshes[1])  # the other one is untouched
    finally:
        for home in homes:
            meshkit.down(home)
    for home in homes:
        assert not leftovers(home)


def test_userspace_down_after_sigkill_leaves_nothing(tmp_path: Path):
    home = tmp_path / "killed"
    mesh = meshkit.up(home, capture="userspace")
    state = json.loads((home / "state.json").read_text())
    os.kill(mesh.ping()["pid"], signal.SIGKILL)
    time.sleep(0.2)
    meshkit.down(home)
    alive = [p for p in state["pids"] if Path(f"/proc/{p['pid']}").exists()
             and Path(f"/proc/{p['pid']}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"]
    assert not alive, alive
    assert not leftovers(home)
    assert not (home / "state.json").exists()
