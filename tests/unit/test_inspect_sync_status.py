"""`istioctl proxy-status` (verbose) from the boss's plain status rows."""

from __future__ import annotations

from meshkit.inspect.sync_status import status_table
from meshkit.inspect.tables import render

PRODUCTPAGE = "sidecar~10.244.0.12~productpage-v1-6b746f74dc-9rlmh.default~default.svc.cluster.local"
REVIEWS = "sidecar~10.244.0.14~reviews-v1-545db77b95-v2x8q.default~default.svc.cluster.local"


def row(name: str, **types: dict) -> dict:
    return {"name": name, "cluster": "Kubernetes", "istiod": "meshkit", "version": "1.26.0", "types": types}


def test_states_per_type_sorted_by_name_without_error_column():
    table = status_table([
        row(REVIEWS, CDS={"state": "SYNCED", "version": "v1"}, LDS={"state": "STALE"}),
        row(PRODUCTPAGE, CDS={"state": "SYNCED"}, LDS={"state": "SYNCED"}, EDS={"state": "NOT SENT"},
            RDS={"state": "SYNCED"}),
    ])
    assert list(table.columns) == ["NAME", "CLUSTER", "CDS", "LDS", "EDS", "RDS", "ECDS", "ISTIOD", "VERSION"]
    assert table.values.tolist() == [
        [PRODUCTPAGE, "Kubernetes", "SYNCED", "SYNCED", "NOT SENT", "SYNCED", "IGNORED", "meshkit", "1.26.0"],
        [REVIEWS, "Kubernetes", "SYNCED", "STALE", "IGNORED", "IGNORED", "IGNORED", "meshkit", "1.26.0"],
    ]


def test_error_detail_column_only_when_a_proxy_has_one():
    nack = "Didn't find a registered implementation for 'not.a.filter'"
    table = status_table([
        row(PRODUCTPAGE, CDS={"state": "SYNCED", "error": ""}, LDS={"state": "ERROR", "error": nack},
            RDS={"state": "ERROR", "error": "bad route"}),
        row(REVIEWS, CDS={"state": "SYNCED"}),
    ])
    assert table.columns[-1] == "ERROR DETAIL"
    assert table["ERROR DETAIL"].tolist() == [f"LDS: {nack}; RDS: bad route", ""]
    assert table["LDS"].tolist() == ["ERROR", "IGNORED"]


def test_render_like_istioctl():
    table = status_table([row("a", CDS={"state": "SYNCED"})])
    assert render(table) == (
        "NAME     CLUSTER        CDS        LDS         EDS         RDS         ECDS        ISTIOD      VERSION\n"
        "a        Kubernetes     SYNCED     IGNORED     IGNORED     IGNORED     IGNORED     meshkit     1.26.0"
    )


def test_no_proxies_gives_the_header_only():
    header = "NAME     CLUSTER     CDS     LDS     EDS     RDS     ECDS     ISTIOD     VERSION"
    assert render(status_table([])) == header
