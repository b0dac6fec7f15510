"""PeerAuthentication → the mTLS mode of each inbound port, as istiod resolves it.

istiod's `authn` policy applier (`pilot/pkg/security/authn/policy_applier.go`,
`model.AuthenticationPolicies.GetPeerAuthenticationPolicies` / `ComposePeerAuthentication`):

- mesh-wide: a PeerAuthentication without selector in the root namespace (`istio-system`);
- namespace-wide: one without selector in the workload's namespace;
- workload: one in the workload's namespace whose `selector.matchLabels` pick the pod; only this
  level may carry `portLevelMtls` (keyed by the pod's *target* port);
- the most specific level wins; `UNSET` (or no `mtls`) inherits from the level above; nothing
  at all means PERMISSIVE. Several at one level: istiod takes the oldest, meshkit the first by name.
"""

from __future__ import annotations

from meshkit.model import Topology, Workload
from meshkit.model.constants import ROOT_NAMESPACE
from meshkit.model.istio import IstioResource

STRICT = "STRICT"
PERMISSIVE = "PERMISSIVE"
DISABLE = "DISABLE"
UNSET = "UNSET"
DEFAULT_MODE = PERMISSIVE


def selects(policy: IstioResource, workload: Workload) -> bool:
    """Whether a policy's `selector.matchLabels` picks the workload (same namespace)."""
    wanted = (policy.spec.get("selector") or {}).get("matchLabels") or {}
    labels = workload.label_map
    return policy.namespace == workload.namespace and all(labels.get(k) == v for k, v in wanted.items())


def _levels(topology: Topology, workload: Workload) -> list[IstioResource | None]:
    """The mesh, namespace and workload policy applying to `workload` (None where there is none)."""
    policies = topology.istio.peer_authentications

    def first(predicate) -> IstioResource | None:
        return next((p for p in sorted(policies, key=lambda p: p.name) if predicate(p)), None)

    unselected = lambda p: not (p.spec.get("selector") or {}).get("matchLabels")  # noqa: E731
    return [
        first(lambda p: p.namespace == ROOT_NAMESPACE and unselected(p)),
        first(lambda p: p.namespace == workload.namespace != ROOT_NAMESPACE and unselected(p)),
        first(lambda p: not unselected(p) and selects(p, workload)),
    ]


def _mode(spec: dict | None) -> str:
    return ((spec or {}).get("mode") or UNSET) if spec is not None else UNSET


def workload_mode(topology: Topology, workload: Workload) -> str:
    """The mode for the workload as a whole (the passthrough chains use it)."""
    mode = DEFAULT_MODE
    for policy in _levels(topology, workload):
        if policy is not None and _mode(policy.spec.get("mtls")) != UNSET:
            mode = _mode(policy.spec.get("mtls"))
    return mode


def port_mode(topology: Topology, workload: Workload, target_port: int) -> str:
    """The mode for one served port: the workload policy's `portLevelMtls` entry, else the workload mode."""
    base = workload_mode(topology, workload)
    own = _levels(topology, workload)[2]
    if own is not None:
        entry = (own.spec.get("portLevelMtls") or {}).get(str(target_port))
        if entry is None:
            entry = (own.spec.get("portLevelMtls") or {}).get(target_port)  # type: ignore[call-overload]
        if entry is not None and _mode(entry) != UNSET:
            return _mode(entry)
    return base
