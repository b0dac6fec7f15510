"""What the kind path knows before it runs anything: pins, names and ports, `cluster/kind.yaml`,
where a cluster's files live (`<home>/kind/<name>/`), and the `forwards.json` record `cluster up` leaves.

Nothing here runs a program or writes a file.
"""

from __future__ import annotations

import json
import os
import platform
import re
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import yaml

from ...constants import ADMIN_PORT, CONTROL_PORT, XDS_PORT, default_home
from ...model import Topology
from ...model.schema import ANY, Obj, check
from ..errors import RuntimeProblem

REPO = Path(__file__).resolve().parents[3]
CLUSTER_DIR = REPO / "cluster"
KIND_CONFIG = CLUSTER_DIR / "kind.yaml"
IMAGES_DIR = CLUSTER_DIR / "images"

KIND_MIN_VERSION = (0, 32, 0)
ENVOY_IMAGE = "envoyproxy/envoy:v1.40.0"
IMAGE_REGISTRY = "meshkit.local"
IMAGE_TAG = "0.1.0"
IMAGES = ("xds", "app", "init")

SYSTEM_NAMESPACE = "meshkit-system"
XDS_NAME = "meshkit-xds"
XDS_HOST_OFFSET = 15  # meshkit-xds gets .15 of the cluster's service subnet (.1 API server, .10 kube-dns)
# meshkit's control protocol (status, apply, ...) on the pod's own loopback: no other pod reaches it,
# only `kubectl port-forward` (which dials localhost inside the pod) with the cluster's credentials.
CONTROL_NAME = "meshkit-control"
VIP_CIDR_NAME = "meshkit-vips"
PORT_BASE = 25000

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


def home(explicit: str | os.PathLike[str] | None = None) -> Path:
    """`explicit` if given, else the rule every meshkit command follows: `$MESHKIT_HOME`, else `~/.meshkit`."""
    return Path(explicit).expanduser().resolve() if explicit else default_home()


_home = home  # `state_dir`'s parameter is called `home`, as everywhere else in meshkit


def state_dir(name: str, home: str | os.PathLike[str] | None = None) -> Path:
    """The folder meshkit owns for kind cluster `name`: `<home>/kind/<name>/`."""
    return (_home(home) / "kind" / name).resolve()


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
                                 f"run `meshkit cluster up --name {name}` (with the same --home or MESHKIT_HOME)")
        return cls(name, directory, directory / "kubeconfig", tuple(json.loads(record.read_text())))
