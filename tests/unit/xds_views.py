"""Test helpers that look inside generated xDS resources (typed configs, filters by name)."""

from __future__ import annotations

from collections.abc import Iterator

from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from google.protobuf.message import Message

HCM = http_connection_manager_pb2.HttpConnectionManager
TcpProxy = tcp_proxy_pb2.TcpProxy


def unpack(any_message: Message, cls: type[Message]) -> Message:
    out = cls()
    assert any_message.Unpack(out), f"typed_config is {any_message.type_url}, not {cls.DESCRIPTOR.full_name}"
    return out


def by_name(items: Iterator[Message] | list, name: str) -> Message:
    matches = [i for i in items if i.name == name]
    assert len(matches) == 1, f"expected one {name!r}, found {len(matches)}"
    return matches[0]


def chains(listener: listener_pb2.Listener, name: str) -> list[listener_components_pb2.FilterChain]:
    return [c for c in listener.filter_chains if c.name == name]


def only_filter(chain: listener_components_pb2.FilterChain, cls: type[Message]) -> Message:
    """The single network filter of a chain, unpacked (Istio's own filters are not emitted)."""
    assert len(chain.filters) == 1, [f.name for f in chain.filters]
    return unpack(chain.filters[0].typed_config, cls)


def all_network_filters(listeners: list[listener_pb2.Listener]) -> Iterator[listener_components_pb2.Filter]:
    for listener in listeners:
        for chain in [*listener.filter_chains, listener.default_filter_chain]:
            yield from chain.filters
