"""The capture process of `userspace` mode: iptables' job, played by one small asyncio program.

istio-init's rules send an app's outbound connections to its sidecar's 15001 and every inbound
connection to the pod's 15006; Envoy reads the pre-redirect destination from the kernel. Without
privileges nothing can redirect, so this process owns the addresses the mesh dials and decides:

    accepts on                     connection from                      hands it to
    Service VIP mirror :port       app of pod P (its source address)    P's sidecar 15001   (ISTIO_OUTPUT)
    Service VIP mirror :port       anything else (a sidecar, a stranger) an endpoint, as kube-proxy would
    pod IP :declared port          127.0.0.6 (a sidecar's inbound hop)  the app itself      (RETURN)
    pod IP :declared port          app of pod P                         P's sidecar 15001   (ISTIO_OUTPUT)
    pod IP :declared port          anything else                        the pod's 15006     (ISTIO_INBOUND)

Sidecar hand-offs start with a PROXY protocol v1 line naming the original destination as Istio
knows it (the Service VIP `10.96.0.x:9080`, the pod IP), which Envoy's `proxy_protocol` listener
filter restores; bytes are then copied both ways, half-closes included.

Stdlib only, started by path (`python -I userspace_capture.py config.json`); one line per
connection on stdout (the runtime's `capture.log`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import signal
import socket
import sys
import time
from dataclasses import dataclass, field

INBOUND_BIND = "127.0.0.6"  # Envoy's inbound clusters connect from here (Istio's exemption)
CHUNK = 65536
EOF_HOLD_S = 0.05  # well under any listener_filters_timeout a lab sets (0.2 s), well over Envoy's accept


def proxy_v1(src: tuple[str, int], dst: tuple[str, int]) -> bytes:
    """A PROXY protocol v1 header: `PROXY TCP4 <src> <dst> <sport> <dport>\\r\\n`."""
    return f"PROXY TCP4 {src[0]} {dst[0]} {src[1]} {dst[1]}\r\n".encode()


@dataclass
class Pod:
    name: str
    ip: str
    app_ip: str
    sidecar: bool
    ports: list[int]


@dataclass
class Service:
    name: str
    vip: str
    mirror: str
    ports: dict[int, int]  # port -> target port
    endpoints: list[str]  # pod IPs
    next: itertools.count = field(default_factory=itertools.count)


class Capture:
    def __init__(self, config: dict) -> None:
        self.outbound_port = int(config.get("outbound_port", 15001))
        self.inbound_port = int(config.get("inbound_port", 15006))
        self.pods = {p["ip"]: Pod(p["name"], p["ip"], p["app_ip"], p["sidecar"], p["ports"]) for p in config["pods"]}
        self.by_app = {p.app_ip: p for p in self.pods.values()}
        self.services = [Service(s["name"], s["vip"], s["mirror"], {int(k): v for k, v in s["ports"].items()},
                                 s["endpoints"]) for s in config["services"]]

    # -- decisions (pure, so tests can read them) ------------------------------------------------
    def decide_service(self, svc: Service, port: int, peer: tuple[str, int]) -> tuple[str, tuple, bytes]:
        caller = self.by_app.get(peer[0])
        if caller is not None and caller.sidecar:
            src = (caller.ip, peer[1])
            return (f"outbound {caller.name}", (caller.ip, self.outbound_port), proxy_v1(src, (svc.vip, port)))
        if not svc.endpoints:
            return ("no endpoints", (), b"")
        endpoint = self.pods[svc.endpoints[next(svc.next) % len(svc.endpoints)]]
        src = (caller.ip if caller else peer[0], peer[1])
        kind, target, header = self.decide_pod(endpoint, svc.ports[port], src, from_app=False)
        return (f"kube-proxy → {kind}", target, header)

    def decide_pod(self, pod: Pod, port: int, peer: tuple[str, int], from_app: bool = True
                   ) -> tuple[str, tuple, bytes]:
        caller = self.by_app.get(peer[0]) if from_app else None
        if peer[0] == INBOUND_BIND or not pod.sidecar:
            return (f"return {pod.name}", (pod.app_ip, port), b"")
        if caller is not None and caller.sidecar:
            src = (caller.ip, peer[1])
            return (f"outbound {caller.name}", (caller.ip, self.outbound_port), proxy_v1(src, (pod.ip, port)))
        return (f"inbound {pod.name}", (pod.ip, self.inbound_port), proxy_v1(peer, (pod.ip, port)))

    # -- plumbing ------------------------------------------------------------------------------
    async def start(self) -> list[asyncio.AbstractServer]:
        servers = []
        for svc in self.services:
            for port in svc.ports:
                servers.append(await asyncio.start_server(self._service_handler(svc, port), svc.mirror, port))
        for pod in self.pods.values():
            for port in pod.ports:
                servers.append(await asyncio.start_server(self._pod_handler(pod, port), pod.ip, port))
        return servers

    def _service_handler(self, svc: Service, port: int):
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peer = writer.get_extra_info("peername")[:2]
            await self._hand_off(reader, writer, peer, f"{svc.vip}:{port}", *self.decide_service(svc, port, peer))
        return handle

    def _pod_handler(self, pod: Pod, port: int):
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peer = writer.get_extra_info("peername")[:2]
            await self._hand_off(reader, writer, peer, f"{pod.ip}:{port}", *self.decide_pod(pod, port, peer))
        return handle

    async def _hand_off(self, reader, writer, peer, original: str, kind: str, target: tuple, header: bytes) -> None:
        line = f"{time.strftime('%H:%M:%S')} {peer[0]}:{peer[1]} → {original}: {kind}"
        try:
            if not target:
                raise OSError("nothing to hand the connection to")
            local = (INBOUND_BIND, 0) if kind.startswith("return") else None
            up_reader, up_writer = await asyncio.open_connection(target[0], target[1], local_addr=local)
        except OSError as error:
            print(f"{line} ✗ {error}", flush=True)
            _reset(writer)
            return
        print(f"{line} → {target[0]}:{target[1]}{' (PROXY)' if header else ''}", flush=True)
        for w in (writer, up_writer):  # no Nagle: a header then a request must not wait for an ACK
            sock = w.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if header:
            up_writer.write(header)
        answered = asyncio.Event()
        await asyncio.gather(_pipe(reader, up_writer, f"{kind} up", hold_eof=answered if header else None),
                             _pipe(up_reader, writer, f"{kind} down", first_byte=answered))
        for w in (writer, up_writer):
            w.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST, as a REDIRECT to a port nobody listens on would."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, label: str = "",
                hold_eof: asyncio.Event | None = None, first_byte: asyncio.Event | None = None) -> None:
    """Copy until EOF, then pass the half-close on (a client's shutdown(SHUT_WR) must arrive).

    Towards a sidecar the half-close waits until the sidecar answered or EOF_HOLD_S passed: Envoy
    closes a connection whose FIN arrives while a listener filter still reads, and proxy_protocol
    is one. Through iptables the FIN reaches 15001 with the data, but no listener filter is there.
    """
    try:
        while chunk := await reader.read(CHUNK):
            if first_byte is not None:
                first_byte.set()
            writer.write(chunk)
            await writer.drain()
        if hold_eof is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(hold_eof.wait(), EOF_HOLD_S)
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        _reset(writer)


async def main(path: str) -> None:
    with open(path) as config_file:
        capture = Capture(json.load(config_file))
    servers = await capture.start()
    print(f"capture ready: {sum(len(s.sockets) for s in servers)} addresses", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
