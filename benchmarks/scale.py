"""The boss at scale: 1,000 Services, 2,000 pods, 50 real Envoy sidecars.

    sudo .venv/bin/python benchmarks/scale.py [--services 1000] [--proxies 50] [--edits 20]
    .venv/bin/python benchmarks/scale.py --no-envoy     # translation and push CPU only

Prints, without judging (no pass/fail):
1. translation time per proxy at 1/4, 1/2 and all of `--services` (first proxy, which builds the
   push context and the shared resources, and the mean of the next ones): it must grow linearly;
2. the boss's CPU for a full push to `--proxies` proxies (translation + serialization: the push
   runs before any proxy is connected, so nothing is waited for), and the boss's memory;
3. with real Envoys (`--proxies` of them, each connected to the in-process ADS server over
   loopback, pods on 127.1.x.y so `capture: userspace` listeners bind side by side): the time
   until every Envoy has ACKed its first full config, the edit → every target ACKed latency of
   one VirtualService edit (p50 / p95 over `--edits`), the same for one file of 1,000
   ServiceEntries, and the memory of the Envoys (PSS: what the machine pays) and of the boss.
   Every other sidecar speaks State of the World: each of these pushes also prints the bytes sent
   to a delta sidecar and to a SotW one, side by side.

Steps 2 and 3 run twice (`--scope`): every proxy seeing every Service, as a mesh without any
`Sidecar` is, and with Istio's advice for a large mesh, a default `Sidecar` in istio-system that
lets each proxy see its own namespace (a tenth of the mesh here). Each run has its own Envoys.

A large `Topology` is built here (Services in 10 namespaces, one in ten TCP, a DestinationRule
with subsets on one in twenty), since `meshkit up` starts the Bookinfo mesh.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from ipaddress import IPv4Network
from pathlib import Path

from meshkit.constants import DELTA, SOTW, USERSPACE
from meshkit.model import HTTP, TCP, Service, ServicePort, Topology, Workload, labels
from meshkit.model.config import IstioConfig
from meshkit.model.istio import parse_istio
from meshkit.runtime.bootstrap import XdsAddress, envoy_bootstrap
from meshkit.runtime.envoy import find_envoy
from meshkit.service.documents import Documents, with_istio
from meshkit.xds import generate, push_context
from meshkit.xds.cache import SnapshotCache
from meshkit.xds.control_plane import ControlPlane
from meshkit.xds.server import AdsServer
from meshkit.xds.status import EventKind, SyncTracker

NAMESPACES = 10
EDIT_HOST = "svc0"  # the Service the VirtualService edit routes
# Istio's advice for a large mesh: a mesh-wide default Sidecar in the root namespace, so each proxy
# sees its own namespace (and istio-system) instead of every Service of the mesh.
NAMESPACE_SCOPE = """
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: istio-system}
spec:
  egress: [{hosts: ["./*", "istio-system/*"]}]
"""
SCOPES = {"mesh": "", "namespace": NAMESPACE_SCOPE}
SCOPE_TITLES = {"mesh": "every proxy sees every Service (no Sidecar)",
                "namespace": "a default Sidecar in istio-system: each proxy sees its own namespace"}


def large_topology(services: int, pods_per_service: int = 2) -> Topology:
    """`services` Services over 10 namespaces with their pods (all with sidecars, on 127.1.x.y)."""
    ips = IPv4Network("127.1.0.0/16").hosts()
    vips = IPv4Network("10.96.0.0/16").hosts()
    svcs, pods = [], []
    for i in range(services):
        name, ns = f"svc{i}", f"ns{i % NAMESPACES}"
        port = ServicePort("tcp", 9000, 9000, TCP) if i % 10 == 9 else ServicePort("http", 9080, 9080, HTTP)
        svcs.append(Service(name, ns, str(next(vips)), (port,), labels({"app": name})))
        for v in range(pods_per_service):
            pods.append(Workload(f"{name}-v{v + 1}-7d4f8b9c6d-x{v}k2p", ns, str(next(ips)),
                                 labels({"app": name, "version": f"v{v + 1}"}), name, (port.target_port,)))
    rules = "".join(f"""
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: svc{i}, namespace: ns{i % NAMESPACES}}}
spec:
  host: svc{i}
  subsets: [{{name: v1, labels: {{version: v1}}}}, {{name: v2, labels: {{version: v2}}}}]
""" for i in range(0, services, 20))
    return Topology(tuple(svcs), tuple(pods), istio=IstioConfig().applied(parse_istio(rules)), capture=USERSPACE)


def edit(weight: int) -> str:
    """A VirtualService splitting `svc0` between its subsets: `weight` % to v1."""
    return f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {EDIT_HOST}, namespace: ns0}}
spec:
  hosts: [{EDIT_HOST}]
  http:
  - route:
    - {{destination: {{host: {EDIT_HOST}, subset: v1}}, weight: {weight}}}
    - {{destination: {{host: {EDIT_HOST}, subset: v2}}, weight: {100 - weight}}}
"""


def service_entries(count: int) -> str:
    """One file of `count` ServiceEntries, STATIC, each with one address and one endpoint."""
    return "".join(f"""
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: ext{i}, namespace: ns{i % NAMESPACES}}}
spec:
  hosts: [ext{i}.example.com]
  addresses: [240.0.{i // 250}.{i % 250 + 1}]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: STATIC
  location: MESH_EXTERNAL
  endpoints: [{{address: 127.2.{i // 250}.{i % 250 + 1}}}]
""" for i in range(count))


def _proc_mb(path: str, field: str) -> float:
    """A `field:  N kB` line of a /proc file, in MB (0 when absent)."""
    for line in Path(path).read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def rss_mb(pid: int | str = "self") -> float:
    return _proc_mb(f"/proc/{pid}/status", "VmRSS")


def pss_mb(pid: int | str) -> float:
    """The process's proportional share of memory: pages shared between Envoys (the 100 MB binary,
    its libraries) count once over all of them, as the machine pays for them; RSS counts them per process."""
    return _proc_mb(f"/proc/{pid}/smaps_rollup", "Pss")


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


SOURCE_LABELS_VS = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: svc1, namespace: ns1}
spec:
  hosts: [svc1]
  http:
  - match: [{sourceLabels: {app: svc0}}]
    route: [{destination: {host: svc1, subset: v2}}]
  - route: [{destination: {host: svc1}}]
"""


def spread(topology: Topology, count: int) -> list[Workload]:
    """One pod of each of the first `count` Services: proxies in every namespace, all different."""
    return [p for p in topology.sidecars() if p.name.endswith("-v1-7d4f8b9c6d-x0k2p")][:count]


def with_sidecars(topology: Topology, count: int) -> Topology:
    """Only `count` pods (one per Service, over every namespace) carry a sidecar: the boss keeps a
    snapshot for every sidecar in its book, connected or not (istiod only for connected ones).
    Every other one in each namespace speaks State of the World, so each push shows both protocols'
    bytes side by side."""
    chosen = [p.name for p in spread(topology, count)]  # Service i is in namespace i % NAMESPACES
    variant = {name: SOTW if i // NAMESPACES % 2 else DELTA for i, name in enumerate(chosen)}
    return replace(topology, workloads=tuple(replace(w, sidecar=w.name in variant, xds=variant.get(w.name, DELTA))
                                             for w in topology.workloads))


@contextmanager
def bytes_sent(plane: ControlPlane) -> Iterator[Counter[str]]:
    """Bytes of every response the ADS streams send meanwhile, by node id (the streams' own count)."""
    sent: Counter[str] = Counter()
    stop = plane.tracker.subscribe(lambda e: e.kind is EventKind.SENT and sent.update({e.node_id: e.bytes}))
    try:
        yield sent
    finally:
        stop()


def per_variant(sent: Counter[str], pods: list[Workload]) -> str:
    """Mean bytes sent to a delta sidecar and to a SotW one, of those that were sent anything."""
    def mean(variant: str) -> str:
        got = [sent[p.node_id] for p in pods if p.xds == variant and sent[p.node_id]]
        return f"{statistics.mean(got) / 1024:,.1f} KiB to each of {len(got)}" if got else "nothing"
    return f"bytes sent: delta {mean(DELTA)}, SotW {mean(SOTW)}"


def translation(services: int, proxies: int) -> None:
    """Per-proxy translation time at a quarter, half and all of `services`."""
    print("translation per proxy (pure translators, no serialization):")
    for n in (services // 4, services // 2, services):
        topology = large_topology(n)
        sample = spread(topology, proxies)
        per_proxy(n, topology, sample, "")
        labelled = replace(topology, istio=topology.istio.applied(parse_istio(SOURCE_LABELS_VS)))
        per_proxy(n, labelled, sample, " (a VirtualService matching sourceLabels: no proxy shares RDS or LDS)")


def per_proxy(n: int, topology: Topology, sample: list[Workload], note: str) -> None:
    start = time.process_time()
    push_context.of(topology)
    index_ms = (time.process_time() - start) * 1000
    start = time.process_time()
    generate.generate(topology, sample[0])
    first_ms = (time.process_time() - start) * 1000
    start = time.process_time()
    for proxy in sample[1:]:
        generate.generate(topology, proxy)
    rest_ms = (time.process_time() - start) * 1000 / max(1, len(sample) - 1)
    print(f"  {n:5d} Services: index {index_ms:6.1f} ms, first proxy (shared resources) {first_ms:7.1f} ms, "
          f"each next proxy {rest_ms:6.1f} ms ({rest_ms / n * 1000:.1f} µs per Service){note}")


async def full_push(plane: ControlPlane, pods: list[Workload]) -> None:
    start_cpu, start = time.process_time(), time.perf_counter()
    push = await plane.push(pods, "initial state")
    cpu, wall = time.process_time() - start_cpu, time.perf_counter() - start
    resources = sum(len(plane.cache.get(p.node_id).resources.get(t, {})) for p in pods
                    for t in plane.cache.get(p.node_id).resources)
    print(f"full push to {len(pods)} proxies: boss CPU {cpu * 1000:.0f} ms (wall {wall * 1000:.0f} ms), "
          f"{resources} resources, {len(push.changes)} changes; boss RSS {rss_mb():.0f} MB")


# Istio's bootstrap keeps only these stats (its default `stats_matcher`): without it every one of
# the 1,000+ clusters gets its full set of counters and an Envoy holds 200 MB instead of ~60 MB.
ISTIO_STATS_CONFIG = {"stats_matcher": {"inclusion_list": {"patterns": [
    {"prefix": "reporter="}, {"prefix": "cluster_manager"}, {"prefix": "listener_manager"}, {"prefix": "server"},
    {"prefix": "cluster.xds-grpc"}, {"prefix": "wasm"}, {"suffix": "rbac.allowed"}, {"suffix": "rbac.denied"},
    {"suffix": "shadow_allowed"}, {"suffix": "shadow_denied"}, {"prefix": "component"}, {"prefix": "istio"},
]}}}


def launch(pods: list[Workload], port: int, folder: Path) -> list[subprocess.Popen]:
    """One Envoy per pod, its bootstrap pointing at the ADS server on 127.0.0.1:`port`."""
    envoy = str(find_envoy())
    procs = []
    for pod in pods:
        bootstrap = envoy_bootstrap(pod, XdsAddress("127.0.0.1", port), admin_port=0)
        bootstrap["static_resources"].pop("listeners", None)  # 15090 would collide between Envoys
        bootstrap["stats_config"] = ISTIO_STATS_CONFIG
        config = folder / f"{pod.name}.json"
        config.write_text(json.dumps(bootstrap))
        log = (folder / f"{pod.name}.log").open("w")
        procs.append(subprocess.Popen([envoy, "-c", str(config), "--disable-hot-restart", "--concurrency", "1",
                                       "--log-level", "error"], stdout=log, stderr=subprocess.STDOUT))
    return procs


async def with_envoys(plane: ControlPlane, pods: list[Workload], port: int, edits: int, entries: int) -> None:
    with tempfile.TemporaryDirectory(prefix="meshkit-scale-") as folder:
        procs = launch(pods, port, Path(folder))
        try:
            start = time.perf_counter()
            with bytes_sent(plane) as sent:
                synced = await plane.wait_synced(pods, 900)
            ok = sum(set(r.values()) == {"ACK"} for r in synced.values())
            booted_mb = sum(pss_mb(p.pid) for p in procs if p.poll() is None)
            print(f"{len(procs)} Envoys booted and ACKed their first config: {ok}/{len(pods)} in "
                  f"{time.perf_counter() - start:.1f} s; Envoys {booted_mb:.0f} MB "
                  f"({booted_mb / len(procs):.0f} MB each), boss {rss_mb():.0f} MB")
            print(f"  first config, {per_variant(sent, pods)}")
            await measure_edits(plane, pods, edits)
            await measure_entries(plane, pods, entries)
            live = [p.pid for p in procs if p.poll() is None]
            envoy_mb, envoy_rss = sum(map(pss_mb, live)), sum(map(rss_mb, live))
            print(f"memory: {len(live)} Envoys {envoy_mb:.0f} MB (PSS; their RSS adds up to {envoy_rss:.0f} MB, "
                  f"counting the shared binary once per Envoy), boss {rss_mb():.0f} MB, "
                  f"together {(envoy_mb + rss_mb()) / 1024:.2f} GB")
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait()


async def apply(plane: ControlPlane, text: str) -> tuple[dict, float]:
    """What `meshkit apply` does in the boss: parse, analyze, set the topology, push, wait."""
    start = time.perf_counter()
    topology, _ = with_istio(plane.topology, Documents.parse(text).istio)
    push = await plane.set_topology(topology, "apply")
    return push.as_dict(), (time.perf_counter() - start) * 1000


async def measure_edits(plane: ControlPlane, pods: list[Workload], edits: int) -> None:
    boss, wall, publish, first = [], [], [], []
    for i in range(edits):
        acks: list[float] = []
        stop = plane.tracker.subscribe(lambda e, acks=acks: e.kind.value == "ACK" and acks.append(e.time))
        with bytes_sent(plane) as sent:
            push, ms = await apply(plane, edit(90 - i % 2 * 80))
        stop()
        answers = [r for per_pod in push["results"].values() for r in per_pod.values()]
        if set(answers) != {"ACK"}:
            print(f"  edit {i}: not every target ACKed: {sorted(set(answers))}")
        boss.append(push["duration_ms"])
        publish.append(push["publish_ms"])
        first.append((min(acks) - push["started"]) * 1000 if acks else float("nan"))
        wall.append(ms)
    rebuilt = sorted({t for types in push["rebuilt"].values() for t in types})
    print(f"VirtualService edit → every target ACKed ({len(push['results'])} proxies, rebuilt {rebuilt}): "
          f"p50 {statistics.median(boss):.0f} ms, p95 {percentile(boss, 95):.0f} ms; with parse and analysis "
          f"p50 {statistics.median(wall):.0f} ms; the boss's share (translate + pack + publish) p50 "
          f"{statistics.median(publish):.0f} ms; first proxy ACKed p50 {statistics.median(first):.0f} ms")
    print(f"  the last edit, {per_variant(sent, pods)}")


async def measure_entries(plane: ControlPlane, pods: list[Workload], count: int) -> None:
    text = service_entries(count)
    start_cpu = time.process_time()
    with bytes_sent(plane) as sent:
        push, ms = await apply(plane, text)
        synced = await plane.wait_synced(pods, 900)  # the push waits 5 s for ACKs; Envoys may need longer
    all_ms = (time.time() - push["started"]) * 1000
    acked = sum(set(r.values()) == {"ACK"} for r in synced.values())
    new_clusters = Counter(c["pod"] for c in push["changes"] if c["type"] == "CDS" and c["action"] == "added")
    added = [new_clusters[pod.name] for pod in pods]
    print(f"{count} ServiceEntries from one file: boss share {push['publish_ms'] / 1000:.2f} s "
          f"(CPU {time.process_time() - start_cpu:.1f} s with serving), every target ACKed after "
          f"{all_ms / 1000:.1f} s ({acked}/{len(pods)} proxies ACKed everything, each got "
          f"{min(added)}–{max(added)} new clusters); with parse and analysis {ms / 1000:.2f} s until the push returned")
    print(f"  {per_variant(sent, pods)}")


async def main_async(args: argparse.Namespace) -> None:
    translation(args.services, 20)
    for scope in SCOPES if args.scope == "both" else (args.scope,):
        print(f"\n-- {SCOPE_TITLES[scope]} --")
        topology = with_sidecars(large_topology(args.services), args.proxies)
        if SCOPES[scope]:
            topology = replace(topology, istio=topology.istio.applied(parse_istio(SCOPES[scope])))
        pods = topology.sidecars()
        server = AdsServer(SnapshotCache(), SyncTracker())
        port = await server.start("127.0.0.1:0")
        plane = ControlPlane(topology, server.cache, server.tracker)
        try:
            await full_push(plane, pods)
            if not args.no_envoy:
                await with_envoys(plane, pods, port, args.edits, args.entries)
        finally:
            plane.close()
            await server.stop(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--proxies", type=int, default=50)
    parser.add_argument("--edits", type=int, default=20)
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--no-envoy", action="store_true", help="skip the real Envoys")
    parser.add_argument("--scope", choices=["mesh", "namespace", "both"], default="both",
                        help="what each proxy sees: every Service, or its namespace (a default Sidecar)")
    args = parser.parse_args()
    print(f"{args.services} Services, {args.services * 2} pods, {args.proxies} proxies, pid {os.getpid()}")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
