"""The "outside world" of the local mesh: a plain HTTP server on the host, not in any pod.

It plays an external API (`httpbin.example.com` in the pods' hosts files) for egress lessons:
no sidecar in front of it, reachable from the pods only because it listens on the bridge's
gateway address (private to the mesh's pods and the host). Every answer is JSON naming it:

    {"service": "outside", "pod": "outside-world", "version": "", "port": 8080, "path": "/get", ...}

`/status/<code>` answers that code (as httpbin does), `/delay/<s>` waits first (at most 10 s).

A ServiceEntry declares it with `resolution: STATIC` and the address as endpoint, or with
`resolution: DNS`: the sidecars' c-ares resolver finds the name in the pod's /etc/hosts.
Runs as a plain script (stdlib only), one thread per port:
    python outside.py --address 10.244.7.1 --port 9080 --port 8080 [--mesh-home H]
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SERVICE = "outside"
POD = "outside-world"
MAX_DELAY_S = 10.0


class Outside(BaseHTTPRequestHandler):
    """Answer any path with JSON that names the outside world and echoes the request."""

    server: OutsideServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, the second waits for the sidecar's
    # delayed ACK (~40 ms) on every kept-alive connection after the first request.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        status = 200
        if match := re.fullmatch(r"/status/(\d{3})", path):
            status = int(match.group(1))
        elif match := re.fullmatch(r"/delay/(\d+(?:\.\d+)?)", path):
            time.sleep(min(float(match.group(1)), MAX_DELAY_S))
        self.answer(status, {
            "service": SERVICE, "pod": POD, "version": "",
            "port": self.server.server_address[1], "path": self.path,
            "host": self.headers.get("host"), "client": self.client_address[0],
            "headers": dict(self.headers.items()),
        })

    do_POST = do_PUT = do_DELETE = do_GET

    def answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the client sidecar's access log is where requests are observed."""


class OutsideServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main(argv: list[str] | None = None) -> None:
    """Serve on every `--port` of `--address` until killed."""
    parser = argparse.ArgumentParser(description="The mesh's outside world: plain HTTP, no sidecar")
    parser.add_argument("--address", required=True, help="the bridge's gateway address (pod-private)")
    parser.add_argument("--port", type=int, action="append", required=True)
    parser.add_argument("--mesh-home", default="", help="unused: names the owning mesh in `ps` output")
    args = parser.parse_args(argv)
    servers = [OutsideServer((args.address, port), Outside) for port in args.port]
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    servers[0].serve_forever()


if __name__ == "__main__":
    main()
