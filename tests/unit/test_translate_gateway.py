"""The gateway translation (xds/gateway.py, gateway_tls.py) and the Gateway API conversion
(model/gateway_api.py), pure: names as istiod gives them, bindings, TLS chains, automated deployment."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2

from meshkit.errors import InvalidInput
from meshkit.model import bookinfo
from meshkit.model.gateway_api import deployed, with_status
from meshkit.service.documents import Documents, with_istio
from meshkit.xds import gateway
from meshkit.xds.ca import CertificateAuthority
from meshkit.xds.gateway_tls import Credentials
from meshkit.xds.generate import generate
from meshkit.xds.resources import CLUSTER, LISTENER, ROUTE

DATA = Path(__file__).resolve().parents[1] / "data" / "istio-bookinfo"
GATE = "istio-ingressgateway"


def applied(*texts: str):
    topology = bookinfo(ingress=True)
    for text in texts:
        topology, _ = with_istio(topology, Documents.parse(text).istio)
    return topology


def vs(name: str, hosts: str, gateways: str, prefix: str = "/") -> str:
    return (f"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}}}\n"
            f"spec:\n  hosts: {hosts}\n  gateways: {gateways}\n  http:\n  - match: [{{uri: {{prefix: {prefix}}}}}]\n"
            f"    route: [{{destination: {{host: productpage}}}}]\n")


def gateway_doc(name: str, servers: str) -> str:
    return (f"apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: {name}}}\n"
            f"spec:\n  selector: {{istio: ingressgateway}}\n  servers:\n{servers}")


HTTP80 = "  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [bookinfo.example.com]\n"


def names(messages) -> list[str]:
    return [m.name for m in messages]


def test_the_guides_gateway_gives_istiods_names():
    topology = applied((DATA / "bookinfo-gateway.yaml").read_text())
    resources = generate(topology, topology.workload(GATE))
    assert names(resources[LISTENER]) == ["0.0.0.0_8080"]
    assert names(resources[ROUTE]) == ["http.8080"]
    vhosts = resources[ROUTE][0].virtual_hosts
    assert [(v.name, list(v.domains)) for v in vhosts] == [("*:8080", ["*"])]
    assert [r.match.path or r.match.prefix for r in vhosts[0].routes] == [
        "/productpage", "/static", "/login", "/logout", "/api/v1/products"]
    assert vhosts[0].routes[0].route.cluster == "outbound|9080||productpage.default.svc.cluster.local"
    listener = resources[LISTENER][0]
    assert listener.address.socket_address.address == "0.0.0.0" and not listener.HasField("bind_to_port")
    hcm = hcm_pb2.HttpConnectionManager()
    listener.filter_chains[0].filters[0].typed_config.Unpack(hcm)
    assert hcm.rds.route_config_name == "http.8080" and hcm.use_remote_address.value
    assert hcm.forward_client_cert_details == hcm_pb2.HttpConnectionManager.SANITIZE_SET
    assert not any(c.startswith("inbound|") for c in names(resources[CLUSTER])), "a gateway has no inbound side"


def test_server_port_80_resolves_to_the_pods_8080_and_names_the_vhost_by_the_server_port():
    topology = applied(gateway_doc("gw", HTTP80) + "---\n" + vs("site", "[bookinfo.example.com]", "[gw]"))
    resources = generate(topology, topology.workload(GATE))
    assert names(resources[LISTENER]) == ["0.0.0.0_8080"]
    assert [v.name for v in resources[ROUTE][0].virtual_hosts] == ["bookinfo.example.com:80"]


@pytest.mark.parametrize(("gateways", "at_gate", "at_sidecar"), [
    ("[gw]", True, False),
    ("[gw, mesh]", True, True),
    ("[mesh]", False, True),
])
def test_gateways_field_binds_the_gate_the_mesh_or_both(gateways, at_gate, at_sidecar):
    topology = applied(gateway_doc("gw", HTTP80) + "---\n" + vs("pp", "[productpage, bookinfo.example.com]",
                                                                gateways, "/only-here"))
    gate_routes = generate(topology, topology.workload(GATE))[ROUTE]
    sidecar_routes = generate(topology, topology.workload("reviews-v1"))[ROUTE]

    def has(route_configs) -> bool:
        return any(r.match.prefix == "/only-here" for rc in route_configs for v in rc.virtual_hosts for r in v.routes)

    assert has(gate_routes) is at_gate
    assert has(sidecar_routes) is at_sidecar


def test_no_bound_virtual_service_leaves_the_blackhole_vhost():
    topology = applied(gateway_doc("gw", HTTP80))
    [config] = generate(topology, topology.workload(GATE))[ROUTE]
    assert [(v.name, list(v.domains), len(v.routes)) for v in config.virtual_hosts] == [("blackhole:80", ["*"], 0)]


def test_simple_tls_server_terminates_with_the_credential_the_boss_issues():
    servers = ("  - port: {number: 443, name: https, protocol: HTTPS}\n"
               "    tls: {mode: SIMPLE, credentialName: bookinfo-credential}\n    hosts: [bookinfo.example.com]\n")
    topology = applied(gateway_doc("secure", servers) + "---\n" + vs("site", "[bookinfo.example.com]", "[secure]"))
    proxy = topology.workload(GATE)
    resources = generate(topology, proxy)
    assert names(resources[LISTENER]) == ["0.0.0.0_8443"]
    assert names(resources[ROUTE]) == ["https.443.https.secure.default"]
    chain = resources[LISTENER][0].filter_chains[0]
    assert list(chain.filter_chain_match.server_names) == ["bookinfo.example.com"]
    context = tls_pb2.DownstreamTlsContext()
    chain.transport_socket.typed_config.Unpack(context)
    assert [s.name for s in context.common_tls_context.tls_certificate_sds_secret_configs] == [
        "kubernetes://bookinfo-credential"]
    credentials = Credentials(CertificateAuthority())
    [secret] = credentials.secrets(topology, proxy)
    assert secret.name == "kubernetes://bookinfo-credential"
    assert credentials.secrets(topology, proxy) == [secret], "issued once, not on every push"


def test_passthrough_server_routes_by_sni_to_tcp_proxy():
    servers = ("  - port: {number: 443, name: tls, protocol: TLS}\n    tls: {mode: PASSTHROUGH}\n"
               "    hosts: ['*.example.com']\n")
    route = ("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: tls}\nspec:\n"
             "  hosts: [shop.example.com]\n  gateways: [pass]\n  tls:\n  - match: [{sniHosts: [shop.example.com]}]\n"
             "    route: [{destination: {host: productpage, port: {number: 9080}}}]\n")
    topology = applied(gateway_doc("pass", servers) + "---\n" + route)
    resources = generate(topology, topology.workload(GATE))
    [listener] = resources[LISTENER]
    assert listener.name == "0.0.0.0_8443" and resources[ROUTE] == []
    [chain] = listener.filter_chains
    assert list(chain.filter_chain_match.server_names) == ["shop.example.com"]
    assert chain.filters[0].name == "envoy.filters.network.tcp_proxy"
    assert [f.name for f in listener.listener_filters] == ["envoy.filters.listener.tls_inspector"]


def test_gateway_api_gateway_brings_its_deployment_and_converts_as_istiod_does():
    topology = applied((DATA / "gateway-api" / "bookinfo-gateway.yaml").read_text())
    pod = topology.workload("bookinfo-gateway-istio")
    assert pod.node_id.startswith("router~") and pod.namespace == "default" and not pod.captured
    service = topology.service("bookinfo-gateway-istio.default")
    assert service is not None and {p.port: p.target_port for p in service.ports} == {15021: 15021, 80: 80}
    resources = generate(topology, pod)
    assert names(resources[LISTENER]) == ["0.0.0.0_80"]
    assert names(resources[ROUTE]) == ["http.80"]
    assert [v.name for v in resources[ROUTE][0].virtual_hosts] == ["*:80"]
    effective = gateway.effective(topology)
    assert [g.name for g in effective.istio.of_kind("Gateway")] == [
        "bookinfo-gateway~istio-autogenerated-k8s-gateway~http"]
    assert [v.name for v in effective.istio.virtual_services] == [
        "default~bookinfo-gateway~istio-autogenerated-k8s-gateway~http~*"]
    assert topology.istio.virtual_services == [], "derived config is not the learner's to `get`"
    # the Deployment goes with the Gateway
    deleted = [r.key for r in topology.istio.resources if r.kind == "KubernetesGateway"]

    gone = deployed(replace(topology, istio=topology.istio.deleted(deleted)))
    assert "bookinfo-gateway-istio" not in {w.deployment for w in gone.workloads}


def test_httproute_on_a_service_is_mesh_routing_with_weights():
    topology = applied((DATA / "gateway-api" / "route-reviews-90-10.yaml").read_text())
    configs = {c.name: c for c in generate(topology, topology.workload("productpage-v1"))[ROUTE]}
    vhost = next(v for v in configs["9080"].virtual_hosts if v.name == "reviews.default.svc.cluster.local:9080")
    weighted = vhost.routes[0].route.weighted_clusters.clusters
    assert [(c.name, c.weight.value) for c in weighted] == [
        ("outbound|9080||reviews-v1.default.svc.cluster.local", 90),
        ("outbound|9080||reviews-v2.default.svc.cluster.local", 10)]


def test_route_status_names_a_missing_parent_and_backend():
    text = ("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: lost}\nspec:\n"
            "  parentRefs: [{name: nowhere}]\n  rules:\n  - backendRefs: [{name: nosuch, port: 80}]\n")
    topology = applied(text)
    [route] = topology.istio.of_kind("HTTPRoute")
    [parent] = with_status(topology, route)["status"]["parents"]
    conditions = {c["type"]: (c["status"], c["reason"]) for c in parent["conditions"]}
    assert conditions == {"Accepted": ("False", "NoMatchingParent"), "ResolvedRefs": ("False", "BackendNotFound")}


def test_the_guides_service_file_is_accepted_and_an_unknown_service_is_not():
    versions = (DATA / "platform" / "kube" / "bookinfo-versions.yaml").read_text()
    before = bookinfo(ingress=True)
    after = applied(versions)
    assert after.services == before.services
    with pytest.raises(InvalidInput, match="Services are fixed"):
        applied("apiVersion: v1\nkind: Service\nmetadata: {name: brand-new}\nspec: {ports: [{port: 80}]}\n")


def test_tcp_route_on_a_gateway_listener_is_a_tcp_proxy_at_the_gate():
    text = ("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: echo}\nspec:\n"
            "  gatewayClassName: istio\n  listeners:\n  - {name: tcp, port: 9000, protocol: TCP}\n---\n"
            "apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TCPRoute\nmetadata: {name: echo}\nspec:\n"
            "  parentRefs: [{name: echo}]\n  rules:\n  - backendRefs: [{name: tcp-echo, port: 9000}]\n")
    topology = applied(text)
    [listener] = generate(topology, topology.workload("echo-istio"))[LISTENER]
    assert listener.name == "0.0.0.0_9000"
    [chain] = listener.filter_chains
    assert chain.filters[0].name == "envoy.filters.network.tcp_proxy"
    assert "outbound|9000||tcp-echo.default.svc.cluster.local" in str(chain.filters[0].typed_config.value)


def test_grpc_route_methods_become_path_matches():
    text = ("apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: g}\nspec:\n"
            "  parentRefs: [{kind: Service, group: '', name: ratings, port: 9080}]\n  rules:\n"
            "  - matches: [{method: {service: bookinfo.Ratings, method: Get}}]\n"
            "    backendRefs: [{name: ratings-v1, port: 9080}]\n")
    topology = gateway.effective(applied(text))
    [vs] = topology.istio.virtual_services
    assert vs.name == "default~9080~ratings.default.svc.cluster.local" and vs.spec["gateways"] == ["mesh"]
    assert vs.spec["http"][0]["match"] == [{"uri": {"exact": "/bookinfo.Ratings/Get"}, "port": 9080}]


def test_a_virtual_service_naming_a_missing_gateway_is_warned_about():
    lone = vs("site", "[bookinfo.example.com]", "[nowhere]")
    _, warnings = with_istio(bookinfo(ingress=True), Documents.parse(lone).istio)
    assert warnings == ['Warning [IST0101] (VirtualService default/site) Referenced gateway not found: "nowhere"']


K8S_GATEWAY = """apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: front}
spec:
  gatewayClassName: istio
  listeners:
  - {name: web, port: 80, protocol: HTTP}
  - name: secure
    port: 443
    protocol: HTTPS
    hostname: shop.example.com
    tls: {mode: Terminate, certificateRefs: [{name: shop-cert}]}
"""

FILTERED_ROUTE = """apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop}
spec:
  parentRefs: [{name: front, sectionName: web}]
  hostnames: [shop.example.com]
  rules:
  - matches: [{path: {type: PathPrefix, value: /old}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {hostname: new.example.com, statusCode: 301}
  - matches: [{path: {type: PathPrefix, value: /api}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-shop, value: "1"}], remove: [x-debug]}
    - type: ResponseHeaderModifier
      responseHeaderModifier: {add: [{name: x-served-by, value: gate}]}
    - type: URLRewrite
      urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /v1}}
    - type: RequestMirror
      requestMirror: {backendRef: {name: reviews, port: 9080}}
    backendRefs: [{name: productpage, port: 9080}]
  - matches: [{path: {type: Exact, value: /home}}]
    filters:
    - type: URLRewrite
      urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /productpage}}
    backendRefs: [{name: productpage, port: 9080}]
"""


def test_httproute_filters_become_the_virtual_service_istiod_derives() -> None:
    from meshkit.model.gateway_api import convert

    topology = applied(K8S_GATEWAY, FILTERED_ROUTE)
    (service,) = [r for r in convert(topology.istio) if r.kind == "VirtualService"]
    assert service.spec["hosts"] == ["shop.example.com"]  # hostnames
    # sectionName: bound to the `web` listener only, not to `secure`
    assert service.spec["gateways"] == ["default/front~istio-autogenerated-k8s-gateway~web"]
    redirect, api, home = service.spec["http"]
    assert redirect["redirect"] == {"redirectCode": 301, "authority": "new.example.com"}
    assert api["headers"]["request"] == {"set": {"x-shop": "1"}, "remove": ["x-debug"]}
    assert api["headers"]["response"] == {"add": {"x-served-by": "gate"}}
    assert api["rewrite"] == {"uri": "/v1"}  # ReplacePrefixMatch
    assert api["mirrors"][0]["destination"]["host"] == "reviews.default.svc.cluster.local"
    assert home["rewrite"] == {"uriRegexRewrite": {"match": "/.*", "rewrite": "/productpage"}}  # ReplaceFullPath
    gateways = [r for r in convert(topology.istio) if r.kind == "Gateway"]
    secure = next(g for g in gateways if g.spec["servers"][0]["port"]["name"] == "secure")
    assert secure.spec["servers"][0]["tls"] == {"mode": "SIMPLE", "credentialName": "shop-cert"}  # certificateRefs


def test_https_redirect_and_several_credentials_as_istiod_builds_them() -> None:
    from envoy.config.route.v3 import route_components_pb2 as rc

    servers = (HTTP80.replace("hosts: [bookinfo.example.com]\n", "hosts: [bookinfo.example.com]\n"
                              "    tls: {httpsRedirect: true}\n")
               + "  - port: {number: 443, name: https, protocol: HTTPS}\n"
               "    tls: {mode: SIMPLE, credentialNames: [rsa-cert, ecdsa-cert]}\n    hosts: [bookinfo.example.com]\n")
    topology = applied(gateway_doc("both", servers) + "---\n" + vs("site", "[bookinfo.example.com]", "[both]"))
    resources = generate(topology, topology.workload(GATE))
    plain = next(r for r in resources[ROUTE] if r.name == "http.8080")
    [vhost] = [v for v in plain.virtual_hosts if "bookinfo.example.com" in v.domains]
    assert vhost.require_tls == rc.VirtualHost.ALL  # httpsRedirect: plain HTTP answers 301 to https
    secure = next(listener for listener in resources[LISTENER] if listener.name == "0.0.0.0_8443")
    context = tls_pb2.DownstreamTlsContext()
    secure.filter_chains[0].transport_socket.typed_config.Unpack(context)
    assert [s.name for s in context.common_tls_context.tls_certificate_sds_secret_configs] == [
        "kubernetes://rsa-cert", "kubernetes://ecdsa-cert"]  # credentialNames: one certificate per key type
