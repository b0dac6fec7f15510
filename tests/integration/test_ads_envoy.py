"""The ADS server driving a real Envoy 1.40, over SotW and delta: SYNCED, a real NACK with Envoy's
text, recovery, and a cluster edit that must not leave the cluster warming.

Envoy connects over a unix socket; one cluster (EDS → a local `python -m http.server`), one
listener on 127.0.0.1 with HCM + RDS, one route config. Each test runs once per xDS variant
(`api_type` GRPC and DELTA_GRPC); Envoy's own /config_dump and /stats are checked, and the
edit → ACK latencies and bytes sent are printed.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, base_pb2, config_source_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message

from meshkit.xds.cache import SnapshotCache
from meshkit.xds.resources import CLUSTER, ENDPOINT, LISTENER, ROUTE, SHORT_NAMES
from meshkit.xds.server import AdsServer
from meshkit.xds.snapshot import Snapshot
from meshkit.xds.status import Outcome, OutcomeKind, SyncState, SyncTracker

ENVOY = Path(sys.executable).with_name("envoy")
NODE = "sidecar~127.0.0.1~it-v1-1.default~default.svc.cluster.local"
pytestmark = pytest.mark.skipif(not ENVOY.exists(), reason=f"no Envoy binary at {ENVOY}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[int]:
    """A python http.server on 127.0.0.1; yields its port (read from its banner, no probing)."""
    (tmp_path / "www").mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory",
         str(tmp_path / "www")], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        banner = proc.stdout.readline()  # "Serving HTTP on 127.0.0.1 port N (http://...) ..."
        yield int(banner.split(" port ")[1].split()[0])
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def launch_envoy(tmp_path: Path) -> Iterator[Callable[[dict], subprocess.Popen]]:
    """Start Envoy on a bootstrap; every Envoy started is killed when the test ends."""
    procs: list[subprocess.Popen] = []

    def launch(bootstrap: dict) -> subprocess.Popen:
        config = tmp_path / "envoy.json"
        config.write_text(json.dumps(bootstrap))
        log = (tmp_path / "envoy.log").open("w")
        procs.append(subprocess.Popen(
            [str(ENVOY), "-c", str(config), "--disable-hot-restart", "--concurrency", "1",
             "--log-level", "warn"], stdout=log, stderr=subprocess.STDOUT))
        return procs[-1]

    yield launch
    for proc in procs:
        proc.kill()
        proc.wait()


VARIANTS = {"sotw": "GRPC", "delta": "DELTA_GRPC"}


def bootstrap(xds_socket: Path, admin_port: int, api_type: str = "GRPC") -> dict:
    """Node id + cluster, admin on loopback, everything dynamic over one ADS stream (xds.md §6.5)."""
    return {
        "node": {"id": NODE, "cluster": "it.default"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "dynamic_resources": {
            "ads_config": {"api_type": api_type, "transport_api_version": "V3",
                           "set_node_on_first_message_only": True,
                           "grpc_services": [{"envoy_grpc": {"cluster_name": "xds-grpc"}}]},
            "cds_config": {"ads": {}, "resource_api_version": "V3"},
            "lds_config": {"ads": {}, "resource_api_version": "V3"},
        },
        "static_resources": {"clusters": [{
            "name": "xds-grpc", "type": "STATIC", "connect_timeout": "1s",
            "load_assignment": {"cluster_name": "xds-grpc", "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": {"pipe": {"path": str(xds_socket)}}}}]}]},
            "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}}}},
        }]},
    }


def packed(message: Message) -> any_pb2.Any:
    out = any_pb2.Any()
    out.Pack(message)
    return out


def ads() -> config_source_pb2.ConfigSource:
    return config_source_pb2.ConfigSource(ads=config_source_pb2.AggregatedConfigSource(),
                                          resource_api_version=config_source_pb2.V3)


def socket_address(port: int) -> address_pb2.Address:
    return address_pb2.Address(socket_address=address_pb2.SocketAddress(address="127.0.0.1", port_value=port))


def config(upstream_port: int, listener_port: int, *, chains: int = 1, tag: str = "1", timeout_s: int = 1) -> Snapshot:
    """The whole config; `chains=2` duplicates the filter chain (Envoy rejects that listener),
    `tag` is echoed by the route in an `x-meshkit-config` response header, `timeout_s` is the
    cluster's connect timeout (changing it updates the cluster, which then warms)."""
    cluster = cluster_pb2.Cluster(name="upstream", type=cluster_pb2.Cluster.EDS,
                                  eds_cluster_config=cluster_pb2.Cluster.EdsClusterConfig(eds_config=ads()))
    cluster.connect_timeout.seconds = timeout_s
    endpoints = endpoint_pb2.ClusterLoadAssignment(cluster_name="upstream", endpoints=[
        endpoint_components_pb2.LocalityLbEndpoints(lb_endpoints=[endpoint_components_pb2.LbEndpoint(
            endpoint=endpoint_components_pb2.Endpoint(address=socket_address(upstream_port)))])])
    manager = hcm_pb2.HttpConnectionManager(
        stat_prefix="it", rds=hcm_pb2.Rds(config_source=ads(), route_config_name="local"),
        http_filters=[hcm_pb2.HttpFilter(name="envoy.filters.http.router", typed_config=packed(router_pb2.Router()))])
    filters = [listener_components_pb2.Filter(
        name="envoy.filters.network.http_connection_manager", typed_config=packed(manager))]
    listener = listener_pb2.Listener(name="it_http", address=socket_address(listener_port), filter_chains=[
        listener_components_pb2.FilterChain(name=f"chain-{i}", filters=filters) for i in range(chains)])
    host = route_components_pb2.VirtualHost(
        name="local", domains=["*"], routes=[route_components_pb2.Route(
            match=route_components_pb2.RouteMatch(prefix="/"),
            route=route_components_pb2.RouteAction(cluster="upstream"))],
        response_headers_to_add=[base_pb2.HeaderValueOption(
            header=base_pb2.HeaderValue(key="x-meshkit-config", value=tag))])
    routes = route_pb2.RouteConfiguration(name="local", virtual_hosts=[host])
    return Snapshot.build({CLUSTER: [cluster], ENDPOINT: [endpoints], LISTENER: [listener], ROUTE: [routes]})


async def get(port: int, deadline_s: float = 10) -> tuple[int, str]:
    """GET / through Envoy's listener: (status, x-meshkit-config); retried while it is being bound."""
    def fetch() -> tuple[int, str]:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
            return response.status, response.headers.get("x-meshkit-config", "")

    deadline = time.monotonic() + deadline_s
    while True:
        try:
            return await asyncio.to_thread(fetch)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


def latency_ms(outcomes: dict[str, Outcome], start: float) -> float:
    return (max(o.time for o in outcomes.values()) - start) * 1000


async def admin(port: int, path: str) -> str:
    def fetch() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.read().decode()

    return await asyncio.to_thread(fetch)


async def stats(port: int, *names: str) -> dict[str, int]:
    """Envoy's own counters and gauges, e.g. `control_plane.connected_state`."""
    lines = (await admin(port, "/stats?filter=" + "|".join(f"^{n}$" for n in names))).splitlines()
    return {name: int(value) for name, value in (line.split(": ", 1) for line in lines)}


async def dumped_clusters(port: int) -> dict[str, dict]:
    """Name → dynamic cluster entry of Envoy's /config_dump, active and warming, with its section."""
    dump = json.loads(await admin(port, "/config_dump?resource=dynamic_active_clusters"))
    active = {c["cluster"]["name"]: {**c, "section": "active"} for c in dump.get("configs", [])}
    dump = json.loads(await admin(port, "/config_dump?resource=dynamic_warming_clusters"))
    return {**active, **{c["cluster"]["name"]: {**c, "section": "warming"} for c in dump.get("configs", [])}}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_envoy_syncs_nacks_a_bad_listener_keeps_serving_and_recovers(
        variant: str, tmp_path: Path, upstream: int, launch_envoy: Callable[[dict], subprocess.Popen]) -> None:
    listener_port, admin_port, xds_socket = free_port(), free_port(), tmp_path / "xds.sock"

    async def scenario() -> None:
        cache, tracker = SnapshotCache(), SyncTracker()
        server = AdsServer(cache, tracker)
        await server.start(f"unix:{xds_socket}")
        try:
            good = config(upstream, listener_port)
            cache.set(NODE, good)
            start = time.time()
            envoy = launch_envoy(bootstrap(xds_socket, admin_port, VARIANTS[variant]))
            first = (await tracker.wait_for({NODE: good.versions}, timeout=30))[NODE]
            assert {url: o.kind for url, o in first.items()} == dict.fromkeys(good.versions, OutcomeKind.ACK), \
                (tmp_path / "envoy.log").read_text()
            print(f"\n{variant}: Envoy start → all four types ACKed: {latency_ms(first, start):.0f} ms")
            [row] = tracker.status()
            assert row.connected and row.cluster == "it.default" and row.xds == variant.upper()
            counters = await stats(admin_port, "control_plane.connected_state", "cluster_manager.cds.update_success")
            assert counters["control_plane.connected_state"] == 1
            assert counters["cluster_manager.cds.update_success"] >= 1
            [dumped] = (await dumped_clusters(admin_port)).values()
            # SotW versions a whole type; delta each resource (xds.md §0)
            expected_version = good.version(CLUSTER) if variant == "sotw" else good.versions_of(CLUSTER)["upstream"]
            assert (dumped["section"], dumped["version_info"]) == ("active", expected_version)
            assert {url: row.types[url].state for url in good.versions} == dict.fromkeys(
                good.versions, SyncState.SYNCED)
            assert await get(listener_port) == (200, "1")

            bad = config(upstream, listener_port, chains=2)
            start = time.time()
            cache.set(NODE, bad)
            nack = (await tracker.wait_for({NODE: {LISTENER: bad.version(LISTENER)}}, timeout=10))[NODE]
            print(f"bad listener edit → NACK: {latency_ms(nack, start):.1f} ms; Envoy said: {nack[LISTENER].error}")
            assert nack[LISTENER].kind == OutcomeKind.NACK
            assert "filter chain 'chain-1' has the same matching rules" in nack[LISTENER].error
            assert tracker.get(NODE, LISTENER).state == SyncState.ERROR
            assert await get(listener_port) == (200, "1")  # still serving the last good listener

            fixed = config(upstream, listener_port, tag="2")
            changed = {url: v for url, v in fixed.versions.items() if v != bad.versions[url]}
            assert set(changed) == {LISTENER, ROUTE}
            start = time.time()
            cache.set(NODE, fixed)
            acks = (await tracker.wait_for({NODE: changed}, timeout=10))[NODE]
            print(f"valid edit (LDS + RDS) → ACK: {latency_ms(acks, start):.1f} ms")
            assert {o.kind for o in acks.values()} == {OutcomeKind.ACK}
            assert {url: tracker.get(NODE, url).state for url in fixed.versions} == dict.fromkeys(
                fixed.versions, SyncState.SYNCED)
            assert await get(listener_port) == (200, "2")

            # an updated cluster warms until its endpoints come again: the server must re-send them
            edited = config(upstream, listener_port, tag="2", timeout_s=2)
            changed = {url: v for url, v in edited.versions.items() if v != fixed.versions[url]}
            assert set(changed) == {CLUSTER}
            sent = asyncio.get_running_loop().create_future()
            stop = tracker.subscribe(lambda e: e.type_url == ENDPOINT and e.kind.value == "SENT"
                                     and not sent.done() and sent.set_result(e))
            cache.set(NODE, edited)
            acks = (await tracker.wait_for({NODE: changed}, timeout=10))[NODE]
            await asyncio.wait_for(sent, 5)
            stop()
            assert acks[CLUSTER].kind == OutcomeKind.ACK
            deadline = time.monotonic() + 5
            while (await dumped_clusters(admin_port))["upstream"]["section"] != "active":
                assert time.monotonic() < deadline, "the edited cluster stayed warming"
                await asyncio.sleep(0.05)
            assert await get(listener_port) == (200, "2")
            sizes = {SHORT_NAMES[url]: (s.bytes_sent, s.responses) for url, s in tracker.status()[0].types.items()}
            print(f"{variant}: bytes, responses sent per type on this stream: {sizes}")
            assert envoy.poll() is None
        finally:
            await server.stop(0)

    asyncio.run(asyncio.wait_for(scenario(), 60))
