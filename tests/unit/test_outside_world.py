"""The outside world's server, the pods' hosts-file entry for it, and TCP access-log matching in curl."""

from __future__ import annotations

import http.client
import json
import threading
from pathlib import Path

import pytest

from meshkit.model import bookinfo
from meshkit.runtime import curl, netns
from meshkit.runtime.apps.outside import Outside, OutsideServer


@pytest.fixture
def outside():
    server = OutsideServer(("127.0.0.1", 0), Outside)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _get(port: int, path: str) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", path, headers={"Host": "httpbin.example.com:9080"})
    response = conn.getresponse()
    return response.status, json.loads(response.read())


def test_outside_answers_json_that_names_it(outside: int):
    status, body = _get(outside, "/get?x=1")
    assert status == 200
    assert body["service"] == "outside" and body["pod"] == "outside-world"
    assert body["port"] == outside and body["path"] == "/get?x=1" and body["host"] == "httpbin.example.com:9080"


def test_outside_status_path_answers_that_code(outside: int):
    status, body = _get(outside, "/status/503")
    assert status == 503 and body["pod"] == "outside-world"


def test_hosts_file_names_the_outside_world():
    topology = bookinfo(pod_subnet="10.244.7.0/24")
    pod = topology.workload("productpage-v1")
    lines = netns.hosts_lines(topology, pod, {"httpbin.example.com": "10.244.7.1"})
    assert lines[-1] == "10.244.7.1\thttpbin.example.com"
    assert netns.hosts_lines(topology, pod)[-1].endswith("tcp-echo.default.svc.cluster.local")


def _line(**fields) -> str:
    return json.dumps({"request_id": None, "response_flags": "-", "upstream_cluster": None, **fields}) + "\n"


def test_attach_access_log_matches_tcp_lines_by_client_address(tmp_path: Path):
    log = tmp_path / "access.log"
    old = _line(downstream_remote_address="10.244.7.10:40000", upstream_cluster="PassthroughCluster")
    log.write_text(old)
    offset = curl.log_size(log)
    http_reply = curl.Reply("abc", 200, 1.0, client_address="10.244.7.10:40001")
    reset = curl.Reply("def", None, 0.1, error="connection reset by peer", client_address="10.244.7.10:40000")
    with log.open("a") as handle:  # the app's own request from a port the reset reply's socket had used
        handle.write(_line(request_id="app", downstream_remote_address="10.244.7.10:40000", response_flags="DI"))
        handle.write(_line(request_id="abc", downstream_remote_address="10.244.7.10:40001",
                           upstream_cluster="outbound|9080||reviews.default.svc.cluster.local", route_name="default"))
        handle.write(_line(downstream_remote_address="10.244.7.10:40000", response_flags="UH",
                           upstream_cluster="BlackHoleCluster"))
    curl.attach_access_log([http_reply, reset], log, wait_s=0.5, offset=offset)
    assert (http_reply.upstream_cluster, http_reply.route_name) == ("outbound|9080||reviews.default.svc.cluster.local",
                                                                    "default")
    # the older line with the same (reused) client port was skipped thanks to the offset
    assert (reset.flags, reset.upstream_cluster) == ("UH", "BlackHoleCluster")


def test_bookinfo_answers_httpbin_status_and_delay():
    from meshkit.runtime.apps.bookinfo import BookinfoServer

    server = BookinfoServer(0, "ratings", "v1", "ratings-v1-x")
    server.server_address = ("127.0.0.1", server.server_address[1])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        status, body = _get(port, "/status/503")
        assert status == 503 and body["pod"] == "ratings-v1-x"
        status, body = _get(port, "/delay/0.2")
        assert status == 200 and body["delay_s"] == 0.2
    finally:
        server.shutdown()
        server.server_close()
