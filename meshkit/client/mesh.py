"""`Mesh`: the notebook and CLI face of a running mesh, the same on every runtime.

>>> import meshkit
>>> mesh = meshkit.up()                         # or meshkit.connect() to attach
>>> mesh.pc.listeners("productpage-v1")          # what that sidecar's Envoy holds
>>> mesh.curl("productpage-v1", "http://reviews:9080/reviews/0", n=10)
>>> mesh.apply(open("route.yaml").read(), pods=["productpage-v1"])
>>> mesh.status()

Every view reads the lieutenant (Envoy's admin API inside the pod), never the boss's memory.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from .. import protocol as p
from ..errors import Unsupported
from ..inspect import proxy_config
from ..inspect import secrets as inspect_secrets
from ..inspect import stats as inspect_stats
from ..inspect.sync_status import status_table
from .transport import Transport

CURL_COLUMNS = ["status", "pod", "version", "flags", "upstream_cluster", "elapsed_ms", "error"]
POD_COLUMNS = ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]  # kubectl get pods
HISTORY_COLUMNS = ["PUSH", "TIME", "REASON", "CHANGED", "ACK", "NACK", "MS", "BYTES"]


class ProxyConfig:
    """`istioctl proxy-config` for one mesh: tables read from a pod's Envoy `/config_dump`."""

    def __init__(self, mesh: Mesh) -> None:
        self._mesh = mesh

    def config_dump(self, pod: str, include_eds: bool = True) -> dict:
        path = "/config_dump?include_eds" if include_eds else "/config_dump"
        return json.loads(self._mesh.admin(pod, path))

    def clusters_json(self, pod: str) -> dict:
        """`/clusters?format=json`: every cluster's live hosts with their health."""
        return json.loads(self._mesh.admin(pod, "/clusters?format=json"))

    def table(self, kind: str, pod: str, **filters: object) -> pd.DataFrame:
        """The istioctl table of `kind` (listeners, routes, clusters, endpoints, secrets)."""
        if kind == "endpoints":
            return proxy_config.endpoints(self.clusters_json(pod), **filters)
        dump = self.config_dump(pod, include_eds=False)
        if kind == "secrets":
            return inspect_secrets.secrets(dump)
        return getattr(proxy_config, kind)(dump, **filters)

    def resources(self, kind: str, pod: str, **filters: object) -> list[dict]:
        """The resources behind `table(kind, ...)` as `istioctl proxy-config ... -o json` prints them."""
        data = self.clusters_json(pod) if kind == "endpoints" else self.config_dump(pod, include_eds=False)
        return proxy_config.resources(data, kind, **filters)

    def listeners(self, pod: str, **filters: object) -> pd.DataFrame:
        return self.table("listeners", pod, **filters)

    def routes(self, pod: str, **filters: object) -> pd.DataFrame:
        return self.table("routes", pod, **filters)

    def clusters(self, pod: str, **filters: object) -> pd.DataFrame:
        return self.table("clusters", pod, **filters)

    def endpoints(self, pod: str, **filters: object) -> pd.DataFrame:
        return self.table("endpoints", pod, **filters)

    def secrets(self, pod: str) -> pd.DataFrame:
        """`istioctl pc secret`: the SDS certificates the pod's Envoy holds (serial, SPIFFE id, validity)."""
        return self.table("secrets", pod)


class Mesh:
    """A running mesh, reached through a transport (the local control socket, or kind's)."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.pc = ProxyConfig(self)

    def __repr__(self) -> str:
        return f"Mesh({self.transport!r})"

    @property
    def home(self) -> Path:
        return self.transport.home

    @property
    def runtime(self) -> str:
        """Where the mesh runs: "local" or "kind"."""
        return self.transport.runtime

    def _call(self, op: p.Operation[p.R], timeout: float = 60.0, **args: Any) -> p.R:
        return self.transport.call(op, args, timeout=timeout)

    # -- orders ----------------------------------------------------------------------------
    def apply(self, text: str, pods: Iterable[str] | None = None) -> p.PushRecord:
        """Apply Istio resources, or push raw Envoy resources (`"@type"` per document) to `pods`.

        Returns the push record once every target ACKed; raises `meshkit.errors.Nack` (with
        Envoy's error text) or `InvalidInput` (before anything was pushed) otherwise.
        """
        return self._call(p.APPLY, text=text, pods=list(pods or []))

    def delete(self, text: str) -> p.PushRecord:
        """Delete the Istio resources named in `text` (as `kubectl delete -f`)."""
        return self._call(p.DELETE, text=text)

    def get(self, kind: str) -> list[dict]:
        """The Istio resources of `kind` the boss holds (VirtualService, DestinationRule, ...)."""
        return self._call(p.GET, kind=kind)

    def xds(self, pod: str, text: str = "") -> dict[str, list[dict]]:
        """The LDS/RDS/CDS/EDS resources `pod` would get if `text` were applied ("show generated xDS")."""
        return self._call(p.XDS, pod=pod, text=text)

    def set_outbound_traffic_policy(self, mode: str) -> p.PushRecord:
        """Mesh-wide `outboundTrafficPolicy.mode`: ALLOW_ANY (default) or REGISTRY_ONLY."""
        return self.apply(f"kind: MeshConfig\napiVersion: meshkit/v1\noutboundTrafficPolicy:\n  mode: {mode}\n")

    def revert(self, pods: Iterable[str] | None = None) -> p.PushRecord:
        """Drop raw overrides so `pods` (default: all) get the generated config back."""
        return self._call(p.REVERT, pods=list(pods or []))

    def stop_boss(self) -> bool:
        """Stop the control plane's ADS server; sidecars keep serving their last config."""
        return self._call(p.BOSS, action="stop")["running"]

    def start_boss(self) -> bool:
        """Start the ADS server again; sidecars reconnect and resync on their own."""
        return self._call(p.BOSS, action="start")["running"]

    def identity(self, ttl_s: float | None = None, rotate: bool = False,
                 pods: Iterable[str] | None = None) -> p.Identity:
        """The certificates the boss issued; `ttl_s` changes their lifetime (and re-issues them all),
        `rotate=True` re-issues them now (for `pods`, default all sidecars)."""
        return self._call(p.IDENTITY, ttl_s=ttl_s, rotate=rotate, pods=list(pods) if pods is not None else None)

    def ingress(self) -> p.Ingress:
        """Where this machine (the notebook, a browser) reaches `istio-ingressgateway`:
        {"address", "http_port", "https_port", "url"}.

        >>> gate = mesh.ingress()
        >>> requests.get(gate["url"] + "/productpage")   # through the gateway's Envoy, from outside
        """
        return self._call(p.INGRESS)

    # -- views -----------------------------------------------------------------------------
    def status(self) -> pd.DataFrame:
        """`istioctl proxy-status`: each sidecar's sync state per xDS type."""
        return status_table(self.status_rows())

    def status_rows(self) -> list[p.SyncRow]:
        return self._call(p.STATUS)

    def history(self) -> pd.DataFrame:
        """Every push: when, why, what changed, which proxies ACKed or NACKed, and the bytes it sent them all."""
        rows = [{
            "PUSH": push["id"],
            "TIME": time.strftime("%H:%M:%S", time.localtime(push["started"])),
            "REASON": push["reason"],
            "CHANGED": len(push["changes"]),
            "ACK": len(p.acked_pods(push)),
            "NACK": ", ".join(sorted(push["errors"])) or "-",
            "MS": round(push["duration_ms"] or 0.0, 1),
            "BYTES": sum((push.get("bytes") or {}).values()),
        } for push in self.history_rows()]
        return pd.DataFrame(rows, columns=HISTORY_COLUMNS)

    def history_rows(self) -> list[p.PushRecord]:
        return self._call(p.HISTORY)

    def push_diff(self, a: int, b: int, pods: Iterable[str] | None = None,
                  types: Iterable[str] | None = None) -> list[dict]:
        """What changed in Envoy's own YAML from push `a` to push `b` (ids from `history_rows()`).

        One row per changed resource: {"type", "name", "action", "pods", "diff"} (a unified diff);
        the boss keeps the last 50 pushes. `pods` / `types` (e.g. ["RDS"]) narrow it.
        """
        return self._call(p.PUSH_DIFF, a=a, b=b, pods=list(pods or []), types=list(types or []))

    def replay(self, push_id: int) -> p.PushRecord:
        """Put back the Istio config and raw overrides in force after push `push_id`, and push it."""
        return self._call(p.REPLAY, push_id=push_id)

    def events(self, after: int = 0, timeout: float = 0.0) -> p.Events:
        """Sync events (CONNECTED, SENT, ACK, NACK, ...) numbered after `after`.

        With `timeout`, waits for the next one: live views redraw on ACK without polling Envoy.
        """
        return self._call(p.EVENTS, timeout=timeout + 10.0, after=after, wait=timeout)

    def topology(self) -> p.TopologyInfo:
        return self._call(p.TOPOLOGY)

    def pods(self) -> list[str]:
        """The pods with a sidecar (those with an Envoy admin); the sidecar-less `outsider` is not listed."""
        return [w["name"] for w in self.topology()["workloads"] if w.get("sidecar", True)]

    def outside(self) -> dict:
        """The outside world (no sidecar, on the host): {"host", "address", "ports"} for a ServiceEntry.

        >>> out = mesh.outside()   # {'host': 'httpbin.example.com', 'address': '10.244.7.1', 'ports': [9080, 8080]}
        >>> mesh.curl("productpage-v1", f"http://{out['host']}:8080/get")
        """
        outside = self.topology()["outside"]
        if outside is None:
            raise Unsupported(f"the {self.runtime} runtime has no outside-world server (only the local runtime "
                              "runs one)")
        return outside

    def ping(self) -> p.Ping:
        """Who answers: the boss's pid and home, whether it is ready, its capture mode."""
        return self._call(p.PING, timeout=5.0)

    @property
    def capture(self) -> str:
        """How traffic reaches the sidecars: "iptables" or "userspace" (see `capture_note`)."""
        return self.ping()["capture"]

    @property
    def xds_variant(self) -> str:
        """The mesh's default xDS variant: "DELTA" (Istio's default) or "SOTW"; `status()` rows say each pod's."""
        return self.ping()["xds"]

    def capture_note(self) -> str:
        """What differs from Istio's listeners in this mesh's capture mode ("" for iptables)."""
        return self.ping()["capture_note"]

    # -- inside the pods --------------------------------------------------------------------
    def admin(self, pod: str, path: str) -> str:
        """GET `path` from the Envoy admin API of `pod`'s sidecar."""
        return self._call(p.ADMIN, pod=pod, path=path)

    def access_log(self, pods: Iterable[str] | None = None, request_id: str = "", client: str = "",
                   since: Mapping[str, int] | None = None) -> dict[str, dict]:
        """Sidecars' JSON access-log lines for one request: {pod: {"offset", "lines"}}.

        `request_id` (x-request-id) selects HTTP lines, `client` (ip:port) TCP ones; `since`
        ({pod: offset} from an earlier call) reads only what came after. With neither id nor
        client it returns just the offsets, a mark to read from later.
        """
        return self._call(p.ACCESS_LOG, pods=list(pods or []), request_id=request_id, client=client,
                          since=dict(since or {}))

    def stats(self, pod: str, pattern: str = "") -> dict[str, int]:
        """The pod's Envoy counters whose names match `pattern` (a regex), from `/stats`."""
        return inspect_stats.counters(self.admin(pod, "/stats"), pattern)

    def requests(self, pods: Iterable[str] | None = None) -> pd.DataFrame:
        """Requests by source sidecar, destination service and response code (Envoy's cluster counters)."""
        workloads = self.topology()["workloads"]
        names = list(pods) if pods is not None else [w["name"] for w in workloads if w.get("sidecar", True)]
        deployment = {n: w["deployment"] or w["name"] for w in workloads for n in (w["name"], w["deployment"])}
        return inspect_stats.requests({deployment.get(pod, pod): self.admin(pod, "/stats") for pod in names})

    def curl(self, pod: str, url: str, headers: Mapping[str, str] | None = None, n: int = 1,
             method: str = "GET") -> pd.DataFrame:
        """Send `n` requests from inside `pod` through its sidecar; one row per request."""
        return pd.DataFrame(self.curl_rows(pod, url, headers, n, method))[CURL_COLUMNS]

    def curl_rows(self, pod: str, url: str, headers: Mapping[str, str] | None = None, n: int = 1,
                  method: str = "GET", timeout: float = 10.0) -> list[p.CurlRow]:
        """As `curl`, as dicts; `timeout` bounds each request (connect and reply) in seconds."""
        return self._call(p.CURL, timeout=30.0 + n * (2.0 + timeout), pod=pod, url=url,
                          headers=dict(headers or {}), n=n, method=method, timeout_s=timeout)

    def tcp(self, pod: str, host: str, port: int, text: str = "hello\n") -> p.TcpReply:
        """Send `text` over TCP from inside `pod` (captured by its sidecar) and return the reply."""
        return self._call(p.TCP, pod=pod, host=host, port=port, text=text)

    def pod_info(self, pod: str, what: str = "iptables") -> str:
        """A read-only look inside a pod: 'iptables' (nat rules), 'sockets', 'hosts' or 'addresses'."""
        return self._call(p.POD_INFO, pod=pod, what=what)

    def pods_table(self) -> pd.DataFrame:
        """`kubectl get pods`: NAME READY STATUS RESTARTS AGE, as the runtime's supervisor sees the pods.

        A crashed app or sidecar is restarted with Kubernetes' back-off; RESTARTS counts it.
        """
        return pd.DataFrame([{k: r.get(k, "") for k in POD_COLUMNS} for r in self.pods_rows()], columns=POD_COLUMNS)

    def pods_rows(self) -> list[p.PodRow]:
        """As `pods_table`, as dicts, with the numbers behind the text (`restarts`, `ready`)."""
        return self._call(p.PODS)

    def set_xds(self, pod: str, variant: str) -> p.XdsVariant:
        """Restart `pod`'s sidecar speaking 'delta' or 'sotw' xDS; returns once it is synced again."""
        return self._call(p.SET_XDS, timeout=40.0, pod=pod, variant=variant)

    def down(self) -> None:
        """Stop the mesh and remove everything it made (on kind: says to use `meshkit cluster down`)."""
        self.transport.down()
