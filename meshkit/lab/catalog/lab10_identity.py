"""Lab 10 — "Show me your pass": the boss as CA, mutual TLS, PeerAuthentication, AuthorizationPolicy.

ex1 reads the pass: productpage's SPIFFE id and certificate serial from its Envoy's SDS secrets;
ex2 keeps outsiders out with STRICT mTLS (the sidecar-less `outsider` pod is refused, productpage
still gets in); ex3 lets only productpage's identity call reviews (ratings and the outsider get
403 `RBAC: access denied`). Checks read Envoy (`pc secret`) and send real requests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..spec import Check, Exercise, LabSpec, Verdict
from ..waiting import retry_wrong
from ._common import answer, set_answers_from

if TYPE_CHECKING:
    from ...client import Mesh

POD = "productpage-v1"
REVIEWS_URL = "http://reviews:9080/reviews/0"
PRODUCTPAGE_PRINCIPAL = "cluster.local/ns/default/sa/bookinfo-productpage"

STRICT_YAML = """apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: istio-system
spec:
  mtls:
    mode: STRICT
"""
VIEWER_YAML = f"""apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: reviews-viewer
  namespace: default
spec:
  selector:
    matchLabels:
      app: reviews
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["{PRODUCTPAGE_PRINCIPAL}"]
"""


DRAIN_S = 3.0  # sidecars run with --drain-time-s 1: pooled connections on a replaced chain close within it


def settled(check: Check) -> Check:
    """Re-check a "wrong" verdict for a few seconds: connections a client sidecar pooled before a policy
    change were accepted on the old filter chain and keep it until Envoy drains them."""
    return retry_wrong(check, DRAIN_S)


# -- ex1: read the pass ------------------------------------------------------------------------------
def live_pass(mesh: Mesh) -> dict[str, str]:
    table = mesh.pc.secrets(POD)
    rows = table[table["RESOURCE NAME"] == "default"]
    if rows.empty:
        return {"productpage_identity": "", "productpage_serial": ""}
    row = rows.iloc[0]
    return {"productpage_identity": row["IDENTITY"], "productpage_serial": row["SERIAL NUMBER"]}


def check_pass(mesh: Mesh) -> Verdict:
    given = {name: answer(name) for name in ("productpage_identity", "productpage_serial")}
    if all(v is None for v in given.values()):
        return Verdict.not_yet("set `productpage_identity` and `productpage_serial` from productpage's secrets")
    live = live_pass(mesh)
    wrong = [k for k in live if str(given[k] or "").strip().lower() != live[k].lower()]
    if not wrong:
        return Verdict.done("a SPIFFE id in a URI SAN, signed by the boss, renewed long before it expires")
    advice = {
        "productpage_identity": "`productpage_identity`: the whole URI SAN of the `default` secret (it starts "
                                "with spiffe://)",
        "productpage_serial": "`productpage_serial`: the SERIAL NUMBER of the `default` secret — read it again, "
                              "a renewal changes it",
    }
    return Verdict.wrong(" ".join(advice[k] for k in wrong) + " (mesh.pc.secrets('productpage-v1'))")


# -- ex2: STRICT -------------------------------------------------------------------------------------
def policies(mesh: Mesh, kind: str) -> list[dict]:
    return mesh.get(kind)


def check_strict(mesh: Mesh) -> Verdict:
    if not policies(mesh, "PeerAuthentication"):
        return Verdict.not_yet("no PeerAuthentication yet: the mesh is PERMISSIVE, the outsider walks in")
    outsider = mesh.curl_rows("outsider", REVIEWS_URL, n=3)
    inside = mesh.curl_rows(POD, REVIEWS_URL, n=3)
    if any(r["status"] != 200 for r in inside):
        return Verdict.wrong(f"productpage lost reviews ({[r['status'] or r['error'] for r in inside]}): "
                             "did you DISABLE mTLS somewhere, or set a DestinationRule tls mode?")
    if any(r["status"] is not None for r in outsider):
        return Verdict.wrong("the outsider still gets answers: which mode refuses plaintext, and does your "
                             "policy's scope (root namespace, namespace, selector) cover reviews' pods?")
    return Verdict.done("plaintext from the outsider is cut at the door; sidecars show their certificates")


def apply_strict(mesh: Mesh) -> None:
    mesh.apply(STRICT_YAML)


# -- ex3: only productpage may call reviews -----------------------------------------------------------
def check_viewer(mesh: Mesh) -> Verdict:
    if not policies(mesh, "AuthorizationPolicy"):
        return Verdict.not_yet("no AuthorizationPolicy yet: anyone with a pass may call reviews")
    inside = mesh.curl_rows(POD, REVIEWS_URL, n=3)
    if any(r["status"] != 200 for r in inside):
        return Verdict.wrong(f"productpage is refused ({[r['status'] for r in inside]}): compare your principal "
                             "with the IDENTITY of productpage's `default` secret (without `spiffe://`)")
    ratings = mesh.curl_rows("ratings-v1", REVIEWS_URL, n=3)
    if any(r["status"] != 403 for r in ratings):
        return Verdict.wrong(f"ratings still gets {[r['status'] for r in ratings]} from reviews: does the policy "
                             "select reviews' pods, and is its action ALLOW with one `from` rule?")
    details = mesh.curl_rows(POD, "http://details:9080/details/0", n=2)
    if any(r["status"] != 200 for r in details):
        return Verdict.wrong("details refuses productpage now: the policy's selector should pick only reviews")
    return Verdict.done("productpage 200; ratings 403 RBAC: access denied — the lieutenant checked the pass")


def apply_viewer(mesh: Mesh) -> None:
    mesh.apply(VIEWER_YAML)


LAB = LabSpec(
    name="10-identity",
    title="Show me your pass: identities, mutual TLS and authorization",
    minutes=40,
    objectives=(
        "Read a sidecar's SDS secrets: the SPIFFE id, serial and validity of its certificate (pc secret)",
        "See mutual TLS between sidecars: the tls chains of virtualInbound, ALPN istio-http/1.1, handshakes",
        "Refuse plaintext with PeerAuthentication STRICT, and see what PERMISSIVE accepts",
        "Allow only one identity to call a service with an AuthorizationPolicy (RBAC filter, 403)",
        "Watch a certificate rotation happen under traffic without losing a request",
    ),
    exercises=(
        Exercise(
            id="ex1",
            title="Read productpage's pass",
            check=check_pass,
            hints=(
                "Envoy holds its certificate as an SDS secret named `default`; istioctl shows it with "
                "`istioctl proxy-config secret`.",
                "`mesh.pc.secrets('productpage-v1')` has a row per secret; take the `default` row.",
                "productpage_identity = row['IDENTITY']; productpage_serial = row['SERIAL NUMBER'].",
            ),
            solution=("table = mesh.pc.secrets('productpage-v1')\n"
                      "row = table[table['RESOURCE NAME'] == 'default'].iloc[0]\n"
                      "productpage_identity = row['IDENTITY']\n"
                      "productpage_serial = row['SERIAL NUMBER']"),
            apply=set_answers_from(live_pass),
        ),
        Exercise(
            id="ex2",
            title="Keep outsiders out: STRICT mTLS",
            check=settled(check_strict),
            hints=(
                "PeerAuthentication decides what virtualInbound accepts; its default is PERMISSIVE.",
                "A PeerAuthentication without selector in the root namespace `istio-system` covers the "
                "whole mesh; `mtls.mode` is one of STRICT, PERMISSIVE, DISABLE.",
                "Apply `apiVersion: security.istio.io/v1`, `kind: PeerAuthentication`, name `default`, "
                "namespace `istio-system`, `spec: {mtls: {mode: STRICT}}` with mesh.apply(...).",
            ),
            solution=f"mesh.apply('''{STRICT_YAML}''')",
            apply=apply_strict,
        ),
        Exercise(
            id="ex3",
            title="Only productpage may call reviews",
            check=settled(check_viewer),
            hints=(
                "An AuthorizationPolicy with action ALLOW denies whatever none of its rules allows, on the "
                "workloads its selector picks.",
                "Select `app: reviews`; one rule with `from: [{source: {principals: [...]}}]`. A principal is "
                "the SPIFFE id without `spiffe://`.",
                f"principals: [\"{PRODUCTPAGE_PRINCIPAL}\"]",
            ),
            solution=f"mesh.apply('''{VIEWER_YAML}''')",
            apply=apply_viewer,
        ),
    ),
    notes=(
        "istiod signs CSRs that pilot-agent makes; pilot-agent serves the certificates to Envoy over a "
        "local SDS socket (cluster `sds-grpc`). meshkit's boss makes the key itself and sends SDS `default` "
        "and `ROOTCA` on the same ADS stream, last in the push order.",
        "Certificates live 10 minutes (Istio: 24 h) and use ECDSA P-256 (Istio's default is RSA 2048).",
        "Istio's `istio.alpn` filter is replaced by upstream Envoy's set_filter_state writing "
        "`envoy.network.application_protocols`: always istio-http/1.1, where istio.alpn picks istio-h2 for "
        "HTTP/2 upstreams.",
        "No `istio.stats`/`istio_requests_total`: the request table is built from Envoy's own cluster "
        "counters (`upstream_rq_<code>`), i.e. only the client side (reporter=source) reports; a sidecar-less "
        "caller like the outsider appears in no client-side table.",
        "The outsider exists only in the local runtime; with no sidecar it dials a pod behind the Service "
        "directly (kube-proxy's job in Kubernetes).",
    ),
)
