"""One index per config change, shared by every proxy's translation (istiod's PushContext).

Translating for one proxy used to recompute, from the raw `Topology`, which pods every Service
selects (a scan of every workload per Service, several times per proxy), the merged registry, and
the DestinationRule of every host; and nothing carried over to the next proxy. istiod instead
builds one immutable `PushContext` per config change and every proxy's generation reads it, and
its XDS cache keeps the generated resources that are the same for many proxies.

`of(topology)` returns the index of a topology, built once and memoised by identity (a `Topology`
is immutable, so the same object always yields the same index): the translators keep their pure
`(topology, proxy)` signatures and read the index instead of scanning. `shared(key, build)` is the
resource cache of that index: resources that depend on the config alone (outbound clusters, EDS)
or on a proxy only through `proxy_key` (route configurations, outbound listeners) are built once
per index and handed to every proxy as the same objects; `packed` lets `Snapshot.build` serialize
each of them once too. Shared messages must be treated as read-only.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar

from meshkit.model import Service, ServicePort, Topology, Workload
from meshkit.model.config import resolve_host
from meshkit.model.istio import IstioResource
from meshkit.model.topology import HTTP

from . import service_entry, virtual_service
from .registry import RegistryService, kube_service

T = TypeVar("T")
KEEP = 2  # indexes kept alive: the current config and the one before it


class PushContext:
    """The immutable index of one topology: registry, selections, and Istio config by host."""

    builds = 0  # how many indexes were ever built: one per config change, not one per proxy

    def __init__(self, topology: Topology) -> None:
        PushContext.builds += 1
        self.topology = topology
        self.mesh = topology.mesh
        by_kind: dict[str, list[IstioResource]] = defaultdict(list)
        for resource in topology.istio.resources:
            by_kind[resource.kind].append(resource)
        self._by_kind = by_kind
        self._selected, self._services_of = _selections(topology)
        by_host = {s.fqdn: kube_service(topology, s, self._selected[s]) for s in topology.services}
        for entry in service_entry.services(topology):
            by_host.setdefault(entry.hostname, entry)
        self.services: tuple[RegistryService, ...] = tuple(by_host[h] for h in sorted(by_host))
        self.lookup: Mapping[str, RegistryService] = MappingProxyType({s.hostname: s for s in self.services})
        self.outbound_ports: tuple[tuple[RegistryService, ServicePort], ...] = tuple(
            (s, p) for s in self.services for p in sorted(s.ports, key=lambda p: p.port))
        self.http_ports: tuple[int, ...] = tuple(sorted({p.port for _, p in self.outbound_ports if p.protocol == HTTP}))
        rules: dict[str, IstioResource] = {}
        for rule in by_kind["DestinationRule"]:  # the first by (namespace, name) wins, as before
            rules.setdefault(resolve_host(rule.spec["host"], rule.namespace), rule)
        self._rules = rules
        self.sidecar_virtual_services: tuple[IstioResource, ...] = tuple(virtual_service.for_sidecars(topology.istio))
        self._hosts = {id(vs): virtual_service.hosts(vs) for vs in self.sidecar_virtual_services}
        naming: dict[str, list[IstioResource]] = defaultdict(list)
        for vs in self.sidecar_virtual_services:
            for host in self._hosts[id(vs)]:
                naming[host].append(vs)
        self._naming = naming
        self._source_dependent = any(_has_source_match(vs) for vs in self.sidecar_virtual_services)
        self._shared: dict[Any, Any] = {}
        self._routing: set[Any] = set()
        self.packed: dict[Any, Any] = {}  # id(message) -> (message, packed Any, name), for Snapshot.build

    # -- registry ------------------------------------------------------------------------
    def endpoints(self, service: Service) -> tuple[Workload, ...]:
        """The pods a Kubernetes Service selects, by name (`Topology.endpoints`, from the index)."""
        found = self._selected.get(service)
        return found if found is not None else tuple(self.topology.endpoints(service))

    def services_of(self, workload: Workload) -> tuple[Service, ...]:
        """The Services selecting a pod, in topology order (`Topology.services_of`, from the index)."""
        found = self._services_of.get(workload)
        return found if found is not None else tuple(self.topology.services_of(workload))

    def of_kind(self, kind: str) -> list[IstioResource]:
        return list(self._by_kind.get(kind, ()))

    def destination_rule_for(self, host: str) -> IstioResource | None:
        """`IstioConfig.destination_rule_for` without scanning every rule."""
        return self._rules.get(host)

    def hosts(self, vs: IstioResource) -> list[str]:
        """`virtual_service.hosts(vs)`, resolved once per index."""
        found = self._hosts.get(id(vs))
        return list(found) if found is not None else virtual_service.hosts(vs)

    def virtual_services_naming(self, host: str) -> tuple[IstioResource, ...]:
        """The sidecar VirtualServices naming `host`, in config order (`virtual_service.naming`)."""
        return tuple(self._naming.get(host, ()))

    # -- the resource cache ----------------------------------------------------------------
    def proxy_key(self, proxy: Workload) -> tuple:
        """What of a proxy its outbound routes and listeners depend on: its namespace (vhost
        domains, `sourceNamespace`) and, only when some VirtualService matches `sourceLabels`,
        its labels. Proxies with equal keys get the same RDS and outbound LDS objects."""
        return (proxy.namespace, proxy.labels) if self._source_dependent else (proxy.namespace,)

    def shared(self, key: Any, build: Callable[[], T], *, routing: bool = False) -> T:
        """The resource(s) cached under `key` in this index, built on first use. `routing`: they
        depend on VirtualServices (so a VirtualService edit cannot `inherit` them)."""
        try:
            return self._shared[key]
        except KeyError:
            value = self._shared[key] = build()
            if routing:
                self._routing.add(key)
            return value

    def inherit(self, previous: PushContext) -> int:
        """Take over `previous`'s cached resources that no VirtualService decides (clusters, EDS,
        default vhosts and TCP listeners), when the configs differ only in VirtualServices:
        a VirtualService edit then rebuilds only its routes. Returns how many were taken over."""
        if self._shared:
            return 0  # something was built here already: keep it consistent with itself
        kept = {k: v for k, v in previous._shared.items() if k not in previous._routing}
        self._shared.update(kept)
        self.packed.update(previous.packed)
        return len(kept)


def _has_source_match(vs: IstioResource) -> bool:
    return any(m.get("sourceLabels") for section in ("http", "tcp", "tls")
               for rule in vs.spec.get(section, []) for m in rule.get("match") or [])


def _selections(topology: Topology) -> tuple[dict[Service, tuple[Workload, ...]], dict[Workload, tuple[Service, ...]]]:
    """Which pods each Service selects and which Services select each pod, in one pass: a Service
    is only checked against the pods of its namespace that carry its first selector label."""
    by_label: dict[tuple[str, str, str], list[Workload]] = defaultdict(list)
    for workload in topology.workloads:
        for key, value in workload.labels:
            by_label[(workload.namespace, key, value)].append(workload)
    selected: dict[Service, tuple[Workload, ...]] = {}
    services_of: dict[Workload, list[Service]] = {w: [] for w in topology.workloads}
    for service in topology.services:
        if not service.selector:
            selected[service] = ()
            continue
        key, value = service.selector[0]
        pods = [w for w in by_label.get((service.namespace, key, value), ()) if service.selects(w)]
        selected[service] = tuple(sorted(pods, key=lambda w: w.name))
        for pod in pods:
            if service not in services_of[pod]:  # a pod listed twice is still selected once
                services_of[pod].append(service)
    return selected, {w: tuple(s) for w, s in services_of.items()}


_recent: list[PushContext] = []


def of(topology: Topology) -> PushContext:
    """The index of `topology`, built on first use and shared by every later call with it."""
    for ctx in reversed(_recent):
        if ctx.topology is topology:
            return ctx
    ctx = PushContext(topology)
    _recent.append(ctx)
    del _recent[:-KEEP]
    return ctx
