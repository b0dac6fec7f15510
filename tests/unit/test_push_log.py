"""The boss's memory of its pushes: shared resources, bounded history, YAML diffs, replay.

The pushes are real ControlPlane pushes of the Bookinfo topology's generated xDS (no proxy is
connected, so a push does not wait for ACKs); the diffs are of the resources exactly as packed
for the wire.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from meshkit.inspect.timeline import diff_summary, diff_text, push_rows, timeline_text
from meshkit.model import bookinfo
from meshkit.model.istio import parse_istio
from meshkit.widgets.builders import destination_rule, weights_to_virtual_service
from meshkit.xds.cache import SnapshotCache
from meshkit.xds.control_plane import ControlPlane
from meshkit.xds.push_log import HIDDEN_KEY, PushLog, diff_states
from meshkit.xds.status import SyncTracker


def plane() -> ControlPlane:
    control = ControlPlane(bookinfo(), SnapshotCache(), SyncTracker())
    asyncio.run(control.push_all())
    return control


def apply(control: ControlPlane, text: str) -> int:
    topology = replace(control.topology, istio=control.topology.istio.applied(parse_istio(text)))
    return asyncio.run(control.set_topology(topology, "apply")).id


def weights(control: ControlPlane, split: dict[str, int]) -> int:
    return apply(control, weights_to_virtual_service("reviews", split))


@pytest.fixture(scope="module")
def edited() -> tuple[ControlPlane, int, int, int]:
    control = plane()
    subsets = apply(control, destination_rule("reviews", ["v1", "v2", "v3"]))
    first = weights(control, {"v1": 80, "v3": 20})
    second = weights(control, {"v1": 20, "v3": 80})
    return control, subsets, first, second


def test_a_weight_edit_diffs_as_the_weight_lines_of_rds_9080_on_every_pod(edited) -> None:
    control, _, first, second = edited
    diff = diff_states(control.pushes.get(first), control.pushes.get(second))
    assert [(d["type"], d["name"], d["action"]) for d in diff] == [("RDS", "9080", "modified")]
    assert len(diff[0]["pods"]) == len(control.topology.sidecars())  # one entry for all the pods
    changed = [line for line in diff[0]["diff"].splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    stripped = [line[1:].strip().removeprefix("- ") for line in changed]
    assert {"weight: 20", "weight: 80"} & set(stripped)  # difflib may move the cluster names instead of both weights
    assert all(line.startswith(("weight: ", "name: outbound|9080|v")) for line in stripped), stripped
    assert f"push {first}: RDS 9080" in diff[0]["diff"]
    assert diff_summary(diff).startswith(f"RDS 9080 modified on {len(diff[0]['pods'])} pods (")


def test_subsets_add_clusters_and_endpoints(edited) -> None:
    control, subsets, _, _ = edited
    diff = diff_states(control.pushes.get(subsets - 1), control.pushes.get(subsets), types=["CDS"])
    assert {d["name"] for d in diff} >= {f"outbound|9080|{v}|reviews.default.svc.cluster.local" for v in ("v1", "v3")}
    assert {d["type"] for d in diff} == {"CDS"}
    assert all(d["action"] == "added" for d in diff if "|v" in d["name"])


def test_unchanged_resources_are_shared_by_reference(edited) -> None:
    control, _, first, second = edited
    a, b = control.pushes.get(first), control.pushes.get(second)
    pod = control.topology.sidecars()[0].name
    assert a.resources[pod]["CDS"] is not b.resources[pod]["CDS"]  # a new dict per push …
    for name, packed in a.resources[pod]["CDS"].items():
        assert b.resources[pod]["CDS"][name] is packed  # … holding the same objects
    assert b.resources[pod]["RDS"]["9080"] is not a.resources[pod]["RDS"]["9080"]


def test_the_log_is_bounded_and_says_which_pushes_it_keeps() -> None:
    control = plane()
    control.pushes.keep = 3
    apply(control, destination_rule("reviews", ["v1", "v2"]))
    for value in (50, 30, 70):
        weights(control, {"v1": value, "v2": 100 - value})
    assert control.pushes.ids() == [3, 4, 5]
    with pytest.raises(KeyError, match=r"push 1 is not kept .*last 3 pushes: 3–5"):
        control.pushes.get(1)


def test_sds_diffs_never_show_the_private_key() -> None:
    control = plane()
    before = control.pushes.ids()[-1]
    after = asyncio.run(control.rotate()).id
    diff = diff_states(control.pushes.get(before), control.pushes.get(after), types=["SDS"])
    assert diff and all(d["name"] == "default" for d in diff)
    text = "".join(d["diff"] for d in diff)
    assert HIDDEN_KEY in text and "PRIVATE KEY" not in text
    assert "certificate_chain" in text


def test_replay_restores_the_earlier_config_and_pushes_it(edited) -> None:
    control, _, first, second = edited
    push = asyncio.run(control.replay(first))
    assert push.reason == f"replay push {first}"
    assert [(c.type, c.name) for c in push.changes][:1] == [("RDS", "9080")]
    assert diff_states(control.pushes.get(first), control.pushes.get(push.id)) == []
    assert diff_states(control.pushes.get(second), control.pushes.get(push.id)) != []
    with pytest.raises(KeyError):
        asyncio.run(control.replay(999))


def test_replay_brings_back_raw_overrides() -> None:
    from meshkit.model.raw import load_documents, parse_document

    control = plane()
    clean = control.pushes.ids()[-1]
    raw = parse_document(load_documents(
        "'@type': type.googleapis.com/envoy.config.cluster.v3.Cluster\nname: extra\nconnect_timeout: 1s\n")[0], 0)
    pods = control.topology.sidecars()[:1]
    with_raw = asyncio.run(control.apply_raw([raw], pods)).id
    asyncio.run(control.revert(pods))
    assert control.overrides() == []
    asyncio.run(control.replay(with_raw))
    assert [(pod, r.name) for pod, r in control.overrides()] == [(pods[0].name, "extra")]
    asyncio.run(control.replay(clean))
    assert control.overrides() == []


def test_push_rows_and_timeline_text(edited) -> None:
    control, _, first, second = edited
    rows = push_rows(p.as_dict() for p in control.history())
    row = next(r for r in rows if r["id"] == second)
    assert row["types"] == ["RDS"] and row["changed"] == 1 and row["nacked"] == []
    text = timeline_text(rows)
    assert text.splitlines()[0].split() == ["PUSH", "TIME", "REASON", "TYPES", "CHANGED", "ACK", "NACK", "MS"]
    nothing = diff_text([], first, second)
    assert nothing == f"push {first} → push {second}: nothing differs in what the proxies were sent"


def test_push_log_on_its_own_keeps_state_per_pod() -> None:
    log = PushLog(keep=2)
    assert log.ids() == []
    with pytest.raises(KeyError, match="none yet"):
        log.get(1)


def test_a_nack_shows_who_refused_and_envoys_words() -> None:
    from meshkit.xds.control_plane import Change, Push

    push = Push(7, 0.0, "apply LDS broken", [Change("reviews-v1-abc12-x9z8y", "LDS", "broken", "added")],
                results={"reviews-v1-abc12-x9z8y": {"LDS": "NACK"}, "ratings-v1-def34-q1w2e": {"LDS": "ACK"}},
                errors={"reviews-v1-abc12-x9z8y": "has the same matching rules"}, finished=0.05)
    (row,) = push_rows([push.as_dict()])
    assert row["nacked"] == ["reviews-v1-abc12-x9z8y"] and row["acked"] == ["ratings-v1-def34-q1w2e"]
    assert row["types"] == ["LDS"] and row["ms"] == 50.0
    text = timeline_text([row])
    assert "reviews-v1" in text.splitlines()[1] and text.splitlines()[-1] == (
        "push 7 NACK reviews-v1: has the same matching rules")
