"""The kind runtime: the same mesh as real Kubernetes objects in a kind cluster.

`cluster_up` renders every manifest from the topology into a folder meshkit owns
(`$MESHKIT_HOME/kind/<name>/`, default `./.meshkit/kind/<name>/`), validates it offline, then drives
the `kind`, `docker` (or `podman`) and `kubectl` programs, one printed step at a time.
Nothing here talks to Kubernetes except through those programs, so tests put fakes on PATH.

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
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from importlib import import_module
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from pkgutil import iter_modules
from typing import Any, TextIO

import yaml

from ..constants import ADMIN_PORT, CONTROL_PORT, INBOUND_PORT, OUTBOUND_PORT, PROMETHEUS_PORT, PROXY_UID, XDS_PORT
from ..model import Topology, Workload, bookinfo
from ..model.bookinfo import DEFAULT_SERVICE_SUBNET
from ..model.schema import ANY, Obj, check
from .bootstrap import XdsAddress, envoy_bootstrap
from .errors import RuntimeProblem

REPO = Path(__file__).resolve().parents[2]
CLUSTER_DIR = REPO / "cluster"
KIND_CONFIG = CLUSTER_DIR / "kind.yaml"
IMAGES_DIR = CLUSTER_DIR / "images"

KIND_MIN_VERSION = (0, 32, 0)
ENVOY_IMAGE = "envoyproxy/envoy:v1.40.0"
IMAGE_REGISTRY = "meshkit.local"
IMAGE_TAG = "0.1.0"
IMAGES = ("xds", "app", "init")

MANAGED_BY = {"app.kubernetes.io/managed-by": "meshkit"}
SYSTEM_NAMESPACE = "meshkit-system"
XDS_NAME = "meshkit-xds"
XDS_HOST_OFFSET = 15  # meshkit-xds gets .15 of the cluster's service subnet (.1 API server, .10 kube-dns)
# meshkit's control protocol (status, apply, ...) on the pod's own loopback: no other pod reaches it,
# only `kubectl port-forward` (which dials localhost inside the pod) with the cluster's credentials.
CONTROL_NAME = "meshkit-control"
XDS_COMMAND = ("meshkit", "serve-xds", "--listen", f"0.0.0.0:{XDS_PORT}", "--topology", "bookinfo",
               "--learn-pod-ips", "--control", f"127.0.0.1:{CONTROL_PORT}")
VIP_CIDR_NAME = "meshkit-vips"
INIT_SCRIPT_PATH = "/usr/local/bin/istio-iptables.sh"
CAPTURE_ARGS = ("-p", str(OUTBOUND_PORT), "-z", str(INBOUND_PORT), "-u", str(PROXY_UID), "-g", str(PROXY_UID),
                "-d", f"{PROMETHEUS_PORT},15021,15020")  # 15021/15020: pilot-agent's, excluded as Istio does
BOOTSTRAP_DIR = "/etc/istio/proxy"
APPS_DIR = "/opt/meshkit-apps"
BOOTSTRAP_FILE = "envoy-bootstrap.json"

PORT_BASE = 25000
CREATE_WAIT = "180s"
ROLLOUT_TIMEOUT_S = 300
FORWARD_READY_S = 15.0

ENGINE_FIX = (
    "kind runs each Kubernetes node as a container, so it needs a running container engine: "
    "install and start Docker Desktop (macOS/Windows), or on Debian/Ubuntu "
    "`sudo apt-get install docker.io && sudo systemctl start docker`, or use podman "
    "(`podman machine start` on macOS) with `export KIND_EXPERIMENTAL_PROVIDER=podman`; "
    "`meshkit cluster up --dry-run` shows the plan without one"
)


# ---------------------------------------------------------------------------------------------- config

@dataclass(frozen=True)
class KindConfig:
    """What meshkit needs from `cluster/kind.yaml`: node image, Kubernetes version, subnets."""

    raw: dict[str, Any]

    @classmethod
    def load(cls, path: Path = KIND_CONFIG) -> KindConfig:
        config = cls(yaml.safe_load(path.read_text()))
        problems = kind_config_problems(config.raw)
        if problems:
            raise RuntimeProblem(f"{path} is not a valid kind config: {'; '.join(problems)}",
                                 "fix those keys (kind decodes its config strictly)")
        return config

    @property
    def node_image(self) -> str:
        return str(self.raw["nodes"][0]["image"])

    @property
    def kubernetes_version(self) -> str:
        """`1.36.1` for `kindest/node:v1.36.1@sha256:…`."""
        match = re.search(r":v(\d+\.\d+\.\d+)@sha256:[0-9a-f]{64}$", self.node_image)
        if not match:
            raise RuntimeProblem(f"node image {self.node_image!r} is not pinned as kindest/node:vX.Y.Z@sha256:…",
                                 "pin the image with the digest from the kind release notes")
        return match.group(1)

    @property
    def service_subnet(self) -> IPv4Network:
        return IPv4Network(self.raw["networking"]["serviceSubnet"])

    @property
    def xds_ip(self) -> str:
        return str(self.service_subnet[XDS_HOST_OFFSET])

    def reserved_ips(self) -> dict[str, str]:
        """Addresses kubeadm hands out itself in the service subnet."""
        return {str(self.service_subnet[1]): "the kubernetes API Service",
                str(self.service_subnet[10]): "kube-dns"}

    def named(self, name: str) -> dict[str, Any]:
        return {**self.raw, "name": name}


# kind's v1alpha4 fields (sigs.k8s.io/kind pkg/apis/config/v1alpha4/types.go); kind decodes strictly.
_NODE = Obj(dict.fromkeys(("role", "image", "labels", "extraMounts", "extraPortMappings",
                           "kubeadmConfigPatches", "kubeadmConfigPatchesJSON6902"), ANY))
_KIND_SCHEMA = Obj({
    **dict.fromkeys(("kind", "apiVersion", "name", "featureGates", "runtimeConfig", "kubeadmConfigPatches",
                     "kubeadmConfigPatchesJSON6902", "containerdConfigPatches",
                     "containerdConfigPatchesJSON6902"), ANY),
    "nodes": [_NODE],
    "networking": Obj(dict.fromkeys(("ipFamily", "apiServerAddress", "apiServerPort", "podSubnet",
                                     "serviceSubnet", "disableDefaultCNI", "kubeProxyMode", "dnsSearch"), ANY)),
})


def kind_config_problems(raw: Any) -> list[str]:
    """Unknown keys and missing essentials, mirroring kind's strict decoder."""
    problems = check(raw, _KIND_SCHEMA, "")
    if not isinstance(raw, dict):
        return problems
    if (raw.get("kind"), raw.get("apiVersion")) != ("Cluster", "kind.x-k8s.io/v1alpha4"):
        problems.append("want kind: Cluster and apiVersion: kind.x-k8s.io/v1alpha4")
    nodes = raw.get("nodes") or []
    if len(nodes) != 1 or nodes[0].get("role") != "control-plane" or "image" not in nodes[0]:
        problems.append("want exactly one control-plane node with a pinned image")
    if "serviceSubnet" not in (raw.get("networking") or {}):
        problems.append("networking.serviceSubnet must be set explicitly")
    return problems


def image_ref(name: str) -> str:
    """Fully qualified, so docker, podman and containerd all agree on the name."""
    return f"{IMAGE_REGISTRY}/{name}:{IMAGE_TAG}"


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
        *(_service(s.name, s.namespace, s.vip, dict(s.selector),
                   [{"name": p.name, "port": p.port, "targetPort": p.target_port, "protocol": "TCP"}
                    for p in s.ports])
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
        files[f"30-{w.deployment}.yaml"] = workload_objects(topology, w, config)
    return files


def kind_topology() -> Topology:
    """The mesh the in-cluster server serves (`--topology bookinfo`): pod IPs are learned live."""
    return bookinfo(outsider=False)  # the sidecar-less outsider pod is local-runtime only for now


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


# ---------------------------------------------------------------------------------------------- validate

def parse_bootstrap(data: dict[str, Any]) -> Any:
    """Strictly parse an Envoy bootstrap dict into `envoy.config.bootstrap.v3.Bootstrap`."""
    from envoy.config.bootstrap.v3 import bootstrap_pb2
    from google.protobuf import json_format

    for type_url in _any_types(data):
        package = type_url.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        for module in iter_modules(import_module(package).__path__):
            if module.name.endswith("_pb2"):
                import_module(f"{package}.{module.name}")
    return json_format.ParseDict(data, bootstrap_pb2.Bootstrap())


def _any_types(value: Any) -> set[str]:
    if isinstance(value, dict):
        found = {value["@type"]} if "@type" in value else set()
        return found.union(*(_any_types(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_any_types(v) for v in value))
    return set()


def validate(out: Path) -> list[str]:
    """Check a rendered folder offline; return what was checked, raise RuntimeProblem on any error.

    The kind config against kind's fields, every object against the node's Kubernetes version with
    kubernetes-validate (strict), every bootstrap and `--config-yaml` override with xds-protos.
    """
    config = KindConfig.load(out / "kind.yaml")
    version = config.kubernetes_version
    try:
        import kubernetes_validate
    except ImportError:
        kubernetes_validate = None
    errors, objects, bootstraps = [], 0, 0
    for path in sorted((out / "manifests").glob("*.yaml")):
        for obj in yaml.safe_load_all(path.read_text()):
            objects += 1
            where = f"{path.name}: {obj['kind']}/{obj['metadata']['name']}"
            if kubernetes_validate is not None:
                try:
                    kubernetes_validate.validate(obj, version, strict=True)
                except kubernetes_validate.ValidationError as e:
                    errors.append(f"{where}: {'.'.join(map(str, e.path))}: {e.message}")
                except kubernetes_validate.SchemaNotFoundError as e:
                    errors.append(f"{where}: {e.message}")
            for text in _bootstrap_texts(obj):
                bootstraps += 1
                try:
                    parse_bootstrap(json.loads(text))
                except Exception as e:  # ParseError, json errors, missing Any types: all mean "broken"
                    errors.append(f"{where}: bootstrap does not parse: {e}")
    if errors:
        raise RuntimeProblem("rendered manifests are invalid:\n  " + "\n  ".join(errors),
                             "this is a meshkit bug: report it with the lines above")
    schema = (f"{objects} objects valid for Kubernetes {version} (strict)" if kubernetes_validate
              else f"{objects} objects NOT schema-checked: pip install kubernetes-validate")
    return [f"kind config ok ({config.node_image})", schema, f"{bootstraps} Envoy bootstraps parse"]


def _bootstrap_texts(obj: dict[str, Any]) -> list[str]:
    if obj["kind"] == "ConfigMap":
        return [obj["data"][BOOTSTRAP_FILE]]
    if obj["kind"] != "Deployment":
        return []
    containers = obj["spec"]["template"]["spec"].get("initContainers", [])
    return [c["args"][c["args"].index("--config-yaml") + 1] for c in containers if "--config-yaml" in c.get("args", [])]


# ---------------------------------------------------------------------------------------------- plan

def home() -> Path:
    return Path(os.environ.get("MESHKIT_HOME", ".meshkit"))


def state_dir(name: str) -> Path:
    return (home() / "kind" / name).resolve()


def engine() -> str:
    """The container engine CLI kind will use: podman when KIND_EXPERIMENTAL_PROVIDER says so."""
    return "podman" if os.environ.get("KIND_EXPERIMENTAL_PROVIDER") == "podman" else "docker"


def host_arch() -> str | None:
    return {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower())


@dataclass(frozen=True)
class Forward:
    """A `kubectl port-forward` from 127.0.0.1:local_port to a port inside a pod."""

    name: str
    namespace: str
    target: str
    remote_port: int
    local_port: int

    def argv(self, kubeconfig: Path) -> list[str]:
        return ["kubectl", "--kubeconfig", str(kubeconfig), "port-forward", "--address", "127.0.0.1",
                "-n", self.namespace, self.target, f"{self.local_port}:{self.remote_port}"]


def forwards(topology: Topology, port_base: int = PORT_BASE) -> list[Forward]:
    """The xDS server on `port_base`, then each sidecar's admin port on the next ones, then the
    boss's control port (what `meshkit.connect(runtime="kind")` talks to)."""
    sidecars = topology.sidecars()
    return [
        Forward(XDS_NAME, SYSTEM_NAMESPACE, f"svc/{XDS_NAME}", XDS_PORT, port_base),
        *(Forward(w.deployment, w.namespace, f"deployment/{w.deployment}", ADMIN_PORT, port_base + 1 + i)
          for i, w in enumerate(sidecars)),
        Forward(CONTROL_NAME, SYSTEM_NAMESPACE, f"deployment/{XDS_NAME}", CONTROL_PORT,
                port_base + 1 + len(sidecars)),
    ]


def deployments(topology: Topology) -> list[tuple[str, str]]:
    return [(SYSTEM_NAMESPACE, XDS_NAME), *((w.namespace, w.deployment) for w in topology.sidecars())]


@dataclass(frozen=True)
class Step:
    """One printed step of `cluster up`: its commands and what to do when one fails."""

    key: str
    title: str
    commands: tuple[tuple[str, ...], ...] = ()
    note: str = ""
    fix: str = ""


@dataclass
class Plan:
    name: str
    dir: Path
    arch: str
    port_base: int = PORT_BASE
    rollout_timeout_s: int = ROLLOUT_TIMEOUT_S
    topology: Topology = field(default_factory=kind_topology)

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    def kubectl(self, *args: str) -> tuple[str, ...]:
        return ("kubectl", "--kubeconfig", str(self.kubeconfig), *args)

    def steps(self) -> list[Step]:
        eng, manifests_dir = engine(), self.dir / "manifests"
        fw = forwards(self.topology, self.port_base)
        logs = self.dir / "logs"
        return [
            Step("preflight", "preflight", (
                (eng, "info", "--format", "{{.ServerVersion}}"), ("kind", "version"),
                ("kubectl", "version", "--client", "-o", "json")),
                note=f"also: host architecture amd64|arm64, 127.0.0.1:{fw[0].local_port}-"
                     f"{fw[-1].local_port} free"),
            Step("render", "render manifests", note=f"write {self.dir}/kind.yaml and {manifests_dir}/*.yaml"),
            Step("validate", "validate offline",
                 note="kind config fields; kubernetes-validate --strict; Envoy bootstraps via xds-protos"),
            Step("create", "create the kind cluster", (
                ("kind", "get", "clusters"),
                ("kind", "create", "cluster", "--name", self.name, "--config", str(self.dir / "kind.yaml"),
                 "--kubeconfig", str(self.kubeconfig), "--wait", CREATE_WAIT)),
                note=f"create only if `kind get clusters` does not list {self.name}; otherwise "
                     f"`kind export kubeconfig --name {self.name} --kubeconfig {self.kubeconfig}`",
                fix=f"read kind's error above; the engine needs ~2 GB free memory; to start over: "
                    f"`meshkit cluster down --name {self.name}`; to debug: `kind create cluster --retain` "
                    f"then `kind export logs`"),
            Step("build", "build images", tuple(
                (eng, "build", "--platform", f"linux/{self.arch}", "-f", str(IMAGES_DIR / f"{image}.Dockerfile"),
                 "-t", image_ref(image), str(REPO)) for image in IMAGES),
                fix=f"the builds pip/apt-install from PyPI and Debian: check the engine reaches them; "
                    f"full output in {logs}"),
            Step("load", "load images into the node", tuple(
                ("kind", "load", "docker-image", image_ref(image), "--name", self.name) for image in IMAGES),
                note=f"{ENVOY_IMAGE} is pulled by the node itself",
                fix=f"if it says `content digest … not found` (Docker's containerd image store), load an "
                    f"archive instead: `{eng} save -o img.tar IMAGE && kind load image-archive img.tar "
                    f"--name {self.name}`; check that `kind get clusters` lists {self.name}"),
            Step("apply", "apply manifests", (
                self.kubectl("apply", "-f", str(manifests_dir / "00-servicecidr.yaml")),
                self.kubectl("wait", "--for=condition=Ready", f"servicecidr/{VIP_CIDR_NAME}", "--timeout=60s"),
                self.kubectl("apply", "-f", str(manifests_dir))),
                fix="the cluster must run Kubernetes ≥ 1.33 (ServiceCIDR, native sidecars); "
                    "check `kubectl get nodes`"),
            Step("rollout", "wait for rollouts", tuple(
                self.kubectl("-n", ns, "rollout", "status", f"deployment/{d}",
                             f"--timeout={self.rollout_timeout_s}s")
                for ns, d in deployments(self.topology)),
                fix="see why with `kubectl --kubeconfig {kc} -n {ns} describe pods` and "
                    "`kubectl --kubeconfig {kc} -n {ns} logs deployment/{d} --all-containers`; "
                    "first runs pull the Envoy image (slow networks: raise the timeout)"),
            Step("forward", "port-forward to 127.0.0.1", tuple(tuple(f.argv(self.kubeconfig)) for f in fw),
                 note="each runs in the background; `meshkit cluster down` stops them",
                 fix="free the port (`meshkit cluster down` stops earlier forwards) and run up again"),
        ]


def format_plan(plan: Plan) -> str:
    """The dry-run text: every command in order, as a shell would take it."""
    lines = [f"# meshkit cluster up --dry-run: kind cluster {plan.name!r}; nothing is run or written"]
    for i, step in enumerate(plan.steps(), 1):
        lines.append(f"# {i}. {step.title}" + (f" ({step.note})" if step.note else ""))
        lines.extend(shlex.join(argv) for argv in step.commands)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- run

def _run(argv: tuple[str, ...] | list[str], timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError as e:
        raise RuntimeProblem(f"`{argv[0]}` is not on PATH", "run `meshkit cluster up` to see what is missing") from e


def _tail(text: str, lines: int = 8) -> str:
    return "\n    ".join(text.strip().splitlines()[-lines:]) or "(no output)"


def _version(text: str, pattern: str) -> tuple[int, ...] | None:
    match = re.search(pattern, text)
    return tuple(int(g) for g in match.groups()) if match else None


def _engine_problem() -> tuple[str, str] | None:
    eng = engine()
    if shutil.which(eng) is None:
        return f"no container engine: `{eng}` is not on PATH", ENGINE_FIX
    info = _run((eng, "info", "--format", "{{.ServerVersion}}"), timeout=30)
    if info.returncode != 0:
        reason = _tail(info.stderr or info.stdout, 1)
        return (f"no {eng.capitalize()} engine answers: `{eng} info` failed ({reason})",
                f"start the engine if it is installed; otherwise {ENGINE_FIX}")
    return None


def _kind_problem() -> tuple[str, str] | None:
    want = ".".join(map(str, KIND_MIN_VERSION))
    fix = (f"install kind v{want} or newer (https://kind.sigs.k8s.io/docs/user/quick-start/#installation, "
           f"or `go install sigs.k8s.io/kind@v{want}`)")
    if shutil.which("kind") is None:
        return "kind is not on PATH", fix
    found = _version(_run(("kind", "version"), timeout=30).stdout, r"v(\d+)\.(\d+)\.(\d+)")
    if found is None or found < KIND_MIN_VERSION:
        return f"kind {'.'.join(map(str, found)) if found else '(unknown version)'} is too old", fix
    return None


def _kubectl_problem(config: KindConfig) -> tuple[str, str] | None:
    major, minor = map(int, config.kubernetes_version.split(".")[:2])
    fix = (f"install kubectl {major}.{minor - 1} or newer (within one minor of the node's Kubernetes "
           f"{config.kubernetes_version}): https://kubernetes.io/docs/tasks/tools/")
    if shutil.which("kubectl") is None:
        return "kubectl is not on PATH", fix
    out = _run(("kubectl", "version", "--client", "-o", "json"), timeout=30).stdout
    try:
        found = _version(json.loads(out)["clientVersion"]["gitVersion"], r"v(\d+)\.(\d+)")
    except (ValueError, KeyError):
        found = None
    if found is None or found < (major, minor - 1):
        return f"kubectl {'.'.join(map(str, found)) if found else '(unknown version)'} is too old", fix
    return None


def _port_problem(ports: list[int]) -> tuple[str, str] | None:
    busy = []
    for port in ports:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                busy.append(port)
    if busy:
        return (f"127.0.0.1 port(s) {', '.join(map(str, busy))} are in use; port-forwards need them",
                "stop what listens there (`ss -ltnp`), or `meshkit cluster down` if an earlier up holds them")
    return None


def preflight(plan: Plan, config: KindConfig) -> list[str]:
    """Check engine, kind, kubectl, architecture and ports; raise one RuntimeProblem listing every gap."""
    problems = [p for p in (
        _engine_problem(),
        _kind_problem(),
        _kubectl_problem(config),
        None if host_arch() else (f"host architecture {platform.machine()} is not supported",
                                  "use an amd64 or arm64 machine (Envoy and kind images exist only for those)"),
        _port_problem([f.local_port for f in forwards(plan.topology, plan.port_base)]),
    ) if p]
    if len(problems) == 1:
        raise RuntimeProblem(*problems[0])
    if problems:
        raise RuntimeProblem(
            f"preflight found {len(problems)} problems:\n"
            + "\n".join(f"  - {p}. Fix: {f}" for p, f in problems),
            "fix each item above, then run `meshkit cluster up` again")
    return [f"{engine()} engine answers", "kind and kubectl recent enough", f"arch {host_arch()}", "ports free"]


class _Runner:
    """Runs the steps of a plan, printing each with its elapsed time; logs go under `<dir>/logs`."""

    def __init__(self, plan: Plan, out: TextIO, progress: bool) -> None:
        self.plan, self.out, self.progress = plan, out, progress
        self.logs = plan.dir / "logs"

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def run(self, step: Step, argv: tuple[str, ...], fix: str | None = None) -> str:
        if self.progress:
            self.say(f"      $ {shlex.join(argv)}")
        started = time.monotonic()
        result = _run(argv)
        self.logs.mkdir(parents=True, exist_ok=True)
        with (self.logs / f"{step.key}.log").open("a") as log:
            log.write(f"$ {shlex.join(argv)}\n{result.stdout}{result.stderr}\n")
        if self.progress and time.monotonic() - started > 5:
            self.say(f"        ({time.monotonic() - started:.0f}s)")
        if result.returncode != 0:
            raise RuntimeProblem(
                f"step '{step.title}' failed: `{shlex.join(argv)}` exited {result.returncode}:\n    "
                + _tail(result.stderr or result.stdout), fix or step.fix or "read the error above")
        return result.stdout


def _is_forward(pid: int) -> bool:
    """Whether `pid` is still a kubectl port-forward (and not a recycled pid)."""
    ps = subprocess.run(["ps", "-ww", "-o", "args=", "-p", str(pid)], capture_output=True, text=True, check=False)
    return "port-forward" in ps.stdout


def _stop_forwards(directory: Path) -> int:
    """Stop the port-forwards an earlier `up` started (checking each pid is still a port-forward)."""
    record = directory / "forwards.json"
    if not record.exists():
        return 0
    stopped = 0
    for entry in json.loads(record.read_text()):
        if _is_forward(entry["pid"]):
            os.killpg(entry["pid"], signal.SIGTERM)  # its own session: started with start_new_session
            stopped += 1
    record.unlink()
    return stopped


def _start_forward(forward: Forward, plan: Plan) -> int:
    log_path = plan.dir / "logs" / f"forward-{forward.name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        process = subprocess.Popen(forward.argv(plan.kubeconfig), stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + FORWARD_READY_S
    while time.monotonic() < deadline:
        if "Forwarding from" in log_path.read_text():
            return process.pid
        if process.poll() is not None:
            break
        time.sleep(0.1)
    if process.poll() is None:
        process.terminate()
    raise RuntimeProblem(
        f"port-forward to {forward.target} on 127.0.0.1:{forward.local_port} did not come up:\n    "
        + _tail(log_path.read_text()),
        "free the port, check the pod runs (`meshkit cluster status`), then `meshkit cluster up` again")


@dataclass(frozen=True)
class ClusterInfo:
    """Where a kind mesh lives and how to reach it from this host."""

    name: str
    dir: Path
    kubeconfig: Path
    forwards: tuple[dict[str, Any], ...]

    @property
    def xds_address(self) -> str:
        return f"127.0.0.1:{self.forwards[0]['local_port']}"

    def admin_address(self, deployment: str) -> str:
        entry = next(f for f in self.forwards if f["name"] == deployment)
        return f"127.0.0.1:{entry['local_port']}"

    @property
    def control_address(self) -> str:
        """The boss's control protocol, port-forwarded (`meshkit.connect(runtime="kind")`)."""
        return self.admin_address(CONTROL_NAME)

    def sidecar_forwards(self) -> list[dict[str, Any]]:
        return [f for f in self.forwards if f["name"] not in (XDS_NAME, CONTROL_NAME)]

    @classmethod
    def load(cls, name: str, directory: Path | None = None) -> ClusterInfo:
        """What `cluster up` left in `directory` (default: `state_dir(name)`), or RuntimeProblem."""
        directory = directory or state_dir(name)
        record = directory / "forwards.json"
        if not record.exists():
            raise RuntimeProblem(f"no kind mesh {name!r} is up here: {record} does not exist",
                                 f"run `meshkit cluster up --name {name}` (with the same MESHKIT_HOME)")
        return cls(name, directory, directory / "kubeconfig", tuple(json.loads(record.read_text())))


def cluster_up(name: str = "meshkit", *, dry_run: bool = False, out: TextIO | None = None,
               progress: bool = True, port_base: int = PORT_BASE,
               rollout_timeout_s: int = ROLLOUT_TIMEOUT_S) -> ClusterInfo | None:
    """Boot (or re-use) kind cluster `name` with the control plane and sidecar-carrying pods.

    Prints each step with its elapsed time to `out` (and each command when `progress`). With
    `dry_run`, prints the whole plan and touches nothing, engine or not; returns None then.
    """
    out = out or sys.stdout
    plan = Plan(name, state_dir(name), host_arch() or "amd64", port_base, rollout_timeout_s)
    if dry_run:
        out.write(format_plan(plan))
        return None
    runner, config = _Runner(plan, out, progress), KindConfig.load()
    _stop_forwards(plan.dir)
    steps = plan.steps()
    runner.say(f"meshkit cluster up: kind cluster {name!r}, files in {plan.dir}")
    pids: list[int] = []
    for i, step in enumerate(steps, 1):
        runner.say(f"[{i}/{len(steps)}] {step.title}")
        started = time.monotonic()
        notes = _do_step(step, plan, config, runner, pids)
        for note in notes:
            runner.say(f"      {note}")
        runner.say(f"      done in {time.monotonic() - started:.1f}s")
    fw = forwards(plan.topology, plan.port_base)
    records = tuple({**vars(f), "pid": pid} for f, pid in zip(fw, pids, strict=True))
    (plan.dir / "forwards.json").write_text(json.dumps(records, indent=2))
    info = ClusterInfo(name, plan.dir, plan.kubeconfig, records)
    runner.say(f"ready: xDS server on {info.xds_address}; control on {info.control_address}; sidecar admin ports "
               + ", ".join(f"{f['name']} {f['local_port']}" for f in info.sidecar_forwards()))
    return info


def _do_step(step: Step, plan: Plan, config: KindConfig, runner: _Runner, pids: list[int]) -> list[str]:
    if step.key == "preflight":
        return preflight(plan, config)
    if step.key == "render":
        render(plan.name, plan.dir, plan.topology, config)
        return [f"wrote {plan.dir / 'manifests'}"]
    if step.key == "validate":
        return validate(plan.dir)
    if step.key == "create":
        listed = runner.run(step, step.commands[0]).split()
        if plan.name in listed:
            runner.run(step, ("kind", "export", "kubeconfig", "--name", plan.name,
                              "--kubeconfig", str(plan.kubeconfig)))
            return [f"cluster {plan.name!r} already exists: re-using it"]
        runner.run(step, step.commands[1])
        return []
    if step.key == "rollout":
        for argv, (ns, d) in zip(step.commands, deployments(plan.topology), strict=True):
            runner.run(step, argv, step.fix.format(kc=plan.kubeconfig, ns=ns, d=d))
        return []
    if step.key == "forward":
        for forward in forwards(plan.topology, plan.port_base):
            if runner.progress:
                runner.say(f"      $ {shlex.join(forward.argv(plan.kubeconfig))} &")
            pids.append(_start_forward(forward, plan))
        return []
    for argv in step.commands:
        runner.run(step, argv)
    return []


def cluster_down(name: str = "meshkit", *, out: TextIO | None = None) -> None:
    """Stop the port-forwards, delete the kind cluster (no error if absent), remove meshkit's folder."""
    out = out or sys.stdout
    directory = state_dir(name)
    print(f"stopped {_stop_forwards(directory)} port-forward(s)", file=out)
    if shutil.which("kind") is None:
        raise RuntimeProblem("kind is not on PATH, so the cluster cannot be deleted",
                             f"install kind, or delete the node container: `{engine()} rm -f {name}-control-plane`")
    result = _run(("kind", "delete", "cluster", "--name", name))
    if result.returncode != 0:
        problem = _engine_problem()
        raise RuntimeProblem(f"`kind delete cluster --name {name}` failed:\n    {_tail(result.stderr)}",
                             problem[1] if problem else "read kind's error above and retry")
    print(f"deleted kind cluster {name!r} (if it existed)", file=out)
    shutil.rmtree(directory, ignore_errors=True)


def cluster_status(name: str = "meshkit") -> dict[str, Any]:
    """Whether the cluster exists, each Deployment's ready count, and each port-forward's liveness."""
    problem = _engine_problem()
    if problem:
        raise RuntimeProblem(*problem)
    directory = state_dir(name)
    listed = _run(("kind", "get", "clusters"))
    if listed.returncode != 0:
        raise RuntimeProblem(f"`kind get clusters` failed: {_tail(listed.stderr, 1)}", ENGINE_FIX)
    status: dict[str, Any] = {"name": name, "dir": str(directory), "exists": name in listed.stdout.split(),
                              "deployments": {}, "forwards": []}
    kubeconfig = directory / "kubeconfig"
    if status["exists"] and kubeconfig.exists():
        got = _run(("kubectl", "--kubeconfig", str(kubeconfig), "get", "deployments", "-A",
                    "-l", "app.kubernetes.io/managed-by=meshkit", "-o", "json"), timeout=60)
        if got.returncode != 0:
            raise RuntimeProblem(f"`kubectl get deployments` failed: {_tail(got.stderr, 2)}",
                                 f"check the cluster answers: `kubectl --kubeconfig {kubeconfig} get nodes`")
        for item in json.loads(got.stdout)["items"]:
            key = f"{item['metadata']['namespace']}/{item['metadata']['name']}"
            ready = item.get("status", {}).get("readyReplicas", 0)
            status["deployments"][key] = f"{ready}/{item['spec'].get('replicas', 1)}"
    record = directory / "forwards.json"
    for entry in json.loads(record.read_text()) if record.exists() else []:
        status["forwards"].append({**entry, "alive": _is_forward(entry["pid"])})
    return status
