"""The boss stays up through 2,000 mutated documents: every bad one gets a clear refusal.

Mutated Istio and raw Envoy documents (tests/fuzzing.py, a fixed seed) go through the real
control socket to a live mesh. Counted: refusals ('invalid'), Envoy rejections ('nack'),
accepted applies, internal errors (must be 0) and calls that did not answer in time (must be 0).
Whatever a call left behind is deleted or reverted before the next one, so each document meets
the Bookinfo mesh as `meshkit up` made it; at the end productpage must still answer 200.
"""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest
import yaml

from meshkit.client import wire
from meshkit.errors import InvalidInput, MeshError, Nack, NotFound, Timeout
from meshkit.model.checks import DNS1123_LABEL_MESSAGE, DNS1123_SUBDOMAIN_MESSAGE
from meshkit.model.istio import KINDS

from ..fuzzing import NAMED_VS, PYTHON_NOISE, mutated

pytestmark = pytest.mark.mesh

DOCUMENTS = 2000
SEED = 20261201
CALL_TIMEOUT_S = 30.0
BUDGET_S = 240.0


def is_internal(exc: MeshError) -> bool:
    """Whether the boss failed on its own account rather than refusing the input.

    Refusals (InvalidInput, NotFound) and Envoy's own NACKs are answers; anything else is the boss failing."""
    return not isinstance(exc, (InvalidInput, Nack, NotFound))


def call(mesh, op: str, **args: object) -> object:
    """One control call with a bound: a `Timeout` here is a hang."""
    return wire.call(mesh.home / "control.sock", op, args, timeout=CALL_TIMEOUT_S)


def reset(mesh, text: str) -> None:
    """Delete every Istio resource, drop raw overrides and restore ALLOW_ANY: Bookinfo as it booted."""
    held = [r for kind in KINDS if kind != "MeshConfig" for r in call(mesh, "get", kind=kind)]  # type: ignore[union-attr]
    if held:
        call(mesh, "delete", text=yaml.safe_dump_all(held))
    if "@type" in text:
        call(mesh, "revert", pods=[])
    if any(word in text for word in ("MeshConfig", "ConfigMap", "IstioOperator")):
        mesh.set_outbound_traffic_policy("ALLOW_ANY")


def test_two_thousand_mutated_documents_never_break_the_boss(mesh):
    rng = random.Random(SEED)
    counts: Counter[str] = Counter()
    internal: list[str] = []
    noisy: list[str] = []
    documents = calls = 0
    slowest = 0.0
    started = time.monotonic()
    while documents < DOCUMENTS:
        text, n = mutated(rng)
        documents += n
        calls += 1
        began = time.monotonic()
        try:
            call(mesh, "apply", text=text, pods=[])
            counts["applied"] += 1
            reset(mesh, text)
        except Timeout:
            counts["hang"] += 1
            internal.append(f"no answer within {CALL_TIMEOUT_S}s <- {text[:300]!r}")
        except MeshError as exc:
            if is_internal(exc):
                internal.append(f"{exc.problem}: {exc} <- {text[:300]!r}")
            counts[exc.problem] += 1
            if isinstance(exc, InvalidInput) and PYTHON_NOISE.search(str(exc)):  # meshkit's words; a NACK is Envoy's
                noisy.append(f"{exc} <- {text[:200]!r}")
            if isinstance(exc, Nack):
                reset(mesh, text)
                if "@type" not in text:  # Istio input the parsers let through and Envoy refused
                    counts["nack from Istio documents"] += 1
                    print(f"\nNACK for Istio input: {str(exc)[:3000]}\n  <- {text[:5000]!r}")
        slowest = max(slowest, time.monotonic() - began)
        assert time.monotonic() - started < BUDGET_S, f"over budget after {documents} documents: {dict(counts)}"
    elapsed = time.monotonic() - started
    print(f"\napply fuzz: {documents} documents in {calls} calls, {elapsed:.1f}s (slowest call {slowest:.2f}s): "
          + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + f", internal {len(internal)}")
    assert not internal, "\n".join(internal[:10])
    assert counts["hang"] == 0
    assert not noisy, "\n".join(noisy[:10])
    assert counts["invalid"] > 0 and counts["applied"] > 0, counts
    rows = mesh.curl_rows("productpage-v1", "http://productpage:9080/productpage", n=5)
    assert [r["status"] for r in rows] == [200] * 5, rows


VS = NAMED_VS


@pytest.mark.parametrize(("name", "namespace", "rule"), [
    ("../../etc/passwd", "default", DNS1123_SUBDOMAIN_MESSAGE),
    ("not a regex (", "default", DNS1123_SUBDOMAIN_MESSAGE),
    ("reviews", "*", DNS1123_LABEL_MESSAGE),
    ("reviews", "a.b", "must not contain dots"),
])
def test_names_kubernetes_refuses_are_refused_by_the_boss(mesh, name, namespace, rule):
    with pytest.raises(InvalidInput) as error:
        call(mesh, "apply", text=VS % (f'"{name}"', f'"{namespace}"'), pods=[])
    assert rule in str(error.value) and str(error.value).startswith("document 1 (VirtualService ")
    listed = [(r["metadata"]["name"], r["metadata"].get("namespace")) for r in call(mesh, "get", kind="VirtualService")]
    assert (name, namespace) not in listed


def test_empty_name_is_refused_by_the_boss(mesh):
    with pytest.raises(InvalidInput, match="name or generateName is required"):
        call(mesh, "apply", text=VS % ('""', "default"), pods=[])
