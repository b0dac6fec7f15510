"""Lab 02 — the boss gives orders: one ADS stream, push order, versions, ACK and NACK.

ex1 reads the sync events of a reconnect, ex2 changes a cluster with a raw resource and reads the
result from Envoy, ex3 provokes a NACK and asks for Envoy's own words, then a revert.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...errors import Nack
from ..spec import Exercise, LabSpec, Verdict
from ._common import answer, cluster, dump_yaml, seconds, set_answers

if TYPE_CHECKING:
    from ...client import Mesh

POD = "productpage-v1"
DETAILS = "outbound|9080||details.default.svc.cluster.local"
ISTIO_ORDER = ["CDS", "EDS", "LDS", "RDS"]


def observed_order(mesh: Mesh, pod: str = POD) -> list[str]:
    """The types the boss sent `pod` after its latest (re)connect, in the order they were sent."""
    events = [e for e in mesh.events()["events"] if e["pod"].startswith(pod)]
    connects = [i for i, e in enumerate(events) if e["kind"] == "CONNECTED"]
    if not connects:
        return []
    order: list[str] = []
    for event in events[connects[-1]:]:
        if event["kind"] == "SENT" and event["type"] not in order:
            order.append(event["type"])
    return order


def check_order(mesh: Mesh) -> Verdict:
    given = answer("push_order")
    if given is None:
        return Verdict.not_yet("set `push_order` to a list like ['XDS', 'XDS', ...]")
    if not isinstance(given, list | tuple) or not all(isinstance(t, str) for t in given):
        return Verdict.wrong("`push_order` should be a list of type names such as 'CDS'")
    given = [t.strip().upper() for t in given]
    live = observed_order(mesh) or ISTIO_ORDER
    if given == live:
        return Verdict.done("clusters (and their endpoints) before the listeners and routes that use them")
    if sorted(given) != sorted(live):
        return Verdict.wrong("list each type the boss sent exactly once (look at the SENT events "
                             "for productpage after its CONNECTED event)")
    return Verdict.wrong("right types, wrong order: read the `seq` numbers of the SENT events after "
                         "productpage's latest CONNECTED event")


def details_cluster(timeout: str) -> dict:
    return {
        "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
        "name": DETAILS,
        "type": "EDS",
        "eds_cluster_config": {"service_name": DETAILS,
                               "eds_config": {"ads": {}, "initial_fetch_timeout": "0s", "resource_api_version": "V3"}},
        "connect_timeout": timeout,
        "lb_policy": "LEAST_REQUEST",
    }


def apply_timeout(mesh: Mesh) -> None:
    mesh.apply(dump_yaml(details_cluster("1s")), pods=[POD])


def check_timeout(mesh: Mesh) -> Verdict:
    live = cluster(mesh, POD, DETAILS)
    if live is None:
        return Verdict.wrong(f"productpage's Envoy has no cluster named {DETAILS} any more: keep the name exactly")
    value = seconds(live.get("connect_timeout"))
    if value == 10.0:
        return Verdict.not_yet("productpage's details cluster still has the boss's connect_timeout")
    if value != 1.0:
        return Verdict.wrong("Envoy holds a connect_timeout for details, but not the one the task asks for")
    if live.get("type") != "EDS":
        return Verdict.wrong("the cluster is no longer an EDS cluster: it must still get its endpoints from EDS")
    rows = mesh.curl_rows(POD, "http://details:9080/details/0", n=2)
    if any(r["status"] != 200 for r in rows):
        return Verdict.wrong("Envoy took the cluster, but requests to details fail now: did the cluster keep "
                             "`eds_cluster_config.service_name` equal to its name?")
    return Verdict.done("one type changed (CDS), one version moved, the other pods never heard of it")


def nack_texts(mesh: Mesh) -> list[str]:
    """Envoy's error text of every NACK the boss has seen (history of pushes and sync events)."""
    texts = [err for push in mesh.history_rows() for err in push["errors"].values()]
    texts += [e["error"] for e in mesh.events()["events"] if e["kind"] == "NACK"]
    return [t for t in texts if t]


def check_nack(mesh: Mesh) -> Verdict:
    given = answer("nack_error")
    if given is None:
        return Verdict.not_yet("set `nack_error` to the error text Envoy sent back")
    text = str(given).strip()
    if len(text) < 8:
        return Verdict.wrong("copy more of Envoy's words: at least the first sentence of the error")
    if not any(text in err or err.strip() in text for err in nack_texts(mesh)):
        return Verdict.wrong("that text is not in any NACK Envoy sent: read `mesh.status_rows()` (the ERROR "
                             "row's `error`) or the exception `mesh.apply` raised, and copy it")
    errors = [row["pod"] for row in mesh.status_rows()
              for state in row["types"].values() if state["state"] == "ERROR"]
    if errors:
        return Verdict.wrong("you found the error; now take the bad order back with `mesh.revert()`")
    return Verdict.done("Envoy refused, kept serving its last good config, and told the boss why")


def bad_cluster() -> dict:
    return details_cluster("-1s")


def apply_nack(mesh: Mesh) -> None:
    import sys

    try:
        mesh.apply(dump_yaml(bad_cluster()), pods=[POD])
    except Nack as exc:
        sys.modules["__main__"].nack_error = _first_error(mesh) or str(exc)
    mesh.revert()


def _first_error(mesh: Mesh) -> str:
    for row in mesh.status_rows():
        for state in row["types"].values():
            if state["state"] == "ERROR":
                return state["error"]
    return ""


LAB = LabSpec(
    name="02-orders",
    title="The boss gives orders: ADS, versions, ACK and NACK",
    minutes=30,
    objectives=(
        "See the one gRPC stream each lieutenant keeps open to the boss, and what flows on it",
        "Know the push order (CDS, EDS, LDS, RDS) and why it is make-before-break",
        "Read versions and ACKs in `mesh.status()`, `mesh.history()` and `mesh.events()`",
        "Provoke a NACK, read Envoy's own error text, see the last good config keep serving, revert",
    ),
    exercises=(
        Exercise(
            id="ex1",
            title="In which order do the orders arrive?",
            check=check_order,
            hints=(
                "Stop and start the boss: every sidecar reconnects and receives everything again.",
                "`mesh.events(after=n)` lists what happened since event n; keep the rows for productpage.",
                "After productpage's CONNECTED event, write down the `type` of each SENT event in order.",
            ),
            solution=("last = mesh.events()['last']\n"
                      "mesh.stop_boss(); mesh.start_boss()\n"
                      "wait_for_resync('productpage-v1', last)\n"
                      "events = [e for e in mesh.events(after=last)['events']\n"
                      "          if e['pod'].startswith('productpage-v1')]\n"
                      "push_order = []\n"
                      "for e in events:\n"
                      "    if e['kind'] == 'SENT' and e['type'] not in push_order:\n"
                      "        push_order.append(e['type'])"),
            apply=set_answers(push_order=lambda mesh: observed_order(mesh) or ISTIO_ORDER),
        ),
        Exercise(
            id="ex2",
            title="Give one order by hand: a 1 s connect timeout for details",
            check=check_timeout,
            hints=(
                "Start from the live cluster: `mesh.pc.config_dump('productpage-v1')`, Clusters section, "
                "the one named outbound|9080||details.default.svc.cluster.local.",
                "A raw resource needs `\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster`, the "
                "same name, `type: EDS`, an `eds_cluster_config` and the new `connect_timeout`.",
                "Apply it to productpage only: `mesh.apply(text, pods=['productpage-v1'])`, then compare "
                "`mesh.status()` and `mesh.history()` before and after.",
            ),
            solution=dump_yaml(details_cluster("1s")),
            apply=apply_timeout,
        ),
        Exercise(
            id="ex3",
            title="An order Envoy refuses",
            check=check_nack,
            hints=(
                "Envoy validates every resource; a negative duration is one thing it refuses.",
                "`mesh.apply` raises `meshkit.Nack` on a NACK; catch it. `mesh.status_rows()` then shows "
                "state ERROR with Envoy's `error` for the type that was refused.",
                "Copy that text into `nack_error`, then `mesh.revert()` so the boss stops sending the bad order.",
            ),
            solution=("bad = '''\n" + dump_yaml(bad_cluster()) + "'''\n"
                      "try:\n"
                      "    mesh.apply(bad, pods=['productpage-v1'])\n"
                      "except meshkit.Nack as exc:\n"
                      "    print(exc)\n"
                      "row = next(r for r in mesh.status_rows() if r['pod'].startswith('productpage-v1'))\n"
                      "nack_error = row['types']['CDS']['error']\n"
                      "mesh.revert()"),
            apply=apply_nack,
        ),
    ),
    notes=(
        "istiod talks to Envoy through pilot-agent's unix socket and uses delta xDS by default (1.22+); "
        "meshkit's boss also serves delta xDS by default, but over TCP straight to Envoy.",
        "istiod's version_info is '<RFC3339 time>/<counter>'; meshkit's is a hash of the content, so "
        "the same config always has the same version.",
        "meshkit's sync events carry versions but not nonces (the boss tracks nonces internally).",
    ),
)
