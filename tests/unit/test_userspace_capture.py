"""Userspace capture without a mesh: the capture process's decisions, the listener differences, selection."""

from __future__ import annotations

from dataclasses import replace

import pytest

from meshkit.model import bookinfo
from meshkit.runtime import choose
from meshkit.runtime.errors import RuntimeProblem
from meshkit.runtime.userspace import UserspaceRuntime
from meshkit.runtime.userspace_capture import Capture, proxy_v1
from meshkit.xds import capture, names
from meshkit.xds.listeners import build_listeners


@pytest.fixture
def runtime(tmp_path) -> UserspaceRuntime:
    return UserspaceRuntime(tmp_path, UserspaceRuntime.topology_for(7), 7)


def test_addresses_mirror_istio_on_loopback(runtime):
    topo = runtime.topology
    productpage = topo.workload("productpage-v1")
    assert topo.capture == "userspace"
    assert productpage.ip == "127.7.244.10" and runtime.app_ip("productpage-v1") == "127.7.245.10"
    reviews = topo.service("reviews")
    assert reviews.vip.startswith("10.96.0.")  # the mesh config keeps Istio's VIPs
    assert runtime.mirror(reviews.vip) == "127.7.96." + reviews.vip.rsplit(".", 1)[1]
    xds = runtime.xds_address("productpage-v1")  # a unix socket in the pod's folder, no TCP port
    assert xds.path == f"{runtime.home}/pods/{productpage.name}/etc/istio/proxy/XDS" and not xds.port


def test_capture_decides_like_istio_init(runtime):
    cap = Capture(runtime.capture_config())
    reviews = next(s for s in cap.services if s.name == "reviews")
    pp, rv1 = runtime.topology.workload("productpage-v1"), runtime.topology.workload("reviews-v1")
    app = runtime.app_ip("productpage-v1")
    # an app's call to a Service: its own sidecar's 15001, the VIP in the PROXY header
    kind, target, header = cap.decide_service(reviews, 9080, (app, 40000))
    assert target == (pp.ip, 15001)
    assert header == f"PROXY TCP4 {pp.ip} {reviews.vip} 40000 9080\r\n".encode()
    # a sidecar's call to a pod IP: that pod's 15006, the pod IP in the header
    kind, target, header = cap.decide_pod(cap.pods[rv1.ip], 9080, ("127.0.0.1", 40001))
    assert kind.startswith("inbound") and target == (rv1.ip, 15006)
    assert header == proxy_v1(("127.0.0.1", 40001), (rv1.ip, 9080))
    # the inbound sidecar's own hop from 127.0.0.6: RETURN, straight to the app, no header
    kind, target, header = cap.decide_pod(cap.pods[rv1.ip], 9080, ("127.0.0.6", 40002))
    assert target == (runtime.app_ip("reviews-v1"), 9080) and header == b""
    # a stranger dialling a VIP: kube-proxy picks an endpoint, which is captured inbound
    kind, target, _ = cap.decide_service(reviews, 9080, ("127.0.0.1", 40003))
    assert kind.startswith("kube-proxy") and target[1] == 15006


def test_only_virtual_listeners_differ_in_userspace():
    iptables_topo = bookinfo(pod_subnet="127.7.244.0/24")
    userspace_topo = replace(iptables_topo, capture=capture.USERSPACE)
    proxy = iptables_topo.workload("productpage-v1")
    before = {x.name: x for x in build_listeners(iptables_topo, proxy)}
    after = {x.name: x for x in build_listeners(userspace_topo, proxy)}
    assert before.keys() == after.keys()
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {names.VIRTUAL_OUTBOUND, names.VIRTUAL_INBOUND}
    for name, port in ((names.VIRTUAL_OUTBOUND, 15001), (names.VIRTUAL_INBOUND, 15006)):
        listener = after[name]
        assert [f.name for f in listener.listener_filters][:2] == [
            "envoy.filters.listener.original_dst", capture.PROXY_PROTOCOL]
        assert listener.address.socket_address.address == proxy.ip
        assert listener.stat_prefix == f"0.0.0.0_{port}"  # stats keep Istio's names
        assert after[name].use_original_dst == before[name].use_original_dst


def test_bootstrap_binds_the_pod_ip(runtime):
    workload = runtime.topology.workload("ratings-v1")
    boot = runtime.bootstrap(workload)
    assert boot["admin"]["address"] == {"pipe": {"path": "./admin.sock", "mode": 0o600}}  # not on 127.0.0.1
    assert [x["address"]["socket_address"]["address"] for x in boot["static_resources"]["listeners"]] == [workload.ip]
    assert boot["static_resources"]["listeners"][0]["stat_prefix"] == "0.0.0.0_15090"


def test_capture_selection(monkeypatch):
    monkeypatch.setenv("MESHKIT_CAPTURE", "userspace")
    assert choose.resolve() == "userspace"
    assert choose.resolve("iptables") == "iptables"
    monkeypatch.setenv("MESHKIT_CAPTURE", "auto")
    assert choose.resolve() == ("userspace" if choose.iptables_problem() else "iptables")
    with pytest.raises(RuntimeProblem, match="choose one of"):
        choose.resolve("ebpf")
