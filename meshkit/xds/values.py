"""Small protobuf value builders shared by the translators: durations, Any, Struct, ADS sources.

Kept in one place so every resource spells `0s`, `{ads: {}}` and typed configs the same way,
the way istiod's `util` package does for its builders.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from envoy.config.core.v3 import base_pb2, config_source_pb2
from google.protobuf import any_pb2, duration_pb2, struct_pb2
from google.protobuf.message import Message


def duration(seconds: float) -> duration_pb2.Duration:
    """A protobuf Duration; `duration(0)` is Istio's explicit `0s` ("disabled") value."""
    d = duration_pb2.Duration()
    d.FromNanoseconds(round(seconds * 1e9))
    return d


_UNITS = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)")


def istio_duration(text: str | float) -> duration_pb2.Duration:
    """An Istio duration as written in YAML (`7s`, `0.5s`, `100ms`, `1h30m`) as a protobuf Duration."""
    if isinstance(text, int | float):
        return duration(text)
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{text!r} is not a duration like '2s' or '500ms'")
    return duration(sum(float(n) * _UNITS[u] for n, u in parts))


def pack(message: Message) -> any_pb2.Any:
    """Wrap a message as `typed_config` (`type.googleapis.com/<full name>`)."""
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def struct(value: Mapping[str, object]) -> struct_pb2.Struct:
    """A Struct from plain JSON-like data (metadata, JSON access-log formats)."""
    s = struct_pb2.Struct()
    s.update(value)
    return s


def filter_metadata(namespaces: Mapping[str, Mapping[str, object]]) -> base_pb2.Metadata:
    """`metadata.filter_metadata` with one Struct per namespace (`istio`, `envoy.transport_socket_match`)."""
    metadata = base_pb2.Metadata()
    for namespace, value in namespaces.items():
        metadata.filter_metadata[namespace].CopyFrom(struct(value))
    return metadata


def ads_config_source() -> config_source_pb2.ConfigSource:
    """Fetch over the ADS stream, never time out waiting (istiod's RDS/EDS config source)."""
    return config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(),
        initial_fetch_timeout=duration(0),
        resource_api_version=config_source_pb2.ApiVersion.V3,
    )
