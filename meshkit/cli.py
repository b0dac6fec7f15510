"""The `meshkit` command: boot the mesh, give orders, and read what the sidecars hold.

    meshkit up                                   boot the demo mesh in the background
    meshkit status                               istioctl proxy-status
    meshkit pc listener productpage-v1           istioctl proxy-config listener
    meshkit curl productpage-v1 http://reviews:9080/reviews/0 -n 10
    meshkit apply -f route.yaml --pod productpage-v1
    meshkit revert
    meshkit history
    meshkit down
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import yaml

from . import client
from .constants import CAPTURES
from .errors import InvalidInput, MeshError, Nack
from .inspect import dump as inspect_dump
from .inspect import proxy_config
from .inspect.sync_status import status_table
from .protocol import format_push

PC_KINDS = {
    "listener": "listeners", "listeners": "listeners", "l": "listeners",
    "route": "routes", "routes": "routes", "r": "routes",
    "cluster": "clusters", "clusters": "clusters", "c": "clusters",
    "endpoint": "endpoints", "endpoints": "endpoints", "ep": "endpoints",
    "all": "all", "a": "all",
    "secret": "secrets", "secrets": "secrets", "s": "secrets",
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except MeshError as exc:  # each kind of trouble has its exit code (meshkit.errors)
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meshkit", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", help="the mesh's state folder (default: $MESHKIT_HOME or ~/.meshkit)")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    cmd = sub.add_parser("up", help="boot the mesh in the background (attach if it already runs)")
    cmd.add_argument("--timeout", type=float, default=client.UP_TIMEOUT_S)
    cmd.add_argument("--capture", choices=CAPTURES,
                     help="traffic capture (default: $MESHKIT_CAPTURE, else auto: iptables if root, else userspace)")
    cmd.set_defaults(func=cmd_up)

    cmd = sub.add_parser("doctor", help="check this machine for everything the labs need, with the fix for each")
    cmd.add_argument("-o", "--output", choices=("table", "json"), default="table")
    cmd.set_defaults(func=cmd_doctor)

    cmd = sub.add_parser("down", help="stop the mesh and remove every process, namespace and bridge")
    cmd.set_defaults(func=cmd_down)

    cmd = sub.add_parser("status", help="per-proxy xDS sync state, like istioctl proxy-status")
    _output(cmd, ("table", "json"))
    cmd.set_defaults(func=cmd_status)

    cmd = sub.add_parser("proxy-config", aliases=["pc"], help="what one sidecar's Envoy holds")
    cmd.add_argument("kind", choices=sorted(PC_KINDS), help="listener | route | cluster | endpoint | secret | all")
    cmd.add_argument("pod", help="pod name or Deployment name, e.g. productpage-v1")
    cmd.add_argument("--port", type=int)
    cmd.add_argument("--address")
    cmd.add_argument("--type", dest="type_", metavar="TYPE", help="listener type: HTTP, TCP, HTTP+TCP")
    cmd.add_argument("--name", help="route config name, e.g. 9080")
    cmd.add_argument("--fqdn")
    cmd.add_argument("--subset")
    cmd.add_argument("--direction", help="inbound or outbound")
    cmd.add_argument("--cluster")
    cmd.add_argument("--status")
    _output(cmd, ("table", "json", "yaml"))
    cmd.set_defaults(func=cmd_pc)

    cmd = sub.add_parser("curl", help="send requests from inside a pod, through its sidecar")
    cmd.add_argument("pod")
    cmd.add_argument("url", help="e.g. http://reviews:9080/reviews/0")
    cmd.add_argument("-H", "--header", action="append", default=[], help="'Name: value' (repeatable)")
    cmd.add_argument("-n", type=int, default=1, help="number of requests")
    cmd.add_argument("-X", "--method", default="GET")
    _output(cmd, ("table", "json"))
    cmd.set_defaults(func=cmd_curl)

    cmd = sub.add_parser("apply", help="push raw Envoy v3 resources (YAML or JSON) and wait for ACK/NACK")
    cmd.add_argument("-f", "--file", required=True, help="file with one or more documents, or - for stdin")
    cmd.add_argument("--pod", action="append", default=[], help="target pod (repeatable; default: all)")
    _output(cmd, ("table", "json"))
    cmd.set_defaults(func=cmd_apply)

    cmd = sub.add_parser("delete", help="delete the Istio resources a file names")
    cmd.add_argument("-f", "--file", required=True)
    cmd.set_defaults(func=cmd_delete)

    cmd = sub.add_parser("get", help="list the Istio resources the boss holds")
    cmd.add_argument("kind", choices=sorted(GET_KINDS))
    _output(cmd, ("table", "yaml"))
    cmd.set_defaults(func=cmd_get)

    cmd = sub.add_parser("xds", help="print the xDS a file would produce for a pod, without applying it")
    cmd.add_argument("file", nargs="?", default="", help="Istio YAML (omit for the current config)")
    cmd.add_argument("--pod", default="productpage-v1")
    cmd.add_argument("--type", dest="types", action="append", choices=["CDS", "EDS", "LDS", "RDS"],
                     help="only these types (repeatable)")
    _output(cmd, ("yaml", "json"))
    cmd.set_defaults(func=cmd_xds)

    cmd = sub.add_parser("mesh", help="mesh-wide settings (MeshConfig)")
    cmd.add_argument("action", choices=["set"])
    cmd.add_argument("setting", choices=["outbound-traffic-policy"])
    cmd.add_argument("value", choices=["ALLOW_ANY", "REGISTRY_ONLY"])
    cmd.set_defaults(func=cmd_mesh)

    cmd = sub.add_parser("revert", help="drop raw overrides: back to the generated config")
    cmd.add_argument("--pod", action="append", default=[], help="target pod (repeatable; default: all)")
    cmd.set_defaults(func=cmd_revert)

    cmd = sub.add_parser("lab", help="boot the mesh and open the labs in JupyterLab")
    cmd.add_argument("--mode", choices=["self-study", "workshop", "instructor"], default=None,
                     help="instructor opens the solved notebooks with notes, autopilot and fault buttons")
    cmd.add_argument("--runtime", choices=["local", "kind"], default="local",
                     help="where the mesh runs: local (booted here) or kind (`meshkit cluster up` first)")
    cmd.add_argument("--name", default=None, help="kind: the cluster's name (default: meshkit)")
    cmd.add_argument("--port", type=int, default=8888)
    cmd.add_argument("--no-browser", action="store_true")
    cmd.set_defaults(func=cmd_lab)

    cmd = sub.add_parser("progress", help="which lab exercises you have done (self-study progress)")
    cmd.set_defaults(func=cmd_progress)

    cmd = sub.add_parser("hints", help="workshop mode: unlock the hints for this machine")
    cmd.add_argument("action", choices=["unlock"])
    cmd.set_defaults(func=cmd_hints)

    cmd = sub.add_parser("cluster", help="the kind path: a real Kubernetes cluster with the same mesh")
    csub = cmd.add_subparsers(title="cluster commands", metavar="ACTION")
    up = csub.add_parser("up", help="create (or re-use) the kind cluster and deploy the mesh")
    up.add_argument("--name", default="meshkit")
    up.add_argument("--dry-run", action="store_true", help="print every command, in order; change nothing")
    up.set_defaults(func=cmd_cluster_up)
    down = csub.add_parser("down", help="delete the kind cluster and stop the port-forwards")
    down.add_argument("--name", default="meshkit")
    down.set_defaults(func=cmd_cluster_down)
    status = csub.add_parser("status", help="deployments and port-forwards of the kind cluster")
    status.add_argument("--name", default="meshkit")
    status.set_defaults(func=cmd_cluster_status)

    cmd = sub.add_parser("serve-xds", help="run only the control plane (the kind cluster's xDS server)")
    cmd.add_argument("--listen", default="127.0.0.1:15010", help="host:port of the ADS server")
    cmd.add_argument("--learn-pod-ips", action="store_true",
                     help="take pod names and IPs from the connecting sidecars' node ids")
    cmd.add_argument("--control", metavar="HOST:PORT",
                     help="also answer meshkit's control protocol here (status, apply, ...); keep it on 127.0.0.1")
    cmd.set_defaults(func=cmd_serve_xds)

    cmd = sub.add_parser("ingress", help="where this machine reaches the ingress gateway (address, ports, URL)")
    cmd.set_defaults(func=cmd_ingress)

    cmd = sub.add_parser("history", help="every push: what changed and who ACKed or NACKed")
    _output(cmd, ("table", "json"))
    cmd.set_defaults(func=cmd_history)
    return parser


GET_KINDS = {
    "virtualservices": "VirtualService", "virtualservice": "VirtualService", "vs": "VirtualService",
    "destinationrules": "DestinationRule", "destinationrule": "DestinationRule", "dr": "DestinationRule",
    "serviceentries": "ServiceEntry", "serviceentry": "ServiceEntry", "se": "ServiceEntry",
    "gateways": "Gateway", "gateway": "Gateway", "gw": "Gateway",  # Istio's; the Gateway API's is `gtw`:
    "gateways.gateway.networking.k8s.io": "KubernetesGateway", "gtw": "KubernetesGateway",
    **{f"{k.lower()}{s}": k for k in ("HTTPRoute", "GRPCRoute", "TCPRoute") for s in ("", "s")},
}
_hosts = lambda spec: ",".join(spec.get("hosts") or spec.get("hostnames") or []) or spec.get("host", "")  # noqa: E731


def _output(cmd: argparse.ArgumentParser, choices: tuple[str, ...]) -> None:
    cmd.add_argument("-o", "--output", choices=choices, default=choices[0])


def _mesh(args: argparse.Namespace) -> client.Mesh:
    return client.connect(args.home)


def cmd_up(args: argparse.Namespace) -> int:
    start = time.monotonic()
    mesh = client.up(args.home, timeout=args.timeout, capture=args.capture)
    pods = mesh.pods()
    print(f"mesh ready in {time.monotonic() - start:.1f}s at {mesh.home} "
          f"(capture: {mesh.capture}, {len(pods)} pods)")
    for pod in pods:
        print(f"  {pod}")
    print("next: meshkit status | meshkit pc listener productpage-v1 | "
          "meshkit curl productpage-v1 http://reviews:9080/reviews/0 -n 6")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import doctor

    report = doctor()
    print(json.dumps(report.rows(), indent=2) if args.output == "json" else report.render())
    return report.exit_code


def cmd_down(args: argparse.Namespace) -> int:
    client.down(args.home)
    print(f"mesh at {client.home_dir(args.home)} stopped; its processes, namespaces and bridge are gone")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    rows = _mesh(args).status_rows()
    if args.output == "json":
        print(json.dumps(rows, indent=2))
    else:
        print(proxy_config.render(status_table(rows)))
    return 0


def cmd_pc(args: argparse.Namespace) -> int:
    mesh = _mesh(args)
    kind = PC_KINDS[args.kind]
    kinds = ("clusters", "listeners", "routes", "endpoints") if kind == "all" else (kind,)
    for index, each in enumerate(kinds):
        filters = _pc_filters(each, args)
        if args.output == "table":
            print("\n" if index else "", end="")
            print(proxy_config.render(mesh.pc.table(each, args.pod, **filters)))
            note = mesh.capture_note() if each == "listeners" else ""
            if note:  # userspace capture changes two listeners: say so where they show
                print(f"\nnote: {note}")
            continue
        if each == "secrets":  # Envoy redacts the private keys in its dump
            resources = inspect_dump.to_camel(inspect_dump.section(mesh.pc.config_dump(args.pod, False),
                                                                   "SecretsConfigDump"))
        else:
            resources = mesh.pc.resources(each, args.pod, **filters)
        print(json.dumps(resources, indent=4) if args.output == "json"
              else yaml.safe_dump(resources, sort_keys=False), end="\n" if args.output == "json" else "")
    return 0


def _pc_filters(kind: str, args: argparse.Namespace) -> dict:
    wanted = {
        "listeners": {"port": args.port, "address": args.address, "type": args.type_},
        "routes": {"name": args.name},
        "clusters": {"fqdn": args.fqdn, "port": args.port, "subset": args.subset,
                     "direction": args.direction},
        "endpoints": {"address": args.address, "port": args.port, "cluster": args.cluster,
                      "status": args.status},
        "secrets": {},
    }[kind]
    return {k: v for k, v in wanted.items() if v is not None}


def cmd_curl(args: argparse.Namespace) -> int:
    headers = {}
    for header in args.header:
        name, sep, value = header.partition(":")
        if not sep:
            raise InvalidInput(f"header {header!r} is not 'Name: value'")
        headers[name.strip()] = value.strip()
    rows = _mesh(args).curl_rows(args.pod, args.url, headers, args.n, args.method)
    if args.output == "json":
        for row in rows:
            print(json.dumps(row))
    else:
        print(format_curl(rows))
    return 0 if any(r["status"] is not None for r in rows) else 1


def format_curl(rows: list[dict]) -> str:
    """One line per request, then who answered and with what."""
    lines = [f"{'#':>4}  {'STATUS':<6}  {'POD':<34}  {'FLAGS':<6}  {'MS':>7}  UPSTREAM CLUSTER"]
    for i, row in enumerate(rows, 1):
        status = row["status"] if row["status"] is not None else "ERR"
        who = row["pod"] or (row["error"] or "-")
        lines.append(f"{i:>4}  {status!s:<6}  {who:<34}  {row['flags'] or '-':<6}  "
                     f"{row['elapsed_ms']:>7.1f}  {row['upstream_cluster'] or '-'}")
    codes = Counter(str(r["status"] if r["status"] is not None else "error") for r in rows)
    pods = Counter(r["pod"] for r in rows if r["pod"])
    lines.append("")
    lines.append(f"{len(rows)} requests: " + ", ".join(f"{c} x{n}" for c, n in sorted(codes.items())))
    if pods:
        lines.append("answered by: " + ", ".join(f"{p} x{n}" for p, n in sorted(pods.items())))
    return "\n".join(lines)


def cmd_apply(args: argparse.Namespace) -> int:
    text = _read(args.file)
    mesh = _mesh(args)
    try:
        push = mesh.apply(text, args.pod)
    except Nack as exc:
        print(format_push(exc.push), file=sys.stderr)
        raise
    print(json.dumps(push, indent=2) if args.output == "json" else format_push(push))
    return 0


def _read(path: str) -> str:
    return sys.stdin.read() if path == "-" else Path(path).read_text()


def cmd_delete(args: argparse.Namespace) -> int:
    print(format_push(_mesh(args).delete(_read(args.file))))
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    items = _mesh(args).get(GET_KINDS[args.kind])
    if args.output == "yaml":
        print(yaml.safe_dump_all(items, sort_keys=False), end="")
        return 0
    if not items:
        print(f"No {GET_KINDS[args.kind]} resources found.")
        return 0
    rows = [(i["metadata"].get("namespace", "default"), i["metadata"]["name"], _hosts(i["spec"])) for i in items]
    width = max(len(r[1]) for r in rows) + 3
    print(f"{'NAMESPACE':<12}{'NAME':<{width}}HOSTS")
    for namespace, name, hosts in rows:
        print(f"{namespace:<12}{name:<{width}}{hosts}")
    return 0


def cmd_xds(args: argparse.Namespace) -> int:
    generated = _mesh(args).xds(args.pod, _read(args.file) if args.file else "")
    wanted = {t: v for t, v in generated.items() if not args.types or t in args.types}
    print(json.dumps(wanted, indent=2) if args.output == "json" else yaml.safe_dump(wanted, sort_keys=False))
    return 0


def cmd_mesh(args: argparse.Namespace) -> int:
    print(format_push(_mesh(args).set_outbound_traffic_policy(args.value)))
    return 0


def cmd_revert(args: argparse.Namespace) -> int:
    print(format_push(_mesh(args).revert(args.pod)))
    return 0


def cmd_lab(args: argparse.Namespace) -> int:
    import os
    import subprocess

    from .lab import build, modes

    mode = modes.resolve(args.mode)
    folder = build.SOLUTIONS if mode == modes.INSTRUCTOR else build.LABS
    if args.runtime == "kind":  # attach to the cluster and tell the kernels where it is
        from .client.kind import lab_env

        env = {**os.environ, "MESHKIT_MODE": mode, **lab_env(args.home, args.name)}
    else:
        client.up(args.home)
        env = {**os.environ, "MESHKIT_MODE": mode, "MESHKIT_HOME": str(client.home_dir(args.home))}
    argv = [sys.executable, "-m", "jupyter", "lab", f"--notebook-dir={folder}", "--ServerApp.ip=127.0.0.1",
            f"--port={args.port}"] + (["--no-browser"] if args.no_browser else [])
    if os.geteuid() == 0:  # `sudo make lab` (iptables capture): JupyterLab refuses root unless told
        argv.append("--allow-root")
    print(f"mode: {mode}; notebooks: {folder}; the mesh keeps running after JupyterLab stops (`meshkit down`)")
    return subprocess.call(argv, env=env)


def cmd_progress(args: argparse.Namespace) -> int:
    from .lab import progress

    table = progress.table(client.home_dir(args.home))
    print("no checks run yet: open a lab with `meshkit lab`" if table.empty else table.to_string(index=False))
    return 0


def cmd_hints(args: argparse.Namespace) -> int:
    from .lab import modes

    modes.unlock_hints(client.home_dir(args.home))
    print("hints unlocked for workshop mode on this machine")
    return 0


def cmd_cluster_up(args: argparse.Namespace) -> int:
    from .runtime import kind

    kind.cluster_up(args.name, home=args.home, dry_run=args.dry_run)
    return 0


def cmd_cluster_down(args: argparse.Namespace) -> int:
    from .runtime import kind

    kind.cluster_down(args.name, home=args.home)
    return 0


def cmd_cluster_status(args: argparse.Namespace) -> int:
    from .runtime import kind

    status = kind.cluster_status(args.name, home=args.home)
    print(f"cluster {status['name']}: {'exists' if status['exists'] else 'does not exist'} ({status['dir']})")
    for deployment, ready in sorted(status["deployments"].items()):
        print(f"  {deployment:<40} {ready}")
    for forward in status["forwards"]:
        print(f"  forward 127.0.0.1:{forward['local_port']} → {forward['name']} "
              f"({'alive' if forward['alive'] else 'dead: run `meshkit cluster up` again'})")
    return 0


def cmd_serve_xds(args: argparse.Namespace) -> int:
    from .standalone import serve

    return serve(args.listen, learn_pod_ips=args.learn_pod_ips, control_listen=args.control)


def cmd_ingress(args: argparse.Namespace) -> int:
    print(json.dumps(_mesh(args).ingress(), indent=2))  # {"address", "http_port", "https_port", "url"}
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    mesh = _mesh(args)
    if args.output == "json":
        print(json.dumps(mesh.history_rows(), indent=2))
    else:
        print(mesh.history().to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
