"""The cluster as Kubernetes objects: what `cluster up` writes to `<home>/kind/<name>/manifests/`.

Pods look like Istio's: an `istio-init` init container runs `cluster/istio-iptables.sh` (the file
the local runtime runs), `istio-proxy` is Envoy as a native sidecar (an init container with
`restartPolicy: Always`) running as uid/gid 1337, then the app container. Each sidecar's bootstrap
is a ConfigMap rendered by `envoy_bootstrap`; the pod-specific parts of the node (id, `NAME`,
`INSTANCE_IPS`) are not known before the pod exists, so Envoy gets them from `--config-yaml`,
which Envoy merges over `--config-path`, with `$(POD_NAME)` and `$(INSTANCE_IP)` expanded by the
kubelet from downward-API env vars.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import yaml

from ...constants import INBOUND_PORT, OUTBOUND_PORT, PROMETHEUS_PORT, PROXY_UID
from ...model import Topology, Workload, bookinfo
from ...model.bookinfo import DEFAULT_SERVICE_SUBNET
from ..bootstrap import XdsAddress, envoy_bootstrap
from ..errors import RuntimeProblem
from . import gateway
from .config import (
    ADMIN_PORT,
    CONTROL_PORT,
    ENVOY_IMAGE,
    SYSTEM_NAMESPACE,
    VIP_CIDR_NAME,
    XDS_NAME,
    XDS_PORT,
    KindConfig,
    image_ref,
)

MANAGED_BY = {"app.kubernetes.io/managed-by": "meshkit"}
XDS_COMMAND = ("meshkit", "serve-xds", "--listen", f"0.0.0.0:{XDS_PORT}", "--learn-pod-ips",
               "--control", f"127.0.0.1:{CONTROL_PORT}")
INIT_SCRIPT_PATH = "/usr/local/bin/istio-iptables.sh"
CAPTURE_ARGS = ("-p", str(OUTBOUND_PORT), "-z", str(INBOUND_PORT), "-u", str(PROXY_UID), "-g", str(PROXY_UID),
                "-d", f"{PROMETHEUS_PORT},15021,15020")  # 15021/15020: pilot-agent's, excluded as Istio does
BOOTSTRAP_DIR = "/etc/istio/proxy"
APPS_DIR = "/opt/meshkit-apps"
BOOTSTRAP_FILE = "envoy-bootstrap.json"


def _meta(name: str, namespace: str | None = None, labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {**(labels or {}), **MANAGED_BY}}
    if namespace:
        meta["namespace"] = namespace
    return meta


def _field_env(name: str, field_path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": field_path}}}


def _non_root(uid: int) -> dict[str, Any]:
    return {"runAsUser": uid, "runAsGroup": uid, "runAsNonRoot": True, "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]}}


def _deployment(name: str, namespace: str, labels: dict[str, str], pod_spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(name, namespace, labels),
        "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": pod_spec}},
    }


def _service(name: str, namespace: str, cluster_ip: str, selector: dict[str, str],
             ports: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(name, namespace),
            "spec": {"clusterIP": cluster_ip, "selector": selector, "ports": ports}}


def node_overrides(workload: Workload) -> dict[str, Any]:
    """The `--config-yaml` Envoy merges over the bootstrap: the parts only the running pod knows."""
    live = replace(workload, ip="$(INSTANCE_IP)", name="$(POD_NAME)")
    return {"node": {"id": live.node_id, "metadata": {"NAME": live.name, "INSTANCE_IPS": live.ip}}}


def app_command(workload: Workload) -> list[str]:
    """The demo app of a pod, started as the local runtime starts it, with the real pod name."""
    port = str(workload.ports[0])
    if workload.app == "tcp-echo":
        return ["python", "-I", f"{APPS_DIR}/tcp_echo.py", "--pod", "$(POD_NAME)", "--port", port]
    return ["python", "-I", f"{APPS_DIR}/bookinfo.py", "--service", workload.app,
            "--version", workload.version or "v1", "--pod", "$(POD_NAME)", "--port", port]


def _port_names(topology: Topology, workload: Workload) -> dict[int, str]:
    return {p.target_port: p.name for s in topology.services_of(workload) for p in s.ports}


def workload_objects(topology: Topology, workload: Workload, config: KindConfig) -> list[dict[str, Any]]:
    """A pod's bootstrap ConfigMap and its Deployment: istio-init, istio-proxy (native sidecar), app."""
    bootstrap_name = f"{workload.deployment}-envoy-bootstrap"
    bootstrap = envoy_bootstrap(workload, XdsAddress(config.xds_ip, XDS_PORT), admin_port=ADMIN_PORT)
    config_map = {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(bootstrap_name, workload.namespace),
        "data": {BOOTSTRAP_FILE: json.dumps(bootstrap, indent=2, sort_keys=True) + "\n"},
    }
    names = _port_names(topology, workload)
    init = {
        "name": "istio-init", "image": image_ref("init"), "imagePullPolicy": "Never",
        "command": [INIT_SCRIPT_PATH, *CAPTURE_ARGS],
        "securityContext": {"runAsUser": 0, "runAsGroup": 0, "runAsNonRoot": False,
                            "allowPrivilegeEscalation": False,
                            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]}},
    }
    proxy = {
        "name": "istio-proxy", "image": ENVOY_IMAGE, "imagePullPolicy": "IfNotPresent",
        "restartPolicy": "Always",
        "command": ["envoy"],
        "args": ["--config-path", f"{BOOTSTRAP_DIR}/{BOOTSTRAP_FILE}",
                 "--config-yaml", json.dumps(node_overrides(workload), separators=(",", ":")),
                 "--concurrency", "2", "--log-level", "info"],
        "env": [_field_env("POD_NAME", "metadata.name"), _field_env("INSTANCE_IP", "status.podIP")],
        "ports": [{"name": "http-envoy-prom", "containerPort": PROMETHEUS_PORT}],
        # 15090 answers once Envoy's first LDS/CDS arrived: the pod is Ready when the boss has spoken.
        "readinessProbe": {"httpGet": {"path": "/stats/prometheus", "port": PROMETHEUS_PORT},
                           "periodSeconds": 2},
        "securityContext": _non_root(PROXY_UID),
        "volumeMounts": [{"name": "envoy-bootstrap", "mountPath": BOOTSTRAP_DIR, "readOnly": True}],
    }
    app = {
        "name": workload.app, "image": image_ref("app"), "imagePullPolicy": "Never",
        "command": app_command(workload),
        "env": [_field_env("POD_NAME", "metadata.name")],
        "ports": [{"name": names.get(p, f"port-{p}"), "containerPort": p} for p in workload.ports],
        "securityContext": _non_root(10001),
    }
    pod = {
        "serviceAccountName": workload.service_account,
        "initContainers": [init, proxy],
        "containers": [app],
        "volumes": [{"name": "envoy-bootstrap", "configMap": {"name": bootstrap_name}}],
    }
    return [config_map, _deployment(workload.deployment, workload.namespace, workload.label_map, pod)]


def control_plane_objects(config: KindConfig) -> list[dict[str, Any]]:
    """Namespace, service account, Deployment and fixed-IP Service of the xDS server."""
    labels = {"app": XDS_NAME}
    pod = {
        "serviceAccountName": XDS_NAME,
        "automountServiceAccountToken": False,
        "containers": [{
            "name": "discovery", "image": image_ref("xds"), "imagePullPolicy": "Never",
            "command": list(XDS_COMMAND),
            "ports": [{"name": "grpc-xds", "containerPort": XDS_PORT}],
            "readinessProbe": {"tcpSocket": {"port": XDS_PORT}, "periodSeconds": 2},
            "securityContext": _non_root(10001),
        }],
    }
    xds_service = _service(XDS_NAME, SYSTEM_NAMESPACE, config.xds_ip, labels,
                           [{"name": "grpc-xds", "port": XDS_PORT, "targetPort": XDS_PORT, "protocol": "TCP"}])
    # `mesh.stop_boss()` stops the ADS server in the pod, so the readiness probe fails: keep the pod
    # behind the Service anyway, so sidecars reconnect on `start_boss()` as they do locally.
    xds_service["spec"]["publishNotReadyAddresses"] = True
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(SYSTEM_NAMESPACE)},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(XDS_NAME, SYSTEM_NAMESPACE)},
        _deployment(XDS_NAME, SYSTEM_NAMESPACE, labels, pod),
        xds_service,
    ]


def service_objects(topology: Topology) -> list[dict[str, Any]]:
    """Service accounts and the Services, each pinned to the topology's VIP."""
    accounts = sorted({(w.namespace, w.service_account) for w in topology.workloads})
    return [
        *({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(sa, ns)} for ns, sa in accounts),
        *(gateway.expose(s, _service(s.name, s.namespace, s.vip, dict(s.selector),
                                     [{"name": p.name, "port": p.port, "targetPort": p.target_port,
                                       "protocol": "TCP"} for p in s.ports]))
          for s in topology.services),
    ]


def vip_cidr_object(vip_cidr: str) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "ServiceCIDR", "metadata": _meta(VIP_CIDR_NAME),
            "spec": {"cidrs": [vip_cidr]}}


def check_vips(topology: Topology, config: KindConfig, vip_cidr: str) -> None:
    """Every VIP inside the extra ServiceCIDR and clear of the addresses kubeadm takes."""
    network, reserved = IPv4Network(vip_cidr), config.reserved_ips()
    for s in topology.services:
        if IPv4Address(s.vip) not in network:
            raise RuntimeProblem(f"Service {s.name} has VIP {s.vip}, outside the ServiceCIDR {vip_cidr}",
                                 "render with a vip_cidr that holds every topology VIP")
        if s.vip in reserved or s.vip == config.xds_ip:
            raise RuntimeProblem(f"Service {s.name}'s VIP {s.vip} is taken by {reserved.get(s.vip, XDS_NAME)}",
                                 "move serviceSubnet in cluster/kind.yaml away from the topology's VIPs")


def manifests(topology: Topology, config: KindConfig, vip_cidr: str = DEFAULT_SERVICE_SUBNET,
              ) -> dict[str, list[dict[str, Any]]]:
    """File name → objects, in the order `kubectl apply -f <dir>` takes them (lexical)."""
    check_vips(topology, config, vip_cidr)
    files = {
        "00-servicecidr.yaml": [vip_cidr_object(vip_cidr)],
        "10-meshkit-xds.yaml": control_plane_objects(config),
        "20-services.yaml": service_objects(topology),
    }
    for w in topology.sidecars():
        files[f"30-{w.deployment}.yaml"] = (
            workload_objects(topology, w, config) if w.captured  # a gateway: Envoy alone (kind/gateway.py)
            else gateway.gateway_objects(w, config, _meta, _deployment, _field_env, _non_root, node_overrides(w)))
    return files


def kind_topology() -> Topology:
    """The mesh the in-cluster server serves (`--topology bookinfo`): pod IPs are learned live."""
    return bookinfo(outsider=False, ingress=True)  # the sidecar-less outsider pod is local-runtime only for now


def deployments(topology: Topology) -> list[tuple[str, str]]:
    """(namespace, name) of every Deployment rendered, the xDS server's first."""
    return [(SYSTEM_NAMESPACE, XDS_NAME), *((w.namespace, w.deployment) for w in topology.sidecars())]


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the bootstraps) as readable `|` blocks; no `&id001` anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


_Dumper.add_representer(str, lambda dumper, text: dumper.represent_scalar(
    "tag:yaml.org,2002:str", text, style="|" if "\n" in text else None))


def render(name: str, out: Path, topology: Topology | None = None, config: KindConfig | None = None) -> Path:
    """Write `kind.yaml` and `manifests/*.yaml` into `out` (replacing old manifests); return `out`."""
    topology, config = topology or kind_topology(), config or KindConfig.load()
    manifest_dir = out / "manifests"
    shutil.rmtree(manifest_dir, ignore_errors=True)
    manifest_dir.mkdir(parents=True)
    (out / "kind.yaml").write_text(yaml.dump(config.named(name), Dumper=_Dumper, sort_keys=False))
    for filename, objects in manifests(topology, config).items():
        (manifest_dir / filename).write_text(yaml.dump_all(objects, Dumper=_Dumper, sort_keys=False))
    return out

