"""The capture script emits exactly Istio's istio-init nat rules, and iptables takes them as they are."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from meshkit.runtime import capture

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "iptables-rules.golden"


def test_dry_run_matches_golden():
    assert capture.rules() == GOLDEN.read_text()


def test_flags_change_ports_owner_and_exclusions():
    rules = capture.rules("-p", "15101", "-z", "15106", "-u", "1400", "-g", "1401", "-d", "7070")
    assert "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15101" in rules
    assert "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15106" in rules
    assert "-A ISTIO_OUTPUT -m owner --uid-owner 1400 -j RETURN" in rules
    assert "-A ISTIO_OUTPUT -m owner --gid-owner 1401 -j RETURN" in rules
    assert "-A ISTIO_INBOUND -p tcp --dport 7070 -j RETURN" in rules
    assert "--dport 15090" not in rules


@pytest.fixture
def throwaway_netns():
    if os.geteuid() != 0:
        pytest.skip("creating a network namespace needs root")
    name = f"mktest-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=True)


def _nat(netns: str) -> str:
    return subprocess.run(["ip", "netns", "exec", netns, "iptables-save", "-t", "nat"],
                          check=True, capture_output=True, text=True).stdout


def test_applies_in_a_netns_idempotently_and_cleans_up(throwaway_netns):
    capture.apply(throwaway_netns)
    capture.apply(throwaway_netns)  # a second run replaces, never duplicates
    saved = _nat(throwaway_netns)
    assert saved.count("-A PREROUTING -p tcp -j ISTIO_INBOUND") == 1
    assert "-A OUTPUT -j ISTIO_OUTPUT" in saved
    assert "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001" in saved
    assert "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006" in saved
    assert "-A ISTIO_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN" in saved
    assert "-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN" in saved
    assert "-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN" in saved
    for port in (15008, 15090, 15021, 15020):
        assert f"-A ISTIO_INBOUND -p tcp -m tcp --dport {port} -j RETURN" in saved
    assert sum(line.startswith("-A ") for line in saved.splitlines()) == 18

    cleanup = ["ip", "netns", "exec", throwaway_netns, "sh", str(capture.SCRIPT), "--cleanup"]
    subprocess.run(cleanup, check=True)
    assert "ISTIO" not in _nat(throwaway_netns)
