"""The kind manifests, checked offline: strict Kubernetes schemas, Envoy bootstraps, pod shape."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
import urllib.request
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshkit.model.bookinfo import DEFAULT_SERVICE_SUBNET
from meshkit.runtime import kind
from meshkit.runtime.envoy import find_envoy
from meshkit.runtime.errors import RuntimeProblem


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return kind.render("meshkit", tmp_path_factory.mktemp("kind"))


def objects(folder: Path, kind_name: str | None = None) -> list[dict[str, Any]]:
    found = [o for p in sorted((folder / "manifests").glob("*.yaml")) for o in yaml.safe_load_all(p.read_text())]
    return [o for o in found if kind_name is None or o["kind"] == kind_name]


def pod_containers(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spec = deployment["spec"]["template"]["spec"]
    return {c["name"]: c for c in [*spec.get("initContainers", []), *spec["containers"]]}


def test_every_object_passes_strict_validation_for_the_node_kubernetes_version(rendered: Path) -> None:
    import kubernetes_validate  # noqa: F401  (a test dependency: the check must really run)

    checked = kind.validate(rendered)
    assert "objects valid for Kubernetes 1.36.1 (strict)" in checked[1]
    assert checked[2] == "16 Envoy bootstraps parse"  # 8 ConfigMaps + 8 --config-yaml overrides (7 sidecars, the gate)


def test_strict_validation_catches_a_misspelled_field(rendered: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    (broken / "manifests").mkdir(parents=True)
    (broken / "kind.yaml").write_text((rendered / "kind.yaml").read_text())
    text = (rendered / "manifests" / "30-ratings-v1.yaml").read_text()
    (broken / "manifests" / "30-ratings-v1.yaml").write_text(text.replace("imagePullPolicy", "imagePulPolicy"))
    with pytest.raises(RuntimeProblem, match="imagePulPolicy"):
        kind.validate(broken)


def test_bootstrap_parse_is_strict() -> None:
    with pytest.raises(Exception, match="connect_timout"):
        kind.parse_bootstrap({"static_resources": {"clusters": [{"name": "x", "connect_timout": "1s"}]}})


def test_kind_config_is_checked_like_kinds_strict_decoder() -> None:
    config = kind.KindConfig.load()
    assert kind.kind_config_problems(config.raw) == []
    assert re.fullmatch(r"kindest/node:v1\.\d+\.\d+@sha256:[0-9a-f]{64}", config.node_image)
    assert tuple(map(int, config.kubernetes_version.split(".")[:2])) >= (1, 33)  # ServiceCIDR, native sidecars
    typo = {**config.raw, "networking": {**config.raw["networking"], "serviceSubnett": "10.1.0.0/16"}}
    expected = ".networking.serviceSubnett: unknown field (did you mean 'serviceSubnet'?)"
    assert kind.kind_config_problems(typo) == [expected]


def test_services_keep_the_topology_vips_clear_of_kubeadm_addresses(rendered: Path) -> None:
    topology, config = kind.kind_topology(), kind.KindConfig.load()
    services = {s["metadata"]["name"]: s["spec"]["clusterIP"] for s in objects(rendered, "Service")}
    assert services == {s.name: s.vip for s in topology.services} | {kind.XDS_NAME: config.xds_ip}
    (cidr,) = objects(rendered, "ServiceCIDR")
    assert cidr["spec"]["cidrs"] == [DEFAULT_SERVICE_SUBNET]
    assert all(IPv4Address(s.vip) in IPv4Network(DEFAULT_SERVICE_SUBNET) for s in topology.services)
    assert IPv4Address(config.xds_ip) in config.service_subnet
    assert not set(config.reserved_ips()) & set(services.values())


def test_a_service_subnet_that_gives_kube_dns_a_vip_is_refused() -> None:
    raw = kind.KindConfig.load().raw
    clash = kind.KindConfig({**raw, "networking": {**raw["networking"], "serviceSubnet": "10.96.0.0/16"}})
    with pytest.raises(RuntimeProblem, match=r"10\.96\.0\.10 is taken by kube-dns"):
        kind.manifests(kind.kind_topology(), clash)


def test_each_workload_pod_is_shaped_like_an_injected_istio_pod(rendered: Path) -> None:
    topology = kind.kind_topology()
    deployments = {d["metadata"]["name"]: d for d in objects(rendered, "Deployment")}
    assert set(deployments) == {kind.XDS_NAME} | {w.deployment for w in topology.workloads}
    for w in (w for w in topology.workloads if w.captured):  # the gateway: see the test below
        deployment = deployments[w.deployment]
        spec = deployment["spec"]["template"]["spec"]
        assert deployment["spec"]["template"]["metadata"]["labels"] == {"app": w.app, "version": w.version}
        assert spec["serviceAccountName"] == w.service_account
        assert [c["name"] for c in spec["initContainers"]] == ["istio-init", "istio-proxy"]
        init, proxy = spec["initContainers"]
        assert init["command"] == [kind.INIT_SCRIPT_PATH, "-p", "15001", "-z", "15006", "-u", "1337",
                                   "-g", "1337", "-d", "15090,15021,15020"]
        assert init["securityContext"]["runAsUser"] == 0
        assert init["securityContext"]["capabilities"]["add"] == ["NET_ADMIN", "NET_RAW"]
        assert proxy["restartPolicy"] == "Always"  # native sidecar
        assert re.fullmatch(r"envoyproxy/envoy:v1\.40\.\d+", proxy["image"])
        assert (proxy["securityContext"]["runAsUser"], proxy["securityContext"]["runAsGroup"]) == (1337, 1337)
        (app,) = spec["containers"]
        assert app["securityContext"]["runAsUser"] not in (0, 1337)


def test_the_ingress_gateway_is_envoy_alone_behind_a_nodeport_the_host_reaches(rendered: Path) -> None:
    gate = next(d for d in objects(rendered, "Deployment") if d["metadata"]["name"] == "istio-ingressgateway")
    assert gate["metadata"]["namespace"] == "istio-system"
    spec = gate["spec"]["template"]["spec"]
    assert "initContainers" not in spec, "no istio-init: nothing captures a gateway"
    (proxy,) = spec["containers"]
    assert proxy["name"] == "istio-proxy" and proxy["securityContext"]["runAsUser"] == 1337
    overrides = json.loads(proxy["args"][proxy["args"].index("--config-yaml") + 1])
    assert overrides["node"]["id"].startswith("router~$(INSTANCE_IP)~$(POD_NAME).istio-system~")
    service = next(s for s in objects(rendered, "Service") if s["metadata"]["name"] == "istio-ingressgateway")
    assert service["spec"]["type"] == "NodePort"
    ports = {p["port"]: (p["targetPort"], p.get("nodePort")) for p in service["spec"]["ports"]}
    assert ports[80] == (8080, 30080) and ports[443] == (8443, 30443)
    config = yaml.safe_load((rendered / "kind.yaml").read_text())
    mappings = {(m["containerPort"], m["hostPort"], m["listenAddress"])
                for m in config["nodes"][0]["extraPortMappings"]}
    assert mappings == {(30080, 18080, "127.0.0.1"), (30443, 18443, "127.0.0.1")}
    assert kind.gateway.ingress()["url"] == "http://127.0.0.1:18080"


def test_images_are_the_ones_meshkit_builds_and_never_pulled(rendered: Path) -> None:
    images = {(c["image"], c["imagePullPolicy"])
              for d in objects(rendered, "Deployment") for c in pod_containers(d).values()}
    assert images == {(kind.image_ref(i), "Never") for i in kind.IMAGES} | {(kind.ENVOY_IMAGE, "IfNotPresent")}


def test_the_app_command_is_the_local_runtimes_with_the_real_pod_name() -> None:
    from meshkit.runtime import apps

    for w in (w for w in kind.kind_topology().workloads if w.ports):  # the gate runs no app
        local = apps.app_command(w)
        ours = kind.app_command(w)
        assert ours[:2] == ["python", "-I"]
        assert Path(ours[2]).name == Path(local[2]).name
        assert ours[3:] == [a if a != w.name else "$(POD_NAME)" for a in local[3:]]


def _expand(arg: str, env: dict[str, str]) -> str:
    """The kubelet's `$(VAR)` expansion of container args."""
    return re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], arg)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_envoy_takes_its_node_identity_from_the_downward_api_values(rendered: Path, tmp_path: Path) -> None:
    """Run the real Envoy with the reviews-v2 ConfigMap and args as the kubelet would expand them."""
    (config_map, deployment) = yaml.safe_load_all((rendered / "manifests" / "30-reviews-v2.yaml").read_text())
    bootstrap = json.loads(config_map["data"][kind.BOOTSTRAP_FILE])
    admin, stats = _free_port(), _free_port()  # the pod's 15000/15090 may be taken on this host
    bootstrap["admin"]["address"]["socket_address"]["port_value"] = admin
    bootstrap["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] = stats
    (tmp_path / kind.BOOTSTRAP_FILE).write_text(json.dumps(bootstrap))
    env = {"POD_NAME": "reviews-v2-7d8f9c6b5d-x2k4p", "INSTANCE_IP": "10.244.0.23"}
    proxy = pod_containers(deployment)["istio-proxy"]
    args = [_expand(a, env) for a in proxy["args"]]
    args[args.index("--config-path") + 1] = str(tmp_path / kind.BOOTSTRAP_FILE)
    process = subprocess.Popen([str(find_envoy()), *args, "--disable-hot-restart"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        node = None
        for _ in range(100):
            try:
                with no_proxy.open(f"http://127.0.0.1:{admin}/config_dump") as response:
                    node = json.load(response)["configs"][0]["bootstrap"]["node"]
                break
            except OSError:
                time.sleep(0.1)
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert node is not None, "Envoy did not start with the rendered bootstrap"
    assert node["id"] == "sidecar~10.244.0.23~reviews-v2-7d8f9c6b5d-x2k4p.default~default.svc.cluster.local"
    assert node["cluster"] == "reviews.default"
    assert node["metadata"]["INSTANCE_IPS"] == "10.244.0.23"
    assert node["metadata"]["NAME"] == "reviews-v2-7d8f9c6b5d-x2k4p"
    assert node["metadata"]["LABELS"] == {"app": "reviews", "version": "v2"}  # the rest of the bootstrap stays


def test_the_control_plane_runs_serve_xds_on_its_fixed_service(rendered: Path) -> None:
    (deployment,) = [d for d in objects(rendered, "Deployment") if d["metadata"]["name"] == kind.XDS_NAME]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["meshkit", "serve-xds", "--listen", "0.0.0.0:15010", "--learn-pod-ips",
                                    "--control", "127.0.0.1:15011"]
    # the control protocol stays on the pod's loopback: no Service port, only `cluster up`'s port-forward
    (service,) = [s for s in objects(rendered, "Service") if s["metadata"]["name"] == kind.XDS_NAME]
    assert [p["port"] for p in service["spec"]["ports"]] == [kind.XDS_PORT]
    assert service["spec"]["publishNotReadyAddresses"] is True  # stop_boss/start_boss: see control_plane_objects
    forward = kind.forwards(kind.kind_topology(), 25000)[-1]
    assert (forward.name, forward.target, forward.remote_port, forward.local_port) == (
        kind.CONTROL_NAME, f"deployment/{kind.XDS_NAME}", kind.CONTROL_PORT, 25009)
    assert "initContainers" not in deployment["spec"]["template"]["spec"]  # the boss is never captured
    for config_map in objects(rendered, "ConfigMap"):
        xds = json.loads(config_map["data"][kind.BOOTSTRAP_FILE])["static_resources"]["clusters"][1]
        address = xds["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
        assert address["socket_address"]["address"] == kind.KindConfig.load().xds_ip
        assert address["socket_address"]["port_value"] == kind.XDS_PORT
