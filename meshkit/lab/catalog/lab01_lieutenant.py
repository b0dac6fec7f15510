"""Lab 01 — the lieutenant alone: one Envoy, its admin API, and the path of one request.

Reading exercises: the learner finds values in the admin API and stores them in notebook
variables; each check recomputes the value from the sidecar's live `/config_dump`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..spec import Exercise, LabSpec, Verdict
from ._common import answer, dump_section, listener, route_config, set_answers, vhost

if TYPE_CHECKING:
    from ...client import Mesh

POD = "productpage-v1"
HCM = "envoy.filters.network.http_connection_manager"


def admin_address(mesh: Mesh) -> str:
    boot = dump_section(mesh, POD, "Bootstrap")["bootstrap"]
    address = boot["admin"]["address"]
    if "pipe" in address:  # userspace capture: the admin API is a 0600 unix socket in the pod folder
        return "unix://" + address["pipe"]["path"]
    return f"{address['socket_address']['address']}:{address['socket_address']['port_value']}"


def check_admin(mesh: Mesh) -> Verdict:
    given = answer("admin_address")
    if given is None:
        return Verdict.not_yet("set `admin_address` to \"IP:port\"")
    text = str(given).strip()
    live = admin_address(mesh)
    if text == live:
        return Verdict.done("only processes inside the pod can reach it: the admin API is not on the pod IP")
    if text.split(":")[-1] == live.split(":")[-1]:
        return Verdict.wrong("the port is right, the IP is not: which address does the admin socket bind "
                             "to? (bootstrap → admin → address → socket_address)")
    return Verdict.wrong("read the `admin` section of the bootstrap in `/config_dump` (the first config)")


def inbound_chain_count(mesh: Mesh) -> int:
    found = listener(mesh, POD, "virtualInbound") or {}
    return len(found.get("filter_chains", []))


def check_chains(mesh: Mesh) -> Verdict:
    given = answer("inbound_chains")
    if given is None:
        return Verdict.not_yet("set `inbound_chains` to a number")
    if not isinstance(given, int) or isinstance(given, bool):
        return Verdict.wrong("`inbound_chains` should be a whole number (an int), not text")
    live = inbound_chain_count(mesh)
    if given == live:
        return Verdict.done("one chain per kind of traffic the door may see; lab 03 reads each one")
    return Verdict.wrong("count the entries of `filter_chains` in productpage's listener named "
                         "virtualInbound (in the Listeners section of /config_dump, or the 15006 rows "
                         "of `mesh.pc.listeners('productpage-v1', port=15006)`)")


def request_path(mesh: Mesh) -> dict[str, str]:
    """listener → route config → cluster for productpage calling http://details:9080 (from live config)."""
    name = "0.0.0.0_9080"
    found = listener(mesh, POD, name) or {}
    route_name = ""
    for chain in found.get("filter_chains", []):
        for filt in chain.get("filters", []):
            if filt.get("name") == HCM:
                route_name = filt["typed_config"].get("rds", {}).get("route_config_name", "")
    host = vhost(route_config(mesh, POD, route_name), "details.") or {}
    cluster = host.get("routes", [{}])[0].get("route", {}).get("cluster", "")
    return {"listener": name, "route": route_name, "cluster": cluster}


def check_path(mesh: Mesh) -> Verdict:
    given = answer("request_path")
    if given is None:
        return Verdict.not_yet("set `request_path` to a dict with keys listener, route and cluster")
    if not isinstance(given, dict) or set(given) != {"listener", "route", "cluster"}:
        return Verdict.wrong("`request_path` should be a dict with exactly the keys 'listener', 'route', 'cluster'")
    live = request_path(mesh)
    wrong = [key for key in ("listener", "route", "cluster") if str(given[key]).strip() != live[key]]
    if not wrong:
        return Verdict.done("the listener picks a chain, the chain's HCM asks RDS for a route, "
                            "the route names a cluster")
    where = {
        "listener": "the listener is found by the *original* destination port (9080): "
                    "`mesh.pc.listeners('productpage-v1', port=9080)`; give its full name",
        "route": "the HCM in that listener names its route configuration (`rds.route_config_name`)",
        "cluster": "in that route configuration, the virtual host for details names the cluster",
    }
    return Verdict.wrong("not yet right: " + "; ".join(where[key] for key in wrong))


LAB = LabSpec(
    name="01-lieutenant",
    title="The lieutenant alone: one Envoy and its admin API",
    minutes=30,
    objectives=(
        "Read one Envoy through its admin API: /server_info, /config_dump, /listeners, /clusters, /stats",
        "Tell downstream (who calls Envoy) from upstream (whom Envoy calls)",
        "Follow one request: listener → filter chain → route → cluster → endpoint",
    ),
    exercises=(
        Exercise(
            id="ex1",
            title="Find the admin address",
            check=check_admin,
            hints=(
                "The admin API is configured in the bootstrap, the config Envoy started with.",
                "In `mesh.pc.config_dump('productpage-v1')['configs'][0]['bootstrap']`, look for `admin`.",
                "`admin.address.socket_address` has `address` and `port_value`; write them as \"IP:port\".",
            ),
            solution=("boot = mesh.pc.config_dump('productpage-v1')['configs'][0]['bootstrap']\n"
                      "address = boot['admin']['address']\n"
                      "admin_address = ('unix://' + address['pipe']['path'] if 'pipe' in address else\n"
                      "                 f\"{address['socket_address']['address']}:"
                      "{address['socket_address']['port_value']}\")"),
            apply=set_answers(admin_address=admin_address),
        ),
        Exercise(
            id="ex2",
            title="Count the filter chains of virtualInbound",
            check=check_chains,
            hints=(
                "virtualInbound is the listener on port 15006, where iptables sends all inbound traffic.",
                "`mesh.pc.listeners('productpage-v1', port=15006)` shows one row per filter chain.",
                "Or count `len(listener['filter_chains'])` for the dynamic listener named virtualInbound.",
            ),
            solution=("dump = mesh.pc.config_dump('productpage-v1', include_eds=False)\n"
                      "listeners = next(c for c in dump['configs'] if 'dynamic_listeners' in c)['dynamic_listeners']\n"
                      "vin = next(l for l in listeners if l['name'] == 'virtualInbound')\n"
                      "inbound_chains = len(vin['active_state']['listener']['filter_chains'])"),
            apply=set_answers(inbound_chains=inbound_chain_count),
        ),
        Exercise(
            id="ex3",
            title="Follow one request through the lieutenant",
            check=check_path,
            hints=(
                "Start at the listener for the destination port 9080, then its filter chain's HCM.",
                "The HCM does not hold routes itself: `rds.route_config_name` names a RouteConfiguration; "
                "`mesh.pc.routes('productpage-v1')` lists them.",
                "The details virtual host's route points at a cluster named outbound|<port>|<subset>|<fqdn>; "
                "confirm with `mesh.curl('productpage-v1', 'http://details:9080/details/0')` (upstream_cluster).",
            ),
            solution=("rows = mesh.curl_rows('productpage-v1', 'http://details:9080/details/0')\n"
                      "request_path = {'listener': '0.0.0.0_9080', 'route': '9080',\n"
                      "                'cluster': rows[0]['upstream_cluster']}"),
            apply=set_answers(request_path=request_path),
        ),
    ),
    notes=(
        "Istio's bootstrap also has static listeners 15021 (health, served by pilot-agent) and clusters "
        "agent and sds-grpc; meshkit has no pilot-agent, so only 15090 (Prometheus) and xds-grpc remain.",
        "Istio adds istio.stats, istio.metadata_exchange and istio.alpn filters; they are not in upstream "
        "Envoy, so meshkit's chains go without them.",
    ),
)
