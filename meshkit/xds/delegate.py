"""Delegate VirtualServices: a root's `http[].delegate` replaced by the delegate's routes, merged.

istiod does this before translating (`pilot/pkg/model/virtualservice_controller.go`, 1.30): for
each root rule naming `delegate: {name, namespace}` (namespace defaults to the root's), the
delegate VirtualService (one without `hosts`) is looked up; if missing, or not exported to the
root's namespace, that rule is dropped. Otherwise each delegate rule is merged with the root rule
(`mergeHTTPRoute`): every delegate match must refine some root match (`hasConflict`,
`stringMatchConflict`: a delegate prefix or exact path inside the root's prefix, no regex on
either side, equal exact values), else the delegate rule is dropped; the delegate's unset
fields (rewrite, timeout, retries, fault, mirror, corsPolicy, headers, ...) come from the root.
Short host names in the delegate resolve in the delegate's namespace
(`ResolveVirtualServiceShortnames`).
"""

from __future__ import annotations

import copy

from meshkit.model.config import IstioConfig, resolve_host
from meshkit.model.istio import IstioResource

INHERITED = ("rewrite", "directResponse", "timeout", "retries", "fault", "mirror", "mirrorPercent",
             "mirrorPercentage", "corsPolicy", "mirrors", "headers")
STRING_FIELDS = ("uri", "scheme", "method", "authority")
MAP_FIELDS = ("headers", "withoutHeaders", "queryParams")


def _conflict(root: dict | None, leaf: dict | None) -> bool:
    """istiod's `stringMatchConflict` between two StringMatch values."""
    if root is None or leaf is None:
        return False
    if "regex" in root or "regex" in leaf:
        return True
    if "exact" in root:
        return leaf.get("exact") != root["exact"]
    if "prefix" in root:
        inner = leaf.get("prefix", leaf.get("exact"))
        return inner is None or not inner.startswith(root["prefix"])
    return True


def has_conflict(root: dict, leaf: dict) -> bool:
    """istiod's `hasConflict`: the delegate match is not a refinement of the root match."""
    if any(_conflict(root.get(f), leaf.get(f)) for f in STRING_FIELDS):
        return True
    for field in MAP_FIELDS:
        if any(_conflict((root.get(field) or {}).get(k), v) for k, v in (leaf.get(field) or {}).items()):
            return True
    if root.get("ignoreUriCase", False) != leaf.get("ignoreUriCase", False):
        return True
    if root.get("port") and leaf.get("port") and root["port"] != leaf["port"]:
        return True
    if root.get("sourceNamespace") and leaf.get("sourceNamespace") != root["sourceNamespace"]:
        return True
    if any(k in root.get("sourceLabels", {}) and root["sourceLabels"][k] != v
           for k, v in leaf.get("sourceLabels", {}).items()):
        return True
    gateways, leaf_gateways = root.get("gateways") or [], leaf.get("gateways") or []
    return bool(gateways and leaf_gateways and not set(leaf_gateways) <= set(gateways))


def merge_match(root: dict, leaf: dict) -> dict:
    """istiod's `mergeHTTPMatchRequest`: the delegate's match, filled in from the root's."""
    out = dict(leaf)
    if root.get("name"):
        out["name"] = f"{root['name']}-{leaf['name']}" if leaf.get("name") else root["name"]
    for field in (*STRING_FIELDS, "port", "sourceNamespace", "gateways", "statPrefix"):
        if not out.get(field) and root.get(field):
            out[field] = root[field]
    for field in (*MAP_FIELDS, "sourceLabels"):
        merged = {**(root.get(field) or {}), **(leaf.get(field) or {})}
        if merged:
            out[field] = merged
    return out


def merge_rule(root: dict, delegate: dict) -> dict | None:
    """istiod's `mergeHTTPRoute`, or None when a delegate match refines no root match."""
    roots, leaves = root.get("match") or [], delegate.get("match") or []
    if roots and leaves:
        matches = []
        for leaf in leaves:
            found = [merge_match(r, leaf) for r in roots if not has_conflict(r, leaf)]
            if not found:
                return None
            matches += found
    else:
        matches = leaves or roots
    out = dict(delegate)
    if matches:
        out["match"] = matches
    if root.get("name"):
        out["name"] = f"{root['name']}-{delegate['name']}" if delegate.get("name") else root["name"]
    for field in INHERITED:
        if field not in out and field in root:
            out[field] = root[field]
    return out


def _resolved(rule: dict, namespace: str) -> dict:
    """The delegate rule with its destination hosts as FQDNs of the delegate's namespace."""
    rule = copy.deepcopy(rule)
    for dest in [r["destination"] for r in rule.get("route", [])] + [m["destination"] for m in rule.get("mirrors", [])]:
        dest["host"] = resolve_host(dest["host"], namespace)
    if "mirror" in rule:
        rule["mirror"]["host"] = resolve_host(rule["mirror"]["host"], namespace)
    return rule


def find(istio: IstioConfig, root: IstioResource, ref: dict) -> IstioResource | None:
    """The delegate a root rule names, if it exists, has no hosts and is exported to the root's namespace."""
    namespace = ref.get("namespace") or root.namespace
    for vs in istio.virtual_services:
        if (vs.namespace, vs.name) == (namespace, ref.get("name")) and not vs.spec.get("hosts"):
            export = vs.spec.get("exportTo") or ["*"]
            visible = "*" in export or root.namespace in export or ("." in export and namespace == root.namespace)
            return vs if visible else None
    return None


def merged_http(istio: IstioConfig, vs: IstioResource) -> list[dict]:
    """The root VirtualService's `http` rules with every `delegate` rule replaced by its merged routes."""
    out: list[dict] = []
    for rule in vs.spec.get("http", []):
        if "delegate" not in rule:
            out.append(rule)
            continue
        target = find(istio, vs, rule["delegate"])
        if target is None:
            continue  # istiod: "delegate virtual service ... not found" — only this rule is dropped
        root = {k: v for k, v in rule.items() if k != "delegate"}
        for sub in target.spec.get("http", []):
            merged = merge_rule(root, _resolved(sub, target.namespace))
            if merged is not None:
                out.append(merged)
    return out
