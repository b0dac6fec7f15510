"""The boss at work: desired state per proxy, pushes, and the record of every push.

`ControlPlane` owns what each sidecar *should* hold: the Istio-faithful translation of the
topology, with the learner's raw overrides laid on top. A push rebuilds the snapshots of the
proxies it touches, hands them to the ADS server, and waits for each proxy's ACK or NACK of the
new versions. Every push is recorded with what changed and what each proxy answered.

A push works as istiod's does at scale: one push context (`push_context.of`) indexes the new
config once and every proxy's translation reads it; resources that are the same for many proxies
are built, serialized and hashed once (`Snapshot.build(packed=...)`); an edit rebuilds only the
xDS types it can change (`changes.affected_types`: a VirtualService RDS, a pod's readiness EDS),
the other types keep their packed resources. Changes that arrive while a push is in flight are
merged into the next push (`debounce`), whose record lists every merged reason.

The boss is also the mesh's certificate authority (`ca`): every sidecar's snapshot carries SDS
`default` (its own SPIFFE certificate) and `ROOTCA`, pushed last on the same ADS stream. Each
certificate is renewed once half its lifetime is gone, by an asyncio timer per proxy (no poll
loop) that pushes that proxy a new `default` secret; connections already open keep their old
certificate, new ones use the new one, so rotation drops no request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace

from google.protobuf.any_pb2 import Any
from google.protobuf.message import Message

from ..model.raw import RawResource
from ..model.topology import Topology, Workload
from . import gateway_tls, generate, push_context, secrets
from .ca import CertificateAuthority, IssuedCert
from .cache import SnapshotCache
from .changes import ALL_TYPES, affected_types, only_virtual_services, virtual_service_hosts
from .debounce import DEBOUNCE_MAX_MS, DEBOUNCE_MS, Batch, Debouncer
from .push_log import PushLog, PushState
from .resources import CLUSTER, PUSH_ORDER, SECRET, SHORT_NAMES, resource_name
from .snapshot import Snapshot
from .status import EventKind, OutcomeKind, SyncEvent, SyncTracker

ACK_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Change:
    """How one resource differs between the previous and the new snapshot of a proxy."""

    pod: str
    type: str  # CDS, EDS, LDS, RDS, SDS
    name: str
    action: str  # added, removed, modified


@dataclass
class Push:
    """One push: why, what changed, and what each proxy answered per type."""

    id: int
    started: float
    reason: str
    changes: list[Change] = field(default_factory=list)
    versions: dict[str, dict[str, str]] = field(default_factory=dict)  # pod -> type -> version
    results: dict[str, dict[str, str]] = field(default_factory=dict)  # pod -> type -> ACK/NACK/...
    errors: dict[str, str] = field(default_factory=dict)  # pod -> Envoy's error text
    xds: dict[str, str] = field(default_factory=dict)  # pod -> DELTA or SOTW, for the connected ones
    bytes: dict[str, int] = field(default_factory=dict)  # pod -> serialized bytes of the responses it was sent
    finished: float | None = None
    published: float | None = None  # when the snapshots were handed to the ADS server
    merged: list[str] = field(default_factory=list)  # every change this push carries, in order
    rebuilt: dict[str, list[str]] = field(default_factory=dict)  # pod -> types translated anew

    @property
    def nacked(self) -> bool:
        return bool(self.errors)

    @property
    def duration_ms(self) -> float | None:
        return None if self.finished is None else (self.finished - self.started) * 1000

    @property
    def publish_ms(self) -> float | None:
        """The boss's own share of the push: translating and packing, before any proxy answers."""
        return None if self.published is None else (self.published - self.started) * 1000

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "started": self.started,
            "reason": self.reason,
            "changes": [c.__dict__ for c in self.changes],
            "versions": self.versions,
            "results": self.results,
            "errors": self.errors,
            "xds": self.xds,
            "bytes": self.bytes,
            "duration_ms": self.duration_ms,
            "publish_ms": self.publish_ms,
            "merged": self.merged,
            "rebuilt": self.rebuilt,
        }


class ControlPlane:
    """Desired state + ADS cache + sync tracker: the part of istiod meshkit re-implements."""

    def __init__(self, topology: Topology, cache: SnapshotCache, tracker: SyncTracker,
                 ca: CertificateAuthority | None = None, *, debounce_ms: float = DEBOUNCE_MS,
                 debounce_max_ms: float = DEBOUNCE_MAX_MS) -> None:
        self.topology = topology
        self.cache = cache
        self.tracker = tracker
        self.ca = ca or CertificateAuthority()
        self.credentials = gateway_tls.Credentials(self.ca)  # gateway `credentialName` certificates
        self._certs: dict[str, IssuedCert] = {}  # pod name -> its current workload certificate
        self._renewals: dict[str, asyncio.TimerHandle] = {}
        self.rotations = 0
        # pod name -> (type_url, resource name) -> the learner's raw resource
        self._overrides: dict[str, dict[tuple[str, str], RawResource]] = {}
        self._history: list[Push] = []
        self.pushes = PushLog()  # what each recent push sent, for diffs and replay
        self._index: push_context.PushContext | None = None  # the last push's
        self._batches: Debouncer[Push] = Debouncer(self._push_batch, debounce_ms, max(debounce_ms, debounce_max_ms))

    # -- desired state -------------------------------------------------------------------
    def desired(self, proxy: Workload, types: Collection[str] = ALL_TYPES) -> dict[str, list[Message]]:
        """The generated resources for `proxy`, with its raw overrides replacing or adding; only
        the type URLs in `types` (the others stay as the last snapshot has them). SDS goes along
        with CDS: the clusters name the certificate files it serves."""
        resources: dict[str, list[Message]] = dict(generate.generate(self.topology, proxy, types))
        if SECRET in types or CLUSTER in types:
            resources[SECRET] = secrets.build_secrets(self.certificate(proxy), self.ca.root_pem)
            # pilot-agent's part: DestinationRule certificate files, read from disk at push time
            clusters = resources[CLUSTER] if CLUSTER in resources else generate.generate(
                self.topology, proxy, {CLUSTER})[CLUSTER]
            files = secrets.referenced_file_secrets(clusters)
            resources[SECRET] += [s for s in map(secrets.file_secret, files) if s is not None]
            resources[SECRET] += self.credentials.secrets(self.topology, proxy)
        overrides = self._overrides.get(proxy.name, {})
        if not overrides:
            return resources
        merged: dict[str, list[Message]] = {}
        for type_url in set(resources) | {key[0] for key in overrides if key[0] in types}:
            by_name = {resource_name(m): m for m in resources.get(type_url, [])}
            for (override_type, name), raw in overrides.items():
                if override_type == type_url:
                    by_name[name] = raw.message
            merged[type_url] = list(by_name.values())
        return merged

    # -- identity ---------------------------------------------------------------------------------
    def certificate(self, proxy: Workload) -> IssuedCert:
        """The proxy's current certificate, issued on first use or once due for renewal."""
        cert = self._certs.get(proxy.name)
        if cert is None or self.ca.clock() >= cert.rotate_at():
            cert = self.ca.issue(proxy.namespace, proxy.service_account)
            self._certs[proxy.name] = cert
        return cert

    def certificates(self) -> dict[str, IssuedCert]:
        return dict(self._certs)

    def _schedule_renewal(self, pod: str) -> None:
        """One timer per proxy, at its certificate's renewal time (replacing the previous timer)."""
        cert = self._certs.get(pod)
        if cert is None:
            return
        if (old := self._renewals.pop(pod, None)) is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        delay = max(0.0, cert.rotate_at() - self.ca.clock())
        self._renewals[pod] = loop.call_later(delay, lambda: loop.create_task(self.rotate([pod])))

    async def rotate(self, pods: Iterable[str] | None = None, reason: str = "certificate renewal") -> Push:
        """Issue new certificates for `pods` (all sidecars by default) and push their SDS `default`."""
        workloads = [self.topology.workload(p) for p in pods] if pods is not None else self.topology.sidecars()
        for workload in workloads:
            self._certs.pop(workload.name, None)
        self.rotations += len(workloads)
        return await self.push(workloads, reason, types={SECRET})

    async def set_certificate_ttl(self, ttl_s: float) -> Push:
        """Change the lifetime of new certificates, and re-issue every sidecar's under it now."""
        self.ca.ttl_s = ttl_s
        return await self.rotate(reason=f"certificate lifetime {ttl_s:g} s")

    def close(self) -> None:
        """Cancel the renewal timers."""
        for handle in self._renewals.values():
            handle.cancel()
        self._renewals.clear()

    def overrides(self) -> list[tuple[str, RawResource]]:
        return [(pod, raw) for pod, items in self._overrides.items() for raw in items.values()]

    def history(self) -> list[Push]:
        return list(self._history)

    # -- orders ------------------------------------------------------------------------------
    async def push_all(self, reason: str = "initial state") -> Push:
        return await self.push(self.topology.sidecars(), reason)

    async def apply_raw(self, resources: Iterable[RawResource], pods: Iterable[Workload]) -> Push:
        """Lay raw resources over the generated ones on `pods`, push, wait for ACK or NACK."""
        resources, pods = list(resources), list(pods)
        for pod in pods:
            slot = self._overrides.setdefault(pod.name, {})
            for raw in resources:
                slot[(raw.type_url, raw.name)] = raw
        names = ", ".join(f"{r.short_type} {r.name}" for r in resources)
        return await self.push(pods, f"apply {names}", types={r.type_url for r in resources})

    async def revert(self, pods: Iterable[Workload]) -> Push:
        """Drop the raw overrides of `pods`, so they get the generated config back."""
        pods = list(pods)
        for pod in pods:
            self._overrides.pop(pod.name, None)
        return await self.push(pods, "revert raw overrides")

    async def set_topology(self, topology: Topology, reason: str) -> Push:
        """Adopt a new topology and push what it changes (`changes.affected_types`) to every sidecar,
        but a VirtualService edit only to those whose Sidecar lets them see a host it names."""
        types = affected_types(self.topology, topology)
        routing_only = only_virtual_services(self.topology, topology)
        hosts = virtual_service_hosts(self.topology, topology) if routing_only else None
        pods = topology.sidecars()
        if hosts:
            index = self._index_of(topology)
            pods = [p for p in pods if self.cache.get(p.node_id) is None or not index.hides_all(p, hosts)]
        self.topology = topology
        return await self.push(pods, reason, types=types)

    def _index_of(self, topology: Topology) -> push_context.PushContext:
        """`topology`'s push context; after a VirtualService edit it keeps the last push's registry,
        scopes, clusters, EDS and default vhosts (`push_context.of(…, previous=)`)."""
        last = self._index
        same_registry = last is not None and last.topology is not topology and only_virtual_services(
            last.topology, topology)
        return push_context.of(topology, last if same_registry else None)

    async def set_pod_health(self, pod_name: str, healthy: bool) -> Push:
        """Mark `pod_name`'s endpoints UNHEALTHY (or HEALTHY again) in every proxy's EDS and push.

        What Kubernetes readiness does when a pod goes down or comes back: callers stop choosing
        the pod, and choose it again once it is Ready. The health lives in the topology the
        translators read, so only EDS changes and only EDS is pushed. Raises `TopologyError`
        naming the known pods if there is no such pod.
        """
        pod = self.topology.workload(pod_name)
        workloads = tuple(replace(w, ready=healthy) if w.name == pod.name else w for w in self.topology.workloads)
        return await self.set_topology(replace(self.topology, workloads=workloads),
                                       f"{pod.name} {'ready' if healthy else 'not ready'}")

    async def replay(self, push_id: int) -> Push:
        """Put back the Istio config, mesh config and raw overrides in force after push `push_id`, and push.

        KeyError when that push is no longer kept (see `pushes`).
        """
        state: PushState = self.pushes.get(push_id)
        self.topology = replace(self.topology, istio=state.istio, mesh=state.mesh)
        self._overrides = {pod: dict(items) for pod, items in state.overrides.items()}
        return await self.push(self.topology.sidecars(), f"replay push {push_id}")

    async def wait_synced(self, pods: Iterable[Workload], timeout: float) -> dict[str, dict[str, str]]:
        """Wait until each pod's sidecar has ACKed (or NACKed) every type of its current snapshot.

        Used at start-up: the first push happens before the sidecars connect, so it cannot wait.
        """
        expected = {}
        for pod in pods:
            snapshot = self.cache.get(pod.node_id)
            if snapshot is not None:
                expected[pod.node_id] = {t: v for t, v in snapshot.versions.items() if snapshot.resources.get(t)}
        outcomes = await self.tracker.wait_for(expected, timeout)
        by_node = {p.node_id: p.name for p in self.topology.workloads}
        return {by_node.get(node, node): {SHORT_NAMES[t]: o.kind.value for t, o in per_type.items()}
                for node, per_type in outcomes.items()}

    async def push(self, pods: Iterable[Workload], reason: str, timeout: float = ACK_TIMEOUT_S,
                   types: Collection[str] = ALL_TYPES) -> Push:
        """Rebuild the `types` of the snapshots of `pods`, publish them together, and wait for the
        proxies. Changes arriving while another push is in flight are merged into one (`debounce`)."""
        return await self._batches.submit([p.name for p in pods], types, reason, timeout)

    async def _push_batch(self, batch: Batch) -> Push:
        """One push for a batch of merged changes, each proxy rebuilt only in the types they touch."""
        reasons = batch.reasons
        reason = reasons[0] if len(reasons) == 1 else f"{reasons[0]} (+{len(reasons) - 1} merged)"
        record = Push(id=len(self._history) + 1, started=time.time(), reason=reason, merged=list(reasons))
        self._history.append(record)
        index = self._index = self._index_of(self.topology)  # one index for the whole push, shared by every proxy
        by_name = {w.name: w for w in self.topology.workloads}
        pods = [by_name[name] for name in batch.types if name in by_name]
        snapshots: dict[str, Snapshot] = {}
        expected: dict[str, dict[str, str]] = {}
        compared: dict[tuple[int, int], bool] = {}  # shared resources are compared once per push
        for pod in pods:
            old = self.cache.get(pod.node_id)
            types = ALL_TYPES if old is None else batch.types[pod.name]
            new = Snapshot.build(self.desired(pod, types), base=old, packed=index.packed)
            record.rebuilt[pod.name] = [SHORT_NAMES[t] for t in PUSH_ORDER if t in types]
            changed = {t: v for t, v in new.versions.items() if old is None or old.versions.get(t) != v}
            record.changes.extend(_diff(pod.name, old, new, changed, compared))
            snapshots[pod.node_id] = new
            record.versions[pod.name] = {SHORT_NAMES[t]: v for t, v in changed.items()}
            if changed and self.tracker.connected(pod.node_id):  # others get it when they connect
                expected[pod.node_id] = changed
            if self.tracker.connected(pod.node_id):
                record.xds[pod.name] = self.tracker.variant(pod.node_id)
        by_node = {p.node_id: p.name for p in self.topology.workloads}

        def count(event: SyncEvent) -> None:  # what the push costs on the wire, as the streams report it
            if event.kind is EventKind.SENT and event.node_id in expected:
                pod = by_node.get(event.node_id, event.node_id)
                record.bytes[pod] = record.bytes.get(pod, 0) + event.bytes

        stop_counting = self.tracker.subscribe(count)
        try:
            self.cache.set_many(snapshots)
            record.published = time.time()
            self.pushes.record(record.id, self.topology.istio, self.topology.mesh, self._overrides,
                               {pod.name: snapshots[pod.node_id] for pod in pods})
            for pod in pods:
                self._schedule_renewal(pod.name)
            outcomes = await self.tracker.wait_for(expected, batch.timeout) if expected else {}
        finally:
            stop_counting()
        for node_id, per_type in outcomes.items():
            pod_name = by_node.get(node_id, node_id)
            for type_url, outcome in per_type.items():
                record.results.setdefault(pod_name, {})[SHORT_NAMES[type_url]] = outcome.kind.value
                if outcome.kind is OutcomeKind.NACK:
                    record.errors[pod_name] = outcome.error
        record.finished = time.time()
        return record


def _diff(pod: str, old: Snapshot | None, new: Snapshot, changed: Collection[str],
          compared: dict[tuple[int, int], bool]) -> list[Change]:
    """What differs, resource by resource, in the types whose version `changed`; `compared`
    remembers which pairs of packed resources (alive in both snapshots) differ."""
    changes = []
    for type_url in PUSH_ORDER:
        if type_url not in changed:
            continue
        before: Mapping[str, Any] = old.resources.get(type_url, {}) if old else {}
        after: Mapping[str, Any] = new.resources.get(type_url, {})
        short = SHORT_NAMES[type_url]
        if not before:  # a first snapshot, or a type it did not have: everything is new
            changes += [Change(pod, short, name, "added") for name in sorted(after)]
            continue
        for name in sorted(set(before) | set(after)):
            if name not in before:
                changes.append(Change(pod, short, name, "added"))
            elif name not in after:
                changes.append(Change(pod, short, name, "removed"))
            elif _differ(before[name], after[name], compared):
                changes.append(Change(pod, short, name, "modified"))
    return changes


def _differ(a: Any, b: Any, compared: dict[tuple[int, int], bool]) -> bool:
    if a is b:
        return False
    key = (id(a), id(b))
    if key not in compared:
        compared[key] = a.value != b.value
    return compared[key]
