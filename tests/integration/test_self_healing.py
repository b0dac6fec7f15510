"""Self-healing on a live mesh: a SIGKILLed sidecar comes back and resyncs; a killed daemon is
replaced by the next `meshkit up`. Runs in the capture mode the session picks (MESHKIT_CAPTURE).

The request loop prints its failures and why: in the Kubernetes model the ones that fail are the
requests to the killed pod while it is down (in flight at the kill, or sent to it before its
endpoint is marked unhealthy), never a request after the sidecar is back.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

import meshkit
from meshkit.runtime.processes import start_time

from ..conftest import leftovers, session_mesh_reason

pytestmark = pytest.mark.mesh

BACK_WITHIN_S = 15.0
KILLED = "reviews-v2"
URL = "http://reviews:9080/reviews/0"
REVIEWS_STATS = (r"^cluster\.outbound\|9080\|\|reviews\.default\.svc\.cluster\.local;?\."
                 r"(upstream_rq_retry|upstream_cx_connect_fail)$")


@pytest.fixture(scope="module")
def healing(tmp_path_factory: pytest.TempPathFactory):
    reason = session_mesh_reason()
    if reason:
        pytest.skip(reason)
    home = tmp_path_factory.mktemp("healing")
    yield meshkit.up(home)
    meshkit.down(home)
    left = leftovers(home)
    assert not left, f"meshkit down left these behind: {left}"


def _pod(mesh: meshkit.Mesh, deployment: str) -> dict:
    return next(r for r in mesh.pods_rows() if r["NAME"].startswith(deployment + "-"))


def _all_ready(mesh: meshkit.Mesh, timeout: float = 5.0) -> list[dict]:
    """The pods once every one is Ready, as `kubectl wait --for=condition=Ready` waits."""
    start = time.monotonic()
    while True:
        rows = mesh.pods_rows()
        if all(r["ready"] for r in rows):
            return rows
        assert time.monotonic() - start < timeout, [(r["NAME"], r["READY"], r["STATUS"]) for r in rows]
        time.sleep(0.1)


def _synced(mesh: meshkit.Mesh, deployment: str) -> bool:
    rows = [r for r in mesh.status_rows() if r["pod"].startswith(deployment + "-")]
    return bool(rows) and rows[0]["connected"] and all(
        t["state"] == "SYNCED" or (deployment == "istio-ingressgateway" and name == "RDS" and t["state"] == "NOT SENT")
        for name, t in rows[0]["types"].items() if name in ("CDS", "EDS", "LDS", "RDS"))  # an unbound gate has no RDS


class RequestLoop(threading.Thread):
    """productpage-v1 → reviews, one request at a time, each row stamped with when it was sent."""

    def __init__(self, mesh: meshkit.Mesh) -> None:
        super().__init__(daemon=True)
        self.mesh, self.rows, self.done = mesh, [], threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.rows += _timed(self.mesh, URL, 3.0)


def _timed(mesh: meshkit.Mesh, url: str, timeout: float) -> list[dict]:
    """One request from productpage-v1, with when it was sent and when its answer (or failure) came."""
    sent = time.monotonic()
    rows = mesh.curl_rows("productpage-v1", url, timeout=timeout)
    return [{**r, "sent": sent, "ended": time.monotonic()} for r in rows]


def test_a_killed_sidecar_is_back_within_15s_and_synced(healing):
    mesh = healing
    _all_ready(mesh)
    pod = _pod(mesh, KILLED)
    assert (pod["READY"], pod["STATUS"], pod["RESTARTS"]) == ("2/2", "Running", "0")
    envoy_pid = pod["containers"]["istio-proxy"]["pid"]
    pod_ip = next(w["ip"] for w in mesh.topology()["workloads"] if w["name"] == pod["NAME"])

    before = mesh.stats("productpage-v1", REVIEWS_STATS)
    loop = RequestLoop(mesh)
    loop.start()
    # one request certainly in flight through the sidecar we kill: 3 s in reviews-v2's app,
    # addressed to its pod IP (productpage's sidecar passes it through, reviews-v2's takes it in)
    slow: list[dict] = []
    in_flight = threading.Thread(target=lambda: slow.extend(_timed(mesh, f"http://{pod_ip}:9080/delay/3", 6.0)))
    in_flight.start()
    time.sleep(1.5)
    killed = time.monotonic()
    os.kill(envoy_pid, signal.SIGKILL)
    while not (_pod(mesh, KILLED)["ready"] and _pod(mesh, KILLED)["restarts"] == 1 and _synced(mesh, KILLED)):
        assert time.monotonic() - killed < BACK_WITHIN_S, f"{KILLED} not back and SYNCED: {_pod(mesh, KILLED)}"
        time.sleep(0.1)
    back = time.monotonic()
    # the restarted sidecar serves again: wait (bounded) for a reply from v2 through it
    while not any(r["version"] == "v2" and r["sent"] > back for r in loop.rows):
        assert time.monotonic() - back < 10, "no request reached the restarted reviews-v2"
        time.sleep(0.1)
    time.sleep(1.0)
    loop.done.set()
    loop.join(timeout=10)
    in_flight.join(timeout=10)

    pod = _pod(mesh, KILLED)
    assert pod["containers"]["istio-proxy"]["pid"] != envoy_pid
    assert pod["RESTARTS"].startswith("1 (") and pod["READY"] == "2/2" and pod["STATUS"] == "Running"
    cli = subprocess.run([sys.executable, "-m", "meshkit.cli", "--home", str(mesh.home), "get", "pods"],
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.split("\n")[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    line = next(x for x in cli.stdout.splitlines() if x.startswith(pod["NAME"]))
    assert line.split()[1:4] == ["2/2", "Running", "1"], line

    assert slow and slow[0]["status"] != 200, f"a request in flight through the killed sidecar survived: {slow}"
    failed = [r for r in [*slow, *loop.rows] if r["status"] != 200]
    after_stats = mesh.stats("productpage-v1", REVIEWS_STATS)
    retried = {name.rsplit(".", 1)[1]: value - before.get(name, 0) for name, value in after_stats.items()}
    report([*slow, *loop.rows], failed, killed, back, pod_ip, retried)
    after = [r for r in failed if r["sent"] > back + 0.5]
    assert not after, f"requests failed after {KILLED} was back: {after}"
    assert len(loop.rows) - len(failed) > 10, "the loop kept being answered around the kill"


def report(rows: list[dict], failed: list[dict], killed: float, back: float, pod_ip: str,
           retried: dict[str, int]) -> None:
    """Print what failed and why, in the Kubernetes model's terms."""
    in_flight = [r for r in failed if r["sent"] <= killed <= r["ended"]]  # the slow one, and any unlucky
    to_killed = [r for r in failed if r not in in_flight and pod_ip in (r.get("upstream_host") or "")]
    other = [r for r in failed if r not in in_flight and r not in to_killed]
    print(f"\nself-healing: {len(rows)} requests, {len(failed)} failed; {KILLED}'s sidecar was down "
          f"{back - killed:.2f} s (SIGKILL → Ready and SYNCED)")
    print(f"  in flight at the kill: {len(in_flight)} (Kubernetes fails these too: the connection dies)")
    print(f"  sent to the killed pod while down: {len(to_killed)} (Kubernetes fails these until the "
          "endpoint is marked unhealthy)")
    print(f"  other: {len(other)}")
    print(f"  productpage's sidecar meanwhile: {retried.get('upstream_cx_connect_fail', 0)} connect failures, "
          f"{retried.get('upstream_rq_retry', 0)} retries (Istio's default route retries connect-failure on "
          "another host: a request that found the pod down before it connected was retried, not failed)")
    why = Counter(f"{r['status']} {r['flags'] or '-'} {r['error'][:60]}".strip() for r in failed)
    for reason, count in why.most_common():
        print(f"    {count} × {reason}")


def test_a_killed_app_is_restarted_too(healing):
    mesh = healing
    pod = _pod(mesh, "details-v1")
    app = next(c for name, c in pod["containers"].items() if name != "istio-proxy")
    os.kill(app["pid"], signal.SIGKILL)
    start = time.monotonic()
    while not (_pod(mesh, "details-v1")["ready"] and _pod(mesh, "details-v1")["restarts"] == 1):
        assert time.monotonic() - start < BACK_WITHIN_S, _pod(mesh, "details-v1")
        time.sleep(0.1)
    rows = mesh.curl_rows("productpage-v1", "http://details:9080/details/0", n=3)
    assert [r["status"] for r in rows] == [200] * 3


def test_a_killed_capture_process_is_restarted_in_userspace_mode(healing):
    """userspace capture's process plays istio-init's rules for every pod: it heals like a container."""
    mesh = healing
    if mesh.capture != "userspace":
        pytest.skip("iptables capture has no capture process: the rules live in the kernel")
    recorded = json.loads((mesh.home / "state.json").read_text())["pids"]
    pid = [p["pid"] for p in recorded if p["what"] == "capture"][-1]
    os.kill(pid, signal.SIGKILL)
    start = time.monotonic()
    while True:
        rows = mesh.curl_rows("productpage-v1", URL, n=1, timeout=1.0)
        if rows[0]["status"] == 200:
            break
        assert time.monotonic() - start < BACK_WITHIN_S, rows
        time.sleep(0.2)
    recorded = json.loads((mesh.home / "state.json").read_text())["pids"]
    assert [p["pid"] for p in recorded if p["what"] == "capture"][-1] != pid


def test_up_after_the_daemon_was_sigkilled_cleans_up_and_boots_fresh(healing):
    mesh = healing
    home: Path = mesh.home
    old = [(c["pid"], start_time(c["pid"])) for r in mesh.pods_rows() for c in r["containers"].values()]
    os.kill(json.loads((home / "daemon.json").read_text())["pid"], signal.SIGKILL)
    time.sleep(0.3)
    assert any(start_time(pid) == started for pid, started in old), "the pods outlive their killed daemon"

    fresh = meshkit.up(home)
    assert all(start_time(pid) != started for pid, started in old), "the killed mesh's processes are gone"
    rows = _all_ready(fresh)
    assert {r["RESTARTS"] for r in rows} == {"0"}
    assert all(_synced(fresh, r["NAME"].rsplit("-", 2)[0]) for r in rows if "istio-proxy" in r["containers"])
    assert [r["status"] for r in fresh.curl_rows("productpage-v1", URL, n=3)] == [200] * 3
