"""Identity end to end: SDS certificates, mTLS between real Envoys, PeerAuthentication, AuthorizationPolicy,
the outsider, and certificate rotations under load. Figures are printed (`pytest -s` shows them).

A policy change rewrites the inbound filter chains (LDS, in place). Envoy keeps serving pooled
connections accepted on the old chains for `--drain-time-s` (1 s) without telling HTTP/1.1 clients
(no `Connection: close`), then closes them, request in flight or not: the client sidecar logs
503 `UC`. `applied` therefore waits for those drains to end, so no test inherits a doomed connection."""

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


DRAINING = "listener_manager.total_filter_chains_draining"


def drains_settled(mesh: meshkit.Mesh, timeout: float = 10.0) -> float:
    """Wait until no sidecar has a filter chain draining; returns the seconds waited."""
    start = time.monotonic()
    while True:
        draining = {p: n for p in mesh.pods() if (n := mesh.stats(p, f"^{DRAINING}$").get(DRAINING, 0))}
        if not draining:
            return time.monotonic() - start
        assert time.monotonic() - start < timeout, f"filter chains still draining: {draining}"
        time.sleep(0.1)


@contextlib.contextmanager
def applied(mesh: meshkit.Mesh, text: str):
    """`text` applied for the block; deleted after it, and the replaced chains' drains waited out."""
    mesh.apply(text)
    try:
        yield
    finally:
        mesh.delete(text)
        drains_settled(mesh)


def total(mesh: meshkit.Mesh, pods: tuple[str, ...], pattern: str) -> int:
    """The sum over `pods` of the counters matching `pattern`."""
    return sum(sum(mesh.stats(p, pattern).values()) for p in pods)


def serial(mesh: meshkit.Mesh, pod: str) -> str:
    """The serial number of the `default` certificate the pod's Envoy holds (its config dump)."""
    rows = mesh.pc.secrets(pod)
    return rows[rows["RESOURCE NAME"] == "default"]["SERIAL NUMBER"].iloc[0]


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


ROTATIONS = 20
# What would betray a rotation that is not SDS-only: listeners or clusters rebuilt (their pooled
# connections drained or closed), or a connection closed under a request.
ROTATION_COUNTERS = {
    "TLS contexts rebuilt": r"ssl_socket_factory\.ssl_context_update_by_sds$",
    "listeners changed": r"^listener_manager\.(listener_modified|listener_in_place_updated|listener_removed)$",
    "clusters changed": r"^cluster_manager\.(cluster_modified|cluster_removed)$",
    "closed under a request": r"upstream_cx_destroy_(remote|local)_with_active_rq$",
}


def test_certificate_rotation_under_load_loses_no_request(mesh):
    stop, results, failures = threading.Event(), [], []

    def load() -> None:
        while not stop.is_set():
            rows = mesh.curl_rows("productpage-v1", REVIEWS, n=5)
            results.extend(r["status"] for r in rows)
            failures.extend({k: r[k] for k in ("status", "error", "flags", "upstream_host", "body")}
                            for r in rows if r["status"] != 200)

    waited = drains_settled(mesh)  # what an earlier policy change left draining is not rotation's doing
    pods = ("productpage-v1", *REVIEWS_PODS)
    before = {what: total(mesh, pods, pattern) for what, pattern in ROTATION_COUNTERS.items()}
    serials = {pod: [serial(mesh, pod)] for pod in ("productpage-v1", "reviews-v1")}
    worker = threading.Thread(target=load)
    worker.start()
    started = time.monotonic()
    try:
        for _ in range(ROTATIONS):  # every sidecar at once: both ends of every mTLS connection
            info = mesh.identity(rotate=True)
            for pod, seen in serials.items():
                seen.append(serial(mesh, pod))
                issued = next(c for name, c in info["certificates"].items() if name.startswith(pod))
                assert seen[-1] == issued["serial"], f"{pod}'s Envoy holds {seen[-1]}, the boss issued {issued}"
            time.sleep(0.2)  # let requests run on the connections each rotation left in place
        time.sleep(0.5)
    finally:
        stop.set()
        worker.join()
    elapsed = time.monotonic() - started
    after = {what: total(mesh, pods, pattern) for what, pattern in ROTATION_COUNTERS.items()}
    changed = {what: after[what] - before[what] for what in before}
    ok, failed = results.count(200), len(results) - results.count(200)
    print(f"\nrotation: waited {waited:.1f} s for earlier drains; {ROTATIONS} rotations of every sidecar in "
          f"{elapsed:.1f} s ({info['rotations']} certificates issued so far); distinct serials "
          f"{ {pod: len(set(seen)) for pod, seen in serials.items()} }; requests ok={ok} failed={failed}; "
          f"during the rotations: {changed}")
    assert all(len(set(seen)) == ROTATIONS + 1 for seen in serials.values()), serials
    assert changed["TLS contexts rebuilt"] >= ROTATIONS * len(pods), "each rotation reached the TLS contexts"
    assert changed["listeners changed"] == 0 and changed["clusters changed"] == 0, "rotation is SDS only"
    assert changed["closed under a request"] == 0, changed
    assert ok > 5 * ROTATIONS and failed == 0, failures


def test_certificates_renew_themselves_at_half_life(mesh):
    info = mesh.identity(ttl_s=4)  # re-issued now; the boss's timer renews them ~2 s later
    try:
        first, start = serial(mesh, "reviews-v1"), time.monotonic()
        while (current := serial(mesh, "reviews-v1")) == first:
            assert time.monotonic() - start < 8, "no renewal within 8 s of a 4 s certificate"
            time.sleep(0.2)
        renewed_after = time.monotonic() - start
        by_timers = mesh.identity()["rotations"] - info["rotations"]
    finally:
        mesh.identity(ttl_s=600)
    print(f"\nrenewal: a 4 s certificate on reviews-v1 was replaced after {renewed_after:.1f} s "
          f"({by_timers} certificates renewed by the timers by then)")
    assert current != first and renewed_after < 8


def test_request_table_by_source_destination_and_code(mesh):
    mesh.curl_rows("productpage-v1", "http://productpage:9080/productpage", n=2)
    table = mesh.requests()
    print("\n" + table.to_string(index=False))
    keys = {(r["SOURCE"], r["DESTINATION"], r["RESPONSE CODE"]) for _, r in table.iterrows()}
    assert ("productpage-v1", "reviews.default.svc.cluster.local:9080", "200") in keys
    assert ("productpage-v1", "details.default.svc.cluster.local:9080", "200") in keys
