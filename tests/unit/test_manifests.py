"""Kubernetes manifests as the mesh: Istio's own samples as they are, and the input meshkit refuses."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from meshkit.errors import InvalidInput
from meshkit.model import HTTP, TCP, TopologyError, bookinfo
from meshkit.model.manifests import ManifestError, parse_manifests
from meshkit.runtime.apps import app_command
from meshkit.runtime.choose import read_topology

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "istio-samples"
K8S = "[bcdfghjklmnpqrstvwxz2456789]"  # the alphabet of ReplicaSet and pod name suffixes
POD_NAME = re.compile(rf"^(?P<deployment>[a-z0-9-]+)-(?P<hash>{K8S}{{10}})-{K8S}{{5}}$")


def sample(name: str):
    return parse_manifests((SAMPLES / name).read_text())


def yaml(text: str) -> str:
    return textwrap.dedent(text)


def deployment(name: str = "web", replicas: int = 1, labels: str = "app: web", extra: str = "",
               ports: str = "- containerPort: 8080") -> str:
    indented = textwrap.indent(textwrap.dedent(ports).strip(), " " * 8)
    return yaml(f"""\
        apiVersion: apps/v1
        kind: Deployment
        metadata: {{name: {name}}}
        spec:
          replicas: {replicas}
          selector: {{matchLabels: {{{labels}}}}}
          template:
            metadata: {{labels: {{{labels}}}{extra}}}
            spec:
              containers:
              - name: main
                image: example.com/{name}:1
                ports:
        """) + indented + "\n"


def service(name: str = "web", ports: str = "- {name: http, port: 80, targetPort: 8080}",
            selector: str = "app: web") -> str:
    return yaml(f"""\
        apiVersion: v1
        kind: Service
        metadata: {{name: {name}}}
        spec:
          selector: {{{selector}}}
          ports:
        """) + textwrap.indent(textwrap.dedent(ports).strip(), "  ") + "\n"


def docs(*parts: str) -> str:
    return "---\n".join(parts)


# -- Istio's samples, as they are --------------------------------------------------------------
def test_istio_bookinfo_is_the_builtin_demo_without_tcp_echo_and_outsider():
    manifest = sample("bookinfo.yaml")
    builtin = bookinfo(outsider=False)
    ours = {(s.name, s.ports, s.selector) for s in manifest.topology.services}
    theirs = {(s.name, s.ports, s.selector) for s in builtin.services if s.name != "tcp-echo"}
    assert ours == theirs
    pods = {(w.deployment, w.labels, w.service_account, w.ports, w.sidecar) for w in manifest.topology.workloads}
    assert pods == {(w.deployment, w.labels, w.service_account, w.ports, w.sidecar)
                    for w in builtin.workloads if w.app != "tcp-echo"}
    for pod in manifest.topology.workloads:
        assert POD_NAME.match(pod.name), pod.name
        assert (pod.app_spec.program, pod.app_spec.service, pod.app_spec.version) == ("bookinfo", pod.app, pod.version)
        assert "bookinfo.py" in " ".join(app_command(pod))
    reviews = manifest.topology.service("reviews")
    assert [w.version for w in manifest.topology.endpoints(reviews)] == ["v1", "v2", "v3"]


def test_istio_bookinfo_notes_say_what_was_mapped_and_ignored():
    notes = sample("bookinfo.yaml").notes
    assert len(notes) == len({n.split(":")[0] + n.split(":")[1] for n in notes}), "one line per kind of thing"
    mapped = next(n for n in notes if n.startswith("images mapped to meshkit's Bookinfo apps"))
    assert "examples-bookinfo-reviews-v3:1.20.3" in mapped
    assert any(n.startswith("ignored: volumes: ") and "reviews-v2" in n for n in notes)
    assert any(n.startswith("ignored: pod annotations") and "prometheus.io/scrape" in n for n in notes)


def test_istio_httpbin_service_port_8000_targets_the_container_8080():
    manifest = sample("httpbin.yaml")
    [svc] = manifest.topology.services
    assert (svc.fqdn, svc.vip) == ("httpbin.default.svc.cluster.local", "10.96.0.10")
    assert [(p.name, p.port, p.target_port, p.protocol) for p in svc.ports] == [("http", 8000, 8080, HTTP)]
    [pod] = manifest.topology.workloads
    assert pod.name.startswith("httpbin-") and pod.ip == "10.244.0.10"
    assert (pod.ports, pod.service_account, pod.version, pod.spiffe_id) == (
        (8080,), "httpbin", "v1", "spiffe://cluster.local/ns/default/sa/httpbin")
    assert pod.app_spec.program == "generic"
    argv = app_command(pod)
    assert argv[argv.index("--port") + 1] == "8080" and argv[argv.index("--service-account") + 1] == "httpbin"
    assert "images replaced by meshkit's generic demo app: docker.io/mccutchen/go-httpbin:v2.15.0 (httpbin)" \
        in manifest.notes


def test_istio_curl_serves_its_service_port_though_no_container_port_is_declared():
    manifest = sample("curl.yaml")
    [pod] = manifest.topology.workloads
    assert pod.ports == (80,) and pod.sidecar
    for ignored in ("container command/args (the demo app runs instead)", "volumes", "terminationGracePeriodSeconds"):
        assert f"ignored: {ignored}: curl" in manifest.notes


def test_istio_tcp_echo_ports_are_tcp_and_echo():
    manifest = sample("tcp-echo.yaml")
    [svc] = manifest.topology.services
    assert [(p.port, p.protocol) for p in svc.ports] == [(9000, TCP), (9001, TCP)]
    [pod] = manifest.topology.workloads
    assert pod.app_spec.tcp_ports == (9000, 9001)


def test_pod_names_are_deterministic_and_kubernetes_shaped():
    text = docs(deployment(replicas=3), service())
    first, again = parse_manifests(text).topology, parse_manifests(text).topology
    names = [w.name for w in first.workloads]
    assert names == [w.name for w in again.workloads] and len(set(names)) == 3
    assert {POD_NAME.match(n)["hash"] for n in names} == {POD_NAME.match(names[0])["hash"]}, "one ReplicaSet"
    assert {w.deployment for w in first.workloads} == {"web"}
    assert [w.ip for w in first.workloads] == ["10.244.0.10", "10.244.0.11", "10.244.0.12"]
    changed = parse_manifests(docs(deployment(replicas=3, extra=", annotations: {a: b}"), service())).topology
    assert POD_NAME.match(changed.workloads[0].name)["hash"] != POD_NAME.match(names[0])["hash"], \
        "a new pod template is a new ReplicaSet"


def test_subnets_are_the_runtimes():
    topology = parse_manifests(docs(deployment(), service()), pod_subnet="10.244.42.0/24",
                               service_subnet="10.96.3.0/24").topology
    assert (topology.workloads[0].ip, topology.services[0].vip) == ("10.244.42.10", "10.96.3.10")


def test_named_target_port_resolves_against_container_ports():
    ports = "- {name: http-web, containerPort: 8081}\n- {name: admin, containerPort: 9901}"
    topology = parse_manifests(docs(deployment(ports=ports),
                                    service(ports="- {name: http, port: 80, targetPort: http-web}"))).topology
    assert topology.services[0].ports[0].target_port == 8081
    assert topology.workloads[0].ports == (8081, 9901)


@pytest.mark.parametrize(("port", "protocol"), [
    ("{name: http-web, port: 80}", HTTP), ("{name: grpc-api, port: 80}", HTTP), ("{name: http2, port: 80}", HTTP),
    ("{name: tcp-db, port: 80}", TCP), ("{name: tls, port: 80}", TCP), ("{name: web, appProtocol: tcp, port: 80}", TCP),
    ("{name: db, appProtocol: http, port: 80}", HTTP), ("{port: 3306}", TCP), ("{port: 80}", HTTP),
])
def test_port_protocol_as_istio_selects_it(port, protocol):
    manifest = parse_manifests(docs(deployment(ports="- containerPort: 80"), service(ports=f"- {port}")))
    assert manifest.topology.services[0].ports[0].protocol == protocol
    sniffed = [n for n in manifest.notes if n.startswith("ports without a protocol name")]
    assert bool(sniffed) == ("name" not in port and "3306" not in port)


def test_sidecar_injection_follows_pod_label_annotation_then_namespace():
    namespace = yaml("""\
        apiVersion: v1
        kind: Namespace
        metadata: {name: legacy, labels: {istio-injection: disabled}}
        """)
    plain = deployment("plain", labels="app: plain")
    off = deployment("nosidecar", labels="app: nosidecar", extra=", annotations: {sidecar.istio.io/inject: 'false'}")
    legacy = deployment("old", labels="app: old").replace("metadata: {name: old}",
                                                          "metadata: {name: old, namespace: legacy}")
    forced = deployment("forced", labels="app: forced, sidecar.istio.io/inject: 'true'").replace(
        "metadata: {name: forced}", "metadata: {name: forced, namespace: legacy}")
    manifest = parse_manifests(docs(namespace, plain, off, legacy, forced))
    sidecars = {w.deployment: (w.namespace, w.sidecar) for w in manifest.topology.workloads}
    assert sidecars == {"plain": ("default", True), "nosidecar": ("default", False), "old": ("legacy", False),
                        "forced": ("legacy", True)}
    assert "pods without a sidecar (sidecar.istio.io/inject or istio-injection): nosidecar, old" in manifest.notes


def test_calls_come_from_the_annotation_and_the_env_var():
    annotated = deployment(extra=", annotations: {meshkit.io/calls: 'http://a:80/x, http://b:9080/y'}")
    env = deployment("api", labels="app: api").replace(
        "        image:", "        env: [{name: MESHKIT_CALLS, value: 'http://db:5432/'}]\n        image:")
    manifest = parse_manifests(docs(annotated, env))
    calls = {w.deployment: w.app_spec.calls for w in manifest.topology.workloads}
    assert calls == {"web": ("http://a:80/x", "http://b:9080/y"), "api": ("http://db:5432/",)}
    assert not any(n.startswith("ignored: env") for n in manifest.notes), "MESHKIT_CALLS alone is not ignored"
    argv = app_command(manifest.topology.workload("web"))
    assert argv[-4:] == ["--call", "http://a:80/x", "--call", "http://b:9080/y"]


# -- what meshkit refuses, by document and field ---------------------------------------------
STATEFULSET = "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec: {}\n"
VIRTUAL_SERVICE = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec: {}\n"


@pytest.mark.parametrize(("text", "message"), [
    (docs(service(), STATEFULSET), r"document 2 \(StatefulSet db\): kind StatefulSet \(apps/v1\) is not supported"),
    (VIRTUAL_SERVICE, r"document 1 \(VirtualService r\).*Istio config.*meshkit apply"),
    (service().replace("\n  ports:\n  - {name: http, port: 80, targetPort: 8080}", "\n  ports: []"),
     r"document 1 \(Service web\): spec.ports must list at least one port"),
    (service(ports="- {name: http, port: eighty}"), r"Service web\): spec.ports\[0\].port: expected int, got str"),
    (service(ports="- {name: http, port: 70000}"), r"spec.ports\[0\].port must be a port number"),
    (service(ports="- {port: 80}\n- {port: 81}"), r"spec.ports\[0\].name is required when a Service has several"),
    (service(ports="- {name: dns, port: 53, protocol: UDP}"), r"spec.ports\[0\].protocol 'UDP'"),
    (docs(deployment(), service(ports="- {name: http, port: 80, targetPort: web}")),
     r"document 2 \(Service web\): spec.ports\[0\].targetPort 'web': no selected pod has a container port named so"),
    (deployment(labels="app: web").replace("matchLabels: {app: web}", "matchLabels: {app: other}"),
     r"Deployment web\): spec.selector.matchLabels .* must be set and match spec.template.metadata.labels"),
    (deployment().replace("replicas: 1", "replicas: many"), r"spec.replicas: expected int, got str"),
    (deployment().replace("      containers:", "      serviceAccountName: ghost\n      containers:"),
     r"serviceAccountName 'ghost': no ServiceAccount of that name in namespace 'default'"),
    (docs(service(), service()), r"document 2 \(Service web\): a Service 'web' .* already defined by document 1"),
    ("kind: Service\nmetadata: {name: x}\n", r"document 1 \(Service x\): every object needs apiVersion and kind"),
    ("apiVersion: v1\nkind: Service\nmetadata: {name: Bad_Name}\n", r"metadata.name 'Bad_Name' must be a DNS label"),
    ("- just\n- a list\n", r"document 1: a Kubernetes object is a mapping, got list"),
    ("apiVersion: v1\nkind: Service\nmetadata: {name: [x\n", r"not valid YAML"),
    ("# nothing here\n", r"no Kubernetes objects"),
    (deployment(replicas=300), r"300 pods: meshkit's pod subnet holds 240"),
    (service().replace("spec:", "spec:\n  clusterIP: None"), r"spec.clusterIP None: meshkit models ClusterIP"),
])
def test_bad_input_names_document_and_field(text, message):
    with pytest.raises(ManifestError, match=message):
        parse_manifests(text)


def test_files_are_checked_whole_and_named(tmp_path):
    folder = tmp_path / "workshop"
    folder.mkdir()
    (folder / "a-web.yaml").write_text(docs(deployment(), service()))
    (folder / "b-db.yaml").write_text(STATEFULSET)
    (folder / "notes.txt").write_text("not a manifest")
    with pytest.raises(InvalidInput, match=r"^b-db.yaml: document 1 \(StatefulSet db\)"):
        read_topology(folder)
    (folder / "b-db.yaml").write_text(deployment("db", labels="app: db"))
    manifest = read_topology(folder)
    assert [w.deployment for w in manifest.topology.workloads] == ["web", "db"]
    with pytest.raises(InvalidInput, match="cannot read the topology file"):
        read_topology(tmp_path / "missing.yaml")


def test_a_deployment_with_replicas_is_not_one_pod():
    topology = parse_manifests(docs(deployment(replicas=2), service())).topology
    with pytest.raises(TopologyError, match=r"'web' has 2 pods \(web-\w+-\w+, web-\w+-\w+\): name one of them"):
        topology.workload("web")
    assert topology.workload(topology.workloads[1].name) == topology.workloads[1]


@pytest.mark.parametrize("name", sorted(p.name for p in SAMPLES.glob("*.yaml")))
def test_every_copied_istio_sample_builds_a_mesh(name):
    manifest = sample(name)
    assert manifest.topology.services and manifest.topology.workloads
    for pod in manifest.topology.workloads:
        assert pod.sidecar and pod.ports, pod
        assert manifest.topology.services_of(pod), f"{pod.name} is behind a Service"
        assert app_command(pod)
