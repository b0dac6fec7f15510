"""Istio's Bookinfo, shrunk to JSON and the standard library: productpage, details, reviews, ratings.

Same call graph and failure semantics as the real sample: productpage calls details and reviews
and answers 200 even when a call fails (showing the error); reviews-v1 never calls ratings,
v2 ("black" stars) and v3 ("red" stars) do, and show an error instead of stars when ratings fails.
Every answer names `service`, `version` and `pod` (and, behind mTLS, the caller's SPIFFE id as
`peer`, from `x-forwarded-client-cert`); every outbound call forwards the end-user,
user-agent, request-id and tracing headers so Envoy's routing and tracing see one request.

Not in the real sample: every service also answers httpbin's `/status/<code>` (that status) and
`/delay/<seconds>` (200 after the wait, at most 10 s), an upstream that fails or is slow on
demand, for the retry and circuit-breaking lessons (Istio's own tasks use httpbin there).

Runs as a plain script so it starts fast and needs nothing but Python:
    python bookinfo.py --service reviews --version v2 --pod reviews-v2-... --port 9080
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import socket
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FORWARDED_HEADERS = (
    "end-user", "user-agent", "x-request-id", "cookie",
    "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags", "b3",
    "traceparent", "tracestate", "x-ot-span-context", "x-cloud-trace-context", "sw8",
)

# Downstream timeouts as in the real sample: productpage gives details and reviews 3 s; reviews
# gives ratings 10 s for black stars (v2) and 2.5 s for red stars (v3).
PRODUCTPAGE_TIMEOUT_S = 3.0
RATINGS_TIMEOUT_S = {"v2": 10.0, "v3": 2.5}
STAR_COLOR = {"v2": "black", "v3": "red"}

DETAILS = {
    "type": "paperback", "pages": 200, "publisher": "PublisherA", "language": "English",
    "ISBN-10": "1234567890", "ISBN-13": "123-1234567890", "author": "William Shakespeare", "year": 1595,
}
REVIEWS = (
    ("Reviewer1", "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!"),
    ("Reviewer2", "Absolutely fun and entertaining. The play lacks thematic depth when compared "
                  "to other plays by Shakespeare."),
)
RATINGS = {"Reviewer1": 5, "Reviewer2": 4}
MAX_DELAY_S = 10.0

# Userspace capture (no network namespace per pod): the runtime tells the app where its pod is.
# MESHKIT_POD_LISTEN: the address to serve on; MESHKIT_POD_SOURCE: the source of its calls (how
# the capture process knows which pod called); MESHKIT_POD_HOSTS: the pod's hosts file. Unset
# (iptables capture) the app behaves as in a Kubernetes pod: 0.0.0.0, the kernel's choice, /etc/hosts.
LISTEN = os.environ.get("MESHKIT_POD_LISTEN", "0.0.0.0")
SOURCE = os.environ.get("MESHKIT_POD_SOURCE")


def _pod_hosts() -> dict[str, str]:
    path = os.environ.get("MESHKIT_POD_HOSTS")
    if not path:
        return {}
    table = {}
    with open(path) as hosts:
        for line in hosts:
            address, *names = line.split("#", 1)[0].split() or [""]
            table.update({name: address for name in names})
    return table


HOSTS = _pod_hosts()


def _connect(address: tuple[str, int], timeout: float | None = None, source: object = None) -> socket.socket:
    host, port = address
    return socket.create_connection((HOSTS.get(host, host), port), timeout,
                                    (SOURCE, 0) if SOURCE else None)


def call(service: str, path: str, headers: dict[str, str], timeout: float, port: int = 9080) -> dict[str, Any]:
    """GET http://<service>:<port><path>; the outcome (status, body, answering pod) or the error."""
    conn = http.client.HTTPConnection(service, port, timeout=timeout)
    conn._create_connection = _connect  # the Host header stays `service:port`
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        raw = response.read().decode("utf-8", "replace")
    except OSError as error:
        return {"status": None, "error": f"{type(error).__name__}: {error}", "pod": None, "body": None}
    finally:
        conn.close()
    try:
        body: Any = json.loads(raw)
    except ValueError:
        body = raw
    pod = body.get("pod") if isinstance(body, dict) else None
    return {"status": response.status, "pod": pod, "body": body}


class JsonHandler(BaseHTTPRequestHandler):
    """Answers JSON on kept-alive HTTP/1.1, quietly (the Bookinfo services, the outside world)."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, the second waits for the sidecar's
    # delayed ACK (~40 ms) on every kept-alive connection after the first request.
    disable_nagle_algorithm = True

    def send_json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the app log quiet: Envoy's access log is where requests are observed."""


class Bookinfo(JsonHandler):
    """One Bookinfo service; which one is decided by the server's `service` and `version`."""

    server: BookinfoServer

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/health":
            return self.answer(200, {"status": "ok"})
        if match := re.fullmatch(r"/status/(\d{3})", path):
            return self.answer(int(match.group(1)), {"status": int(match.group(1))})
        if match := re.fullmatch(r"/delay/(\d+(?:\.\d+)?)", path):
            delay = min(float(match.group(1)), MAX_DELAY_S)
            time.sleep(delay)
            return self.answer(200, {"delay_s": delay})
        return self.serve(path)

    def serve(self, path: str) -> None:
        """Answer a path of the service's own API (the generic app answers every path)."""
        handler = {
            "productpage": self.productpage, "details": self.details,
            "reviews": self.reviews, "ratings": self.ratings,
        }[self.server.service]
        return handler(path)

    def identity(self) -> dict[str, str]:
        return {"service": self.server.service, "version": self.server.version, "pod": self.server.pod}

    def caller(self) -> dict[str, str]:
        """Who called, as the sidecar vouches: `x-forwarded-client-cert` (set from the peer's mTLS
        certificate) and its `URI=` (the caller's SPIFFE id). Absent for plaintext callers."""
        xfcc = self.headers.get("x-forwarded-client-cert")
        if not xfcc:
            return {}
        last = xfcc.split(",")[-1]  # APPEND_FORWARD: the nearest hop is the last element
        uri = next((p[4:].strip('"') for p in last.split(";") if p.startswith("URI=")), "")
        return {"peer": uri, "xfcc": xfcc}

    def answer(self, status: int, body: dict[str, Any]) -> None:
        self.send_json(status, {**self.identity(), **self.caller(), **body})

    def not_found(self) -> None:
        self.answer(404, {"error": f"no such path {self.path!r}"})

    def forwarded(self) -> dict[str, str]:
        return {name: value for name in FORWARDED_HEADERS if (value := self.headers.get(name)) is not None}

    def product_id(self, path: str, prefix: str) -> int | None:
        match = re.fullmatch(rf"/{prefix}/(\d+)", path)
        return int(match.group(1)) if match else None

    def productpage(self, path: str) -> None:
        if path not in ("/", "/productpage"):
            return self.not_found()
        headers = self.forwarded()
        details = call("details", "/details/0", headers, PRODUCTPAGE_TIMEOUT_S)
        reviews = call("reviews", "/reviews/0", headers, PRODUCTPAGE_TIMEOUT_S)
        return self.answer(200, {"user": self.headers.get("end-user"), "details": details, "reviews": reviews})

    def details(self, path: str) -> None:
        product = self.product_id(path, "details")
        if product is None:
            return self.not_found()
        return self.answer(200, {"id": product, **DETAILS})

    def reviews(self, path: str) -> None:
        product = self.product_id(path, "reviews")
        if product is None:
            return self.not_found()
        version = self.server.version
        reviews = [{"reviewer": name, "text": text} for name, text in REVIEWS]
        body: dict[str, Any] = {"id": str(product), "reviews": reviews}
        if version in STAR_COLOR:
            ratings = call("ratings", f"/ratings/{product}", self.forwarded(), RATINGS_TIMEOUT_S[version])
            body["ratings_call"] = ratings
            answer = ratings["body"] if ratings["status"] == 200 else None
            stars = answer.get("ratings") if isinstance(answer, dict) else None
            for review in reviews:
                if isinstance(stars, dict) and review["reviewer"] in stars:
                    review["rating"] = {"stars": stars[review["reviewer"]], "color": STAR_COLOR[version]}
                else:
                    review["rating"] = {"error": "Ratings service is currently unavailable"}
        return self.answer(200, body)

    def ratings(self, path: str) -> None:
        product = self.product_id(path, "ratings")
        if product is None:
            return self.not_found()
        return self.answer(200, {"id": product, "ratings": RATINGS})


class BookinfoServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer that knows which Bookinfo service, version and pod it is."""

    daemon_threads = True

    def __init__(self, port: int, service: str, version: str, pod: str) -> None:
        super().__init__((LISTEN, port), Bookinfo)
        self.service, self.version, self.pod = service, version, pod


def main(argv: list[str] | None = None) -> None:
    """Serve one Bookinfo service until killed."""
    parser = argparse.ArgumentParser(description="One service of the Bookinfo demo")
    parser.add_argument("--service", required=True, choices=("productpage", "details", "reviews", "ratings"))
    parser.add_argument("--version", default="v1")
    parser.add_argument("--pod", required=True)
    parser.add_argument("--port", type=int, default=9080)
    args = parser.parse_args(argv)
    BookinfoServer(args.port, args.service, args.version, args.pod).serve_forever()


if __name__ == "__main__":
    main()
