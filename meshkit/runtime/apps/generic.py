"""meshkit's stand-in for any container image of a manifest: the pod's identity over HTTP, echo over TCP.

Every HTTP port answers every path with the pod's identity in JSON (`pod`, `app`, `version`,
`namespace`, `service_account`, and behind mTLS the caller's SPIFFE id as `peer`), plus what
httpbin's `/get` shows (`method`, `url`, `args`, `headers`), and the outcome of each URL it was told
to call (`--call`, from the `meshkit.io/calls` annotation or the MESHKIT_CALLS env var), made per
request with the tracing headers forwarded, as Bookinfo's productpage calls details and reviews.
`/health`, `/status/<code>` and `/delay/<s>` behave as in the Bookinfo apps. TCP-only ports echo
each line prefixed with the pod name, like the tcp-echo sample.

A call chain that loops (a calls b calls a) stops after MAX_DEPTH hops (`x-meshkit-depth`).

    python generic.py --pod web-6c9f-x2k4p --app web --port 8080 --tcp-port 9000 --call http://api:8000/
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from urllib.parse import parse_qs, urlsplit

# `python -I` leaves the script's folder off sys.path; the Bookinfo app and the echo are beside it.
sys.path[:0] = [os.path.dirname(os.path.abspath(__file__))]

import bookinfo  # noqa: E402
import tcp_echo  # noqa: E402

MAX_DEPTH = 10
DEPTH_HEADER = "x-meshkit-depth"
CALL_TIMEOUT_S = 3.0


def call_url(url: str, headers: dict[str, str]) -> dict:
    """GET `url` (http://host[:port]/path) from this pod; the outcome as Bookinfo's calls report it."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme != "http" or not parts.hostname:
        return {"url": url, "status": None, "error": "only http://host[:port]/path URLs are called", "pod": None}
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return {"url": url, **bookinfo.call(parts.hostname, path, headers, CALL_TIMEOUT_S, parts.port or 80)}


class Generic(bookinfo.Bookinfo):
    """Answers every path with who this pod is and what its calls returned."""

    server: GenericServer

    def identity(self) -> dict[str, str]:
        s = self.server
        return {"pod": s.pod, "app": s.service, "version": s.version, "namespace": s.namespace,
                "service_account": s.service_account}

    def serve(self, path: str) -> None:
        depth = int(self.headers.get(DEPTH_HEADER, "0") or 0)
        body: dict = {
            "method": self.command, "port": self.server.server_address[1],
            "url": f"http://{self.headers.get('host', '')}{self.path}",
            "args": {k: v if len(v) > 1 else v[0] for k, v in parse_qs(urlsplit(self.path).query).items()},
            "headers": dict(self.headers.items()),
        }
        if self.server.calls:
            if depth >= MAX_DEPTH:
                body["calls"] = f"not made: {depth} hops deep (a call loop?)"
            else:
                headers = {**self.forwarded(), DEPTH_HEADER: str(depth + 1)}
                body["calls"] = [call_url(url, headers) for url in self.server.calls]
        return self.answer(200, body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0") or 0))
        return self.do_GET()

    do_PUT = do_PATCH = do_DELETE = do_POST


class GenericServer(bookinfo.BookinfoServer):
    """One HTTP port of the pod, knowing the pod's identity and what to call."""

    def __init__(self, port: int, args: argparse.Namespace) -> None:
        super().__init__(port, args.app, args.version, args.pod)
        self.RequestHandlerClass = Generic
        self.namespace, self.service_account, self.calls = args.namespace, args.service_account, args.call


def main(argv: list[str] | None = None) -> None:
    """Serve every port until killed."""
    parser = argparse.ArgumentParser(description="meshkit's generic demo app")
    parser.add_argument("--pod", required=True)
    parser.add_argument("--app", default="")
    parser.add_argument("--version", default="")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--service-account", default="default")
    parser.add_argument("--port", type=int, action="append", default=[], help="a port to serve (repeatable)")
    parser.add_argument("--tcp-port", type=int, action="append", default=[], help="a port that echoes instead")
    parser.add_argument("--call", action="append", default=[], help="a URL to GET per request (repeatable)")
    args = parser.parse_args(argv)
    servers = [tcp_echo.EchoServer(port, args.pod) if port in args.tcp_port else GenericServer(port, args)
               for port in dict.fromkeys([*args.port, *args.tcp_port])]
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    servers[0].serve_forever()


if __name__ == "__main__":
    main()
