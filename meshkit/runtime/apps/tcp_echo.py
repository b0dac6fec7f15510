"""The TCP echo service of Istio's tcp-echo sample: every line comes back prefixed with the pod name.

Runs as a plain script (stdlib only): `python tcp_echo.py --port 9000 --pod tcp-echo-v1-...`.
"""

from __future__ import annotations

import argparse
import os
import socketserver


class Echo(socketserver.StreamRequestHandler):
    """Echo each line as `<pod>: <line>` until the client closes."""

    server: EchoServer

    def handle(self) -> None:
        prefix = f"{self.server.pod}: ".encode()
        for line in self.rfile:
            self.wfile.write(prefix + line)


class EchoServer(socketserver.ThreadingTCPServer):
    """A threading TCP server that knows its pod name."""

    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, port: int, pod: str) -> None:
        super().__init__((os.environ.get("MESHKIT_POD_LISTEN", "0.0.0.0"), port), Echo)
        self.pod = pod


def main(argv: list[str] | None = None) -> None:
    """Serve until killed."""
    parser = argparse.ArgumentParser(description="TCP echo, prefixed with the pod name")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--pod", required=True)
    args = parser.parse_args(argv)
    EchoServer(args.port, args.pod).serve_forever()


if __name__ == "__main__":
    main()
