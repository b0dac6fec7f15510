"""Route retry policies as istiod builds them (`route/retry/retry.go`, Istio 1.24+).

Without a VirtualService `retries` every outbound route gets Istio's default: 2 retries on
connect-failure/refused-stream/unavailable/cancelled/retriable-status-codes (no 503 since 1.24),
`previous_hosts` so a retry picks another endpoint, 5 host selection attempts. A consistent-hash
destination keeps its host, so istiod drops `previous_hosts` there. `retries.attempts: 0` (or
unset) removes the policy; numeric `retryOn` tokens become `retriable_status_codes`.
"""

from __future__ import annotations

from http import HTTPStatus

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.retry.host.previous_hosts.v3 import previous_hosts_pb2
from envoy.extensions.retry.priority.previous_priorities.v3 import (
    previous_priorities_config_pb2 as previous_priorities_pb2,
)
from google.protobuf import wrappers_pb2

from .values import istio_duration, pack

DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
DEFAULT_RETRIES = 2
HOST_SELECTION_RETRY_MAX_ATTEMPTS = 5
RETRIABLE_STATUS_CODES = "retriable-status-codes"
PREVIOUS_HOSTS = "envoy.retry_host_predicates.previous_hosts"
PREVIOUS_PRIORITIES = "envoy.retry_priorities.previous_priorities"
KNOWN_STATUS_CODES = frozenset(int(s) for s in HTTPStatus)


def previous_hosts() -> rc.RetryPolicy.RetryHostPredicate:
    """Retry on another host than the ones already tried."""
    return rc.RetryPolicy.RetryHostPredicate(
        name=PREVIOUS_HOSTS, typed_config=pack(previous_hosts_pb2.PreviousHostsPredicate())
    )


def default_policy(*, consistent_hash: bool = False) -> rc.RetryPolicy:
    """Istio's default outbound retry policy (`DefaultPolicy` / `DefaultConsistentHashPolicy`)."""
    policy = rc.RetryPolicy(
        retry_on=DEFAULT_RETRY_ON,
        num_retries=wrappers_pb2.UInt32Value(value=DEFAULT_RETRIES),
        host_selection_retry_max_attempts=HOST_SELECTION_RETRY_MAX_ATTEMPTS,
    )
    if not consistent_hash:
        policy.retry_host_predicate.append(previous_hosts())
    return policy


def split_retry_on(retry_on: str) -> tuple[str, list[int]]:
    """`5xx,503,gateway-error` → (`5xx,gateway-error`, [503]): HTTP status codes are pulled out."""
    tokens, codes = [], []
    for part in (p.strip() for p in retry_on.split(",")):
        if part.isdigit() and int(part) in KNOWN_STATUS_CODES:
            codes.append(int(part))
        elif part:
            tokens.append(part)
    return ",".join(tokens), codes


def retry_policy(retries: dict | None, *, consistent_hash: bool = False) -> rc.RetryPolicy | None:
    """istiod's `ConvertPolicy`: a VirtualService `retries` block, or the default when absent."""
    if retries is None:
        return default_policy(consistent_hash=consistent_hash)
    attempts = retries.get("attempts", 0)
    if attempts <= 0:
        return None
    policy = default_policy(consistent_hash=consistent_hash)
    policy.num_retries.value = attempts
    if retries.get("retryOn"):
        retry_on, codes = split_retry_on(retries["retryOn"])
        if codes and RETRIABLE_STATUS_CODES not in retry_on:
            retry_on += f",{RETRIABLE_STATUS_CODES}"
        policy.retry_on = retry_on
        policy.retriable_status_codes.extend(codes)
    if "perTryTimeout" in retries:
        policy.per_try_timeout.CopyFrom(istio_duration(retries["perTryTimeout"]))
    if retries.get("retryRemoteLocalities"):
        policy.retry_priority.name = PREVIOUS_PRIORITIES
        policy.retry_priority.typed_config.CopyFrom(
            pack(previous_priorities_pb2.PreviousPrioritiesConfig(update_frequency=2))
        )
    return policy
