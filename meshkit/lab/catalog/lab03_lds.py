"""Lab 03 — LDS: listeners, network filter chains, the two virtual doors and listener filters.

ex1 reads virtualInbound's filter_chain_match, ex2 fixes the tcp-echo sidecar's listener filters
with a raw Listener (checked with real TCP echoes), ex3 adds a new raw Listener (checked with real
HTTP requests).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..spec import Exercise, LabSpec, Verdict
from ._common import answer, dump_yaml, listener, set_answers_from

if TYPE_CHECKING:
    from ...client import Mesh

POD = "productpage-v1"
ECHO = "tcp-echo-v1"
TLS_INSPECTOR = "envoy.filters.listener.tls_inspector"
HCM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
RATINGS = "outbound|9080||ratings.default.svc.cluster.local"


# -- ex1: which chain? --------------------------------------------------------------------------
def chain_names(mesh: Mesh, pod: str = "reviews-v1") -> dict[str, str]:
    found = listener(mesh, pod, "virtualInbound") or {}
    names = {}
    for chain in found.get("filter_chains", []):
        port = chain.get("filter_chain_match", {}).get("destination_port")
        if port is not None:
            names.setdefault(str(port), chain.get("name", ""))
    return {"chain_9080": names.get("9080", ""), "chain_15006": names.get("15006", "")}


def check_chains(mesh: Mesh) -> Verdict:
    given = {name: answer(name) for name in ("chain_9080", "chain_15006")}
    if all(value is None for value in given.values()):
        return Verdict.not_yet("set `chain_9080` and `chain_15006` to filter chain names")
    live = chain_names(mesh)
    wrong = [name for name in live if str(given[name] or "").strip() != live[name]]
    if not wrong:
        return Verdict.done("Envoy picks a chain by the connection's original destination port first")
    advice = {
        "chain_9080": "`chain_9080`: which chain's filter_chain_match has destination_port 9080?",
        "chain_15006": "`chain_15006`: a connection addressed to 15006 itself is matched by its own "
                       "destination_port rule — find that chain's name",
    }
    return Verdict.wrong(" ".join(advice[name] for name in wrong)
                         + " (read `filter_chains[i].name` and `.filter_chain_match` of virtualInbound on reviews-v1)")


# -- ex2: the echo that never answers -----------------------------------------------------------
def echo_works(mesh: Mesh, n: int = 4) -> tuple[int, str]:
    ok, last_error = 0, ""
    for _ in range(n):
        reply = mesh.tcp(POD, "tcp-echo", 9000, "hi\n")
        if reply["reply"].endswith("hi\n"):
            ok += 1
        else:
            last_error = reply["error"] or "an empty reply"
    return ok, last_error


def covers(predicate: object, port: int) -> bool:
    """Whether a listener-filter `filter_disabled` predicate disables the filter for `port`."""
    if isinstance(predicate, dict):
        rng = predicate.get("destination_port_range")
        if isinstance(rng, dict) and int(rng.get("start", 0)) <= port < int(rng.get("end", 0)):
            return True
        return any(covers(value, port) for value in predicate.values())
    if isinstance(predicate, list):
        return any(covers(item, port) for item in predicate)
    return False


def touched(vin: dict) -> bool:
    """Whether the learner changed what runs before the chains on port 9000."""
    inspectors = [f for f in vin.get("listener_filters", []) if f.get("name") == TLS_INSPECTOR]
    return (not inspectors or any(covers(f.get("filter_disabled"), 9000) for f in inspectors)
            or vin.get("listener_filters_timeout") not in (None, "0s"))


def fixed_inbound(mesh: Mesh) -> dict:
    """tcp-echo's live virtualInbound with the TLS inspector switched off for port 9000."""
    vin = listener(mesh, ECHO, "virtualInbound")
    assert vin is not None, "tcp-echo-v1 has no virtualInbound listener"
    for filt in vin["listener_filters"]:
        if filt["name"] == TLS_INSPECTOR:
            filt["filter_disabled"] = {"or_match": {"rules": [
                {"destination_port_range": {"start": 9000, "end": 9001}},
                {"destination_port_range": {"start": 15006, "end": 15007}},
            ]}}
    return vin


def apply_echo(mesh: Mesh) -> None:
    mesh.apply(dump_yaml(fixed_inbound(mesh)), pods=[ECHO])


def check_echo(mesh: Mesh) -> Verdict:
    vin = listener(mesh, ECHO, "virtualInbound")
    if vin is None:
        return Verdict.wrong("tcp-echo-v1 has no listener named virtualInbound any more: keep the name")
    changed = touched(vin)
    ok, error = echo_works(mesh)
    if ok == 4:
        return Verdict.done("4 of 4 echoes came back: nothing on port 9000 waits for a TLS hello any more")
    if not changed:
        return Verdict.not_yet(f"{ok} of 4 echoes came back; tcp-echo's virtualInbound is still the boss's")
    return Verdict.wrong(f"only {ok} of 4 echoes came back ({error}). Which listener filter still peeks at "
                         "port 9000? A timeout alone does not help when the client closes first.")


PLAINTEXT_ECHO = """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: tcp-echo-plaintext}
spec:
  host: tcp-echo
  trafficPolicy:
    tls: {mode: DISABLE}
"""


def plaintext_echo(mesh: Mesh) -> None:
    """Lab setup (identity): clients of tcp-echo send plaintext, not auto-mTLS."""
    mesh.apply(PLAINTEXT_ECHO)


# -- ex3: a new door ----------------------------------------------------------------------------
def new_listener() -> dict:
    return {
        "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
        "name": "0.0.0.0_8080",
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": 8080}},
        "bind_to_port": False,
        "traffic_direction": "OUTBOUND",
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": HCM_TYPE,
                "stat_prefix": "outbound_0.0.0.0_8080",
                "route_config": {"name": "8080", "virtual_hosts": [{
                    "name": "ratings", "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"}, "route": {"cluster": RATINGS}}],
                }]},
                "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
            },
        }]}],
    }


def apply_listener(mesh: Mesh) -> None:
    mesh.apply(dump_yaml(new_listener()), pods=[POD])


def check_listener(mesh: Mesh) -> Verdict:
    on_8080 = mesh.pc.listeners(POD, port=8080)
    if on_8080.empty:
        return Verdict.not_yet("productpage's Envoy has no listener for port 8080 yet")
    rows = mesh.curl_rows(POD, "http://ratings:8080/ratings/0", n=2)
    if all(r["status"] == 200 and r["pod"].startswith("ratings-") for r in rows):
        return Verdict.done("the connection to :8080 was handed from virtualOutbound to your listener")
    row = next(r for r in rows if r["status"] != 200 or not r["pod"].startswith("ratings-"))
    seen = f"status {row['status']}" + (f", {row['error']}" if row["error"] else "") + (
        f", answered by {row['pod']}" if row["pod"] else "")
    return Verdict.wrong(f"a request to http://ratings:8080 from productpage got {seen}. Check the chain: "
                         "does its filter hand HTTP to a route whose cluster is the ratings Service's cluster?")


LAB = LabSpec(
    name="03-lds",
    title="LDS: listeners and network filter chains",
    minutes=35,
    objectives=(
        "Read a listener: address, filter chains, filter_chain_match, network filters",
        "Tell tcp_proxy (bytes to a cluster) from http_connection_manager (HTTP, then RDS)",
        "See how iptables feeds virtualOutbound (15001) and virtualInbound (15006), and how "
        "use_original_dst hands a connection to 0.0.0.0_9080",
        "Understand listener filters, listener_filters_timeout and continue_on_listener_filters_timeout",
        "Give a sidecar a listener of your own",
    ),
    exercises=(
        Exercise(
            id="ex1",
            title="Which filter chain takes the connection?",
            check=check_chains,
            hints=(
                "Each filter chain has an optional `filter_chain_match`; the most specific match wins, "
                "and destination_port is looked at first.",
                "`listener = ...virtualInbound...; [(c.get('name'), c.get('filter_chain_match')) for c in "
                "listener['filter_chains']]` on reviews-v1.",
                "One chain is matched by destination_port 9080, another by destination_port 15006; "
                "write their `name` fields.",
            ),
            solution=("vin = live_listener('reviews-v1', 'virtualInbound')\n"
                      "by_port = {c['filter_chain_match'].get('destination_port'): c['name']\n"
                      "           for c in vin['filter_chains'] if 'filter_chain_match' in c}\n"
                      "chain_9080, chain_15006 = by_port[9080], by_port[15006]"),
            apply=set_answers_from(chain_names),
        ),
        Exercise(
            id="ex2",
            title="Make tcp-echo answer a short line",
            check=check_echo,
            hints=(
                "The echo dies on tcp-echo's side: compare `listener.0.0.0.0_15006.downstream_listener_"
                "filter_remote_close` in its `/stats` before and after a try.",
                "virtualInbound runs listener filters before any chain is chosen. tls_inspector wants to see "
                "enough bytes to decide 'TLS or not'; 'hi\\n' is too short, and the client closes first.",
                "Take tcp-echo's live virtualInbound, add port 9000 to tls_inspector's `filter_disabled` "
                "(as the boss already does for 15006), and apply it to tcp-echo-v1 only.",
            ),
            solution=("vin = live_listener('tcp-echo-v1', 'virtualInbound')\n"
                      "for f in vin['listener_filters']:\n"
                      "    if f['name'] == 'envoy.filters.listener.tls_inspector':\n"
                      "        f['filter_disabled'] = {'or_match': {'rules': [\n"
                      "            {'destination_port_range': {'start': 9000, 'end': 9001}},\n"
                      "            {'destination_port_range': {'start': 15006, 'end': 15007}}]}}\n"
                      "mesh.apply(yaml.safe_dump(vin), pods=['tcp-echo-v1'])"),
            apply=apply_echo,
        ),
        Exercise(
            id="ex3",
            title="A new door: port 8080 on productpage leads to ratings",
            check=check_listener,
            hints=(
                "You need one Listener: name 0.0.0.0_8080, address 0.0.0.0:8080, `bind_to_port: false` "
                "(virtualOutbound hands it connections), one filter chain.",
                "The chain's only network filter is an http_connection_manager with an inline `route_config` "
                "(domains ['*'], prefix '/') and the router as its last HTTP filter.",
                "The route's cluster is the one productpage already uses for ratings: "
                f"{RATINGS}. Apply to productpage-v1 and try `http://ratings:8080/ratings/0`.",
            ),
            solution=dump_yaml(new_listener()),
            apply=apply_listener,
        ),
    ),
    setup=plaintext_echo,
    notes=(
        "Istio puts istio.metadata_exchange and istio.stats network filters before tcp_proxy on the inbound "
        "chains and istio.stats before tcp_proxy on outbound TCP chains; upstream Envoy has neither, so "
        "meshkit's chains start straight with tcp_proxy or http_connection_manager.",
        "Sidecars speak mutual TLS to each other (auto-mTLS, lab 10). This lab starts with a DestinationRule "
        "`tls: DISABLE` for tcp-echo so its clients send plaintext, as a sidecar-less client would: that is "
        "the traffic the tls_inspector has to wait on.",
    ),
    runtime_notes=(
        ("kind", "`pod_info(pod, 'iptables')` is what the istio-init container printed when it installed "
                 "the rules (`kubectl logs <pod> -c istio-init`, as with Istio): no container that stays "
                 "in the pod may change them"),
    ),
)
