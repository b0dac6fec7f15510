"""Immutable per-proxy snapshots: every resource packed once, content-hash versions per type and resource.

A snapshot is what the boss means to tell one proxy. Resources are packed into `Any` with
deterministic serialization when the snapshot is built, so every stream shares the same bytes and
the version of a type is a hash of its content: identical content gives the identical version, even
across control-plane restarts (a restarted counter would make Envoy think nothing changed). Delta
xDS versions each resource on its own: `resource_versions[type_url][name]` hashes that resource's
serialized `Any`, so a reconnecting Envoy's `initial_resource_versions` compare equal to it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from google.protobuf import any_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

from .resources import resource_name, type_url

VERSION_LENGTH = 16  # hex digits of SHA-256 kept: short enough to read, long enough never to collide


def content_version(resources: Mapping[str, any_pb2.Any]) -> str:
    """Short SHA-256 of the (name, serialized resource) pairs, independent of insertion order."""
    digest = hashlib.sha256()
    for name in sorted(resources):
        value = resources[name].value
        for part in (name.encode(), value):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
    return digest.hexdigest()[:VERSION_LENGTH]


EMPTY_VERSION = content_version({})


def resource_version(resource: any_pb2.Any) -> str:
    """Short SHA-256 of one packed resource (its type URL and serialized bytes)."""
    digest = hashlib.sha256(resource.type_url.encode() + b"\0" + resource.value)
    return digest.hexdigest()[:VERSION_LENGTH]


@dataclass(frozen=True)
class Snapshot:
    """What one proxy should hold: `resources[type_url][name] -> Any`, `versions[type_url]` and
    `resource_versions[type_url][name]` (delta's per-resource versions)."""

    resources: Mapping[str, Mapping[str, any_pb2.Any]]
    versions: Mapping[str, str]
    resource_versions: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @classmethod
    def build(cls, resources: Mapping[str, Iterable[Message]]) -> Snapshot:
        """Pack and hash `{type_url: messages}`; rejects a mistyped message or a duplicate name."""
        packed: dict[str, Mapping[str, any_pb2.Any]] = {}
        for url, messages in resources.items():
            by_name: dict[str, any_pb2.Any] = {}
            for message in messages:
                if type_url(message) != url:
                    raise ValueError(f"{type_url(message)} resource listed under {url}")
                name = resource_name(message)
                if name in by_name:
                    raise ValueError(f"duplicate {url.rsplit('.', 1)[-1]} name {name!r}")
                any_message = any_pb2.Any()
                any_message.Pack(message, deterministic=True)
                by_name[name] = any_message
            packed[url] = MappingProxyType(by_name)
        versions = {url: content_version(by_name) for url, by_name in packed.items()}
        per_resource = {url: MappingProxyType({name: resource_version(a) for name, a in by_name.items()})
                        for url, by_name in packed.items()}
        return cls(MappingProxyType(packed), MappingProxyType(versions), MappingProxyType(per_resource))

    def version(self, type_url: str) -> str:
        """The type's version; a type the snapshot does not mention has the stable empty version."""
        return self.versions.get(type_url, EMPTY_VERSION)

    def versions_of(self, type_url: str) -> Mapping[str, str]:
        """Name → per-resource version of a type (empty for a type the snapshot does not mention)."""
        return self.resource_versions.get(type_url, {})

    def named(self, type_url: str, names: Iterable[str] | None = None) -> list[any_pb2.Any]:
        """The packed resources of a type, all of them (`names=None`) or those of `names` that exist."""
        by_name = self.resources.get(type_url, {})
        if names is None:
            return list(by_name.values())
        return [by_name[name] for name in sorted(set(names)) if name in by_name]

    def messages(self, type_url: str) -> list[Message]:
        """Fresh unpacked copies of a type's resources (the snapshot itself stays immutable)."""
        by_name = self.resources.get(type_url, {})
        if not by_name:
            return []
        full_name = type_url.rsplit("/", 1)[-1]
        message_class = message_factory.GetMessageClass(
            descriptor_pool.Default().FindMessageTypeByName(full_name))
        out = []
        for any_message in by_name.values():
            message = message_class()
            any_message.Unpack(message)
            out.append(message)
        return out
