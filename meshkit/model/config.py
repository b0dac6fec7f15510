"""The Istio resources the boss currently holds, and how short host names resolve.

`IstioConfig` is immutable: applying a file yields a new config, so a file is applied whole or
not at all (the old config stays in force when validation fails).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .constants import CLUSTER_DOMAIN
from .istio import IstioResource


@dataclass(frozen=True)
class IstioConfig:
    """VirtualServices, DestinationRules, ServiceEntries and security policies keyed by (kind, namespace, name)."""

    resources: tuple[IstioResource, ...] = field(default_factory=tuple)

    def applied(self, new: Iterable[IstioResource]) -> IstioConfig:
        """This config with `new` created or replacing resources of the same key."""
        by_key = {r.key: r for r in self.resources}
        by_key.update({r.key: r for r in new if r.kind != "MeshConfig"})
        return IstioConfig(tuple(sorted(by_key.values(), key=lambda r: r.key)))

    def deleted(self, keys: Iterable[tuple[str, str, str]]) -> IstioConfig:
        drop = set(keys)
        return IstioConfig(tuple(r for r in self.resources if r.key not in drop))

    def visible_to(self, namespace: str) -> IstioConfig:
        """The config a proxy in `namespace` sees: `exportTo` of VirtualServices, DestinationRules and
        ServiceEntries (`*` or none: everyone, `.`: their own namespace, `~`: nobody, else the names)."""
        return IstioConfig(tuple(r for r in self.resources if exported_to(r, namespace)))

    def of_kind(self, kind: str) -> list[IstioResource]:
        return [r for r in self.resources if r.kind == kind]

    @property
    def virtual_services(self) -> list[IstioResource]:
        return self.of_kind("VirtualService")

    @property
    def destination_rules(self) -> list[IstioResource]:
        return self.of_kind("DestinationRule")

    @property
    def service_entries(self) -> list[IstioResource]:
        return self.of_kind("ServiceEntry")

    @property
    def peer_authentications(self) -> list[IstioResource]:
        return self.of_kind("PeerAuthentication")

    @property
    def authorization_policies(self) -> list[IstioResource]:
        return self.of_kind("AuthorizationPolicy")

    @property
    def request_authentications(self) -> list[IstioResource]:
        return self.of_kind("RequestAuthentication")

    def destination_rule_for(self, fqdn: str) -> IstioResource | None:
        """The DestinationRule whose host is `fqdn` (istiod picks the oldest; meshkit the first by name)."""
        for rule in self.destination_rules:
            if resolve_host(rule.spec["host"], rule.namespace) == fqdn:
                return rule
        return None

    def virtual_services_for(self, fqdn: str) -> list[IstioResource]:
        return [vs for vs in self.virtual_services
                if fqdn in {resolve_host(h, vs.namespace) for h in vs.spec.get("hosts", [])}]


EXPORTABLE = ("VirtualService", "DestinationRule", "ServiceEntry")


def exported_to(resource: IstioResource, namespace: str) -> bool:
    """Whether `exportTo` lets a proxy in `namespace` see `resource` (istiod's visibility rules)."""
    export = resource.spec.get("exportTo") if resource.kind in EXPORTABLE else None
    if not export or "*" in export:
        return True
    return namespace in {resource.namespace if n == "." else n for n in export if n != "~"}


def resolve_host(host: str, namespace: str) -> str:
    """Istio's short-name rule: `reviews` in namespace `default` → reviews.default.svc.cluster.local.

    A name with a dot is taken as written (`reviews.default` is NOT expanded by istiod either,
    which is a classic source of confusion; the analyzer warns about it).
    """
    if "." in host or host == "*":
        return host
    return f"{host}.{namespace}.{CLUSTER_DOMAIN}"
