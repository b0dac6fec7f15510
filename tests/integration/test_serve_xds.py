"""`meshkit serve-xds --learn-pod-ips`, the kind image's entrypoint, run here with real Envoys.

Two sidecars with Kubernetes-style pod names and IPs connect over a unix socket from their own
network namespaces; the boss learns each pod from its node id and pushes the learned endpoint.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from meshkit.model import bookinfo
from meshkit.runtime import netns
from meshkit.runtime.admin import AdminClient, AdminError
from meshkit.runtime.bootstrap import XdsAddress, envoy_bootstrap
from meshkit.runtime.envoy import start_envoy

from ..conftest import mesh_unavailable_reason

pytestmark = pytest.mark.mesh

PODS = {"productpage-v1": ("productpage-v1-7f9c6b5d4c-abcde", "10.244.77.21"),
        "reviews-v2": ("reviews-v2-5b7f9c6d4f-x2k4p", "10.244.77.22")}


def pipe_bootstrap(deployment: str, socket: Path) -> dict:
    name, ip = PODS[deployment]
    placeholder = bookinfo().workload(deployment)
    workload = type(placeholder)(name, "default", ip, placeholder.labels, placeholder.service_account,
                                 placeholder.ports)
    bootstrap = envoy_bootstrap(workload, XdsAddress("127.0.0.1", 1))
    xds = next(c for c in bootstrap["static_resources"]["clusters"] if c["name"] == "xds-grpc")
    xds["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"] = {
        "pipe": {"path": str(socket)}}
    return bootstrap


def learned_endpoints(ns: str) -> set[str]:
    dump = AdminClient(lambda: netns.connect(ns, "127.0.0.1", 15000, 3.0), timeout=3.0).config_dump()
    found = set()
    for config in dump["configs"]:
        for entry in config.get("dynamic_endpoint_configs", []):
            assignment = entry["endpoint_config"]
            if assignment["cluster_name"] == "outbound|9080||reviews.default.svc.cluster.local":
                for group in assignment.get("endpoints", []):
                    for lb in group.get("lb_endpoints", []):
                        found.add(lb["endpoint"]["address"]["socket_address"]["address"])
    return found


def test_serve_xds_learns_pods_from_node_ids(tmp_path: Path):
    if mesh_unavailable_reason():
        pytest.skip(mesh_unavailable_reason())
    shared = Path(tempfile.mkdtemp(prefix="meshkit-serve-"))  # pytest's tmp is 0700: uid 1337 can't enter
    shared.chmod(0o755)
    socket = shared / "xds.sock"
    server = subprocess.Popen([sys.executable, "-m", "meshkit.cli", "serve-xds", "--listen", f"unix:{socket}",
                               "--learn-pod-ips"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    namespaces, envoys = [], []
    try:
        deadline = time.monotonic() + 10
        while not socket.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.chmod(socket, 0o777)
        for deployment in PODS:
            ns = f"mkt-serve-{deployment}"
            subprocess.run(["ip", "netns", "add", ns], check=True)
            namespaces.append(ns)
            subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
            log_dir = tmp_path / deployment
            log_dir.mkdir()
            envoys.append(start_envoy(ns, pipe_bootstrap(deployment, socket), log_dir))
        deadline = time.monotonic() + 15
        found: set[str] = set()
        while time.monotonic() < deadline:
            try:
                found = learned_endpoints(namespaces[0])
            except (OSError, AdminError):
                found = set()
            if PODS["reviews-v2"][1] in found:
                break
            time.sleep(0.1)
    finally:
        for envoy in envoys:
            envoy.terminate()
            envoy.wait(10)
        for ns in namespaces:
            subprocess.run(["ip", "netns", "del", ns], check=False)
        server.terminate()
        output = server.communicate(timeout=10)[0]
        shutil.rmtree(shared, ignore_errors=True)
    assert PODS["reviews-v2"][1] in found, f"productpage's EDS for reviews: {found}\n{output}"
    assert "learned pod from node id sidecar~10.244.77.22~reviews-v2-5b7f9c6d4f-x2k4p" in output
