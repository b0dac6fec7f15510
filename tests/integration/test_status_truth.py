"""Status against a real mesh: a killed sidecar, a stopped boss, and a pod marked not Ready.

The boss runs in this process (the real `Daemon`, in a thread with its own event loop), so the
test can call `ControlPlane.set_pod_health` directly, as the runtime's supervisor will; every
other look goes through the control socket like `meshkit` and the notebooks do. The tests run
in file order on one mesh: the health test needs every sidecar, the last one kills an Envoy
(nothing restarts it yet). The fixture stops the mesh and checks nothing is left behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshkit import client
from meshkit.daemon import Daemon
from meshkit.inspect import traffic
from meshkit.inspect.sync_status import status_table
from meshkit.inspect.tables import render
from meshkit.runtime.processes import load_state
from tests.conftest import REPO, leftovers, session_mesh_reason

REVIEWS_URL = "http://reviews:9080/reviews/0"
CLIENT = "productpage-v1"
TYPES = ("CDS", "EDS", "LDS", "RDS", "SDS")


class InProcessBoss:
    """The mesh's daemon on a thread of its own; `call(coro)` runs a coroutine on its loop."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.loop = asyncio.new_event_loop()
        self.daemon: Daemon | None = None
        self.thread = threading.Thread(target=self._serve, name="meshkit-boss", daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.daemon = Daemon(self.home)
        self.loop.run_until_complete(self.daemon.run())

    def start(self, timeout: float = 120.0) -> client.Mesh:
        self.thread.start()
        deadline = time.monotonic() + timeout
        status = self.home / "daemon.json"
        while time.monotonic() < deadline:
            state = json.loads(status.read_text() or "{}") if status.exists() else {}
            if state.get("state") == "failed":
                raise RuntimeError(state.get("error"))
            if state.get("state") == "ready":
                return client.connect(self.home)
            time.sleep(0.05)
        raise TimeoutError(f"the in-process boss was not ready within {timeout:.0f} s")

    def call(self, coro, timeout: float = 30.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        if self.daemon is not None:
            self.loop.call_soon_threadsafe(self.daemon.stop)
        self.thread.join(60)


@pytest.fixture(scope="module")
def boss(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessBoss]:
    reason = session_mesh_reason()
    if reason:
        pytest.skip(reason)
    home = tmp_path_factory.mktemp("truth").resolve()
    running = InProcessBoss(home)
    try:
        running.start()
        yield running
    finally:
        running.stop()
        left = leftovers(home)
        assert not left, f"the mesh left these behind: {left}"


@pytest.fixture(scope="module")
def mesh(boss: InProcessBoss) -> client.Mesh:
    return client.connect(boss.home)


def pod_named(mesh: client.Mesh, deployment: str) -> str:
    return next(p for p in mesh.pods() if p.startswith(deployment + "-"))


def reviews_hosts(mesh: client.Mesh, pod: str) -> dict[str, str]:
    """The reviews cluster's hosts in `pod`'s Envoy (`/clusters`): address -> EDS health."""
    clusters = json.loads(mesh.admin(pod, "/clusters?format=json"))
    return {h.address: h.health for h in traffic.hosts(clusters)
            if h.cluster == "outbound|9080||reviews.default.svc.cluster.local"}


def cli_status(home: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "meshkit.cli", "--home", str(home), "status"],
                            capture_output=True, text=True, timeout=60, env=env, cwd=REPO)
    assert result.returncode == 0, result.stderr
    return result.stdout


def wait_for(check, timeout: float, step: float = 0.02):
    """Poll `check()` until it returns something true; that value, and how long it took."""
    began = time.monotonic()
    while True:
        value = check()
        if value or time.monotonic() - began > timeout:
            return value, time.monotonic() - began
        time.sleep(step)


def all_synced(mesh: client.Mesh) -> bool:
    rows = mesh.status_rows()
    return bool(rows) and all(r["connected"] and all(r["types"][t]["state"] == "SYNCED" or _unbound_gate(r, t)
                                                     for t in TYPES) for r in rows)


def _unbound_gate(row: dict, type_: str) -> bool:
    """The ingress gateway has no routes until a Gateway binds it: RDS NOT SENT, as istioctl shows it."""
    gate = row["pod"].startswith("istio-ingressgateway")
    return gate and type_ == "RDS" and row["types"][type_]["state"] == "NOT SENT"


def test_a_pod_marked_not_ready_is_unhealthy_in_every_sidecar_and_never_chosen(boss: InProcessBoss,
                                                                              mesh: client.Mesh) -> None:
    assert boss.daemon is not None and boss.daemon.plane is not None
    plane = boss.daemon.plane
    v1 = pod_named(mesh, "reviews-v1")
    address = plane.topology.workload(v1).ip
    others = [p for p in mesh.pods() if p != v1]
    assert {reviews_hosts(mesh, p)[address] for p in others} == {"HEALTHY"}

    push = boss.call(plane.set_pod_health(v1, False))
    assert {c.type for c in push.changes} == {"EDS"}, push.changes
    assert set(push.results.get(pod_named(mesh, CLIENT), {}).values()) == {"ACK"}, push.results
    for pod in others:  # every other sidecar holds the host, marked by EDS, the rest untouched
        hosts = reviews_hosts(mesh, pod)
        assert hosts.pop(address).startswith("UNHEALTHY"), (pod, address)
        assert set(hosts.values()) == {"HEALTHY"} and len(hosts) == 2, (pod, hosts)
    answers = mesh.curl_rows(CLIENT, REVIEWS_URL, n=20)
    assert [r["status"] for r in answers] == [200] * 20, answers
    chosen = sorted({r["pod"] for r in answers})
    print(f"\nreviews-v1 UNHEALTHY: 20 requests answered by {chosen}")
    assert v1 not in chosen and len(chosen) == 2

    push = boss.call(plane.set_pod_health(v1, True))
    assert {c.type for c in push.changes} == {"EDS"}
    assert {reviews_hosts(mesh, p)[address] for p in others} == {"HEALTHY"}
    again, _ = wait_for(lambda: v1 in {r["pod"] for r in mesh.curl_rows(CLIENT, REVIEWS_URL, n=10)}, 30, 0)
    assert again, "reviews-v1 was not chosen again after it was marked healthy"


def test_a_stopped_boss_is_said_and_a_started_one_resyncs(mesh: client.Mesh, boss: InProcessBoss) -> None:
    assert all_synced(mesh)
    assert mesh.stop_boss() is False
    try:
        rows = mesh.status_rows()
        assert {r["state"] for r in rows} == {"BOSS STOPPED"} and not any(r["connected"] for r in rows)
        assert not any(t["state"] == "SYNCED" for r in rows for t in r["types"].values())
        printed = cli_status(boss.home)
        assert "SYNCED" not in printed.split("\n\n")[0], printed
        assert "The boss is stopped since" in printed and "keep serving their last config" in printed
        table = mesh.status()
        assert set(table[["CDS", "LDS", "EDS", "RDS"]].values.ravel()) == {"BOSS STOPPED"}
        assert "The boss is stopped" in render(table)
        answers = mesh.curl_rows(CLIENT, REVIEWS_URL, n=3)  # the lieutenants keep their last orders
        assert [r["status"] for r in answers] == [200] * 3
    finally:
        assert mesh.start_boss() is True
    synced, took = wait_for(lambda: all_synced(mesh), 60, 0.05)
    print(f"\nboss restarted: every sidecar SYNCED again after {took:.2f} s")
    assert synced, mesh.status_rows()
    assert "note" not in mesh.status().attrs


def test_a_killed_sidecar_shows_disconnected_within_a_second(mesh: client.Mesh, boss: InProcessBoss) -> None:
    from meshkit.widgets.panels import SyncTable

    assert all_synced(mesh)
    v1 = pod_named(mesh, "reviews-v1")
    [pid] = [p["pid"] for p in load_state(boss.home)["pids"] if p["what"] == f"envoy {v1}"]
    table = SyncTable(mesh, watch=True)
    try:
        assert "DISCONNECTED" not in table.html()
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()

        seen_rows: list[list[dict]] = []

        def gone() -> dict | None:
            rows = mesh.status_rows()
            row = next(r for r in rows if r["pod"] == v1)
            if not row["connected"] and row["state"] == "DISCONNECTED":
                seen_rows.append(rows)
                return row
            return None

        row, took = wait_for(gone, 5)
        print(f"\nSIGKILLed Envoy of {v1}: status row DISCONNECTED after {took * 1000:.0f} ms")
        assert row and took < 1.0, row
        assert {t["state"] for t in row["types"].values()} == {"DISCONNECTED"}
        assert row["since"] >= time.time() - 5
        others = [r for r in seen_rows[-1] if r["pod"] != v1]
        assert all(r["connected"] and r["state"] == "CONNECTED" for r in others)
        seen, _ = wait_for(lambda: "#b7b7b7" in table.html(), 5)
        widget_took = time.monotonic() - killed
        print(f"SyncTable showed it DISCONNECTED {widget_took * 1000:.0f} ms after the kill")
        assert seen and widget_took < 2.0
        # the supervisor restarts the Envoy after 1 s: print the table as `meshkit status` did while it was away
        printed = render(status_table(seen_rows[-1]))
        [line] = [ln for ln in printed.splitlines() if ln.startswith(v1)]
        assert line.split()[2:6] == ["DISCONNECTED"] * 4, line
        assert f"{v1}.default disconnected since" in printed and "istioctl proxy-status lists only" in printed
    finally:
        table.close()
