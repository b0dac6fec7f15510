"""The front gate on the live mesh: Istio's Bookinfo guides, their files as published, from the outside in.

- Istio's "Getting started": `bookinfo-gateway.yaml` (Gateway + VirtualService) opens
  `istio-ingressgateway.istio-system` to the outsider pod and to this machine (`meshkit ingress`);
- the Gateway API version of it: a `Gateway` of class istio makes the boss deploy
  `bookinfo-gateway-istio` (a new Envoy pod at run time), its HTTPRoute answers through it;
- `route-reviews-90-10.yaml`: an HTTPRoute whose parent is the reviews Service (mesh routing) splits
  productpage's calls 90/10 between the per-version Services of `bookinfo-versions.yaml`;
- TLS at the gate: a SIMPLE server whose `credentialName` certificate the boss issues.

Each test leaves the mesh as it found it. Runs in the session's capture mode (MESHKIT_CAPTURE).
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from ..documents import document

pytestmark = pytest.mark.mesh

DATA = Path(__file__).resolve().parents[1] / "data" / "istio-bookinfo"
GATEWAY = DATA / "bookinfo-gateway.yaml"  # samples/bookinfo/networking/bookinfo-gateway.yaml
GATEWAY_API = DATA / "gateway-api" / "bookinfo-gateway.yaml"
REVIEWS_90_10 = DATA / "gateway-api" / "route-reviews-90-10.yaml"
VERSIONS = DATA / "platform" / "kube" / "bookinfo-versions.yaml"

# TLS at the gate: a SIMPLE server on 443 with the boss-issued `bookinfo-credential`, and its route
HTTPS_GATEWAY = document("snippets/bookinfo-https-gateway.yaml")


def cli(mesh, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "meshkit.cli", "--home", str(mesh.home), *args],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr + result.stdout
    return result


def statuses(output: str) -> list[str]:
    """The STATUS column of `meshkit curl`'s table."""
    rows = [line.split() for line in output.splitlines()]
    return [r[1] for r in rows if len(r) > 2 and r[0].isdigit() and r[1] != "requests:"]


def eventually_200(mesh, pod: str, url: str, timeout: float = 20.0) -> float:
    """Seconds until `meshkit curl pod url` answers 200 (a new pod needs a moment to connect)."""
    start = time.monotonic()
    while True:
        rows = mesh.curl_rows(pod, url, n=1)
        if rows[0]["status"] == 200:
            return time.monotonic() - start
        assert time.monotonic() - start < timeout, f"{url} from {pod}: {rows[0]}"
        time.sleep(0.3)


def http_get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return reply.status


def test_bookinfo_gateway_opens_the_front_door(mesh):
    text = GATEWAY.read_text()
    cli(mesh, "apply", "-f", str(GATEWAY))
    try:
        answered = cli(mesh, "curl", "outsider", "http://istio-ingressgateway.istio-system/productpage", "-n", "3")
        print("\n" + answered.stdout)
        assert statuses(answered.stdout) == ["200"] * 3
        gate = json.loads(cli(mesh, "ingress").stdout)
        print(f"meshkit ingress: {gate}")
        assert gate["http_port"] == 8080 and gate["https_port"] == 8443
        assert http_get(gate["url"] + "/productpage") == 200, "from this machine, through the gate"
        with pytest.raises(urllib.error.HTTPError) as refused:
            http_get(gate["url"] + "/reviews/0")  # the VirtualService exposes only the product page paths
        assert refused.value.code == 404
        listeners = json.loads(cli(mesh, "pc", "listener", "istio-ingressgateway", "-o", "json").stdout)
        routes = json.loads(cli(mesh, "pc", "route", "istio-ingressgateway", "-o", "json").stdout)
        table = cli(mesh, "pc", "route", "istio-ingressgateway").stdout
        print(cli(mesh, "pc", "listener", "istio-ingressgateway").stdout + table)
        assert "0.0.0.0_8080" in {entry["name"] for entry in listeners}
        assert "http.8080" in {entry.get("name") for entry in routes}
        assert "*:8080" in table and "bookinfo.default" in table
        # the VirtualService names only the gateway: no sidecar got its routes
        sidecar = json.dumps(mesh.xds("productpage-v1"))
        assert "/virtual-service/bookinfo\"" not in sidecar
        assert listening(mesh) == [8080]  # what the mesh graph reads to draw the gate
    finally:
        mesh.delete(text)
    assert listening(mesh) == []  # closed again: the graph leaves the gate out


def listening(mesh) -> list[int]:
    return next(w["listens"] for w in mesh.topology()["workloads"] if w["deployment"] == "istio-ingressgateway")


def test_gateway_api_gateway_deploys_its_own_gate(mesh):
    text = GATEWAY_API.read_text()
    cli(mesh, "apply", "-f", str(GATEWAY_API))
    try:
        waited = eventually_200(mesh, "outsider", "http://bookinfo-gateway-istio.default/productpage")
        print(f"\nbookinfo-gateway-istio answered 200 after {waited:.2f} s (its Envoy started at run time)")
        routes = yaml.safe_load(cli(mesh, "get", "httproute", "-o", "yaml").stdout)
        conditions = {c["type"]: c["status"] for c in routes["status"]["parents"][0]["conditions"]}
        assert conditions == {"Accepted": "True", "ResolvedRefs": "True"}, routes["status"]
        gateway = yaml.safe_load(cli(mesh, "get", "gtw", "-o", "yaml").stdout)
        assert gateway["status"]["addresses"][0]["value"] == "bookinfo-gateway-istio.default.svc.cluster.local"
        listeners = cli(mesh, "pc", "listener", "bookinfo-gateway-istio", "-o", "json").stdout
        assert "0.0.0.0_80" in {entry["name"] for entry in json.loads(listeners)}
    finally:
        mesh.delete(text)
    pods = {row["pod"].rsplit("-", 2)[0] for row in mesh.status_rows()}
    assert "bookinfo-gateway-istio" not in pods, "the Gateway's Deployment went with it"


def test_httproute_on_the_reviews_service_splits_90_10(mesh):
    cli(mesh, "apply", "-f", str(VERSIONS))  # Services the demo already has: nothing changes
    text = REVIEWS_90_10.read_text()
    cli(mesh, "apply", "-f", str(REVIEWS_90_10))
    try:
        rows = mesh.curl_rows("productpage-v1", "http://reviews:9080/reviews/0", n=400)
        versions = Counter(row["pod"].rsplit("-", 2)[0] for row in rows if row["status"] == 200)
        share = 100.0 * versions["reviews-v1"] / 400
        print(f"\nHTTPRoute reviews 90/10: {dict(versions)} ({share:.1f} % to reviews-v1)")
        assert sum(versions.values()) == 400 and set(versions) <= {"reviews-v1", "reviews-v2"}
        assert abs(share - 90.0) <= 8.0
        routes = yaml.safe_load(cli(mesh, "get", "httproute", "-o", "yaml").stdout)
        assert routes["status"]["parents"][0]["parentRef"]["kind"] == "Service"
    finally:
        mesh.delete(text)


def test_tls_at_the_gate_with_a_certificate_the_boss_issued(mesh):
    mesh.apply(HTTPS_GATEWAY)
    try:
        gate = mesh.ingress()
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # checked by hand below
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection((gate["address"], gate["https_port"]), timeout=5) as raw, \
                        context.wrap_socket(raw, server_hostname="bookinfo.example.com") as tls:
                    der = tls.getpeercert(binary_form=True)
                    tls.sendall(b"GET /productpage HTTP/1.1\r\nHost: bookinfo.example.com\r\nConnection: close\r\n\r\n")
                    status = tls.recv(64).split(b" ")[1]
                break
            except (OSError, ssl.SSLError):
                assert time.monotonic() < deadline, "the TLS listener never answered"
                time.sleep(0.3)
        cert = x509.load_der_x509_certificate(der)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName)
        print(f"\nhttps://bookinfo.example.com:{gate['https_port']}: {status.decode()}, certificate for {names}, "
              f"issued by {cert.issuer.rfc4514_string()}")
        assert status == b"200" and names == ["bookinfo.example.com"]
        assert cert.issuer.rfc4514_string() == "O=cluster.local", "the mesh root signed it"
        secrets = cli(mesh, "pc", "secret", "istio-ingressgateway").stdout
        assert "kubernetes://bookinfo-credential" in secrets
    finally:
        mesh.delete(HTTPS_GATEWAY)
