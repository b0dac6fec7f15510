"""The State-of-the-World ADS stream (`StreamAggregatedResources`): every response the full set.

Each request restates the names Envoy wants of a type; each response carries every subscribed
resource of that type at the type's version. A flush sends every type whose content changed,
whose subscription grew, or that must be re-sent (EDS after a CDS push, so updated clusters
finish warming). Protocol rules (xds.md §0, §7): stale nonces are ignored, a NACK is recognised
by `error_detail`, recorded with Envoy's text, and the rejected version is not sent again on that
stream.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from envoy.service.discovery.v3 import discovery_pb2

from .resources import CLUSTER, ENDPOINT
from .snapshot import Snapshot
from .stream import Stream, Subscription, short

log = logging.getLogger(__name__)


@dataclass
class _SotwSubscription(Subscription):
    nacked_version: str = ""


class SotwStream(Stream[_SotwSubscription]):
    """State and loop of one SotW ADS stream."""

    mode = "SOTW"

    async def _handle(self, request: discovery_pb2.DiscoveryRequest) -> None:
        url = request.type_url
        sub = self._subs.get(url)
        if sub is None:
            sub = self._subs[url] = _SotwSubscription()
        elif request.response_nonce != sub.nonce:
            log.debug("%s %s: stale nonce %r (latest %r) ignored",
                      self._node_id, short(url), request.response_nonce, sub.nonce)
            return
        elif sub.nonce:  # answers our latest response of this type
            error = request.error_detail.message if request.HasField("error_detail") else None
            if error is not None:
                sub.nacked_version = sub.sent_version
                self._answered(url, sub.sent_version, sub.nonce, error)
            else:
                self._answered(url, request.version_info, sub.nonce, None)
        if sub.replace(request.resource_names):
            sub.must_send = True

    async def _flush(self, snapshot: Snapshot) -> None:
        for url in self._ordered():
            sub = self._subs[url]
            version = snapshot.version(url)
            if not sub.must_send and version == sub.sent_version:  # also true of a NACKed version
                continue
            sub.must_send = False
            if sub.empty:  # Envoy unsubscribed from every name: it would drop the response
                continue
            resources = snapshot.named(url, None if sub.wildcard else sub.names)
            await self._send(sub, url, version, discovery_pb2.DiscoveryResponse(
                version_info=version, type_url=url, resources=resources))
            eds = self._subs.get(ENDPOINT)
            if url == CLUSTER and eds and snapshot.version(ENDPOINT) != eds.nacked_version:
                eds.must_send = True  # updated clusters warm until they get their endpoints again
