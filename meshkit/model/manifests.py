"""Kubernetes manifests as the mesh: Services, Deployments, ServiceAccounts, Namespaces → a Topology.

What `kubectl apply -f` and istiod would make of the file, on meshkit's addresses: each Deployment
becomes `replicas` pods named as a ReplicaSet names them (`<deployment>-<template hash>-<5 chars>`,
deterministic here), with the pod template's labels, service account and container ports; each
Service keeps its selector and ports, named `targetPort`s resolved against the selected pods'
container ports, and each port's protocol chosen as Istio chooses it (`appProtocol`, else the port
name's prefix `http-`, `grpc-`, `tcp-`...). Pods get IPs from `pod_subnet` and Services VIPs from
`service_subnet` (.10 up, in file order), as `bookinfo()` allocates the built-in demo.

No container image runs: each pod runs one of meshkit's demo apps (`AppSpec`). Istio's Bookinfo
images map to meshkit's Bookinfo apps, `tcp-echo-server` to its TCP echo, anything else to the
generic app (identity in JSON; calls the URLs of the `meshkit.io/calls` annotation or the
`MESHKIT_CALLS` env var). Everything read but not modelled is listed in `Manifest.notes`, one line
per kind of thing; anything meshkit cannot model raises `ManifestError` naming document and field,
before any address is handed out (nothing half-built).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from .bookinfo import DEFAULT_POD_SUBNET, DEFAULT_SERVICE_SUBNET, addresses, name_chars
from .topology import HTTP, TCP, AppSpec, MeshConfig, Service, ServicePort, Topology, TopologyError, Workload, labels

CALLS_ANNOTATION = "meshkit.io/calls"
CALLS_ENV = "MESHKIT_CALLS"
INJECT = "sidecar.istio.io/inject"
DEFAULT_NAMESPACE = "default"
BOOKINFO_IMAGE = re.compile(r"examples-bookinfo-(productpage|details|reviews|ratings)-(v\d+)")
TCP_ECHO_IMAGE = re.compile(r"tcp-echo-server")
WORKLOAD_KINDS = ("Deployment", "Pod")
READ_KINDS = ("Namespace", "ServiceAccount", "Service", *WORKLOAD_KINDS)
SKIPPED_KINDS = ("ConfigMap", "Secret")  # harmless without a real container: noted, not modelled
# Istio's protocol selection: appProtocol or the name's prefix (`http-web`). meshkit's listeners know
# HTTP and TCP; HTTP/2 and gRPC ride HTTP connection managers, everything else a tcp_proxy.
HTTP_PROTOCOLS = ("http", "http2", "grpc", "grpc-web", "h2c")
TCP_PROTOCOLS = ("tcp", "tls", "https", "mongo", "mysql", "redis")
SERVER_FIRST_PORTS = (25, 3306, 5432, 27017)  # Istio assumes TCP for these when unnamed
MAX_PODS = 240  # a /24 less .1-.9 and the outsider's share: what the runtimes' subnets hold
# Fields that mean something to Kubernetes but nothing here, grouped into one note per kind of thing.
_SCHEDULING = "scheduling (affinity, nodeSelector, tolerations)"
_PROBES = "probes (every demo app is Ready once it listens)"
_COMMAND = "container command/args (the demo app runs instead)"
_ENV = f"env (except {CALLS_ENV})"
IGNORED_POD_FIELDS = {
    "volumes": "volumes", "initContainers": "init containers", "securityContext": "securityContext",
    "affinity": _SCHEDULING, "nodeSelector": _SCHEDULING, "tolerations": _SCHEDULING,
    "terminationGracePeriodSeconds": "terminationGracePeriodSeconds", "imagePullSecrets": "imagePullSecrets",
}
IGNORED_CONTAINER_FIELDS = {
    "command": _COMMAND, "args": _COMMAND, "volumeMounts": "volumes", "resources": "resources (requests, limits)",
    "livenessProbe": _PROBES, "readinessProbe": _PROBES, "startupProbe": _PROBES,
    "securityContext": "securityContext", "imagePullPolicy": "imagePullPolicy", "env": _ENV, "envFrom": _ENV,
    "lifecycle": "lifecycle hooks", "workingDir": "workingDir",
}


class ManifestError(TopologyError):
    """A manifest meshkit cannot turn into a mesh: names the document, the field and the fix."""


@dataclass(frozen=True)
class Manifest:
    """The mesh a manifest file describes, and one line per kind of thing it ignored."""

    topology: Topology
    notes: tuple[str, ...]


@dataclass
class _Pod:
    """A pod template, read: everything a Workload needs except its name and address."""

    where: str
    kind: str
    owner: str
    namespace: str
    labels: dict[str, str]
    service_account: str
    ports: dict[str, int]  # container port name (or its number) → number
    tcp_ports: set[int]
    sidecar: bool | None  # None until the namespace decides
    app: AppSpec
    replicas: int
    template_hash: str


def parse_manifests(text: str | Sequence[tuple[str, str]], pod_subnet: str = DEFAULT_POD_SUBNET,
                    service_subnet: str = DEFAULT_SERVICE_SUBNET, mesh: MeshConfig | None = None) -> Manifest:
    """The Topology (and notes) of a Kubernetes manifest, or of several as `[(file name, text), ...]`
    (as `kubectl apply -f a.yaml -f b.yaml`); ManifestError for what it cannot model."""
    reader = _Reader()
    for source, part in [("", text)] if isinstance(text, str) else text:
        for where, doc in _documents(part, f"{source}: " if source else ""):
            reader.read(where, doc)
    return reader.build(pod_subnet, service_subnet, mesh or MeshConfig())


def _documents(text: str, source: str = "") -> Iterator[tuple[str, dict]]:
    try:
        loaded = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise ManifestError(f"{source}not valid YAML: {exc}") from exc
    count = 0
    for number, item in enumerate(loaded, 1):
        if item is None:
            continue
        if not isinstance(item, dict):
            raise ManifestError(f"{source}document {number}: a Kubernetes object is a mapping, "
                                f"got {type(item).__name__}")
        items = item.get("items") if item.get("kind") == "List" else [item]
        if not isinstance(items, list):
            raise ManifestError(f"{source}document {number} (List): items must be a list")
        for doc in items:
            if not isinstance(doc, dict):
                raise ManifestError(f"{source}document {number}: a Kubernetes object is a mapping, "
                                    f"got {type(doc).__name__}")
            count += 1
            yield source + _where(number, doc), doc
    if not count:
        raise ManifestError(f"{source}no Kubernetes objects in the file")


def _where(number: int, doc: dict) -> str:
    meta = doc.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    return f"document {number} ({doc.get('kind', 'no kind')} {name or '(no name)'})"


def _get(doc: dict, field: str, kind: type | tuple[type, ...], where: str, default: Any = None, at: str = "") -> Any:
    """`doc[...]` along a dotted path, type-checked; `default` when absent (`at`: the path to `doc`)."""
    field_path = f"{at}.{field}" if at else field
    value: Any = doc
    for part in field.split("."):
        if not isinstance(value, dict):
            raise ManifestError(f"{where}: {field_path}: expected a mapping above {part!r}")
        value = value.get(part)
        if value is None:
            return default
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = "/".join(k.__name__ for k in kinds)
        raise ManifestError(f"{where}: {field_path}: expected {names}, got {type(value).__name__} {value!r}")
    return value


def _name(doc: dict, where: str, field: str = "metadata.name") -> str:
    name = _get(doc, field, str, where)
    if not name or not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) or len(name) > 63:
        raise ManifestError(f"{where}: {field} {name!r} must be a DNS label (lower case letters, digits, '-')")
    return name


def _string_map(doc: dict, field: str, where: str) -> dict[str, str]:
    value = _get(doc, field, dict, where, {})
    return {str(k): "" if v is None else str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()}


def _port_number(entry: Any, field: str, where: str, at: str) -> int:
    """`entry[field]` of a ports list entry at `at`, checked to be a port number."""
    if not isinstance(entry, dict):
        raise ManifestError(f"{where}: {at}: expected a mapping with {field}")
    number = _get(entry, field, int, where, at=at)
    if number is None or not 1 <= number <= 65535:
        raise ManifestError(f"{where}: {at}.{field} must be a port number 1-65535, got {entry.get(field)!r}")
    return number


def port_protocol(name: str, app_protocol: str | None, number: int) -> tuple[str, bool]:
    """Istio's protocol for a Service port: (HTTP or TCP, whether it was declared rather than assumed)."""
    declared = (app_protocol or name.split("-", 1)[0] if name else app_protocol or "").lower()
    if declared in HTTP_PROTOCOLS or declared.startswith("http"):
        return HTTP, True
    if declared in TCP_PROTOCOLS or declared == "udp":
        return TCP, True
    return (TCP, False) if number in SERVER_FIRST_PORTS else (HTTP, False)


class _Reader:
    """Reads documents one by one, then builds the Topology once everything is known."""

    def __init__(self) -> None:
        self.namespaces: dict[str, dict[str, str]] = {DEFAULT_NAMESPACE: {}}
        self.accounts: set[tuple[str, str]] = set()
        self.services: list[tuple[str, dict]] = []
        self.pods: list[_Pod] = []
        self.notes: dict[str, set[str]] = defaultdict(set)
        self.seen: dict[tuple[str, str, str], str] = {}

    def note(self, what: str, who: str) -> None:
        self.notes[what].add(who)

    def read(self, where: str, doc: dict) -> None:
        kind = doc.get("kind")
        api = doc.get("apiVersion")
        if not isinstance(kind, str) or not isinstance(api, str):
            raise ManifestError(f"{where}: every object needs apiVersion and kind (strings)")
        if kind in SKIPPED_KINDS:
            self.note(f"{kind}s are not modelled (no container reads them)", _name(doc, where))
            return
        if kind not in READ_KINDS:
            group = api.split("/")[0] if "/" in api else ""
            hint = (" (Istio config: boot with the Kubernetes objects, then `meshkit apply` this document)"
                    if group.endswith("istio.io") else "")
            raise ManifestError(f"{where}: kind {kind} ({api}) is not supported{hint}; meshkit reads "
                                f"{', '.join(READ_KINDS)} (and notes {', '.join(SKIPPED_KINDS)})")
        name = _name(doc, where)
        namespace = DEFAULT_NAMESPACE if kind == "Namespace" else _get(doc, "metadata.namespace", str, where,
                                                                       DEFAULT_NAMESPACE)
        key = (kind if kind not in WORKLOAD_KINDS else "workload", namespace, name)
        if key in self.seen:
            raise ManifestError(f"{where}: a {kind} {name!r} in namespace {namespace!r} is already defined "
                                f"by {self.seen[key]}")
        self.seen[key] = where
        if kind == "Namespace":
            self.namespaces[name] = _string_map(doc, "metadata.labels", where)
        elif kind == "ServiceAccount":
            self.accounts.add((namespace, name))
        elif kind == "Service":
            self.services.append((where, doc))
        else:
            self.pods.append(self._pod(where, doc, kind, name, namespace))

    def _pod(self, where: str, doc: dict, kind: str, name: str, namespace: str) -> _Pod:
        if kind == "Pod":
            template, replicas = doc, 1
        else:
            replicas = _get(doc, "spec.replicas", int, where, 1)
            if replicas < 0:
                raise ManifestError(f"{where}: spec.replicas must be 0 or more, got {replicas}")
            template = _get(doc, "spec.template", dict, where)
            if template is None:
                raise ManifestError(f"{where}: spec.template is missing (a Deployment needs a pod template)")
            selector = _string_map(doc, "spec.selector.matchLabels", where)
            pod_labels = _string_map(template, "metadata.labels", where)
            if not selector or any(pod_labels.get(k) != v for k, v in selector.items()):
                raise ManifestError(f"{where}: spec.selector.matchLabels {selector} must be set and match "
                                    f"spec.template.metadata.labels {pod_labels}")
            for field in ("strategy", "revisionHistoryLimit", "minReadySeconds", "progressDeadlineSeconds"):
                if field in doc.get("spec", {}):
                    self.note("Deployment rollout settings (strategy, revisionHistoryLimit, ...)", name)
        prefix = "spec.template." if kind == "Deployment" else ""
        pod_labels = _string_map(template, "metadata.labels", where)
        annotations = _string_map(template, "metadata.annotations", where)
        spec = _get(template, "spec", dict, where, {})
        account = _get(spec, "serviceAccountName", str, where) or _get(spec, "serviceAccount", str, where) or "default"
        containers = _get(spec, "containers", list, where, [])
        if not containers:
            raise ManifestError(f"{where}: {prefix}spec.containers must list at least one container")
        for field, what in IGNORED_POD_FIELDS.items():
            if field in spec:
                self.note(f"ignored: {what}", name)
        for field in annotations:
            if field not in (CALLS_ANNOTATION, INJECT):
                self.note("ignored: pod annotations", f"{field} ({name})")
        ports: dict[str, int] = {}
        tcp_ports: set[int] = set()
        images, calls = [], [c for c in annotations.get(CALLS_ANNOTATION, "").split(",") if c.strip()]
        for index, container in enumerate(containers):
            at = f"{prefix}spec.containers[{index}]"
            if not isinstance(container, dict):
                raise ManifestError(f"{where}: {at}: expected a mapping")
            images.append(_get(container, "image", str, where, ""))
            for field, what in IGNORED_CONTAINER_FIELDS.items():
                if field in container and not (field == "env" and self._only_calls(container)):
                    self.note(f"ignored: {what}", name)
            for env in _get(container, "env", list, where, []):
                if isinstance(env, dict) and env.get("name") == CALLS_ENV:
                    calls += [c for c in str(env.get("value", "")).split(",") if c.strip()]
            for p_index, port in enumerate(_get(container, "ports", list, where, [])):
                self._container_port(where, f"{at}.ports[{p_index}]", port, ports, tcp_ports, name)
        if len(containers) > 1:
            self.note("several containers in a pod: one demo app serves all their ports", name)
        inject = pod_labels.get(INJECT, annotations.get(INJECT))
        return _Pod(where, kind, name, namespace, pod_labels, account, ports, tcp_ports,
                    sidecar=inject != "false" if inject is not None else None,
                    app=self._app(images, tuple(c.strip() for c in calls), name), replicas=replicas,
                    template_hash=name_chars(json.dumps(template, sort_keys=True, default=str), 10))

    @staticmethod
    def _only_calls(container: dict) -> bool:
        env = container.get("env")
        return isinstance(env, list) and all(isinstance(e, dict) and e.get("name") == CALLS_ENV for e in env)

    def _container_port(self, where: str, at: str, port: Any, ports: dict[str, int], tcp: set[int], owner: str) -> None:
        number = _port_number(port, "containerPort", where, at)
        if str(port.get("protocol", "TCP")).upper() != "TCP":
            self.note("ignored: non-TCP container ports (UDP, SCTP)", f"{owner}:{number}")
            return
        name = _get(port, "name", str, where, "", at=at)
        ports[name or str(number)] = number
        if name and port_protocol(name, None, number) == (TCP, True):
            tcp.add(number)

    def _app(self, images: list[str], calls: tuple[str, ...], owner: str) -> AppSpec:
        for image in images:
            if match := BOOKINFO_IMAGE.search(image):
                self.note("images mapped to meshkit's Bookinfo apps", image)
                return AppSpec("bookinfo", service=match.group(1), version=match.group(2), calls=calls)
            if TCP_ECHO_IMAGE.search(image):
                self.note("images mapped to meshkit's generic app echoing on every port", image)
                return AppSpec("generic", service="tcp-echo", calls=calls)
        self.note("images replaced by meshkit's generic demo app", f"{images[0] or '(no image)'} ({owner})")
        return AppSpec("generic", calls=calls)

    # -- build -----------------------------------------------------------------------------------
    def build(self, pod_subnet: str, service_subnet: str, mesh: MeshConfig) -> Manifest:
        pods = [p for p in self.pods for _ in range(p.replicas)]
        if len(pods) > MAX_PODS:
            raise ManifestError(f"{len(pods)} pods: meshkit's pod subnet holds {MAX_PODS}; lower some replicas")
        for pod in self.pods:
            self._check_pod(pod)
        services = [self._service(where, doc) for where, doc in self.services]
        for service, selected in services:
            for pod in selected:
                pod.ports.update({str(p.target_port): p.target_port for p in service.ports})
                pod.tcp_ports.update(p.target_port for p in service.ports if p.protocol == TCP)
        vips, pod_ips = addresses(service_subnet), addresses(pod_subnet)
        built = tuple(Service(s.name, s.namespace, next(vips), s.ports, s.selector) for s, _ in services)
        workloads = tuple(w for pod in self.pods for w in self._workloads(pod, pod_ips))
        notes = tuple(f"{what}: {', '.join(sorted(who))}" for what, who in sorted(self.notes.items()))
        return Manifest(Topology(built, workloads, mesh), notes)

    def _check_pod(self, pod: _Pod) -> None:
        if pod.namespace not in self.namespaces:
            self.note("namespaces created implicitly (no Namespace document)", pod.namespace)
            self.namespaces[pod.namespace] = {}
        if pod.service_account != "default" and (pod.namespace, pod.service_account) not in self.accounts:
            raise ManifestError(f"{pod.where}: serviceAccountName {pod.service_account!r}: no ServiceAccount of "
                                f"that name in namespace {pod.namespace!r} (add one, as Kubernetes would require)")
        if pod.sidecar is None:  # neither the pod's label nor its annotation decided: the namespace does
            pod.sidecar = self.namespaces[pod.namespace].get("istio-injection") != "disabled"
        if not pod.sidecar:
            self.note("pods without a sidecar (sidecar.istio.io/inject or istio-injection)", pod.owner)

    def _service(self, where: str, doc: dict) -> tuple[Service, list[_Pod]]:
        name = _name(doc, where)
        namespace = _get(doc, "metadata.namespace", str, where, DEFAULT_NAMESPACE)
        spec = _get(doc, "spec", dict, where, {})
        kind = _get(spec, "type", str, where, "ClusterIP")
        if kind == "ExternalName" or spec.get("clusterIP") == "None":
            raise ManifestError(f"{where}: spec.{'type ExternalName' if kind == 'ExternalName' else 'clusterIP None'}: "
                                f"meshkit models ClusterIP Services only (use a ServiceEntry for external names)")
        if kind != "ClusterIP":
            self.note(f"Service type {kind} served as ClusterIP (no node ports or load balancers)", name)
        if spec.get("clusterIP"):
            self.note("spec.clusterIP replaced by an address of meshkit's service subnet", name)
        selector = _string_map(spec, "selector", where)
        selected = [p for p in self.pods if p.namespace == namespace and selector
                    and all(p.labels.get(k) == v for k, v in selector.items())]
        if not selector:
            self.note("Services without a selector (no endpoints)", name)
        raw_ports = _get(spec, "ports", list, where, [])
        if not raw_ports:
            raise ManifestError(f"{where}: spec.ports must list at least one port")
        ports = []
        for index, raw in enumerate(raw_ports):
            ports.append(self._service_port(where, f"spec.ports[{index}]", raw, len(raw_ports), selected, name))
        names = [p.name for p in ports]
        if len(set(names)) != len(names) or len({p.port for p in ports}) != len(ports):
            raise ManifestError(f"{where}: spec.ports: port names and numbers must be unique, got {names}")
        return Service(name, namespace, "", tuple(ports), labels(selector)), selected

    def _service_port(self, where: str, at: str, raw: Any, count: int, selected: list[_Pod], owner: str) -> ServicePort:
        number = _port_number(raw, "port", where, at)
        if str(raw.get("protocol", "TCP")).upper() != "TCP":
            raise ManifestError(f"{where}: {at}.protocol {raw['protocol']!r}: meshkit's sidecars carry TCP only")
        name = _get(raw, "name", str, where, "", at=at)
        if count > 1 and not name:
            raise ManifestError(f"{where}: {at}.name is required when a Service has several ports")
        target = _get(raw, "targetPort", (int, str), where, number, at=at)
        if isinstance(target, str) and target.isdigit():
            target = int(target)
        if isinstance(target, str):
            found = {p.ports[target] for p in selected if target in p.ports}
            if len(found) != 1 or any(target not in p.ports for p in selected):
                raise ManifestError(f"{where}: {at}.targetPort {target!r}: {'no' if not found else 'not every'} "
                                    f"selected pod has a container port named so (found {sorted(found) or 'none'})")
            target = found.pop()
        if not 1 <= target <= 65535:
            raise ManifestError(f"{where}: {at}.targetPort must be a port number 1-65535 or a port name, got {target}")
        protocol, declared = port_protocol(name, _get(raw, "appProtocol", str, where, at=at), number)
        if not declared and protocol == HTTP:
            self.note(f"ports without a protocol name or appProtocol: Istio sniffs them, meshkit treats them as "
                      f"{HTTP} (name them tcp-... for TCP)", f"{owner}:{number}")
        return ServicePort(name or str(number), number, target, protocol)

    def _workloads(self, pod: _Pod, ips: Iterator[str]) -> Iterator[Workload]:
        tcp = set(pod.ports.values()) if pod.app.service == "tcp-echo" else pod.tcp_ports
        app = AppSpec(pod.app.program, pod.app.service, pod.app.version, pod.app.calls, tuple(sorted(tcp)))
        for index in range(pod.replicas):
            name = pod.owner if pod.kind == "Pod" else \
                f"{pod.owner}-{pod.template_hash}-{name_chars(f'{pod.owner}/{pod.template_hash}/{index}', 5)}"
            yield Workload(name=name, namespace=pod.namespace, ip=next(ips), labels=labels(pod.labels),
                           service_account=pod.service_account, ports=tuple(sorted(set(pod.ports.values()))),
                           sidecar=bool(pod.sidecar), app_spec=app)
