"""The supervisor with real processes: restarts with back-off, kubectl's columns, health reports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import pytest

from meshkit.runtime import supervisor
from meshkit.runtime.supervisor import Supervisor, backoff, human_age

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]
CRASHER = [sys.executable, "-c", "raise SystemExit(3)"]


def test_backoff_is_kubernetes_after_a_quick_first_restart():
    assert [backoff(n) for n in range(1, 10)] == [1.0, 10.0, 20.0, 40.0, 80.0, 160.0, 300.0, 300.0, 300.0]


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (59.9, "59s"), (119, "119s"), (120, "2m"), (192, "3m12s"), (25 * 60, "25m"),
    (4 * 3600 + 5 * 60, "4h5m"), (6 * 3600, "6h"), (50 * 3600, "2d2h"), (10 * 86400, "10d"),
])
def test_ages_read_as_kubectl_prints_them(seconds, text):
    assert human_age(seconds) == text


def _until(condition: Callable[[], object], timeout: float = 10.0) -> float:
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, "condition not met in time"
        time.sleep(0.02)
    return time.monotonic() - start


@pytest.fixture
def watched():
    started: list[tuple[str, int]] = []
    health: list[tuple[str, bool]] = []
    lock = threading.Lock()

    def on_started(what: str, process: subprocess.Popen) -> None:
        with lock:
            started.append((what, process.pid))

    sup = Supervisor(on_started, lambda pod, healthy: health.append((pod, healthy)))
    yield sup, started, health
    sup.stop()
    for process in sup.processes():
        process.kill()
        process.wait()


def _spawn(argv: list[str]) -> Callable[[], subprocess.Popen]:
    return lambda: subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True)


def test_a_killed_container_is_restarted_and_the_pod_reports_its_health(watched):
    sup, started, health = watched
    first = sup.add("reviews-v2-abc", "reviews", "app reviews-v2", _spawn(SLEEPER))
    sup.add("reviews-v2-abc", "istio-proxy", "envoy reviews-v2", _spawn(SLEEPER))
    sup.add(None, "capture", "capture", _spawn(SLEEPER))  # a helper: supervised, not a pod row
    sup.start()
    _until(lambda: sup.rows()[0]["READY"] == "2/2")
    row = sup.rows()[0]
    assert (row["NAME"], row["STATUS"], row["RESTARTS"], len(sup.rows())) == ("reviews-v2-abc", "Running", "0", 1)

    killed = time.monotonic()
    os.kill(first.pid, signal.SIGKILL)
    _until(lambda: ("reviews-v2-abc", False) in health, timeout=2)
    down = sup.rows()[0]
    assert (down["READY"], down["STATUS"]) == ("1/2", "Error")
    assert down["containers"]["reviews"]["exit_code"] == 137  # 128 + SIGKILL, as Kubernetes reports it
    took = _until(lambda: sup.rows()[0]["READY"] == "2/2" and sup.rows()[0]["restarts"] == 1)
    assert time.monotonic() - killed >= supervisor.FIRST_RESTART_S * 0.9
    assert took < supervisor.FIRST_RESTART_S + 2
    back = sup.rows()[0]
    assert back["STATUS"] == "Running" and back["RESTARTS"].startswith("1 (") and back["RESTARTS"].endswith("s ago)")
    _until(lambda: health[-1] == ("reviews-v2-abc", True), timeout=2)
    assert health == [("reviews-v2-abc", False), ("reviews-v2-abc", True)]
    new_pid = back["containers"]["reviews"]["pid"]
    assert new_pid != first.pid and ("app reviews-v2", new_pid) in started  # recorded for SIGKILL cleanup


def test_a_container_that_keeps_crashing_waits_in_crash_loop_back_off(watched):
    sup, _, _ = watched
    sup.add("ratings-v1-x", "ratings", "app ratings-v1", _spawn(CRASHER))
    sup.start()
    _until(lambda: sup.rows()[0]["restarts"] == 1, timeout=5)  # after FIRST_RESTART_S
    _until(lambda: sup.rows()[0]["STATUS"] == "CrashLoopBackOff", timeout=5)
    row = sup.rows()[0]
    assert row["READY"] == "0/1" and row["containers"]["ratings"]["exit_code"] == 3
    time.sleep(2)  # the second crash waits BACKOFF_INITIAL_S (10 s): no restart yet
    assert sup.rows()[0]["restarts"] == 1
    assert sup.crashed() == ["app ratings-v1"]


def test_a_probe_decides_readiness(watched):
    sup, _, _ = watched
    ready = threading.Event()
    sup.add("productpage-v1-y", "istio-proxy", "envoy productpage-v1", _spawn(SLEEPER), ready.is_set)
    sup.start()
    time.sleep(0.5)
    assert sup.rows()[0]["READY"] == "0/1" and sup.rows()[0]["STATUS"] == "Running"
    ready.set()
    _until(lambda: sup.rows()[0]["READY"] == "1/1", timeout=3)


def test_nothing_is_restarted_once_stopped(watched):
    sup, started, _ = watched
    process = sup.add("details-v1-z", "details", "app details-v1", _spawn(SLEEPER))
    sup.start()
    sup.stop()
    process.kill()
    process.wait()
    time.sleep(supervisor.FIRST_RESTART_S + 0.5)
    assert len(started) == 1


def test_an_ordered_restart_starts_the_new_command_at_once_and_is_not_a_crash(watched):
    sup, started, _ = watched
    argv = {"now": SLEEPER}  # what a spawn reads at each start: a changed setting takes effect on restart
    first = sup.add("p", "istio-proxy", "envoy p", lambda: _spawn(argv["now"])())
    sup.start()
    argv["now"] = [sys.executable, "-c", "import time; time.sleep(121)"]
    began = time.monotonic()
    sup.restart("envoy p")
    assert time.monotonic() - began < supervisor.FIRST_RESTART_S  # no back-off
    assert first.poll() is not None
    row = sup.rows()[0]
    new = row["containers"]["istio-proxy"]["pid"]
    assert new != first.pid and ("envoy p", new) in started
    assert [p.args for p in sup.processes()] == [argv["now"]]
    time.sleep(3 * supervisor.POLL_S)
    assert sup.rows()[0]["restarts"] == 0 and sup.rows()[0]["STATUS"] == "Running"
    with pytest.raises(KeyError):
        sup.restart("envoy nobody")
