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

Fidelity makes a proxy's output depend on more than its namespace: its Sidecar picks the services
it sees (`scope`, one per Sidecar and namespace, part of every cache key that depends on it), and
exportTo and a Sidecar's outboundTrafficPolicy change the config it translates (`view`: one
topology object per distinct view, each with its own index, kept alive by this one).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any, NamedTuple, TypeVar

from meshkit.model import Service, ServicePort, Topology, Workload
from meshkit.model.config import resolve_host
from meshkit.model.istio import IstioResource
from meshkit.model.topology import HTTP, ROUTER

from . import service_entry, sidecar, virtual_service
from .registry import RegistryService, kube_service

T = TypeVar("T")
KEEP = 2  # indexes kept alive: the current config and the one before it


class Scope(NamedTuple):
    """What one proxy's Sidecar lets it see (istiod's SidecarScope); `key` None without a Sidecar."""

    key: tuple[str, str, str] | None  # (Sidecar namespace, Sidecar name, proxy namespace)
    services: tuple[RegistryService, ...]
    outbound_ports: tuple[tuple[RegistryService, ServicePort], ...]
    http_ports: tuple[int, ...]
    lookup: Mapping[str, RegistryService]


def _scope(key: tuple[str, str, str] | None, services: tuple[RegistryService, ...]) -> Scope:
    ports = tuple((s, p) for s in services for p in sorted(s.ports, key=lambda p: p.port))
    return Scope(key, services, ports, tuple(sorted({p.port for _, p in ports if p.protocol == HTTP})),
                 MappingProxyType({s.hostname: s for s in services}))


class PushContext:
    """The immutable index of one topology: registry, selections, and Istio config by host."""

    builds = 0  # how many indexes were ever built: one per config change, not one per proxy

    def __init__(self, topology: Topology, registry: PushContext | None = None) -> None:
        """`registry`: an index of a topology that differs from this one in VirtualServices alone,
        whose registry, Sidecar scopes and DestinationRules hold here too (`of(…, previous=)`)."""
        PushContext.builds += 1
        self.topology = topology
        self.mesh = topology.mesh
        by_kind: dict[str, list[IstioResource]] = defaultdict(list)
        for resource in topology.istio.resources:
            by_kind[resource.kind].append(resource)
        self._by_kind = by_kind
        if registry is not None:
            self._selected, self._services_of = registry._selected, registry._services_of
            self._scopes: dict[tuple[str, str, str] | None, Scope] = dict(registry._scopes)
            self._rules: dict[str, IstioResource] = registry._rules
        else:
            self._selected, self._services_of = _selections(topology)
            by_host = {s.fqdn: kube_service(topology, s, self._selected[s]) for s in topology.services}
            for entry in service_entry.services(topology):
                by_host.setdefault(entry.hostname, entry)
            self._scopes = {None: _scope(None, tuple(by_host[h] for h in sorted(by_host)))}
            self._rules = {}
            for rule in by_kind["DestinationRule"]:  # the first by (namespace, name) wins, as before
                self._rules.setdefault(resolve_host(rule.spec["host"], rule.namespace), rule)
        everything = self._scopes[None]
        self.services = everything.services
        self.lookup = everything.lookup
        self.outbound_ports = everything.outbound_ports
        self.http_ports = everything.http_ports
        self._views: dict[tuple, Topology] = {}
        self._children: list[PushContext] = []  # the indexes of `_views`, alive as long as this one
        self.sidecar_virtual_services: tuple[IstioResource, ...] = tuple(virtual_service.for_sidecars(topology.istio))
        self._hosts = {id(vs): virtual_service.hosts(vs) for vs in self.sidecar_virtual_services}
        naming: dict[str, list[IstioResource]] = defaultdict(list)
        for vs in self.sidecar_virtual_services:
            for host in self._hosts[id(vs)]:
                naming[host].append(vs)
        self._naming = naming
        # every VirtualService, delegates too: their rules are merged into the routes of their roots
        self._source_dependent = any(_has_source_match(vs) for vs in topology.istio.virtual_services)
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

    # -- per proxy -------------------------------------------------------------------------
    def scope(self, proxy: Workload) -> Scope:
        """The services `proxy`'s Sidecar lets it see, built once per Sidecar and namespace (egress
        hosts `./...` name the proxy's namespace); every service without a Sidecar."""
        if not self._by_kind.get("Sidecar"):
            return self._scopes[None]  # the common case: no Sidecar, nothing to look up
        rule = sidecar.sidecar_for(self.topology, proxy)
        key = None if rule is None else (rule.namespace, rule.name, proxy.namespace)
        found = self._scopes.get(key)
        if found is None:
            services = tuple(s for s in self.services if sidecar.visible(rule, proxy, s))
            found = self._scopes[key] = _scope(key, services)
        return found

    def hides_all(self, proxy: Workload, hosts: frozenset[str]) -> bool:
        """Whether each of `hosts` is a service of the mesh that `proxy`'s Sidecar hides from it, so
        no config naming only them can change what the proxy gets (a gateway sees by its Gateways)."""
        if proxy.kind == ROUTER or not self._by_kind.get("Sidecar"):
            return False
        seen = self.scope(proxy).lookup
        return all(h in self.lookup and h not in seen for h in hosts)

    def view(self, proxy: Workload) -> Topology:
        """The topology as `proxy` sees it (`scope.for_proxy`): only the Istio config exported to its
        namespace, and its Sidecar's outboundTrafficPolicy. One object per distinct view, so every
        proxy with the same view shares one index (`of`) and its resource cache."""
        topology = self.topology
        visible = topology.istio.visible_to(proxy.namespace)
        narrowed = len(visible.resources) != len(topology.istio.resources)
        if narrowed:
            topology = replace(topology, istio=visible)
        default = topology.mesh.outbound_traffic_policy
        mode = sidecar.outbound_traffic_policy(sidecar.sidecar_for(topology, proxy), default)
        key = (proxy.namespace if narrowed else None, mode)
        if key == (None, self.mesh.outbound_traffic_policy):
            return self.topology
        found = self._views.get(key)
        if found is None:
            if mode != topology.mesh.outbound_traffic_policy:
                topology = replace(topology, mesh=replace(topology.mesh, outbound_traffic_policy=mode))
            found = self._views[key] = topology
            self._children.append(PushContext(topology))
        return found

    # -- the resource cache ----------------------------------------------------------------
    def proxy_key(self, proxy: Workload) -> tuple:
        """What of a proxy its outbound routes and listeners depend on: its namespace (vhost
        domains, `sourceNamespace`), the Sidecar scope it sees (`scope`) and, only when some
        VirtualService matches `sourceLabels`, its labels. Proxies with equal keys get the same
        RDS and outbound LDS objects. (exportTo and a Sidecar's outboundTrafficPolicy make another
        topology, `view`, with its own index.)"""
        key = (proxy.namespace, self.scope(proxy).key)
        return (*key, proxy.labels) if self._source_dependent else key

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


def of(topology: Topology, previous: PushContext | None = None) -> PushContext:
    """The index of `topology`, built on first use and shared by every later call with it;
    `previous`, the index of a topology that differs from it in VirtualServices alone, lends its
    registry, scopes and every resource no VirtualService decides (`inherit`)."""
    for ctx in reversed(_recent):
        if ctx.topology is topology:
            return ctx
        for child in ctx._children:
            if child.topology is topology:
                return child
    ctx = PushContext(topology, registry=previous)
    if previous is not None:
        ctx.inherit(previous)
    _recent.append(ctx)
    del _recent[:-KEEP]
    return ctx
