"""What the boss pushed, push by push: the resources each proxy got and the config that made them.

`PushLog` keeps the state after each of the last `KEEP` pushes: per pod, per xDS type, per name,
the packed resource as it went on the wire, plus the Istio config, mesh config and raw overrides
in force. A resource that did not change is the very same object as in the push before, so fifty
pushes of a mesh with a few hundred resources cost little more than one.

`diff_states(a, b)` is a unified diff, in Envoy's own YAML (config_dump field names), of every
resource that differs between two kept pushes; pods whose diff is identical share one entry.
"""

from __future__ import annotations

import collections
import difflib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import yaml
from google.protobuf import any_pb2, json_format

from ..model.config import IstioConfig
from ..model.raw import RawResource
from ..model.topology import MeshConfig
from .resources import PUSH_ORDER, SHORT_NAMES
from .snapshot import Snapshot

KEEP = 50  # pushes whose state can be diffed and replayed
HIDDEN_KEY = "(private key: not shown)"

Resources = Mapping[str, Mapping[str, any_pb2.Any]]  # short type -> name -> packed resource


@dataclass(frozen=True)
class PushState:
    """Everything in force right after push `id`: what to diff and what to replay."""

    id: int
    istio: IstioConfig
    mesh: MeshConfig
    overrides: Mapping[str, Mapping[tuple[str, str], RawResource]]  # pod -> (type_url, name) -> raw
    resources: Mapping[str, Resources]  # pod -> short type -> name -> Any


class PushLog:
    """The states after the last `keep` pushes, oldest first."""

    def __init__(self, keep: int = KEEP) -> None:
        self.keep = keep
        self._states: collections.OrderedDict[int, PushState] = collections.OrderedDict()

    def record(self, push_id: int, istio: IstioConfig, mesh: MeshConfig,
               overrides: Mapping[str, Mapping[tuple[str, str], RawResource]],
               snapshots: Mapping[str, Snapshot]) -> PushState:
        """Remember the state after a push of `snapshots` (pod -> snapshot); other pods keep theirs."""
        previous = next(reversed(self._states.values())) if self._states else None
        resources: dict[str, Resources] = dict(previous.resources) if previous else {}
        for pod, snapshot in snapshots.items():
            resources[pod] = _shared(previous.resources.get(pod, {}) if previous else {}, snapshot)
        state = PushState(push_id, istio, mesh, {pod: dict(items) for pod, items in overrides.items()}, resources)
        self._states[push_id] = state
        while len(self._states) > self.keep:
            self._states.popitem(last=False)
        return state

    def get(self, push_id: int) -> PushState:
        """The state after push `push_id`; KeyError naming the pushes still kept."""
        try:
            return self._states[push_id]
        except KeyError:
            kept = f"{min(self._states)}–{max(self._states)}" if self._states else "none yet"
            raise KeyError(f"push {push_id} is not kept (the boss keeps the last {self.keep} pushes: "
                           f"{kept}); pick one of those") from None

    def ids(self) -> list[int]:
        return list(self._states)


def _shared(before: Resources, snapshot: Snapshot) -> dict[str, dict[str, any_pb2.Any]]:
    """The snapshot's resources by short type, reusing `before`'s object wherever the bytes match."""
    shared: dict[str, dict[str, any_pb2.Any]] = {}
    for type_url, by_name in snapshot.resources.items():
        short = SHORT_NAMES[type_url]
        old = before.get(short, {})
        shared[short] = {name: old[name] if name in old and old[name].value == packed.value else packed
                         for name, packed in by_name.items()}
    return shared


def resource_yaml(packed: any_pb2.Any | None) -> list[str]:
    """One packed resource as Envoy's YAML lines (snake_case, as `/config_dump` shows it)."""
    if packed is None:
        return []
    # through JSON: MessageToDict of an Any nests OrderedDicts, which safe_dump refuses
    data = json.loads(json_format.MessageToJson(packed, preserving_proto_field_name=True))
    data.pop("@type", None)
    _hide_private_keys(data)
    return yaml.safe_dump(data, sort_keys=False, width=120).splitlines(keepends=True)


def _hide_private_keys(value: object) -> None:
    """SDS secrets carry the workload's private key: a diff never shows it (only that it changed)."""
    if isinstance(value, dict):
        for key in value:
            if key == "private_key":
                value[key] = HIDDEN_KEY
            else:
                _hide_private_keys(value[key])
    elif isinstance(value, list):
        for item in value:
            _hide_private_keys(item)


def diff_states(a: PushState, b: PushState, pods: Iterable[str] | None = None,
                types: Iterable[str] | None = None) -> list[dict]:
    """Per changed resource: {"type", "name", "action", "pods", "diff"}, in push order (CDS, EDS, LDS, RDS, SDS).

    `diff` is a unified diff of the resource's YAML from push `a` to push `b`; pods with the same
    change are listed together. `pods` and `types` (short names) narrow the comparison.
    """
    wanted_pods = set(pods) if pods else set(a.resources) | set(b.resources)
    order = [SHORT_NAMES[t] for t in PUSH_ORDER]
    wanted_types = [t for t in order if not types or t in set(types)]
    grouped: dict[tuple[str, str, str, str], list[str]] = {}
    texts: dict[tuple[bytes, bytes], str] = {}  # most pods got the same change: dump its YAML once
    for pod in sorted(wanted_pods):
        before, after = a.resources.get(pod, {}), b.resources.get(pod, {})
        for kind in wanted_types:
            old, new = before.get(kind, {}), after.get(kind, {})
            for name in sorted(set(old) | set(new)):
                x, y = old.get(name), new.get(name)
                if x is y or (x is not None and y is not None and x.value == y.value):
                    continue
                action = "added" if x is None else "removed" if y is None else "modified"
                key = (x.value if x is not None else b"", y.value if y is not None else b"")
                if key not in texts:
                    texts[key] = "".join(difflib.unified_diff(resource_yaml(x), resource_yaml(y),
                                                              f"push {a.id}: {kind} {name}",
                                                              f"push {b.id}: {kind} {name}"))
                text = texts[key]
                grouped.setdefault((kind, name, action, text), []).append(pod)
    rows = [{"type": kind, "name": name, "action": action, "pods": found, "diff": text}
            for (kind, name, action, text), found in grouped.items()]
    rows.sort(key=lambda r: (order.index(r["type"]), r["name"], r["pods"]))
    return rows
