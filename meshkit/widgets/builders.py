"""The pure half of the editors: Istio YAML from a few fields, diffs, and how a push went in words.

A test (or a curious learner) can call these directly; the widgets in `editors.py` only wire them
to sliders and buttons:

    >>> print(weights_to_virtual_service("reviews", {"v1": 80, "v3": 20}), end="")
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    ...
    >>> normalise_weights({"v1": 50, "v2": 50, "v3": 40}, changed="v3")   # v3's slider let go at 40
    {'v1': 30, 'v2': 30, 'v3': 40}
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import yaml
from google.protobuf import json_format

from ..errors import InvalidInput, Nack
from ..inspect import dump as config_dump
from ..model.raw import load_documents, parse_document
from ..protocol import acked_pods

__all__ = [
    "describe_outcome", "destination_rule", "diff_resources", "fault_virtual_service", "header_match_virtual_service",
    "live_xds_diff", "needs_destination_rule", "normalise_weights", "weights_to_virtual_service", "xds_by_name",
    "xds_for_host",
]


API_VERSION = "networking.istio.io/v1"
MATCH_TYPES = ("exact", "prefix", "regex")


# --- pure builders ------------------------------------------------------------------------------

def normalise_weights(weights: Mapping[str, float], changed: str | None = None) -> dict[str, int]:
    """Whole-number weights that add up to 100.

    With `changed`, that weight stays as set (clamped to 0–100) and the others share the rest
    in their previous proportions (equally when they were all 0); otherwise all scale together.
    Rounding uses largest remainders, so the sum is exactly 100.

    >>> normalise_weights({"v1": 80, "v2": 0, "v3": 40}, changed="v3")   # v3 released at 40
    {'v1': 60, 'v2': 0, 'v3': 40}
    >>> normalise_weights({"v1": 1, "v2": 1, "v3": 1})
    {'v1': 34, 'v2': 33, 'v3': 33}
    """
    if not weights:
        return {}
    fixed = {changed: min(100.0, max(0.0, float(weights[changed])))} if changed in weights else {}
    others = [k for k in weights if k not in fixed]
    rest = 100.0 - sum(fixed.values())
    base = sum(max(0.0, float(weights[k])) for k in others)
    wanted = dict(fixed)
    for key in others:
        wanted[key] = rest * max(0.0, float(weights[key])) / base if base else rest / len(others)
    if not others:
        wanted = {k: 100.0 for k in wanted}
    result = {k: int(v) for k, v in wanted.items()}
    short = 100 - sum(result.values())
    for key in sorted(others or list(result), key=lambda k: wanted[k] - result[k], reverse=True)[:short]:
        result[key] += 1
    return {k: result[k] for k in weights}


def _virtual_service(host: str, http: list[dict], name: str | None = None) -> str:
    doc = {"apiVersion": API_VERSION, "kind": "VirtualService", "metadata": {"name": name or short_host(host)},
           "spec": {"hosts": [host], "http": http}}
    return yaml.safe_dump(doc, sort_keys=False)


def _destination(host: str, subset: str | None) -> dict:
    return {"host": host, **({"subset": subset} if subset else {})}


def weights_to_virtual_service(host: str, weights: Mapping[str, int], name: str | None = None) -> str:
    """A VirtualService that splits `host`'s traffic over its subsets by weight (0-weight ones left out).

    >>> print(weights_to_virtual_service("reviews", {"v1": 100}), end="")
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata:
      name: reviews
    spec:
      hosts:
      - reviews
      http:
      - route:
        - destination:
            host: reviews
            subset: v1
          weight: 100
    """
    route = [{"destination": _destination(host, subset), "weight": int(weight)}
             for subset, weight in weights.items() if weight > 0]
    return _virtual_service(host, [{"route": route}], name)


def header_match_virtual_service(host: str, header: str, match_type: str, value: str, subset: str,
                                 default_subset: str | None = None, name: str | None = None) -> str:
    """Requests whose `header` matches (`exact`, `prefix` or `regex`) go to `subset`; the rest to
    `default_subset` (or the whole Service). The article's example: `User-Agent` prefix… to `mobile`.
    """
    if match_type not in MATCH_TYPES:
        raise ValueError(f"match type must be one of {', '.join(MATCH_TYPES)}, not {match_type!r}")
    matched = {"match": [{"headers": {header.strip().lower(): {match_type: value}}}],
               "route": [{"destination": _destination(host, subset)}]}
    rest = {"route": [{"destination": _destination(host, default_subset)}]}
    return _virtual_service(host, [matched, rest], name)


def fault_virtual_service(host: str, *, delay_s: float = 0, abort_status: int = 0, percentage: float = 100,
                          timeout_s: float = 0, retries: int = 0, per_try_timeout_s: float = 0,
                          subset: str | None = None, name: str | None = None) -> str:
    """A VirtualService with fault injection (delay and/or abort for `percentage` % of requests),
    a request timeout and retries; 0 leaves a field out.

    >>> "fixedDelay: 2s" in fault_virtual_service("ratings", delay_s=2)
    True
    """
    route: dict[str, Any] = {"route": [{"destination": _destination(host, subset)}]}
    fault: dict[str, Any] = {}
    if delay_s:
        fault["delay"] = {"fixedDelay": _duration(delay_s), "percentage": {"value": float(percentage)}}
    if abort_status:
        fault["abort"] = {"httpStatus": int(abort_status), "percentage": {"value": float(percentage)}}
    if fault:
        route["fault"] = fault
    if timeout_s:
        route["timeout"] = _duration(timeout_s)
    if retries:
        route["retries"] = {"attempts": int(retries), **({"perTryTimeout": _duration(per_try_timeout_s)}
                                                          if per_try_timeout_s else {})}
    return _virtual_service(host, [route], name)


def destination_rule(host: str, subsets: Iterable[str], name: str | None = None) -> str:
    """A DestinationRule defining each subset by the pods' `version` label (Bookinfo's convention)."""
    doc = {"apiVersion": API_VERSION, "kind": "DestinationRule", "metadata": {"name": name or short_host(host)},
           "spec": {"host": host, "subsets": [{"name": s, "labels": {"version": s}} for s in subsets]}}
    return yaml.safe_dump(doc, sort_keys=False)


def needs_destination_rule(rules: Iterable[Mapping[str, Any]], host: str, subsets: Iterable[str]) -> bool:
    """True when no DestinationRule in `rules` (as `mesh.get("DestinationRule")`) defines all `subsets`
    for `host`; a route to an undefined subset is refused (IST0101), as in Istio.
    """
    defined = {s.get("name") for rule in rules if short_host(rule.get("spec", {}).get("host", "")) == short_host(host)
               for s in rule.get("spec", {}).get("subsets", [])}
    return not set(subsets) <= defined


def diff_resources(live: Mapping[str, Any], proposed: Mapping[str, Any]) -> str:
    """A unified diff (YAML) of each resource that differs, keyed like `"RDS 9080"`; "" if none."""
    chunks = []
    for key in sorted(set(live) | set(proposed)):
        before, after = live.get(key), proposed.get(key)
        if before == after:
            continue
        chunks.extend(difflib.unified_diff(_yaml_lines(before), _yaml_lines(after),
                                           f"live: {key}" if before is not None else "live: (none)",
                                           f"after apply: {key}" if after is not None else "after apply: (removed)"))
    return "".join(chunks)


def xds_by_name(xds: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
    """`mesh.xds()`'s {type: [resource]} as {"RDS 9080": resource}."""
    return {f"{kind} {_resource_name(r)}": r for kind, found in xds.items() for r in found}


def live_xds_diff(dump: Mapping[str, Any], text: str) -> str:
    """Raw Envoy resources in `text` against what the pod's Envoy holds (its `/config_dump?include_eds`).

    Both sides go through the same protobuf parsing, so camelCase vs snake_case and defaults do
    not show up as differences.
    """
    held = {"LDS": config_dump.listeners(dump), "CDS": config_dump.clusters(dump),
            "RDS": config_dump.route_configs(dump), "EDS": config_dump.endpoint_configs(dump)}
    live, proposed = {}, {}
    for index, doc in enumerate(load_documents(text)):
        resource = parse_document(doc, index)
        key = f"{resource.short_type} {resource.name}"
        proposed[key] = _normalised(resource.message)
        current = next((r for r in held.get(resource.short_type, []) if _resource_name(r) == resource.name), None)
        if current is not None:
            live[key] = _normalised(parse_document({**current, "@type": resource.type_url}).message)
    return diff_resources(live, proposed)


def describe_outcome(result: Mapping[str, Any] | None = None, error: Exception | None = None) -> tuple[str, str]:
    """(text, tone) for a push: ACKs with what changed, a NACK with Envoy's own error text, or a refusal."""
    if isinstance(error, Nack):
        push = error.push
        errors = push.get("errors", {})
        lines = [f"push {push.get('id', '?')}: NACK from {', '.join(sorted(errors)) or 'a proxy'}. Envoy said:"]
        lines += [f"  {pod}: {text}" for pod, text in sorted(errors.items())]
        lines.append("Each proxy keeps serving its last good config. Fix the resource, or `mesh.revert()`.")
        return "\n".join(lines), "error"
    if isinstance(error, InvalidInput):
        return f"refused before anything was pushed:\n{error}", "error"
    if error is not None:
        return f"not applied: {error}", "error"
    result = result or {}
    acked = acked_pods(result)
    changes = result.get("changes", [])
    ms = result.get("duration_ms") or 0.0
    if not changes:
        text = f"push {result.get('id', '?')}: nothing changed (every proxy already had this config)"
    else:
        text = (f"push {result.get('id', '?')}: {len(changes)} resource(s) changed, ACK from "
                f"{len(acked)} prox{'y' if len(acked) == 1 else 'ies'} in {ms:.0f} ms")
    return "\n".join([text, *(f"warning: {x}" for x in result.get("warnings", []))]), "ok"


def xds_for_host(xds: Mapping[str, Sequence[Mapping[str, Any]]], host: str) -> dict[str, list]:
    """The part of `mesh.xds()` about `host`: its virtual hosts and its clusters (all subsets)."""
    short = short_host(host)
    vhosts = [v for config in xds.get("RDS", []) for v in config.get("virtual_hosts", [])
              if short_host(v.get("name", "")) == short]
    clusters = [c for c in xds.get("CDS", []) if short_host(c.get("name", "").rsplit("|", 1)[-1]) == short]
    return {"RDS virtual hosts": vhosts, "CDS clusters": clusters}


def short_host(host: str) -> str:
    return host.split(".", 1)[0].split(":", 1)[0]


def _duration(seconds: float) -> str:
    return f"{seconds:g}s"


def _resource_name(resource: Mapping[str, Any]) -> str:
    return resource.get("name") or resource.get("cluster_name", "")


def _normalised(message: Any) -> dict:
    # plain dicts: MessageToDict gives OrderedDicts for Any fields (typed_config), which yaml.safe_dump refuses
    return json.loads(json_format.MessageToJson(message, preserving_proto_field_name=True))


def _yaml_lines(resource: Any) -> list[str]:
    return [] if resource is None else yaml.safe_dump(resource, sort_keys=False).splitlines(keepends=True)


# --- widgets ------------------------------------------------------------------------------------
