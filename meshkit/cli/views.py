"""What the sidecars hold and where requests go: status, proxy-config, curl, get, xds, history."""

from __future__ import annotations

import argparse
import json
from collections import Counter

import yaml

from ..errors import InvalidInput
from ..inspect import dump as inspect_dump
from ..inspect import proxy_config
from ..inspect.sync_status import status_table
from .common import mesh_of, read_file

PC_KINDS = {
    "listener": "listeners", "listeners": "listeners", "l": "listeners",
    "route": "routes", "routes": "routes", "r": "routes",
    "cluster": "clusters", "clusters": "clusters", "c": "clusters",
    "endpoint": "endpoints", "endpoints": "endpoints", "ep": "endpoints",
    "all": "all", "a": "all",
    "secret": "secrets", "secrets": "secrets", "s": "secrets",
}


GET_KINDS = {
    "virtualservices": "VirtualService", "virtualservice": "VirtualService", "vs": "VirtualService",
    "destinationrules": "DestinationRule", "destinationrule": "DestinationRule", "dr": "DestinationRule",
    "serviceentries": "ServiceEntry", "serviceentry": "ServiceEntry", "se": "ServiceEntry",
    "gateways": "Gateway", "gateway": "Gateway", "gw": "Gateway",  # Istio's; the Gateway API's is `gtw`:
    "gateways.gateway.networking.k8s.io": "KubernetesGateway", "gtw": "KubernetesGateway",
    **{f"{k.lower()}{s}": k for k in ("HTTPRoute", "GRPCRoute", "TCPRoute") for s in ("", "s")},
}


POD_KINDS = ("pods", "pod", "po")


def cmd_status(args: argparse.Namespace) -> int:
    rows = mesh_of(args).status_rows()
    if args.output == "json":
        print(json.dumps(rows, indent=2))
    else:
        print(proxy_config.render(status_table(rows)))
    return 0


def cmd_pc(args: argparse.Namespace) -> int:
    mesh = mesh_of(args)
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
    rows = mesh_of(args).curl_rows(args.pod, args.url, headers, args.n, args.method)
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


def cmd_get(args: argparse.Namespace) -> int:
    if args.kind in POD_KINDS:  # kubectl get pods: READY, STATUS, RESTARTS, AGE
        table = mesh_of(args).pods_table()
        print(yaml.safe_dump(table.to_dict("records"), sort_keys=False) if args.output == "yaml"
              else proxy_config.render(table, padding=3))
        return 0
    items = mesh_of(args).get(GET_KINDS[args.kind])
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
    generated = mesh_of(args).xds(args.pod, read_file(args.file) if args.file else "")
    wanted = {t: v for t, v in generated.items() if not args.types or t in args.types}
    print(json.dumps(wanted, indent=2) if args.output == "json" else yaml.safe_dump(wanted, sort_keys=False))
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    mesh = mesh_of(args)
    if args.output == "json":
        print(json.dumps(mesh.history_rows(), indent=2))
    else:
        print(mesh.history().to_string(index=False))
    return 0


def _hosts(spec: dict) -> str:
    """The HOSTS column: a VirtualService's hosts, a route's hostnames, a DestinationRule's host."""
    return ",".join(spec.get("hosts") or spec.get("hostnames") or []) or spec.get("host", "")


def cmd_ingress(args: argparse.Namespace) -> int:
    print(json.dumps(mesh_of(args).ingress(), indent=2))  # {"address", "http_port", "https_port", "url"}
    return 0
