"""Which xDS types a config change can alter, so a push rebuilds only those (istiod's
`ConfigsUpdated` deciding which generators run, and which resources of its XDS cache go stale).

- a pod's readiness: EDS only (plus CDS if a ServiceEntry picks pods, whose DNS clusters carry
  their endpoints inline);
- a VirtualService: RDS, and LDS when its old or new version has `tcp` or `tls` routes (tcp_proxy
  and SNI chains live in the listeners); its `exportTo` only narrows who gets those same types;
- a DestinationRule: CDS, EDS (subsets) and RDS (consistent-hash policies, undefined subsets);
  SDS goes along with CDS (`ControlPlane.desired`: the certificate files clusters name);
- a PeerAuthentication, AuthorizationPolicy or RequestAuthentication: LDS (the inbound chains,
  RBAC and JWT filters);
- anything else (Services, pods, ServiceEntries, Sidecars, mesh config, capture, a kind this
  table does not know): every type. A Sidecar changes which services its proxies see, and
  which proxies it selects can change with it, so every proxy is rebuilt.

A change reaches every sidecar (which proxies see a resource depends on Sidecars and `exportTo`,
and rebuilding one that did not change yields the same versions, so nothing is pushed to it),
except a VirtualService edit, which skips the sidecars whose Sidecar hides every host it names
(`virtual_service_hosts`, istiod's `SidecarScope.DependsOnConfig`); the types not listed keep
their packed resources and versions from the last snapshot.
"""

from __future__ import annotations

from dataclasses import replace

from meshkit.model import Topology
from meshkit.model.istio import IstioResource

from . import virtual_service
from .resources import CLUSTER, ENDPOINT, LISTENER, PUSH_ORDER, ROUTE, SECRET

ALL_TYPES = frozenset(PUSH_ORDER)
CONFIG_TYPES = ALL_TYPES - {SECRET}  # what the topology decides; SDS is the CA's
BY_KIND = {
    "DestinationRule": frozenset({CLUSTER, ENDPOINT, ROUTE}),
    "PeerAuthentication": frozenset({LISTENER}),
    "AuthorizationPolicy": frozenset({LISTENER}),
    "RequestAuthentication": frozenset({LISTENER}),
}


def affected_types(old: Topology, new: Topology) -> frozenset[str]:
    """The xDS types whose content may differ between translating `old` and `new`."""
    if old is new:
        return frozenset()
    if old.services != new.services or old.mesh != new.mesh or old.capture != new.capture:
        return CONFIG_TYPES
    types: set[str] = set()
    if old.workloads != new.workloads:
        if not _only_readiness(old, new):
            return CONFIG_TYPES
        picks_pods = any((e.spec.get("workloadSelector") or {}).get("labels") is not None
                         for e in new.istio.service_entries)
        types |= {ENDPOINT, CLUSTER} if picks_pods else {ENDPOINT}
    before = {r.key: r for r in old.istio.resources}
    after = {r.key: r for r in new.istio.resources}
    for key in before.keys() | after.keys():
        was, now = before.get(key), after.get(key)
        if was == now:
            continue
        kind = key[0]
        if kind == "VirtualService":
            types |= {ROUTE, LISTENER} if _has_tcp(was) or _has_tcp(now) else {ROUTE}
        elif kind in BY_KIND:
            types |= BY_KIND[kind]
        else:
            return CONFIG_TYPES
    return frozenset(types)


def _only_readiness(old: Topology, new: Topology) -> bool:
    return len(old.workloads) == len(new.workloads) and all(
        replace(a, ready=b.ready) == b for a, b in zip(old.workloads, new.workloads, strict=True))


def _has_tcp(vs: IstioResource | None) -> bool:
    return vs is not None and bool(vs.spec.get("tcp") or vs.spec.get("tls"))


def only_virtual_services(old: Topology, new: Topology) -> bool:
    """Whether the two configs differ in VirtualServices alone (`PushContext.inherit`)."""
    if (old.services, old.workloads, old.mesh, old.capture) != (new.services, new.workloads, new.mesh, new.capture):
        return False
    before = {r.key: r for r in old.istio.resources if r.kind != "VirtualService"}
    return before == {r.key: r for r in new.istio.resources if r.kind != "VirtualService"}


def virtual_service_hosts(old: Topology, new: Topology) -> frozenset[str] | None:
    """The hosts the VirtualServices that differ between `old` and `new` name (either version),
    or None when one names no host (a delegate: its roots' hosts count) or a wildcard."""
    before = {r.key: r for r in old.istio.virtual_services}
    after = {r.key: r for r in new.istio.virtual_services}
    hosts: set[str] = set()
    for key in before.keys() | after.keys():
        was, now = before.get(key), after.get(key)
        if was == now:
            continue
        for vs in (v for v in (was, now) if v is not None):
            named = set(virtual_service.hosts(vs))
            if not named or any("*" in h for h in named):
                return None
            hosts |= named
    return frozenset(hosts)
