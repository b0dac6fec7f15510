"""Self-healing as the kubelet does it: a crashed container is restarted with back-off.

Both local runtimes hand every process they start (an app, an Envoy sidecar, the userspace
capture process, the outside world) to one `Supervisor`, a thread that polls them. When one
exits it is started again with the same command line; the sidecar then reconnects to the ADS
server on its own and takes the current config, as a restarted istio-proxy does.

Back-off: Kubernetes waits 10 s before restarting a crashed container, doubling on every
further crash up to 5 minutes (10, 20, 40, ... 300 s), and forgets the streak once a container
ran for 10 minutes. meshkit keeps that sequence except for the first restart, which comes after
1 s so that a lab sees a killed sidecar come back while it watches (FIRST_RESTART_S); the second
crash in a row waits 10 s, the third 20 s, and so on.

A pod's row is what `kubectl get pods` shows: READY (containers ready / containers), STATUS
(Running; Error right after a crash; CrashLoopBackOff while waiting out a back-off), RESTARTS
(with "(5s ago)" as kubectl prints it) and AGE. Readiness is a probe per container (the app
accepts on its port; the sidecar's admin answers LIVE on /ready, i.e. it holds its first LDS and
CDS). On every change of a pod's readiness after it was first ready, `on_pod_health(pod, healthy)`
is called (from the supervisor's thread), so the control plane can take the endpoint out of EDS
as Kubernetes takes a not-ready pod out of its EndpointSlice.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("meshkit.supervisor")

FIRST_RESTART_S = 1.0  # a lab's choice; Kubernetes waits BACKOFF_INITIAL_S here too
BACKOFF_INITIAL_S = 10.0
BACKOFF_MAX_S = 300.0
BACKOFF_RESET_S = 600.0  # a container that ran this long without crashing starts a fresh streak
POLL_S = 0.1
PROBE_S = 1.0  # kubelet's default periodSeconds is 10; a lab wants to see readiness sooner

PodHealth = Callable[[str, bool], None]


def accepts(connect: Callable[[], socket.socket]) -> Callable[[], bool]:
    """A tcpSocket readiness probe: ready when `connect` succeeds (OSError: not ready)."""
    def probe() -> bool:
        with connect():
            return True
    return probe


def backoff(streak: int) -> float:
    """Seconds before restarting a container that crashed `streak` times in a row (1, 10, 20, 40, ... 300)."""
    if streak <= 1:
        return FIRST_RESTART_S
    return min(BACKOFF_INITIAL_S * 2 ** (streak - 2), BACKOFF_MAX_S)


def human_age(seconds: float) -> str:
    """A duration as kubectl prints it (`duration.HumanDuration`): 42s, 3m12s, 25m, 4h5m, 6h, 3d."""
    s = int(max(0.0, seconds))
    minutes, hours, days = s // 60, s // 3600, s // 86400
    if s < 120:
        return f"{s}s"
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    return f"{days}d"


@dataclass
class Container:
    """One supervised process: how to start it again, how to tell it is ready, what happened to it."""

    pod: str | None  # None: a helper of the whole mesh (capture, outside world), not in `kubectl get pods`
    name: str  # as the pod spec names it: the app's label, or istio-proxy
    what: str  # the runtime's key for it ("envoy reviews-v1"), also in state.json
    spawn: Callable[[], subprocess.Popen]
    probe: Callable[[], bool] | None = None
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    restarts: int = 0
    streak: int = 0
    last_restart: float | None = None
    exit_code: int | None = None
    restart_at: float | None = None  # set while waiting out a back-off
    ready: bool = False
    next_probe: float = 0.0
    failures: list[str] = field(default_factory=list)

    def status(self) -> str:
        if self.restart_at is None:
            return "Running"
        if self.streak <= 1:
            return "Completed" if self.exit_code == 0 else "Error"
        return "CrashLoopBackOff"


class Supervisor:
    """Restarts what exits, probes readiness, and reports pods' health changes."""

    def __init__(self, on_started: Callable[[str, subprocess.Popen], None],
                 on_pod_health: PodHealth | None = None) -> None:
        self._on_started = on_started  # the runtime records every new pid for SIGKILL-proof cleanup
        self._on_pod_health = on_pod_health
        self._containers: list[Container] = []
        self._pod_started: dict[str, float] = {}
        self._healthy: dict[str, bool] = {}  # pods that were ready once: their last reported health
        self._lock = threading.Lock()
        self._sweep = threading.Lock()  # held while the watcher tends the containers, and by `restart`
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, pod: str | None, name: str, what: str, spawn: Callable[[], subprocess.Popen],
            probe: Callable[[], bool] | None = None) -> subprocess.Popen:
        """Start a process now and keep it running; returns the first process."""
        container = Container(pod, name, what, spawn, probe)
        self._spawn(container)
        with self._lock:
            self._containers.append(container)
            if pod is not None:
                self._pod_started.setdefault(pod, time.time())
        assert container.process is not None
        return container.process

    def remove(self, pod: str) -> list[subprocess.Popen]:
        """Stop tending `pod`'s containers (a pod taken away while the mesh runs); their processes, to kill."""
        with self._lock:
            gone = [c for c in self._containers if c.pod == pod]
            self._containers = [c for c in self._containers if c.pod != pod]
            self._pod_started.pop(pod, None)
            self._healthy.pop(pod, None)
        return [c.process for c in gone if c.process is not None]

    def start(self) -> None:
        """Watch from a background thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="meshkit-supervisor", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop watching (before the runtime kills its processes, so nothing is restarted)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)

    def restart(self, what: str, grace_s: float = 5.0) -> None:
        """Stop `what` and start it again at once: an ordered restart (new settings), not a crash, so no back-off."""
        with self._lock:
            container = next((c for c in self._containers if c.what == what), None)
        if container is None or container.process is None:
            raise KeyError(f"nothing supervised is called {what!r}")
        with self._sweep:  # the watcher must not see the exit and schedule a crash restart meanwhile
            container.process.terminate()
            try:
                container.process.wait(grace_s)
            except subprocess.TimeoutExpired:
                container.process.kill()
                container.process.wait()
            self._spawn(container)

    def processes(self) -> list[subprocess.Popen]:
        with self._lock:
            return [c.process for c in self._containers if c.process is not None]

    def crashed(self) -> list[str]:
        """What exited at least once (a start-up that crashes is a failed start-up, not a lesson)."""
        with self._lock:
            return [c.what for c in self._containers if c.restarts or c.restart_at is not None]

    def probe_now(self) -> None:
        """Probe every running container not yet ready, so a table read right after a start is current."""
        for container in list(self._containers):
            if container.restart_at is None and not container.ready:
                self._probe(container, time.monotonic())

    def rows(self) -> list[dict]:
        """One row per pod, as `kubectl get pods` shows it (plus the numbers behind the text)."""
        now = time.time()
        with self._lock:
            pods: dict[str, list[Container]] = {}
            for c in self._containers:
                if c.pod is not None:
                    pods.setdefault(c.pod, []).append(c)
            rows = []
            for pod, containers in pods.items():
                restarts = sum(c.restarts for c in containers)
                last = max((c.last_restart for c in containers if c.last_restart), default=None)
                statuses = [c.status() for c in containers]
                status = next((s for s in ("CrashLoopBackOff", "Error", "Completed") if s in statuses), "Running")
                ready = sum(1 for c in containers if c.ready)
                rows.append({
                    "NAME": pod, "READY": f"{ready}/{len(containers)}", "STATUS": status,
                    "RESTARTS": f"{restarts} ({human_age(now - last)} ago)" if last else str(restarts),
                    "AGE": human_age(now - self._pod_started[pod]),
                    "restarts": restarts, "ready": ready == len(containers),
                    "containers": {c.name: {"status": c.status(), "ready": c.ready, "restarts": c.restarts,
                                            "pid": c.process.pid if c.process else None,
                                            "exit_code": c.exit_code} for c in containers},
                })
            return rows

    # -- the watcher ---------------------------------------------------------------------------
    def _spawn(self, container: Container) -> None:
        container.process = container.spawn()
        container.started_at = time.monotonic()
        container.restart_at, container.ready, container.next_probe = None, False, 0.0
        self._on_started(container.what, container.process)

    def _run(self) -> None:
        while not self._stop.wait(POLL_S):
            with self._sweep:
                for container in list(self._containers):
                    if self._stop.is_set():
                        return
                    try:
                        self._tend(container)
                    except Exception as error:  # a failed restart is retried with back-off, never fatal
                        log.warning("supervising %s: %s", container.what, error)
                        container.failures.append(str(error))
                        container.streak += 1
                        container.restart_at = time.monotonic() + backoff(container.streak)
            self._report_health()

    def _tend(self, container: Container) -> None:
        now = time.monotonic()
        if container.restart_at is not None:
            if now >= container.restart_at:
                with self._lock:
                    container.restarts += 1
                    container.last_restart = time.time()
                log.info("restarting %s (restart %d)", container.what, container.restarts)
                self._spawn(container)
            return
        process = container.process
        assert process is not None
        code = process.poll()
        if code is not None:
            if now - container.started_at >= BACKOFF_RESET_S:
                container.streak = 0
            with self._lock:
                container.streak += 1
                container.exit_code, container.ready = (128 - code if code < 0 else code), False  # 137: SIGKILL
                container.restart_at = now + backoff(container.streak)
            log.warning("%s exited with %s; restarting in %.0f s", container.what, code, backoff(container.streak))
            return
        if now >= container.next_probe:
            self._probe(container, now)

    @staticmethod
    def _probe(container: Container, now: float) -> None:
        ready = container.probe is None
        if container.probe is not None:
            with contextlib.suppress(Exception):
                ready = bool(container.probe())
        container.ready = ready
        container.next_probe = now + (PROBE_S if ready else PROBE_S / 5)

    def _report_health(self) -> None:
        if self._on_pod_health is None:
            return
        for row in self.rows():
            pod, healthy = row["NAME"], row["ready"]
            before = self._healthy.get(pod)
            if before is None and not healthy:
                continue  # not ready yet: the control plane's first config assumes every pod serves
            self._healthy[pod] = healthy
            if before is not None and before != healthy:
                with contextlib.suppress(Exception):  # a failing callback must not stop the healing
                    self._on_pod_health(pod, healthy)
