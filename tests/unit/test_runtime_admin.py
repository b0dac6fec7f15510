"""AdminClient: plain HTTP/1.1 over a socket factory, against a local server and a live Envoy."""

from __future__ import annotations

import importlib.util
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from meshkit.inspect import proxy_config as pc
from meshkit.runtime.admin import AdminClient, AdminError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "envoy"


class FakeAdmin(BaseHTTPRequestHandler):
    """Answers like Envoy's admin: JSON, chunked bodies, 404 for unknown paths."""

    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(f"GET {self.path}")
        if self.path == "/stats?format=json&filter=%5Ecluster%5C.":
            self._send(200, json.dumps({"stats": [{"name": "cluster.a.upstream_rq_total", "value": 3},
                                                  {"name": "server.version", "value": "1.40.0"},
                                                  {"histograms": {"supported_quantiles": []}}]}).encode())
        elif self.path == "/config_dump?include_eds":
            self._send(200, b'{"configs": []}', chunked=True)
        elif self.path == "/clusters?format=json":
            self._send(200, b'{"cluster_statuses": []}')
        else:
            self._send(404, b"invalid path. admin commands are:\n  /clusters\n")

    def do_POST(self) -> None:
        self.seen.append(f"POST {self.path} {self.headers.get('Content-Length')}")
        self._send(200, b"OK\n")

    def _send(self, status: int, body: bytes, chunked: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            half = len(body) // 2
            for part in (body[:half], body[half:]):
                self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def admin() -> Iterator[AdminClient]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeAdmin)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    FakeAdmin.seen = []
    try:
        yield AdminClient(lambda: socket.create_connection(("127.0.0.1", port)))
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_json_endpoints_and_chunked_bodies(admin):
    assert admin.config_dump() == {"configs": []}
    assert admin.clusters() == {"cluster_statuses": []}
    assert FakeAdmin.seen == ["GET /config_dump?include_eds", "GET /clusters?format=json"]


def test_stats_by_name_with_envoys_regex_filter(admin):
    assert admin.stats(r"^cluster\.") == {"cluster.a.upstream_rq_total": 3, "server.version": "1.40.0"}


def test_post_sends_an_empty_body(admin):
    assert admin.post("/healthcheck/fail") == b"OK\n"
    assert FakeAdmin.seen == ["POST /healthcheck/fail 0"]


def test_non_200_raises_with_status_and_text(admin):
    with pytest.raises(AdminError, match=r"GET /nope -> HTTP 404: invalid path") as caught:
        admin.get("/nope")
    assert caught.value.status == 404


def test_garbage_is_not_http():
    left, right = socket.socketpair()
    right.sendall(b"SSH-2.0-OpenSSH\r\n")
    right.shutdown(socket.SHUT_WR)
    with right, pytest.raises(AdminError, match="not an HTTP response"):
        AdminClient(lambda: left).get("/server_info")


@pytest.mark.skipif(not (FIXTURES.parents[2] / ".venv" / "bin" / "envoy").exists(), reason="no Envoy binary")
def test_live_envoy_regenerates_the_committed_fixtures(tmp_path):
    """The generator (which reads Envoy through AdminClient) reproduces every table we test on."""
    spec = importlib.util.spec_from_file_location("generate", FIXTURES / "generate.py")
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    generate.generate(tmp_path)

    def tables(directory: Path) -> list[list[list[str]]]:
        dump = json.loads((directory / "config_dump.json").read_text())
        clusters = json.loads((directory / "clusters.json").read_text())
        routes = sorted(pc.routes(dump).values.tolist())  # RDS order is Envoy's hash order
        return [pc.listeners(dump).values.tolist(), routes, pc.clusters(dump).values.tolist(),
                pc.endpoints(clusters).values.tolist()]

    assert tables(tmp_path) == tables(FIXTURES)
