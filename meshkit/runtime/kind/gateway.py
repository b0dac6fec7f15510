"""The ingress gateway on kind: a Deployment with Envoy alone, and its Service reached from the host.

As Istio's default profile installs it: `istio-ingressgateway` in `istio-system`, one `istio-proxy`
container (Envoy in router mode, uid 1337, no istio-init: nothing captures a gateway), the
Service's 80 → 8080 and 443 → 8443. The Service is a NodePort on fixed node ports, and
cluster/kind.yaml maps those node ports to the host's loopback (`extraPortMappings`), so the host
reaches the gate at 127.0.0.1:18080 / :18443 (`InCluster.ingress`, `meshkit ingress`).
"""

from __future__ import annotations

import json
from typing import Any

from ...constants import PROXY_UID
from ...model import Service, Workload
from ...model.bookinfo import INGRESS
from ..bootstrap import XdsAddress, envoy_bootstrap
from .config import ADMIN_PORT, ENVOY_IMAGE, XDS_PORT, KindConfig

HOST_ADDRESS = "127.0.0.1"
# Service port → (node port, host port): what cluster/kind.yaml's extraPortMappings publish.
NODE_PORTS = {80: (30080, 18080), 443: (30443, 18443)}


def ingress() -> dict[str, Any]:
    """Where the host reaches the gate on kind (the port mappings of cluster/kind.yaml)."""
    http, https = NODE_PORTS[80][1], NODE_PORTS[443][1]
    return {"address": HOST_ADDRESS, "http_port": http, "https_port": https, "url": f"http://{HOST_ADDRESS}:{http}"}


def expose(service: Service, rendered: dict[str, Any]) -> dict[str, Any]:
    """The gate's Service as a NodePort on the fixed node ports (other Services unchanged)."""
    if service.name != INGRESS:
        return rendered
    rendered["spec"]["type"] = "NodePort"
    for port in rendered["spec"]["ports"]:
        if port["port"] in NODE_PORTS:
            port["nodePort"] = NODE_PORTS[port["port"]][0]
    return rendered


def gateway_objects(workload: Workload, config: KindConfig, meta: Any, deployment: Any,
                    field_env: Any, non_root: Any, overrides: dict[str, Any]) -> list[dict[str, Any]]:
    """The gate's bootstrap ConfigMap and Deployment (rendering.py's helpers passed in)."""
    from .rendering import BOOTSTRAP_DIR, BOOTSTRAP_FILE  # the same mount as the sidecars'

    bootstrap_name = f"{workload.deployment}-envoy-bootstrap"
    bootstrap = envoy_bootstrap(workload, XdsAddress(config.xds_ip, XDS_PORT), admin_port=ADMIN_PORT)
    config_map = {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(bootstrap_name, workload.namespace),
        "data": {BOOTSTRAP_FILE: json.dumps(bootstrap, indent=2, sort_keys=True) + "\n"},
    }
    proxy = {
        "name": "istio-proxy", "image": ENVOY_IMAGE, "imagePullPolicy": "IfNotPresent",
        "command": ["envoy"],
        "args": ["--config-path", f"{BOOTSTRAP_DIR}/{BOOTSTRAP_FILE}",
                 "--config-yaml", json.dumps(overrides, separators=(",", ":")),
                 "--concurrency", "2", "--log-level", "info"],
        "env": [field_env("POD_NAME", "metadata.name"), field_env("INSTANCE_IP", "status.podIP")],
        "ports": [{"name": "http-envoy-prom", "containerPort": 15090},
                  {"name": "http2", "containerPort": 8080}, {"name": "https", "containerPort": 8443}],
        "readinessProbe": {"httpGet": {"path": "/stats/prometheus", "port": 15090}, "periodSeconds": 2},
        "securityContext": non_root(PROXY_UID),
        "volumeMounts": [{"name": "envoy-bootstrap", "mountPath": BOOTSTRAP_DIR, "readOnly": True}],
    }
    pod = {
        "serviceAccountName": workload.service_account,
        "containers": [proxy],
        "volumes": [{"name": "envoy-bootstrap", "configMap": {"name": bootstrap_name}}],
    }
    return [config_map, deployment(workload.deployment, workload.namespace, workload.label_map, pod)]
