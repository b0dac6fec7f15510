"""Bringing a mesh up and down, the labs, and the kind cluster."""

from __future__ import annotations

import argparse
import json
import time

from .. import client
from ..errors import Unsupported

TOPOLOGY_HELP = ("a Kubernetes manifest or folder (Services, Deployments, ServiceAccounts, Namespaces; repeatable) "
                 "to boot instead of the built-in demo; what meshkit ignores is printed, one line per kind")


def cmd_up(args: argparse.Namespace) -> int:
    start = time.monotonic()
    pods_xds = dict(item.partition("=")[::2] for item in args.xds_pod)
    mesh = client.up(args.home, timeout=args.timeout, capture=args.capture, topology=args.topology, xds=args.xds,
                     xds_pods=pods_xds)
    pods = mesh.pods()
    source = f", from {', '.join(args.topology)}" if args.topology else ""
    print(f"mesh ready in {time.monotonic() - start:.1f}s at {mesh.home} (capture: {mesh.capture}, "
          f"xds: {mesh.xds_variant.lower()}, {len(pods)} pods{source})")
    for pod in pods:
        print(f"  {pod}")
    if not args.topology:
        print("next: meshkit status | meshkit pc listener productpage-v1 | "
              "meshkit curl productpage-v1 http://reviews:9080/reviews/0 -n 6")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from ..doctor import doctor

    report = doctor()
    print(json.dumps(report.rows(), indent=2) if args.output == "json" else report.render())
    return report.exit_code


def cmd_down(args: argparse.Namespace) -> int:
    client.down(args.home)
    print(f"mesh at {client.home_dir(args.home)} stopped; its processes, namespaces and bridge are gone")
    return 0


def cmd_lab(args: argparse.Namespace) -> int:
    import os
    import subprocess

    from .. import i18n
    from ..lab import launch, modes

    mode = modes.resolve(args.mode)
    lang = i18n.check(args.lang or os.environ.get("MESHKIT_LANG") or i18n.EN)
    if args.runtime == "kind" and args.topology:
        raise Unsupported("--topology boots local meshes only; the kind cluster runs the built-in demo")
    if args.runtime == "kind":  # attach to the cluster and tell the kernels where it is
        from ..client.kind import lab_env

        env = {**os.environ, **lab_env(args.home, args.name)}
    else:
        client.up(args.home, topology=args.topology)
        env = {**os.environ, "MESHKIT_HOME": str(client.home_dir(args.home))}
    argv, folder, extra = launch.lab_command(mode, lang, args.port, args.no_browser)
    print(f"mode: {mode}; language: {lang}; notebooks: {folder}; "
          "the mesh keeps running after JupyterLab stops (`meshkit down`)")
    return subprocess.call(argv, env={**env, **extra})


def cmd_progress(args: argparse.Namespace) -> int:
    from ..lab import progress

    table = progress.table(client.home_dir(args.home))
    print("no checks run yet: open a lab with `meshkit lab`" if table.empty else table.to_string(index=False))
    return 0


def cmd_hints(args: argparse.Namespace) -> int:
    from ..lab import modes

    modes.unlock_hints(client.home_dir(args.home))
    print("hints unlocked for workshop mode on this machine")
    return 0


def cmd_cluster_up(args: argparse.Namespace) -> int:
    from ..runtime import kind

    kind.cluster_up(args.name, home=args.home, dry_run=args.dry_run)
    return 0


def cmd_cluster_down(args: argparse.Namespace) -> int:
    from ..runtime import kind

    kind.cluster_down(args.name, home=args.home)
    return 0


def cmd_cluster_status(args: argparse.Namespace) -> int:
    from ..runtime import kind

    status = kind.cluster_status(args.name, home=args.home)
    print(f"cluster {status['name']}: {'exists' if status['exists'] else 'does not exist'} ({status['dir']})")
    for deployment, ready in sorted(status["deployments"].items()):
        print(f"  {deployment:<40} {ready}")
    for forward in status["forwards"]:
        print(f"  forward 127.0.0.1:{forward['local_port']} → {forward['name']} "
              f"({'alive' if forward['alive'] else 'dead: run `meshkit cluster up` again'})")
    return 0


def cmd_serve_xds(args: argparse.Namespace) -> int:
    from ..standalone import serve

    return serve(args.listen, learn_pod_ips=args.learn_pod_ips, control_listen=args.control)
