"""Identity end to end: SDS certificates, mTLS between real Envoys, PeerAuthentication, AuthorizationPolicy,
the outsider, and a certificate rotation under load. Figures are printed (`pytest -s` shows them)."""

from __future__ import annotations

import contextlib
import json
import threading
import time

import pytest

import meshkit
from meshkit.inspect import render

pytestmark = pytest.mark.mesh

REVIEWS = "http://reviews:9080/reviews/0"
REVIEWS_PODS = ("reviews-v1", "reviews-v2", "reviews-v3")
PRODUCTPAGE_ID = "spiffe://cluster.local/ns/default/sa/bookinfo-productpage"
STRICT = """
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec:
  mtls: {mode: STRICT}
"""
REVIEWS_VIEWER = """
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: reviews-viewer}
spec:
  selector:
    matchLabels: {app: reviews}
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/default/sa/bookinfo-productpage"]
"""


@contextlib.contextmanager
def applied(mesh: meshkit.Mesh, text: str):
    mesh.apply(text)
    try:
        yield
    finally:
        mesh.delete(text)


def handshakes(mesh: meshkit.Mesh) -> int:
    """TLS handshakes the reviews sidecars completed on virtualInbound (the server side of mTLS)."""
    return sum(mesh.stats(p, r"^listener\.0\.0\.0\.0_15006\.ssl\.handshake$").get(
        "listener.0.0.0.0_15006.ssl.handshake", 0) for p in REVIEWS_PODS)


def calls(mesh: meshkit.Mesh, pod: str, n: int = 3) -> list[dict]:
    return mesh.curl_rows(pod, REVIEWS, n=n)


def eventually(mesh: meshkit.Mesh, pod: str, status: int, timeout: float = 5.0) -> int:
    """Requests until one answers `status`: pooled connections accepted on a replaced filter chain
    keep the old chain until Envoy drains them (--drain-time-s 1). Returns the number of tries."""
    deadline, tries = time.monotonic() + timeout, 0
    while True:
        tries += 1
        if calls(mesh, pod, 1)[0]["status"] == status:
            return tries
        assert time.monotonic() < deadline, f"{pod} never got {status}"
        time.sleep(0.2)


def test_every_sidecar_holds_its_spiffe_certificate_over_sds(mesh):
    table = mesh.pc.secrets("productpage-v1")
    print("\n" + render(table))
    rows = {r["RESOURCE NAME"]: r for _, r in table.iterrows()}
    assert set(rows) == {"default", "ROOTCA"}
    assert rows["default"]["TYPE"] == "Cert Chain" and rows["ROOTCA"]["TYPE"] == "CA"
    assert rows["default"]["IDENTITY"] == PRODUCTPAGE_ID
    assert {rows[n]["STATUS"] for n in rows} == {"ACTIVE"} and {rows[n]["VALID CERT"] for n in rows} == {"true"}
    issued = mesh.identity()["certificates"]
    productpage = next(c for pod, c in issued.items() if pod.startswith("productpage-v1"))
    assert rows["default"]["SERIAL NUMBER"] == productpage["serial"]
    status = {r["pod"]: r["types"].get("SDS", {}).get("state") for r in mesh.status_rows()}
    assert set(status.values()) == {"SYNCED"}, status


def test_permissive_takes_mtls_from_sidecars_and_plaintext_from_the_outsider(mesh):
    before = handshakes(mesh)
    inside, outside = calls(mesh, "productpage-v1"), calls(mesh, "outsider")
    after = handshakes(mesh)
    print(f"\nPERMISSIVE: productpage {[r['status'] for r in inside]}, outsider {[r['status'] for r in outside]}, "
          f"reviews TLS handshakes +{after - before}")
    assert [r["status"] for r in inside] == [200] * 3
    assert [r["status"] for r in outside] == [200] * 3
    assert after >= 1, "reviews sidecars completed TLS handshakes (pooled connections may predate this test)"
    assert {json.loads(r["body"])["peer"] for r in inside} == {PRODUCTPAGE_ID}, "x-forwarded-client-cert"
    assert all("peer" not in json.loads(r["body"]) for r in outside), "plaintext: no peer certificate"


def test_strict_refuses_the_outsider_and_keeps_the_mesh_working(mesh):
    with applied(mesh, STRICT):
        before = handshakes(mesh)
        inside, outside = calls(mesh, "productpage-v1"), calls(mesh, "outsider")
        after = handshakes(mesh)
        page = mesh.curl_rows("productpage-v1", "http://productpage:9080/productpage", n=3)
        chains = mesh.pc.listeners("reviews-v1", port=15006)
    print(f"\nSTRICT: productpage {[r['status'] for r in inside]}, outsider "
          f"{[r['status'] or r['error'] for r in outside]}, reviews TLS handshakes +{after - before}")
    assert [r["status"] for r in inside] == [200] * 3
    assert after >= 1, "reviews sidecars terminated mTLS"
    assert {json.loads(r["body"])["peer"] for r in inside} == {PRODUCTPAGE_ID}
    assert [r["status"] for r in outside] == [None] * 3, "no chain takes plaintext: the connection is closed"
    assert all(json.loads(r["body"])["reviews"]["status"] == 200 for r in page), "the whole mesh speaks mTLS"
    assert not any("raw_buffer" in m for m in chains["MATCH"]), chains
    assert eventually(mesh, "outsider", 200), "back to PERMISSIVE after delete"


def test_authorization_policy_lets_only_productpage_call_reviews(mesh):
    with applied(mesh, REVIEWS_VIEWER):
        allowed = calls(mesh, "productpage-v1")
        ratings, outsider = calls(mesh, "ratings-v1"), calls(mesh, "outsider")
        denied = mesh.stats("reviews-v1", r"rbac\.denied$")
    print(f"\nAuthorizationPolicy: productpage {[r['status'] for r in allowed]}, ratings "
          f"{[r['status'] for r in ratings]}, outsider {[r['status'] for r in outsider]}; reviews-v1 {denied}")
    assert [r["status"] for r in allowed] == [200] * 3
    assert [r["status"] for r in ratings] == [403] * 3
    assert [r["status"] for r in outsider] == [403] * 3
    assert {r["body"] for r in ratings + outsider} == {"RBAC: access denied"}
    print(f"policy deleted: ratings got 200 again after {eventually(mesh, 'ratings-v1', 200)} request(s)")


def test_certificate_rotation_under_load_loses_no_request(mesh):
    stop, results, failures = threading.Event(), [], []

    def load() -> None:
        while not stop.is_set():
            rows = mesh.curl_rows("productpage-v1", REVIEWS, n=5)
            results.extend(r["status"] for r in rows)
            failures.extend({k: r[k] for k in ("status", "error", "flags", "upstream_host", "body")}
                            for r in rows if r["status"] != 200)

    serials = set()
    mesh.identity(ttl_s=4)  # renew every ~2 s
    worker = threading.Thread(target=load)
    worker.start()
    try:
        deadline = time.monotonic() + 9
        while time.monotonic() < deadline:
            rows = mesh.pc.secrets("reviews-v1")
            serials.add(rows[rows["RESOURCE NAME"] == "default"]["SERIAL NUMBER"].iloc[0])
            time.sleep(0.5)
    finally:
        stop.set()
        worker.join()
        info = mesh.identity(ttl_s=600)
    ok, failed = results.count(200), len(results) - results.count(200)
    print(f"\nrotation: {len(serials)} certificates seen on reviews-v1 in 9 s, {info['rotations']} rotations "
          f"so far; requests ok={ok} failed={failed}")
    assert len(serials) >= 3
    assert ok > 20 and failed == 0, failures


def test_request_table_by_source_destination_and_code(mesh):
    mesh.curl_rows("productpage-v1", "http://productpage:9080/productpage", n=2)
    table = mesh.requests()
    print("\n" + table.to_string(index=False))
    keys = {(r["SOURCE"], r["DESTINATION"], r["RESPONSE CODE"]) for _, r in table.iterrows()}
    assert ("productpage-v1", "reviews.default.svc.cluster.local:9080", "200") in keys
    assert ("productpage-v1", "details.default.svc.cluster.local:9080", "200") in keys
