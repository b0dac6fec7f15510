"""The client end of `mesh.curl`, `mesh.tcp` and `mesh.pod_info` on kind, run inside a pod.

`kubectl exec deployment/<d> -c <app> -- python -I /opt/meshkit-apps/pod_client.py curl '<json>'`:
the connection leaves from the app container, so the pod's iptables rules hand it to the sidecar
exactly as the app's own calls; names resolve through the cluster's DNS, as the app's do. It
prints one JSON document on stdout and reads nothing else. Standalone (stdlib and `curl.py`,
copied beside it in the app image), so the same file runs in tests without a cluster.

    pod_client.py curl '{"url": "http://reviews:9080/reviews/0", "n": 3, "headers": {}, "method": "GET"}'
    pod_client.py tcp  '{"host": "tcp-echo", "port": 9000, "text": "hi\\n"}'
    pod_client.py view hosts|addresses|sockets [NAME ...]
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import struct
import sys

# `python -I` leaves the script's folder off sys.path. curl.py is beside this file in the app image
# and one folder up in a meshkit checkout (meshkit/runtime/); stdlib names keep precedence.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [_HERE]
sys.path.append(os.path.dirname(_HERE))

import curl  # noqa: E402


def resolve(host: str) -> str:
    """The IPv4 address the pod's resolver gives `host` (a Service's VIP through cluster DNS)."""
    return socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]


def do_curl(args: dict) -> list[dict]:
    timeout = float(args.get("timeout", 10.0))
    try:
        host, port, path = curl.parse_url(str(args["url"]))
    except ValueError as exc:
        return [{"error": str(exc), "invalid": True}]
    try:
        address = resolve(host)
    except OSError as exc:
        return [{"error": f"unknown host {host!r}: {exc}", "invalid": True}]
    target = curl.target_of(address, host, port, path)
    replies = curl.requests(lambda: socket.create_connection((address, port), timeout=timeout), target,
                            int(args.get("n", 1)), args.get("headers") or {}, str(args.get("method", "GET")), timeout)
    return [reply.as_dict() for reply in replies]


def do_tcp(args: dict) -> dict:
    address, port = resolve(str(args["host"])), int(args["port"])
    return curl.tcp_exchange(lambda: socket.create_connection((address, port), timeout=5.0),
                             str(args.get("text", "hello\n")).encode(), float(args.get("timeout", 3.0)))


def view_hosts(names: list[str]) -> str:
    with open("/etc/hosts") as handle:
        text = handle.read()
    lines = [text.rstrip("\n"), "", "# not in /etc/hosts on Kubernetes: the cluster DNS answers for Services"]
    for name in names:
        try:
            lines.append(f"{resolve(name)}\t{name}\t# DNS")
        except OSError as exc:
            lines.append(f"#\t{name}\t# DNS: {exc}")
    return "\n".join(lines) + "\n"


def _ioctl_ipv4(sock: socket.socket, name: str, request: int) -> str | None:
    try:
        packed = fcntl.ioctl(sock.fileno(), request, struct.pack("256s", name.encode()[:15]))
    except OSError:
        return None
    return socket.inet_ntoa(packed[20:24])


def view_addresses() -> str:
    """As `ip -brief address` (IPv4), from the kernel's interface list: the app image has no iproute2."""
    lines = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            try:
                with open(f"/sys/class/net/{name}/operstate") as handle:
                    state = handle.read().strip().upper()
            except OSError:
                state = "UNKNOWN"
            address = _ioctl_ipv4(sock, name, 0x8915)  # SIOCGIFADDR
            mask = _ioctl_ipv4(sock, name, 0x891B)  # SIOCGIFNETMASK
            prefix = sum(bin(int(part)).count("1") for part in mask.split(".")) if mask else 32
            lines.append(f"{name:<16} {state:<14} {address + '/' + str(prefix) if address else ''}")
    return "\n".join(lines) + "\n"


def view_sockets() -> str:
    """Listening TCP sockets, as `ss -ltn` (no process column: that needs privileges the app lacks)."""
    lines = [f"{'State':<8} {'Local Address:Port'}"]
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        try:
            with open(table) as handle:
                rows = handle.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] != "0A":  # LISTEN
                continue
            raw, port = fields[1].split(":")
            data = bytes.fromhex(raw)
            if family == socket.AF_INET:
                address = socket.inet_ntop(family, data[::-1])
            else:
                address = "[" + socket.inet_ntop(family, b"".join(data[i:i + 4][::-1] for i in range(0, 16, 4))) + "]"
            lines.append(f"{'LISTEN':<8} {address}:{int(port, 16)}")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] not in ("curl", "tcp", "view"):
        print(__doc__, file=sys.stderr)
        return 2
    if argv[1] == "curl":
        result: object = do_curl(json.loads(argv[2]))
    elif argv[1] == "tcp":
        result = do_tcp(json.loads(argv[2]))
    else:
        what = argv[2] if len(argv) > 2 else "hosts"
        views = {"hosts": lambda: view_hosts(argv[3:]), "addresses": view_addresses, "sockets": view_sockets}
        if what not in views:
            print(f"unknown view {what!r}; choose one of {', '.join(views)}", file=sys.stderr)
            return 2
        result = views[what]()
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
