"""Checks before a push, in the spirit of `istioctl analyze`: errors stop the apply, warnings don't.

- IST0101 a VirtualService names a subset no DestinationRule defines: reported in istioctl
  analyze's words and level (Error) but *not* blocking, because istiod accepts it too: the route
  goes to the subset's cluster, which does not exist, and Envoy answers 503 NC,
- route weights that do not add up to 100 (error),
- a host that matches no Service or ServiceEntry (warning, IST0101 "Referenced host not found"),
- durations Envoy cannot read (error),
- a DestinationRule `outlierDetection.consecutiveErrors` (warning, istiod's validation text: the
  field is deprecated and ignored since 1.7),
- every field meshkit accepts but does not translate (warning naming the field, `ignored`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .config import IstioConfig, resolve_host
from .ignored import ignored_fields
from .istio import IstioResource
from .topology import Topology

DURATION = re.compile(r"^\d+(\.\d+)?(h|m|s|ms|us|µs|ns)$")


@dataclass(frozen=True)
class Finding:
    level: str  # "error" or "warning"
    code: str
    resource: str
    message: str
    blocks: bool = True  # an error that stops the apply; False for istioctl errors istiod accepts

    def __str__(self) -> str:
        return f"{self.level.capitalize()} [{self.code}] ({self.resource}) {self.message}"


def analyze(topology: Topology, config: IstioConfig) -> list[Finding]:
    """Everything wrong with `config` against `topology`, errors first."""
    known = known_hosts(topology, config)
    subsets = {
        resolve_host(rule.spec["host"], rule.namespace): {s["name"] for s in rule.spec.get("subsets", [])}
        for rule in config.destination_rules
    }
    findings: list[Finding] = []
    for vs in config.virtual_services:
        where = f"VirtualService {vs.namespace}/{vs.name}"
        gateway_only = "mesh" not in vs.spec.get("gateways", ["mesh"])  # the gate serves outside names
        gateways = {f"{g.namespace}/{g.name}" for g in config.of_kind("Gateway")}
        for name in vs.spec.get("gateways", []):
            if name != "mesh" and (name if "/" in name else f"{vs.namespace}/{name}") not in gateways:
                findings.append(Finding("warning", "IST0101", where, f'Referenced gateway not found: "{name}"'))
        for host in vs.spec.get("hosts", []):
            if resolve_host(host, vs.namespace) not in known and "*" not in host and not gateway_only:
                findings.append(Finding("warning", "IST0101", where, f'Referenced host not found: "{host}"'))
        for section in ("http", "tcp", "tls"):
            for i, route in enumerate(vs.spec.get(section, [])):
                path = f"spec.{section}[{i}]"
                findings += _check_destinations(where, path, route, vs.namespace, known, subsets)
                findings += _check_durations(where, path, route)
    for rule in config.destination_rules:
        host = resolve_host(rule.spec["host"], rule.namespace)
        if host not in known and "*" not in host:
            findings.append(Finding("warning", "IST0101", f"DestinationRule {rule.namespace}/{rule.name}",
                                    f'Referenced host not found: "{rule.spec["host"]}"'))
        findings += _check_deprecated_outlier(f"DestinationRule {rule.namespace}/{rule.name}", rule.spec)
    return sorted(findings, key=lambda f: not (f.level == "error" and f.blocks))


def ignored(topology: Topology, resources: Iterable[IstioResource]) -> list[Finding]:
    """A warning for every field of the newly applied `resources` meshkit accepts but ignores."""
    return [Finding("warning", "ignored", f"{r.kind} {r.namespace}/{r.name}", text)
            for r in resources for text in ignored_fields(r)]


def known_hosts(topology: Topology, config: IstioConfig) -> set[str]:
    hosts = {s.fqdn for s in topology.services}
    for entry in config.service_entries:
        hosts.update(resolve_host(h, entry.namespace) for h in entry.spec.get("hosts", []))
    return hosts


def _check_destinations(where, path, route, namespace, known, subsets) -> list[Finding]:
    findings = []
    destinations = route.get("route", [])
    for j, item in enumerate(destinations):
        dest = item["destination"]
        host = resolve_host(dest["host"], namespace)
        if host not in known:
            findings.append(Finding("warning", "IST0101", where,
                                    f'Referenced host not found: "{dest["host"]}" ({path}.route[{j}])'))
        subset = dest.get("subset")
        if subset and subset not in subsets.get(host, set()):
            findings.append(Finding(
                "error", "IST0101", where,
                f'Referenced host+subset in destinationrule not found: "{dest["host"]}+{subset}" '
                f"({path}.route[{j}]; accepted as istiod does: requests get 503 NC until a DestinationRule "
                f"for {host} defines subset {subset!r})", blocks=False))
    weights = [item.get("weight") for item in destinations]
    if len(destinations) > 1 or any(w is not None for w in weights):
        total = sum(w or 0 for w in weights)
        if total != 100 and not (len(destinations) == 1 and weights[0] is None):
            findings.append(Finding("error", "weights", where,
                                    f"{path}.route weights add up to {total}, not 100 ({weights})"))
    return findings


def _traffic_policies(spec: dict) -> list[tuple[str, dict]]:
    """Every trafficPolicy of a DestinationRule with its path: top level, per subset, and their port levels."""
    found = []
    tops = [("spec.trafficPolicy", spec.get("trafficPolicy"))]
    subsets = spec.get("subsets", [])
    tops += [(f"spec.subsets[{i}].trafficPolicy", subset.get("trafficPolicy")) for i, subset in enumerate(subsets)]
    for path, policy in tops:
        if policy:
            found.append((path, policy))
            found += [(f"{path}.portLevelSettings[{j}]", p) for j, p in enumerate(policy.get("portLevelSettings", []))]
    return found


def _check_deprecated_outlier(where: str, spec: dict) -> list[Finding]:
    return [
        Finding("warning", "deprecated", where,
                f"{path}.outlierDetection.consecutiveErrors: outlier detection consecutive errors is deprecated, "
                "use consecutiveGatewayErrors or consecutive5xxErrors instead (meshkit, like istiod, ignores it)")
        for path, policy in _traffic_policies(spec)
        if (policy.get("outlierDetection") or {}).get("consecutiveErrors")
    ]


def _check_durations(where, path, route) -> list[Finding]:
    values = {
        "timeout": route.get("timeout"),
        "retries.perTryTimeout": (route.get("retries") or {}).get("perTryTimeout"),
        "fault.delay.fixedDelay": ((route.get("fault") or {}).get("delay") or {}).get("fixedDelay"),
    }
    return [
        Finding("error", "duration", where, f"{path}.{name}: {value!r} is not a duration like '2s' or '500ms'")
        for name, value in values.items()
        if value is not None and not DURATION.match(str(value))
    ]
