"""The request meshkit's curl writes: one Host line, the caller's when given."""

from __future__ import annotations

import socket

from meshkit.runtime import curl


def sent_request(headers: dict[str, str]) -> str:
    ours, theirs = socket.socketpair()
    theirs.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
    reply = curl.exchange(ours, curl.Target("10.96.0.12", 9080, "reviews:9080", "/r"), headers)
    assert reply.status == 200
    request = theirs.recv(65536).decode()
    theirs.close()
    return request


def test_default_host_comes_from_the_url():
    lines = sent_request({}).split("\r\n")
    assert lines[1] == "Host: reviews:9080"


def test_given_host_replaces_the_urls_host():
    lines = sent_request({"Host": "nobody.example"}).split("\r\n")
    hosts = [line for line in lines if line.lower().startswith("host:")]
    assert hosts == ["Host: nobody.example"]
