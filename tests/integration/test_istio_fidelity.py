"""Istio's own Bookinfo samples and TLS egress on the live mesh, with the outcome Istio describes.

Every file of Istio 1.30.3's samples/bookinfo/networking/ (tests/data/istio-bookinfo, unchanged;
the two gateway files are left to the gateway work) is applied after destination-rule-all.yaml,
where Istio's guides say so, and the traffic checked with real requests. Files routing to
workloads Bookinfo's default install lacks (details-v2, ratings-v2, v2-mysql, v2-mysql-vm) get
what Istio gives without them: 503 UH from the subset cluster. Then: a VirtualService to a subset
nobody defined (accepted with IST0101, 503 NC), TLS origination with DestinationRule `tls.mode:
SIMPLE` to a TLS server on the outside world's address (certificate from a test CA; the server
records the SNI of each handshake), and two HTTPS ServiceEntries routed by SNI to their clusters.
"""

from __future__ import annotations

import datetime as dt
import json
import ssl
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from socketserver import BaseRequestHandler, ThreadingTCPServer

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from . import test_istio_tasks as tasks
from .test_identity import drains_settled
from .test_istio_tasks import JASON, REVIEWS, istio_file, reviews_seen_by_productpage, within

istio = tasks.istio  # the fixture: apply for one test, delete everything afterwards

pytestmark = pytest.mark.mesh

DETAILS = "http://details:9080/details/0"
RATINGS = "http://ratings:9080/ratings/0"


def versions(mesh, n: int, headers: dict | None = None) -> Counter:
    rows = mesh.curl_rows("productpage-v1", REVIEWS, headers, n=n)
    assert {r["status"] for r in rows} == {200}, rows[0]
    return Counter(r["version"] for r in rows)


# -- Istio's samples --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["destination-rule-all.yaml", "destination-rule-all-mtls.yaml",
                                  "destination-rule-reviews.yaml"])
def test_destination_rules_keep_every_version_reachable(mesh, istio, name):
    istio(istio_file(name))
    seen = versions(mesh, 30)
    page = mesh.curl_rows("productpage-v1", "http://productpage:9080/productpage")[0]
    print(f"\n{name}: reviews {dict(seen)}, productpage {page['status']}")
    assert set(seen) == {"v1", "v2", "v3"} and page["status"] == 200


@pytest.mark.parametrize(("name", "expected"), [
    ("virtual-service-all-v1.yaml", {"v1": 1.0}),
    ("virtual-service-reviews-v3.yaml", {"v3": 1.0}),
    ("virtual-service-reviews-50-v3.yaml", {"v1": 0.5, "v3": 0.5}),
    ("virtual-service-reviews-80-20.yaml", {"v1": 0.8, "v2": 0.2}),
    ("virtual-service-reviews-90-10.yaml", {"v1": 0.9, "v2": 0.1}),
    ("virtual-service-reviews-v2-v3.yaml", {"v2": 0.5, "v3": 0.5}),
])
def test_reviews_routing_and_shifting(mesh, istio, name, expected):
    istio(istio_file("destination-rule-all.yaml"))
    istio(istio_file(name))
    n = 200 if len(expected) > 1 else 20
    seen = versions(mesh, n)
    print(f"\n{name}: {dict(seen)} over {n}")
    assert set(seen) == set(expected)
    for version, share in expected.items():
        ok, tolerance = within(seen[version] / n, share, n)
        assert ok, f"{version}: {seen[version] / n:.1%}, expected {share:.0%} ± {tolerance:.1%}"


def test_jason_samples(mesh, istio):
    """reviews-test-v2 (after all-v1): jason → v2, others v1; reviews-jason-v2-v3: jason → v2, others v3."""
    istio(istio_file("destination-rule-all.yaml"))
    istio(istio_file("virtual-service-all-v1.yaml"))
    istio(istio_file("virtual-service-reviews-test-v2.yaml"))
    test_v2 = (Counter(reviews_seen_by_productpage(mesh, 8, JASON)), versions(mesh, 8))
    istio(istio_file("virtual-service-reviews-jason-v2-v3.yaml"))
    jason_v2_v3 = (versions(mesh, 8, JASON), versions(mesh, 8))
    print(f"\ntest-v2: jason {dict(test_v2[0])}, others {dict(test_v2[1])}; jason-v2-v3: jason "
          f"{dict(jason_v2_v3[0])}, others {dict(jason_v2_v3[1])}")
    assert test_v2 == ({"v2": 8}, {"v1": 8})
    assert jason_v2_v3 == ({"v2": 8}, {"v3": 8})


def test_ratings_abort_for_jason(mesh, istio):
    """Istio's fault-injection task: jason's ratings calls get HTTP 500, everyone else's succeed."""
    istio(istio_file("destination-rule-all.yaml"))
    istio(istio_file("virtual-service-all-v1.yaml"))
    istio(istio_file("virtual-service-reviews-test-v2.yaml"))
    istio(istio_file("virtual-service-ratings-test-abort.yaml"))
    jason = mesh.curl_rows("reviews-v2", RATINGS, JASON, n=4)
    others = mesh.curl_rows("reviews-v2", RATINGS, n=4)
    page = json.loads(mesh.curl_rows("productpage-v1", "http://productpage:9080/productpage", JASON)[0]["body"])
    print(f"\njason: {[(r['status'], r['flags']) for r in jason]}, others {[r['status'] for r in others]}, "
          f"reviews for jason {page['reviews']['body']['reviews'][0]['rating']}")
    assert {(r["status"], r["flags"]) for r in jason} == {(500, "FI")}
    assert {r["status"] for r in others} == {200}


def test_details_abort_555(mesh, istio):
    istio(istio_file("destination-rule-all.yaml"))
    istio(istio_file("fault-injection-details-v1.yaml"))
    rows = mesh.curl_rows("productpage-v1", DETAILS, n=3)
    print(f"\nfault-injection-details-v1: {[(r['status'], r['flags']) for r in rows]}")
    assert {(r["status"], r["flags"]) for r in rows} == {(555, "FI")}


@pytest.mark.parametrize(("name", "pod", "url", "cluster"), [
    ("virtual-service-details-v2.yaml", "productpage-v1", DETAILS,
     "outbound|9080|v2|details.default.svc.cluster.local"),
    ("virtual-service-ratings-db.yaml", "reviews-v3", RATINGS, "outbound|9080|v2|ratings.default.svc.cluster.local"),
    ("virtual-service-ratings-mysql.yaml", "reviews-v3", RATINGS,
     "outbound|9080|v2-mysql|ratings.default.svc.cluster.local"),
    ("virtual-service-ratings-mysql-vm.yaml", "reviews-v3", RATINGS,
     "outbound|9080|v2-mysql-vm|ratings.default.svc.cluster.local"),
])
def test_routes_to_versions_not_deployed_get_503_uh(mesh, istio, name, pod, url, cluster):
    """Istio's guides deploy details-v2 / ratings-v2(-mysql, -mysql-vm) first; without them the route
    still goes to the subset's cluster, which has no endpoint: 503 UH, as in Istio."""
    istio(istio_file("destination-rule-all.yaml"))
    istio(istio_file(name))
    rows = mesh.curl_rows(pod, url, n=2)
    print(f"\n{name}: {[(r['status'], r['flags'], r['upstream_cluster']) for r in rows]}")
    assert {(r["status"], r["flags"]) for r in rows} == {(503, "UH")}
    assert {r["upstream_cluster"] for r in rows} == {cluster}
    if name == "virtual-service-ratings-db.yaml":
        assert versions(mesh, 6) == {"v3": 6}  # the same file sends reviews to v3


def test_egress_google_apis_is_translated_as_istiod_does(mesh, istio):
    """No network here: the push is ACKed (`istio` checks it) and productpage holds what istiod builds.
    Port 80 goes to the 443 cluster, which originates TLS (SIMPLE, system CA, SNI from the Host);
    port 443 passes TLS through, matched by SNI."""
    push = istio(istio_file("egress-rule-google-apis.yaml"))
    assert {v for per_pod in push["results"].values() for v in per_pod.values()} == {"ACK"}
    dump = mesh.xds("productpage-v1")
    clusters = {c["name"]: c for c in dump["CDS"]}
    tls = clusters["outbound|443||www.googleapis.com"]
    context = tls["transport_socket"]["typed_config"]
    assert context["common_tls_context"]["combined_validation_context"][
        "validation_context_sds_secret_config"]["name"] == "file-root:system"
    options = tls["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    assert options["upstream_http_protocol_options"]["auto_sni"] is True
    listener = next(x for x in dump["LDS"] if x["name"] == "0.0.0.0_443")
    assert [c["filter_chain_match"]["server_names"] for c in listener["filter_chains"]] == [["www.googleapis.com"]]
    route = next(v for r in dump["RDS"] if r["name"] == "80" for v in r["virtual_hosts"]
                 if v["name"] == "www.googleapis.com:80")
    assert route["routes"][0]["route"]["cluster"] == "outbound|443||www.googleapis.com"


def test_undefined_subset_is_accepted_and_answers_503_nc(mesh):
    """istiod accepts it (istioctl analyze: IST0101); Envoy has no such cluster: 503 NC."""
    text = ("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\n"
            "spec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews, subset: v9}\n")
    try:
        push = mesh.apply(text)
        rows = mesh.curl_rows("productpage-v1", REVIEWS, n=2)
    finally:
        mesh.delete(text)
    print(f"\nwarnings: {push['warnings']}; requests: {[(r['status'], r['flags']) for r in rows]}")
    assert any('Error [IST0101] (VirtualService default/reviews) Referenced host+subset in destinationrule '
               'not found: "reviews+v9"' in w for w in push["warnings"])
    assert {(r["status"], r["flags"]) for r in rows} == {(503, "NC")}


# -- TLS to the outside world ---------------------------------------------------------------------------
class ThrowawayCA:
    """A throw-away CA issuing server certificates for DNS names."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "meshkit test CA")])
        now = dt.datetime.now(dt.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(hours=1))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.pem = self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, host: str, folder: Path) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
                .issuer_name(self.cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(hours=1))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
                .sign(self.key, hashes.SHA256()))
        cert_path, key_path = folder / f"{host}.pem", folder / f"{host}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return cert_path, key_path


class TlsServer:
    """A TLS server on the outside world's address answering `<name> sni=<SNI>`; it records each SNI."""

    def __init__(self, address: str, name: str, cert: tuple[Path, Path]) -> None:
        self.name, self.snis = name, []
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*map(str, cert))
        context.sni_callback = lambda sock, sni, ctx: self.snis.append(sni)
        server = self

        class Handler(BaseRequestHandler):
            def handle(self) -> None:
                try:
                    conn = context.wrap_socket(self.request, server_side=True)
                    conn.recv(4096)
                    body = f"{server.name} sni={server.snis[-1] if server.snis else ''}".encode()
                    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s"
                                 % (len(body), body))
                    conn.close()
                except (ssl.SSLError, OSError):
                    pass

        ThreadingTCPServer.allow_reuse_address = True
        self.server = ThreadingTCPServer((address, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(autouse=True)
def settled(mesh):
    """Each test starts once no sidecar still drains a filter chain an earlier policy change replaced:
    pooled connections on a draining chain keep its old rules (an old RBAC answers 403) until Envoy cuts them."""
    drains_settled(mesh)


@pytest.fixture
def tls_world(mesh, tmp_path_factory):
    outside = mesh.outside()
    folder = tmp_path_factory.mktemp("tls")
    ca = ThrowawayCA()
    (folder / "ca.pem").write_bytes(ca.pem)
    servers = []

    def serve(name: str) -> TlsServer:
        servers.append(TlsServer(outside["address"], name, ca.issue(name, folder)))
        return servers[-1]

    yield outside, folder, ca, serve
    for server in servers:
        server.close()


def test_destination_rule_simple_originates_tls_with_the_sni(mesh, istio, tls_world):
    outside, folder, _, serve = tls_world
    server = serve("secure.example.com")
    istio(f"""
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: secure}}
spec:
  hosts: [{outside['host']}]
  ports: [{{number: 18443, name: http, protocol: HTTP, targetPort: {server.port}}}]
  location: MESH_EXTERNAL
  resolution: STATIC
  endpoints: [{{address: {outside['address']}}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: secure}}
spec:
  host: {outside['host']}
  trafficPolicy:
    tls: {{mode: SIMPLE, sni: secure.example.com, caCertificates: {folder / 'ca.pem'},
           subjectAltNames: [secure.example.com]}}
""")
    rows = mesh.curl_rows("productpage-v1", f"http://{outside['host']}:18443/hello", n=2)
    print(f"\nplain HTTP from the app, TLS from the sidecar: {[(r['status'], r['body']) for r in rows]}; "
          f"SNIs seen by the server: {server.snis}")
    assert {r["status"] for r in rows} == {200}
    assert {r["body"] for r in rows} == {"secure.example.com sni=secure.example.com"}
    assert server.snis and set(server.snis) == {"secure.example.com"}
    assert {r["upstream_cluster"] for r in rows} == {f"outbound|18443||{outside['host']}"}


TLS_CLIENT = """
import socket, ssl, sys
context = ssl.create_default_context(cadata=sys.argv[3])
try:
    with socket.create_connection((sys.argv[1], 443), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=sys.argv[2]) as conn:
            conn.sendall(b"GET / HTTP/1.1\\r\\nhost: x\\r\\n\\r\\n")
            print(conn.recv(4096).decode().split("\\r\\n\\r\\n", 1)[1])
except OSError as exc:
    print("failed:", type(exc).__name__)
"""


def tls_from_pod(mesh, address: str, sni: str, ca_pem: bytes) -> str:
    """A TLS client inside productpage's pod (as the app's uid), to address:443 with this SNI."""
    from meshkit.runtime import netns
    from meshkit.runtime.local import LocalRuntime

    ns = LocalRuntime.netns_prefix(mesh.home) + "productpage-v1"
    argv = netns.command_in(ns, [sys.executable, "-I", "-c", TLS_CLIENT, address, sni, ca_pem.decode()], uid=1000)
    return subprocess.run(argv, capture_output=True, text=True, timeout=20, check=True).stdout.strip()


def test_two_https_service_entries_route_by_sni(mesh, istio, tls_world):
    if mesh.capture != "iptables":
        pytest.skip("the in-pod TLS client needs iptables capture to reach the sidecar")
    outside, _, ca, serve = tls_world
    one, two = serve("one.example.com"), serve("two.example.com")
    for server in (one, two):
        name = server.name.split(".")[0]
        istio(f"""
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}}}
spec:
  hosts: [{server.name}]
  ports: [{{number: 443, name: https, protocol: HTTPS}}]
  location: MESH_EXTERNAL
  resolution: STATIC
  endpoints: [{{address: {outside['address']}, ports: {{https: {server.port}}}}}]
""")
    answers = {sni: tls_from_pod(mesh, outside["address"], sni, ca.pem)
               for sni in ("one.example.com", "two.example.com", "three.example.com")}
    print(f"\nTLS to {outside['address']}:443 by SNI: {answers}")
    assert answers["one.example.com"] == "one.example.com sni=one.example.com"
    assert answers["two.example.com"] == "two.example.com sni=two.example.com"
    # no entry for that SNI: PassthroughFilterChain → the original destination, where nothing listens
    assert answers["three.example.com"].startswith("failed")


# -- RequestAuthentication ------------------------------------------------------------------------------
JWT = Path(__file__).resolve().parents[1] / "data" / "istio-jwt"


def test_request_authentication_with_istios_demo_token(mesh, istio):
    """Istio's authentication task on reviews: a bad token gets 401, no token passes until an
    AuthorizationPolicy asks for a request principal (then 403), the demo token passes both."""
    token = (JWT / "demo.jwt").read_text().strip()
    jwks = (JWT / "jwks.json").read_text().replace("\n", "")
    istio(f"""
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: jwt-reviews}}
spec:
  selector:
    matchLabels: {{app: reviews}}
  jwtRules:
  - issuer: testing@secure.istio.io
    jwks: '{jwks}'
""")
    policy = ("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: require-jwt}\n"
              "spec:\n  selector:\n    matchLabels: {app: reviews}\n  action: ALLOW\n  rules:\n"
              "  - from:\n    - source:\n        requestPrincipals:\n"
              "        - testing@secure.istio.io/testing@secure.istio.io\n")

    def statuses(expected: dict[str, int], deadline_s: float = 10.0) -> dict[str, int]:
        """Each caller's status, asked again until `expected` (or the deadline): a connection opened
        before the push keeps its listener's old filter chain until Envoy drains it, as in Istio."""
        calls = {"valid": {"authorization": f"Bearer {token}"}, "bad": {"authorization": "Bearer not.a.token"},
                 "none": {}}
        deadline = time.monotonic() + deadline_s
        while True:
            seen = {k: mesh.curl_rows("productpage-v1", REVIEWS, h, n=1)[0]["status"] for k, h in calls.items()}
            if seen == expected or time.monotonic() > deadline:
                return seen
            time.sleep(0.3)

    try:
        without_policy = statuses({"valid": 200, "bad": 401, "none": 200})
        istio(policy)
        with_policy = statuses({"valid": 200, "bad": 401, "none": 403})
    finally:  # the `istio` fixture only cleans the networking kinds
        present = [d for kind in ("AuthorizationPolicy", "RequestAuthentication") for d in mesh.get(kind)]
        if present:
            mesh.delete(yaml.safe_dump_all(present))
        # leave the mesh as found: wait until connections that kept the old chains are drained
        deadline = time.monotonic() + 10.0
        while mesh.curl_rows("productpage-v1", REVIEWS)[0]["status"] != 200 and time.monotonic() < deadline:
            time.sleep(0.3)
    print(f"\nRequestAuthentication only: {without_policy}; + AuthorizationPolicy requestPrincipals: {with_policy}")
    assert without_policy == {"valid": 200, "bad": 401, "none": 200}
    assert with_policy == {"valid": 200, "bad": 401, "none": 403}


# -- Sidecar ------------------------------------------------------------------------------------------------
SIDECAR = """
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: productpage}
spec:
  workloadSelector:
    labels: {app: productpage}
  egress:
  - hosts: [./details.default.svc.cluster.local, ./reviews.default.svc.cluster.local]
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
"""


def test_sidecar_scopes_what_productpage_sees(mesh):
    """Istio's Sidecar task: productpage keeps details and reviews, ratings is outside its scope and
    REGISTRY_ONLY blocks it (502 from block_all); reviews-v2, with no Sidecar, still calls ratings."""
    try:
        mesh.apply(SIDECAR)
        reviews = mesh.curl_rows("productpage-v1", REVIEWS, n=2)
        ratings = mesh.curl_rows("productpage-v1", RATINGS, n=2)
        others = mesh.curl_rows("reviews-v2", RATINGS, n=2)
        clusters = {c["name"] for c in mesh.xds("productpage-v1")["CDS"]}
    finally:
        mesh.delete(SIDECAR)
    print(f"\nwith the Sidecar: productpage → reviews {[r['status'] for r in reviews]}, → ratings "
          f"{[(r['status'], r['upstream_cluster']) for r in ratings]}; "
          f"reviews-v2 → ratings {[r['status'] for r in others]}")
    assert {r["status"] for r in reviews} == {200} and {r["status"] for r in others} == {200}
    assert {r["status"] for r in ratings} == {502}
    assert "outbound|9080||ratings.default.svc.cluster.local" not in clusters
    assert "outbound|9080||reviews.default.svc.cluster.local" in clusters
