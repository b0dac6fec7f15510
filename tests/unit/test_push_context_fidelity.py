"""The push context's shared caches against Istio fidelity: whatever makes one proxy's xDS differ
from another's (its Sidecar, the exportTo visibility of its namespace, its outboundTrafficPolicy,
sourceLabels matches) must keep them apart, so generating many proxies through the shared caches
gives exactly what generating each alone, from fresh caches, gives."""

from __future__ import annotations

from dataclasses import replace

import pytest

from meshkit.model import Topology, Workload
from meshkit.model.istio import parse_istio
from meshkit.xds import push_context
from meshkit.xds.changes import CONFIG_TYPES, affected_types
from meshkit.xds.generate import generate
from meshkit.xds.resources import CLUSTER, LISTENER, ROUTE

from .test_translate_istio import CASES, FOCUSED, case_topology, with_istio

FIDELITY = ["sidecar", "export-to", "sni", "tls-origination", "delegate", "request-authentication", "cors",
            "authorization-custom", "registry-only", "service-entry", "routing", "tcp-weights"]


def proxies(topology: Topology) -> list[Workload]:
    """Every sidecar, plus copies of some in another namespace (exportTo `other`, `./` egress
    hosts) and with other labels (a Sidecar's or a sourceLabels match's selector)."""
    sidecars = topology.sidecars()
    moved = [replace(w, namespace="other") for w in sidecars[:3]]
    relabelled = [replace(w, labels=tuple((k, f"{v}-x") for k, v in w.labels)) for w in sidecars[:2]]
    return [*sidecars, *moved, *relabelled]


def serialized(resources: dict) -> dict[str, list[bytes]]:
    return {url: [m.SerializeToString(deterministic=True) for m in messages] for url, messages in resources.items()}


def topology_of(case: str) -> Topology:
    """A golden case; `sidecar-scope-only`: the Sidecar case without its outboundTrafficPolicy, so
    the proxies it selects share the index (and caches) with those it does not;
    `delegate-source-labels`: the delegate's jason rule only for callers labelled app=productpage
    (a delegate's match makes its root's routes depend on the caller's labels)."""
    if case == "delegate-source-labels":
        jason = "        end-user: {exact: jason}\n"
        source = "      sourceLabels: {app: productpage}\n"
        text = (FOCUSED / "delegate.yaml").read_text().replace(jason, jason + source)
        assert "sourceLabels" in text
        return with_istio(text)
    if case == "sidecar-scope-only":
        text = (FOCUSED / "sidecar.yaml").read_text().replace("  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n", "")
        return with_istio(text)
    return case_topology(case)


@pytest.mark.parametrize("case", [*(c for c in FIDELITY if c in CASES), "sidecar-scope-only",
                                  "delegate-source-labels"])
def test_shared_caches_give_what_each_proxy_alone_gives(case: str) -> None:
    topology = topology_of(case)
    everyone = proxies(topology)
    # each alone: a topology object of its own, so an index and caches of its own
    alone = [serialized(generate(replace(topology), proxy)) for proxy in everyone]
    for order in (everyone, everyone[::-1]):  # both orders: whoever comes first fills the caches
        for proxy in order:
            assert serialized(generate(topology, proxy)) == alone[everyone.index(proxy)], (case, proxy)


def test_the_case_proxies_really_differ_so_the_check_above_can_fail() -> None:
    """The Sidecar case gives productpage and reviews other clusters, the exportTo case gives
    `default` and `other` other routes: sharing across them would be caught."""
    topology = topology_of("sidecar-scope-only")
    page, reviews = topology.workload("productpage-v1"), topology.workload("reviews-v1")
    assert serialized(generate(topology, page))[CLUSTER] != serialized(generate(topology, reviews))[CLUSTER]
    index = push_context.of(topology)
    assert index.proxy_key(page) != index.proxy_key(reviews)
    topology = case_topology("export-to")
    page = topology.workload("productpage-v1")
    outsider = replace(page, namespace="other")
    assert serialized(generate(topology, page))[ROUTE] != serialized(generate(topology, outsider))[ROUTE]


def test_the_same_view_is_one_topology_object_and_one_index() -> None:
    topology = case_topology("export-to")
    page = topology.workload("productpage-v1")
    index = push_context.of(topology)
    view = index.view(page)
    assert view is not topology and index.view(replace(page, name="another")) is view
    assert push_context.of(view) is push_context.of(view) and push_context.of(view).view(page) is view
    plain = case_topology("routing")
    assert push_context.of(plain).view(plain.workload("productpage-v1")) is plain  # nothing to narrow


def edited(topology: Topology, text: str) -> Topology:
    return replace(topology, istio=topology.istio.applied(parse_istio(text)))


def test_sidecars_and_request_authentication_rebuild_what_they_change() -> None:
    base = case_topology("routing")
    sidecar = edited(base, "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: all}\n"
                           "spec: {egress: [{hosts: ['./*']}]}\n")
    assert affected_types(base, sidecar) == CONFIG_TYPES
    jwt = edited(base, "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: jwt}\n"
                       "spec: {jwtRules: [{issuer: me, jwksUri: 'http://jwks.example.com/keys'}]}\n")
    assert affected_types(base, jwt) == {LISTENER}
    tls = edited(base, "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: t}\n"
                       "spec: {hosts: [a.example.com], tls: [{match: [{sniHosts: [a.example.com]}],"
                       " route: [{destination: {host: a.example.com}}]}]}\n")
    assert affected_types(base, tls) == {ROUTE, LISTENER}
