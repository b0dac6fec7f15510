"""How traffic reaches the sidecar, and the two listener differences `userspace` capture needs.

Istio's sidecar is fed by iptables (`capture: iptables`, Istio's INTERCEPTION_MODE REDIRECT):
virtualOutbound/virtualInbound listen on 0.0.0.0:15001/15006 inside the pod's own network and
learn the pre-redirect destination from the kernel (`original_dst`, SO_ORIGINAL_DST).

With `capture: userspace` (no privileges: every pod shares the host's loopback) a capture
process plays iptables and hands each connection over with a PROXY protocol header naming the
original destination. Only two things differ, both on virtualOutbound and virtualInbound, and
nothing else in LDS/RDS/CDS/EDS does:

1. listener filters `original_dst` then `proxy_protocol` (`allow_requests_without_proxy_protocol`,
   so a connection made straight to 15001 still lands on its own chains, e.g. the loop guard);
2. the address is the pod's own IP instead of 0.0.0.0 (seven sidecars share one network), with
   `stat_prefix` set so the stats keep their Istio names (`listener.0.0.0.0_15001.*`).

The per-port listeners (`0.0.0.0_9080`, `10.96.0.14_9000`) and every name stay Istio's.
"""

from __future__ import annotations

from collections.abc import Sequence

from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.extensions.filters.listener.proxy_protocol.v3 import proxy_protocol_pb2

from ..constants import IPTABLES, USERSPACE
from ..model import Topology, Workload
from . import filters, names

CAPTURE_MODES = (IPTABLES, USERSPACE)
PROXY_PROTOCOL = "envoy.filters.listener.proxy_protocol"

USERSPACE_DIFFERENCE = (
    "capture userspace: virtualOutbound and virtualInbound listen on the pod IP (not 0.0.0.0) and carry "
    "an extra listener filter envoy.filters.listener.proxy_protocol after original_dst: the capture "
    "process, not iptables, tells Envoy the original destination"
)


def proxy_protocol() -> listener_components_pb2.ListenerFilter:
    """Read the original destination from a PROXY v1/v2 header; pass header-less connections as they are."""
    return filters.listener_filter(
        PROXY_PROTOCOL, proxy_protocol_pb2.ProxyProtocol(allow_requests_without_proxy_protocol=True)
    )


def adapt(listeners: Sequence[listener_pb2.Listener], topology: Topology, proxy: Workload) -> list:
    """The listeners as `topology.capture` needs them (unchanged for iptables)."""
    if topology.capture != USERSPACE:
        return list(listeners)
    for listener in listeners:
        if listener.name not in (names.VIRTUAL_OUTBOUND, names.VIRTUAL_INBOUND):
            continue
        port = listener.address.socket_address.port_value
        listener.stat_prefix = names.listener_name(names.WILDCARD, port)
        listener.address.socket_address.address = proxy.ip
        kept = [f for f in listener.listener_filters if f.name != filters.ORIGINAL_DST]
        del listener.listener_filters[:]
        listener.listener_filters.extend([filters.original_dst(), proxy_protocol(), *kept])
    return list(listeners)
