"""Pods as Linux network namespaces on a bridge, the way a CNI plugin wires them.

Each pod gets its own netns with `eth0` (one end of a veth whose other end sits on the mesh's
bridge), an address from the pod subnet, `lo` up and a default route via the bridge address; the
host forwards nothing, so a pod reaches the other pods and the host's bridge address only.
`/etc/netns/<ns>/hosts` plays cluster DNS for programs started with `ip netns exec`.
"""

from __future__ import annotations

import ctypes
import os
import socket
import subprocess
import threading
from collections.abc import Mapping, Sequence
from ipaddress import ip_address
from pathlib import Path

from ..model import Topology, Workload
from ..model.topology import CLUSTER_DOMAIN
from .errors import RuntimeProblem

NETNS_RUN = Path("/run/netns")
NETNS_ETC = Path("/etc/netns")
CLONE_NEWNET = 0x40000000
IFNAMSIZ = 15  # longest interface name Linux accepts

_CLEANUP_FIX = "look at the message above; LocalRuntime.cleanup(home) removes what a failed start left"


def run(args: Sequence[str], *, input: str | None = None, fix: str = _CLEANUP_FIX) -> str:
    """Run a command, returning stdout; a failure becomes a RuntimeProblem quoting its stderr."""
    try:
        result = subprocess.run(list(args), input=input, capture_output=True, text=True, check=False)
    except FileNotFoundError as missing:
        raise RuntimeProblem(f"{args[0]} is not installed", "install iproute2, iptables and util-linux") from missing
    if result.returncode != 0:
        output = result.stderr.strip() or result.stdout.strip()
        raise RuntimeProblem(f"`{' '.join(args)}` failed: {output}", fix)
    return result.stdout


def command_in(netns: str, argv: Sequence[str], *, uid: int | None = None) -> list[str]:
    """`argv` run inside `netns` (with its /etc/netns files), as `uid`/gid `uid` when given."""
    prefix = ["ip", "netns", "exec", netns]
    if uid is not None:
        prefix += ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]
    return [*prefix, *argv]


def usable_by_any_uid(path: Path) -> bool:
    """Whether a uid with no special rights can reach `path` and read or run it (no 0700 /root above)."""
    path = path.resolve()
    return all(p.stat().st_mode & 0o001 for p in path.parents) and bool(path.stat().st_mode & 0o005)


def _check_ifname(name: str) -> None:
    if len(name) > IFNAMSIZ:
        raise RuntimeProblem(f"interface name {name!r} is longer than {IFNAMSIZ} characters",
                             "use a shorter mesh id or pod index")


def create_bridge(name: str, address: str, prefixlen: int) -> None:
    """The host side of the pod network: a bridge holding the pods' gateway address."""
    _check_ifname(name)
    run(["ip", "link", "add", name, "type", "bridge"])
    run(["ip", "-batch", "-"], input=f"addr add {address}/{prefixlen} dev {name}\nlink set {name} up\n")


def create_pod(netns: str, veth: str, bridge: str, ip: str, prefixlen: int, gateway: str) -> None:
    """A pod's network: netns, veth (`eth0` inside) on `bridge`, address, lo up, default route."""
    _check_ifname(veth)
    run(["ip", "netns", "add", netns])
    run(["ip", "-batch", "-"], input=(
        f"link add {veth} type veth peer name eth0 netns {netns}\n"
        f"link set {veth} master {bridge} up\n"
    ))
    run(["ip", "-n", netns, "-batch", "-"], input=(
        f"addr add {ip}/{prefixlen} dev eth0\n"
        "link set eth0 up\n"
        "link set lo up\n"
        f"route add default via {gateway}\n"
    ))


def allow_low_ports(netns: str) -> None:
    """Let unprivileged uids bind ports below 1024 in `netns`, as container runtimes set it up in a pod
    (an app on port 80 runs as uid 1000 here); the setting belongs to the netns, not the host."""
    run(["ip", "netns", "exec", netns, "sysctl", "-q", "-w", "net.ipv4.ip_unprivileged_port_start=0"])


def _delete(args: list[str], path: Path) -> None:
    """Delete what `path` shows exists; one gone already (or meanwhile, by a racing cleanup) is fine."""
    try:
        if path.exists():
            run(args)
    except RuntimeProblem:
        if path.exists():
            raise


def delete_netns(netns: str) -> None:
    """Remove a netns (its veth goes with it)."""
    _delete(["ip", "netns", "delete", netns], NETNS_RUN / netns)


def delete_link(name: str) -> None:
    """Remove a host interface such as the bridge."""
    _delete(["ip", "link", "delete", name], Path("/sys/class/net", name))


def netns_pids(netns: str) -> list[int]:
    """Every process living in `netns` (none if it does not exist)."""
    if not (NETNS_RUN / netns).exists():
        return []
    return [int(pid) for pid in run(["ip", "netns", "pids", netns]).split()]


def hosts_lines(topology: Topology, workload: Workload, extra: Mapping[str, str] | None = None) -> list[str]:
    """/etc/hosts for a pod: Kubernetes names of every Service, as cluster DNS would answer them.

    `extra` adds names outside the mesh (host name → address), such as the outside world's.
    """
    lines = ["127.0.0.1\tlocalhost", f"{workload.ip}\t{workload.name}"]
    for service in topology.services:
        qualified = f"{service.name}.{service.namespace}"
        names = [qualified, f"{qualified}.svc", service.fqdn]
        if service.namespace == workload.namespace:
            names.insert(0, service.name)
        lines.append(f"{service.vip}\t{' '.join(names)}")
    lines += [f"{address}\t{name}" for name, address in (extra or {}).items()]
    return lines


def write_etc(netns: str, topology: Topology, workload: Workload, extra: Mapping[str, str] | None = None) -> Path:
    """Write /etc/netns/<ns>/{hosts,resolv.conf}; `ip netns exec` bind-mounts them over /etc.

    resolv.conf points at 127.0.0.1 inside the pod, where nothing listens: names missing from the
    hosts file fail at once instead of waiting on a resolver the pod cannot reach.
    """
    directory = NETNS_ETC / netns
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "hosts").write_text("\n".join(hosts_lines(topology, workload, extra)) + "\n")
    search = f"{workload.namespace}.{CLUSTER_DOMAIN} {CLUSTER_DOMAIN} {CLUSTER_DOMAIN.removeprefix('svc.')}"
    (directory / "resolv.conf").write_text(f"search {search}\nnameserver 127.0.0.1\noptions ndots:5\n")
    return directory


def resolve(netns: str, host: str) -> str:
    """`host` as an IP, looked up in the pod's hosts file like its programs would."""
    try:
        return str(ip_address(host))
    except ValueError:
        pass
    hosts = NETNS_ETC / netns / "hosts"
    if hosts.exists():
        for line in hosts.read_text().splitlines():
            address, *names = line.split()
            if host.rstrip(".") in names:
                return address
    raise RuntimeProblem(
        f"{host!r} does not resolve inside pod network {netns}",
        "use a Service name of the mesh (reviews, reviews.default.svc.cluster.local, ...) or an IP",
    )


def connect(netns: str, host: str, port: int, timeout: float = 5.0) -> socket.socket:
    """A TCP connection made from inside `netns` by this process (so as this process's uid).

    setns() switches only the calling thread, so a short-lived thread enters the netns, creates and
    connects the socket, and ends; the socket keeps the netns it was born in. As uid 0 a connection
    to a Service VIP is captured by the pod's iptables into its sidecar (port 15001), and one to
    127.0.0.1:15000 reaches that sidecar's admin.
    """
    address = (resolve(netns, host), port)
    path = NETNS_RUN / netns
    if not path.exists():
        raise RuntimeProblem(f"pod network {netns} does not exist", "start the mesh first (meshkit up)")
    outcome: list[socket.socket | BaseException] = []

    def enter_and_connect() -> None:
        try:
            with open(path, "rb") as ns:
                if ctypes.CDLL(None, use_errno=True).setns(ns.fileno(), CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns into {netns}: {os.strerror(err)}")
            outcome.append(socket.create_connection(address, timeout=timeout))
        except BaseException as error:  # handed to the caller's thread
            outcome.append(error)

    worker = threading.Thread(target=enter_and_connect, name=f"connect-{netns}")
    worker.start()
    worker.join()
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]
