"""The "outside world" of the local mesh: a plain HTTP server on the host, not in any pod.

It plays an external API (`httpbin.example.com` in the pods' hosts files) for egress lessons:
no sidecar in front of it, reachable from the pods only because it listens on the bridge's
gateway address (private to the mesh's pods and the host). Every answer is JSON naming it:

    {"service": "outside", "pod": "outside-world", "version": "", "port": 8080, "path": "/get", ...}

`/status/<code>` answers that code (as httpbin does), `/delay/<s>` waits first (at most 10 s).

A ServiceEntry declares it with `resolution: STATIC` and the address as endpoint, or with
`resolution: DNS`: the sidecars' c-ares resolver finds the name in the pod's /etc/hosts.
Runs as a plain script (stdlib only, beside bookinfo.py), one thread per port:
    python outside.py --address 10.244.7.1 --port 9080 --port 8080 [--mesh-home H]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import threading
import time
from http.server import ThreadingHTTPServer

# `python -I` leaves the script's folder off sys.path; the Bookinfo app, whose JSON handler this
# shares, is beside it.
sys.path[:0] = [os.path.dirname(os.path.abspath(__file__))]

import bookinfo  # noqa: E402

SERVICE = "outside"
POD = "outside-world"
MAX_DELAY_S = 10.0


class Outside(bookinfo.JsonHandler):
    """Answer any path with JSON that names the outside world and echoes the request."""

    server: OutsideServer

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        status = 200
        if match := re.fullmatch(r"/status/(\d{3})", path):
            status = int(match.group(1))
        elif match := re.fullmatch(r"/delay/(\d+(?:\.\d+)?)", path):
            time.sleep(min(float(match.group(1)), MAX_DELAY_S))
        self.send_json(status, {
            "service": SERVICE, "pod": POD, "version": "",
            "port": self.server.server_address[1], "path": self.path,
            "host": self.headers.get("host"), "client": self.client_address[0],
            "headers": dict(self.headers.items()),
        })

    do_POST = do_PUT = do_DELETE = do_GET


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
