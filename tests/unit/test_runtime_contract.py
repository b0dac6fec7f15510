"""Every runtime keeps the one contract the daemon relies on (runtime/base.py's `Runtime`).

Each runtime is built without starting anything; then every protocol member must exist, with a
signature that accepts every call the protocol allows: the same positional parameters in the
same order, no extra required ones, and classmethods where the protocol has them.
"""

from __future__ import annotations

import inspect
import typing
from pathlib import Path

import pytest

from meshkit.constants import CAPTURES, IPTABLES, USERSPACE
from meshkit.model import bookinfo
from meshkit.runtime import base
from meshkit.runtime.base import Runtime
from meshkit.runtime.errors import NotOnThisRuntime
from meshkit.runtime.in_cluster import InCluster
from meshkit.runtime.local import LocalRuntime
from meshkit.runtime.userspace import UserspaceRuntime

MEMBERS = sorted(name for name in dir(Runtime) if not name.startswith("_")) + sorted(
    n for n in typing.get_type_hints(Runtime) if not n.startswith("_"))
METHODS = [n for n in dict.fromkeys(MEMBERS) if callable(getattr(Runtime, n, None))]
ATTRIBUTES = [n for n in dict.fromkeys(MEMBERS) if n not in METHODS]


def _runtimes(tmp: Path) -> dict[str, object]:
    return {
        "local": LocalRuntime(tmp / "local", bookinfo(pod_subnet="10.244.77.0/24")),
        "userspace": UserspaceRuntime(tmp / "userspace", UserspaceRuntime.topology_for(7), 7),
        "in-cluster": InCluster("127.0.0.1:15010", home=tmp / "kind"),
    }


@pytest.fixture(params=["local", "userspace", "in-cluster"])
def runtime(request, tmp_path):
    return _runtimes(tmp_path)[request.param]


def test_the_protocol_names_what_the_daemon_uses():
    assert set(METHODS) == {"preflight", "start_network", "xds_address", "start_pods", "wait_apps", "stop",
                            "cleanup", "register_pid", "connect", "admin_get", "access_log", "pod_view", "outside",
                            "pods_table", "ingress", "start_pod", "stop_pod", "restart_sidecar"}
    assert set(ATTRIBUTES) == {"capture", "topology", "home"}


def test_each_runtime_is_a_runtime(runtime):
    assert isinstance(runtime, Runtime)
    assert type(runtime).capture in CAPTURES
    assert runtime.topology.workloads and isinstance(runtime.home, Path)


def test_capture_is_a_class_attribute_not_a_patch():
    assert LocalRuntime.capture == IPTABLES and UserspaceRuntime.capture == USERSPACE
    assert InCluster.capture == IPTABLES  # istio-init's rules in the kind pods


def _positional(sig: inspect.Signature) -> list[inspect.Parameter]:
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p for p in sig.parameters.values() if p.kind in kinds]


@pytest.mark.parametrize("name", METHODS)
def test_signatures_accept_every_call_the_protocol_allows(runtime, name):
    wanted = inspect.signature(getattr(Runtime, name))
    implementation = getattr(type(runtime), name)
    got = inspect.signature(implementation)
    want_params = _positional(wanted)
    got_params = _positional(got)
    assert [p.name for p in got_params[: len(want_params)]] == [p.name for p in want_params], (
        f"{type(runtime).__name__}.{name}{got} does not take {name}{wanted}")
    for want, have in zip(want_params, got_params, strict=False):
        if want.default is not inspect.Parameter.empty:
            assert have.default is not inspect.Parameter.empty, f"{name}: {have.name} must stay optional"
    extra_required = [p.name for p in got_params[len(want_params):] if p.default is inspect.Parameter.empty]
    assert not extra_required, f"{type(runtime).__name__}.{name} requires {extra_required} the daemon never passes"
    is_classmethod = isinstance(inspect.getattr_static(Runtime, name), classmethod)
    assert isinstance(inspect.getattr_static(type(runtime), name), classmethod) == is_classmethod


def test_each_module_checks_itself_statically():
    """`_: type[Runtime] = Impl` in each module: what a type checker verifies (mypy finds a missing member)."""
    import meshkit.runtime.in_cluster as in_cluster
    import meshkit.runtime.local as local
    import meshkit.runtime.userspace as userspace

    for module, cls in ((local, LocalRuntime), (userspace, UserspaceRuntime), (in_cluster, InCluster)):
        assert module._ is cls
        assert "_: type[Runtime]" in inspect.getsource(module)


def test_in_cluster_says_pod_operations_are_not_here(tmp_path):
    runtime = InCluster("0.0.0.0:15010", home=tmp_path)
    assert runtime.outside() is None
    assert runtime.xds_address("productpage-v1").target == "0.0.0.0:15010"  # one shared TCP address
    assert InCluster("unix:/tmp/x.sock").xds_address("productpage-v1").path == "/tmp/x.sock"
    runtime.preflight(), runtime.start_network(), runtime.stop(), InCluster.cleanup(tmp_path)
    for call in (lambda: runtime.connect("productpage-v1", "reviews", 9080),
                 lambda: runtime.admin_get("productpage-v1", "/ready"),
                 lambda: runtime.access_log("productpage-v1"),
                 lambda: runtime.pod_view("productpage-v1", "iptables"),
                 runtime.pods_table,
                 runtime.start_pods):
        with pytest.raises(NotOnThisRuntime, match="not on this runtime"):
            call()


def test_unknown_views_name_the_known_ones(tmp_path):
    from meshkit.runtime.local import VIEW_COMMANDS

    assert tuple(VIEW_COMMANDS) == base.POD_VIEWS  # every view the daemon offers, the netns runtime shows
    for runtime in list(_runtimes(tmp_path).values())[:2]:
        with pytest.raises(Exception, match="choose one of " + ", ".join(base.POD_VIEWS)):
            runtime.pod_view("productpage-v1", "routes")
