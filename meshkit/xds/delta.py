"""The delta (incremental) ADS stream (`DeltaAggregatedResources`), as Istio serves its sidecars by default.

Per type the stream keeps what Envoy holds (`known`: name → per-resource version, seeded from
`initial_resource_versions` on reconnect) and answers with only what differs: resources whose
version Envoy does not hold, and `removed_resources` for those it holds that are gone or no
longer subscribed. Protocol rules (xds.md §0, §6.4; go-control-plane `pkg/server/delta/v3`,
istiod `pilot/pkg/xds/delta.go`):

- every response has its own nonce and is ACKed or NACKed by it (`error_detail`); Envoy's text is
  recorded and the rejected version of each resource in a NACKed response is never sent again on
  this stream (Envoy ≥ 1.24 keeps its old version of them, so `known` goes back to it);
- subscription changes count even on a stale nonce; a name subscribed anew is sent even if
  Envoy seems to hold it; a name unsubscribed while the wildcard still covers it is answered
  with the resource or its removal; a subscribed name that does not exist is removed once;
- the legacy rule: a first request naming nothing is a wildcard (`*` toggles it explicitly);
- push order CDS → EDS → LDS → RDS → SDS, and the endpoints of every cluster a CDS response
  carried are re-sent so those clusters finish warming.

Versions reported to the tracker are the snapshot's per-type versions (`system_version_info`),
as SotW reports them, so ACK waits and status work unchanged. Like SotW, a new type version is
always answered, if need be with an empty response, so the ACK the boss waits for is Envoy's.
If a response had to leave out a resource Envoy rejected before, Envoy's ACK of it is recorded
as a NACK of that version with the old error: the version is not what Envoy runs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from envoy.config.cluster.v3 import cluster_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2

from .resources import CLUSTER, ENDPOINT
from .snapshot import Snapshot
from .stream import Stream, Subscription, short

log = logging.getLogger(__name__)


@dataclass
class _Sent:
    """One response until Envoy answers it: what it carried and what `known` said before."""

    version: str
    resources: dict[str, str]  # name -> resource version sent
    before: dict[str, str | None]  # name -> what Envoy held before (None: nothing)
    withheld: str = ""  # why a wanted resource was left out (a NACK of its version), "" if none


@dataclass
class _DeltaSubscription(Subscription):
    known: dict[str, str] = field(default_factory=dict)  # what Envoy holds: name -> version ("" = resend)
    absent: set[str] = field(default_factory=set)  # subscribed names already told they do not exist
    nacked: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (rejected version, error)
    forced: set[str] = field(default_factory=set)  # names to send even at a version Envoy holds
    pending: dict[str, _Sent] = field(default_factory=dict)  # nonce -> the unanswered response


class DeltaStream(Stream[_DeltaSubscription]):
    """State and loop of one delta ADS stream."""

    mode = "DELTA"

    async def _handle(self, request: discovery_pb2.DeltaDiscoveryRequest) -> None:
        url = request.type_url
        sub = self._subs.get(url)
        first = sub is None
        if sub is None:
            sub = self._subs[url] = _DeltaSubscription(known=dict(request.initial_resource_versions))
        added, dropped = sub.change(request.resource_names_subscribe, request.resource_names_unsubscribe)
        if not first:  # on a reconnect's first request, names Envoy already holds need not be sent again
            for name in added:
                sub.known.pop(name, None)
                sub.absent.discard(name)
        for name in dropped:
            if sub.wildcard:  # still covered by the wildcard: the spec wants the resource or its removal
                sub.known[name] = ""
            else:
                sub.known.pop(name, None)
                sub.absent.discard(name)
        if request.response_nonce:
            self._answer(url, sub, request)

    def _answer(self, url: str, sub: _DeltaSubscription, request: discovery_pb2.DeltaDiscoveryRequest) -> None:
        nonce = request.response_nonce
        sent = sub.pending.pop(nonce, None)
        if sent is None:
            log.debug("%s %s: stale nonce %r ignored (its subscription changes kept)", self._node_id, short(url), nonce)
            return
        for older in [n for n in sub.pending if int(n) < int(nonce)]:  # Envoy answers in order
            del sub.pending[older]
        if not request.HasField("error_detail"):
            self._answered(url, sent.version, nonce, sent.withheld or None)
            return
        error = request.error_detail.message
        for name, version in sent.resources.items():
            sub.nacked[name] = (version, error)
            if sub.known.get(name) == version:  # Envoy keeps what it had
                before = sent.before.get(name)
                if before is None:
                    sub.known.pop(name, None)
                else:
                    sub.known[name] = before
        self._answered(url, sent.version, nonce, error)

    async def _flush(self, snapshot: Snapshot) -> None:
        for url in self._ordered():
            sub = self._subs[url]
            version, versions = snapshot.version(url), snapshot.versions_of(url)
            present = snapshot.resources.get(url, {})
            send, withheld = [], []
            for name in sorted(sub.wanted(snapshot, url)):
                if sub.known.get(name) == versions[name] and name not in sub.forced:
                    continue
                rejected = sub.nacked.get(name)
                if rejected and rejected[0] == versions[name]:
                    withheld.append(f"{name!r} (Envoy said: {rejected[1]})")
                else:
                    send.append(name)
            sub.forced.clear()
            removed = sorted(n for n in sub.known if n not in present or (not sub.wildcard and n not in sub.names))
            removed += sorted(sub.names - set(present) - set(sub.known) - sub.absent)
            if not (send or removed or sub.must_send or version != sub.sent_version):
                continue
            sub.must_send = False
            if sub.empty and not removed:  # Envoy unsubscribed from every name: it would drop the response
                continue
            response = discovery_pb2.DeltaDiscoveryResponse(
                system_version_info=version, type_url=url, removed_resources=removed,
                resources=[discovery_pb2.Resource(name=n, version=versions[n], resource=present[n]) for n in send])
            record = _Sent(version, {n: versions[n] for n in send}, {n: sub.known.get(n) for n in send},
                           "not sent again, rejected on this stream before: " + "; ".join(withheld) if withheld else "")
            for name in send:
                sub.known[name] = versions[name]
                sub.absent.discard(name)
            for name in removed:
                sub.known.pop(name, None)
                if name in sub.names:
                    sub.absent.add(name)
            sub.pending[await self._send(sub, url, version, response)] = record
            eds = self._subs.get(ENDPOINT)
            if url == CLUSTER and eds and send:  # updated clusters warm until they get their endpoints again
                eds.forced |= _eds_names(present[n] for n in send)


def _eds_names(clusters: Iterable[any_pb2.Any]) -> set[str]:
    """The ClusterLoadAssignment names the EDS clusters among `clusters` (packed) wait for."""
    names = set()
    for packed in clusters:
        cluster = cluster_pb2.Cluster()
        packed.Unpack(cluster)
        if cluster.type == cluster_pb2.Cluster.EDS:
            names.add(cluster.eds_cluster_config.service_name or cluster.name)
    return names
