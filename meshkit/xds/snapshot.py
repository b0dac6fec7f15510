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
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from google.protobuf import any_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

from .resources import resource_name, type_url

VERSION_LENGTH = 16  # hex digits of SHA-256 kept: short enough to read, long enough never to collide


def content_version(resource_versions: Mapping[str, str]) -> str:
    """Short SHA-256 of the (name, resource version) pairs, independent of insertion order: a type's
    version changes exactly when one of its resources does, and costs a hash of the names, not of
    every serialized byte again."""
    # each entry: the name's length, the name, its fixed-length version: no two sets read alike
    text = "".join(f"{len(name)}:{name}{resource_versions[name]}" for name in sorted(resource_versions))
    return hashlib.sha256(text.encode()).hexdigest()[:VERSION_LENGTH]


EMPTY_VERSION = content_version({})


def resource_version(resource: any_pb2.Any) -> str:
    """Short SHA-256 of one packed resource (its type URL and serialized bytes)."""
    digest = hashlib.sha256(resource.type_url.encode() + b"\0" + resource.value)
    return digest.hexdigest()[:VERSION_LENGTH]


def _pack(message: Message, url: str, packed: MutableMapping[Any, Any] | None) -> tuple[any_pb2.Any, str]:
    """`message` packed deterministically, and its name; once per message object when a cache is
    given (the cache holds the message, so its id is not reused while the entry lives)."""
    if packed is not None and (hit := packed.get(id(message))) is not None and hit[0] is message:
        return hit[1], hit[2]
    if type_url(message) != url:
        raise ValueError(f"{type_url(message)} resource listed under {url}")
    any_message = any_pb2.Any()
    any_message.Pack(message, deterministic=True)
    name = resource_name(message)
    if packed is not None:
        packed[id(message)] = (message, any_message, name)
    return any_message, name


def _resource_version(resource: any_pb2.Any, packed: MutableMapping[Any, Any] | None) -> str:
    """`resource_version`, remembered in the cache for an `Any` many snapshots share."""
    if packed is None:
        return resource_version(resource)
    key = ("resource-version", id(resource))
    if (hit := packed.get(key)) is None or hit[0] is not resource:
        hit = packed[key] = (resource, resource_version(resource))
    return hit[1]


@dataclass(frozen=True)
class Snapshot:
    """What one proxy should hold: `resources[type_url][name] -> Any`, `versions[type_url]` and
    `resource_versions[type_url][name]` (delta's per-resource versions)."""

    resources: Mapping[str, Mapping[str, any_pb2.Any]]
    versions: Mapping[str, str]
    resource_versions: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        resources: Mapping[str, Iterable[Message]],
        *,
        base: Snapshot | None = None,
        packed: MutableMapping[Any, Any] | None = None,
    ) -> Snapshot:
        """Pack and hash `{type_url: messages}`; rejects a mistyped message or a duplicate name.

        `base`: a previous snapshot whose types not in `resources` are kept as they are (a push
        that rebuilds only RDS keeps the packed CDS, EDS, LDS and SDS). `packed`: a cache shared
        by many builds (the push context's), so a message object given to many proxies is
        serialized and hashed once and every snapshot holds the same `Any`.
        """
        out: dict[str, Mapping[str, any_pb2.Any]] = dict(base.resources) if base is not None else {}
        versions: dict[str, str] = dict(base.versions) if base is not None else {}
        per_resource: dict[str, Mapping[str, str]] = dict(base.resource_versions) if base is not None else {}
        for url, messages in resources.items():
            by_name: dict[str, any_pb2.Any] = {}
            for message in messages:
                any_message, name = _pack(message, url, packed)
                if name in by_name:
                    raise ValueError(f"duplicate {url.rsplit('.', 1)[-1]} name {name!r}")
                by_name[name] = any_message
            out[url] = MappingProxyType(by_name)
            per_resource[url] = MappingProxyType({name: _resource_version(a, packed) for name, a in by_name.items()})
            versions[url] = content_version(per_resource[url])
        return cls(MappingProxyType(out), MappingProxyType(versions), MappingProxyType(per_resource))

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
