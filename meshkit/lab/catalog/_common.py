"""Small helpers the lab specs share: live resources from a sidecar's Envoy, and learner answers.

Checks only get the mesh. For exercises that ask the learner to *read* something (a version, an
address, a count), the learner stores the answer in a notebook variable (`envoy_version = ...`)
and the check reads it from the kernel's namespace, then compares it with what Envoy reports now.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ...inspect import dump

if TYPE_CHECKING:
    from ...client import Mesh

def answer(name: str) -> Any:
    """The value of `name` in the notebook (the kernel's `__main__`), or None if it is unset."""
    namespace = getattr(sys.modules.get("__main__"), "__dict__", {})
    return namespace.get(name)


def set_answers(**values: Any) -> Callable[[Mesh], None]:
    """An `apply` for a reading exercise: puts the answers (values, or functions of the mesh)
    into the notebook's namespace, as the solution cell would."""
    return set_answers_from(lambda mesh: {name: value(mesh) if callable(value) else value
                                          for name, value in values.items()})


def set_answers_from(read: Callable[[Mesh], dict[str, Any]]) -> Callable[[Mesh], None]:
    """An `apply` for a reading exercise whose answers are read together: puts every item of
    `read(mesh)` (answer name → value) into the notebook's namespace."""

    def apply(mesh: Mesh) -> None:
        main = sys.modules["__main__"]
        for name, value in read(mesh).items():
            setattr(main, name, value)

    return apply


def dump_section(mesh: Mesh, pod: str, kind: str) -> dict:
    """One section of `/config_dump` ("Listeners", "Clusters", "Routes", "Bootstrap")."""
    return dump.section(mesh.pc.config_dump(pod, include_eds=False), f"{kind}ConfigDump")


def _named(resources: list[dict], name: str) -> dict | None:
    return next((copy.deepcopy(r) for r in resources if r.get("name") == name), None)


def listener(mesh: Mesh, pod: str, name: str) -> dict | None:
    """The active Listener called `name` in `pod`'s Envoy (a dict with "@type"), or None."""
    return _named(dump.listeners(mesh.pc.config_dump(pod, include_eds=False)), name)


def route_config(mesh: Mesh, pod: str, name: str = "9080") -> dict | None:
    """The RouteConfiguration called `name` in `pod`'s Envoy (a dict with "@type"), or None."""
    return _named(dump.route_configs(mesh.pc.config_dump(pod, include_eds=False)), name)


def cluster(mesh: Mesh, pod: str, name: str) -> dict | None:
    """The active Cluster called `name` in `pod`'s Envoy, or None."""
    return _named(dump.clusters(mesh.pc.config_dump(pod, include_eds=False)), name)


def vhost(config: dict | None, name_part: str) -> dict | None:
    """The virtual host whose name starts with `name_part` ("reviews." or "allow_any")."""
    for host in (config or {}).get("virtual_hosts", []):
        if host.get("name", "").startswith(name_part):
            return host
    return None


def pod_ip(mesh: Mesh, deployment: str) -> str:
    """A pod's IP as its own Envoy reports it (node metadata INSTANCE_IPS)."""
    info = json.loads(mesh.admin(deployment, "/server_info"))
    return str(info["node"]["metadata"]["INSTANCE_IPS"]).split(",")[0]


def stat(mesh: Mesh, pod: str, name: str) -> int:
    """One counter from `/stats` (0 if absent)."""
    from urllib.parse import quote

    text = mesh.admin(pod, "/stats?filter=" + quote("^" + re.escape(name) + "$", safe=""))
    for line in text.splitlines():
        key, _, value = line.partition(": ")
        if key == name:
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


def same_text(given: Any, expected: str) -> bool:
    return isinstance(given, str) and given.strip().lower() == expected.strip().lower()


def seconds(duration: Any) -> float | None:
    """"0.500s" (as /config_dump writes durations) in seconds; None when absent or unreadable."""
    if not isinstance(duration, str) or not duration.endswith("s"):
        return None
    try:
        return float(duration[:-1])
    except ValueError:
        return None


def dump_yaml(*resources: dict) -> str:
    """Resources as one multi-document YAML string, ready for `mesh.apply`."""
    import yaml

    return yaml.safe_dump_all(list(resources), sort_keys=False)


def istio(kind: str, name: str, spec: dict) -> str:
    """One Istio resource (networking.istio.io/v1) as YAML, ready for `mesh.apply`."""
    return dump_yaml({"apiVersion": "networking.istio.io/v1", "kind": kind, "metadata": {"name": name},
                      "spec": spec})


def service_entry(name: str, target: dict, protocol: str, resolution: str) -> str:
    """A ServiceEntry (YAML) letting in the outsider `target` ({"host", "ip", "port"}), called by its IP:
    MESH_EXTERNAL, one port of `protocol`; with STATIC `resolution` its IP is the endpoint."""
    spec = {"hosts": [target["host"]], "addresses": [target["ip"]], "location": "MESH_EXTERNAL",
            "ports": [{"number": target["port"], "name": protocol.lower(), "protocol": protocol}],
            "resolution": resolution}
    if resolution == "STATIC":
        spec["endpoints"] = [{"address": target["ip"]}]
    return istio("ServiceEntry", name, spec)


def service_entry_solution(var: str, source: str, name: str, protocol: str, resolution: str,
                           port: str = "") -> str:
    """`service_entry` as a solution shows it: `var = source`, then `mesh.apply` of the YAML as an
    f-string reading host, ip and (unless `port` is given) port from `var`."""
    ip, port = "{" + var + "['ip']}", port or "{" + var + "['port']}"
    lines = [f"{var} = {source}", "mesh.apply(f'''apiVersion: networking.istio.io/v1", "kind: ServiceEntry",
             "metadata: {{name: " + name + "}}", "spec:", "  hosts: [{" + var + "['host']}]",
             f"  addresses: [{ip}]", "  location: MESH_EXTERNAL",
             "  ports: [{{number: " + port + f", name: {protocol.lower()}, protocol: {protocol}" + "}}]",
             f"  resolution: {resolution}"]
    if resolution == "STATIC":
        lines.append("  endpoints: [{{address: " + ip + "}}]")
    return "\n".join(lines) + "\n''')"


def shares(rows: list[dict], key: str = "version") -> dict[str, float]:
    """How often each value of `key` answered among 200s, as fractions of all rows."""
    counts: dict[str, int] = {}
    for row in rows:
        if row["status"] == 200:
            counts[str(row.get(key))] = counts.get(str(row.get(key)), 0) + 1
    return {k: v / max(1, len(rows)) for k, v in sorted(counts.items())}


def catch_all(config: dict | None) -> str:
    """The name of a route configuration's catch-all virtual host ("allow_any", "block_all") or ""."""
    for host in (config or {}).get("virtual_hosts", []):
        if host.get("domains") == ["*"]:
            return str(host.get("name", ""))
    return ""


def endpoint_ips(mesh: Mesh, pod: str, cluster_name: str) -> list[str]:
    """The endpoint IPs `pod`'s Envoy holds for `cluster_name` (from `/clusters`, as `pc endpoint`)."""
    data = json.loads(mesh.admin(pod, "/clusters?format=json"))
    for status in data.get("cluster_statuses", []):
        if status.get("name") == cluster_name:
            return sorted(h["address"]["socket_address"]["address"] for h in status.get("host_statuses", []))
    return []


def has_cluster(mesh: Mesh, pod: str, cluster_name: str) -> bool:
    return cluster(mesh, pod, cluster_name) is not None
