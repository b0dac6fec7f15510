"""The generic demo app, as a real process on loopback: identity in JSON, its calls, TCP echo."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest

from meshkit.runtime.apps import HERE

APP = HERE / "generic.py"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_listening(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else "exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise AssertionError(f"nothing listens on {port}")


@pytest.fixture
def start() -> Iterator:
    started: list[subprocess.Popen] = []

    def run(*args: str, ports: list[int]) -> subprocess.Popen:
        env = {"MESHKIT_POD_LISTEN": "127.0.0.1", "PATH": "/usr/bin:/bin"}
        process = subprocess.Popen([sys.executable, "-I", str(APP), *args], env=env, stderr=subprocess.PIPE)
        started.append(process)
        for port in ports:
            wait_listening(port, process)
        return process

    yield run
    for process in started:
        process.kill()
        process.wait()


def get(port: int, path: str = "/", headers: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_answers_with_identity_and_calls_what_it_is_told(start):
    api, web, echo = free_port(), free_port(), free_port()
    start("--pod", "api-abc-12345", "--app", "api", "--version", "v2", "--service-account", "api-sa",
          "--port", str(api), "--tcp-port", str(echo), ports=[api, echo])
    start("--pod", "web-def-67890", "--app", "web", "--port", str(web),
          "--call", f"http://127.0.0.1:{api}/items?id=7", "--call", f"http://127.0.0.1:{free_port()}/down",
          ports=[web])
    status, body = get(web, "/anything?q=1", {"x-request-id": "req-1", "end-user": "jason"})
    assert status == 200
    assert (body["pod"], body["app"], body["args"], body["method"]) == ("web-def-67890", "web", {"q": "1"}, "GET")
    reached, refused = body["calls"]
    assert reached["status"] == 200 and reached["pod"] == "api-abc-12345"
    assert reached["body"]["version"] == "v2" and reached["body"]["service_account"] == "api-sa"
    assert reached["body"]["args"] == {"id": "7"}
    forwarded = reached["body"]["headers"]
    assert (forwarded["x-request-id"], forwarded["end-user"], forwarded["x-meshkit-depth"]) == ("req-1", "jason", "1")
    assert refused["status"] is None and "ConnectionRefused" in refused["error"]
    assert get(api, "/status/503")[0] == 503
    with socket.create_connection(("127.0.0.1", echo), timeout=5) as conn:
        conn.sendall(b"hello\n")
        assert conn.recv(100) == b"api-abc-12345: hello\n"


def test_a_call_loop_stops(start):
    port = free_port()
    start("--pod", "loop-abc-12345", "--port", str(port), "--call", f"http://127.0.0.1:{port}/", ports=[port])
    status, body = get(port)
    depth = 0
    while isinstance(body.get("calls"), list):
        body = body["calls"][0]["body"]
        depth += 1
    assert status == 200 and depth == 10 and body["calls"].startswith("not made: 10 hops deep")
