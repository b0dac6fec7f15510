"""The `meshkit` command: boot the mesh, give orders, and read what the sidecars hold.

    meshkit up                                   boot the demo mesh in the background
    meshkit status                               istioctl proxy-status
    meshkit pc listener productpage-v1           istioctl proxy-config listener
    meshkit curl productpage-v1 http://reviews:9080/reviews/0 -n 10
    meshkit apply -f route.yaml --pod productpage-v1
    meshkit revert
    meshkit history
    meshkit get pods                             kubectl get pods: READY STATUS RESTARTS AGE
    meshkit down
"""

from __future__ import annotations

import argparse
import sys

from .. import client
from ..constants import CAPTURES, XDS_CHOICES
from ..errors import MeshError
from .common import command, output_choice
from .lifecycle import (
    TOPOLOGY_HELP,
    cmd_cluster_down,
    cmd_cluster_status,
    cmd_cluster_up,
    cmd_doctor,
    cmd_down,
    cmd_hints,
    cmd_lab,
    cmd_progress,
    cmd_serve_xds,
    cmd_up,
)
from .orders import cmd_apply, cmd_delete, cmd_mesh, cmd_revert
from .views import (
    GET_KINDS,
    PC_KINDS,
    POD_KINDS,
    cmd_curl,
    cmd_get,
    cmd_history,
    cmd_ingress,
    cmd_pc,
    cmd_status,
    cmd_xds,
)

__all__ = ["build_parser", "main"]


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

    cmd = command(sub, "up", cmd_up, help="boot the mesh in the background (attach if it already runs)")
    cmd.add_argument("--timeout", type=float, default=client.UP_TIMEOUT_S)
    cmd.add_argument("--capture", choices=CAPTURES,
                     help="traffic capture (default: $MESHKIT_CAPTURE, else auto: iptables if root, else userspace)")
    cmd.add_argument("--topology", metavar="FILE", action="append", help=TOPOLOGY_HELP)
    cmd.add_argument("--xds", choices=XDS_CHOICES,
                     help="xDS variant of the sidecars (default: $MESHKIT_XDS, else delta, as Istio)")
    cmd.add_argument("--xds-pod", action="append", default=[], metavar="POD=VARIANT",
                     help="one pod (or deployment) speaks the other variant, e.g. reviews-v1=sotw (repeatable)")

    cmd = command(sub, "doctor", cmd_doctor,
                  help="check this machine for everything the labs need, with the fix for each")
    output_choice(cmd, ("table", "json"))

    command(sub, "down", cmd_down, help="stop the mesh and remove every process, namespace and bridge")

    cmd = command(sub, "status", cmd_status, help="per-proxy xDS sync state, like istioctl proxy-status")
    output_choice(cmd, ("table", "json"))

    cmd = command(sub, "proxy-config", cmd_pc, aliases=["pc"], help="what one sidecar's Envoy holds")
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
    output_choice(cmd, ("table", "json", "yaml"))

    cmd = command(sub, "curl", cmd_curl, help="send requests from inside a pod, through its sidecar")
    cmd.add_argument("pod")
    cmd.add_argument("url", help="e.g. http://reviews:9080/reviews/0")
    cmd.add_argument("-H", "--header", action="append", default=[], help="'Name: value' (repeatable)")
    cmd.add_argument("-n", type=int, default=1, help="number of requests")
    cmd.add_argument("-X", "--method", default="GET")
    output_choice(cmd, ("table", "json"))

    cmd = command(sub, "apply", cmd_apply, help="push raw Envoy v3 resources (YAML or JSON) and wait for ACK/NACK")
    cmd.add_argument("-f", "--file", required=True, help="file with one or more documents, or - for stdin")
    cmd.add_argument("--pod", action="append", default=[], help="target pod (repeatable; default: all)")
    output_choice(cmd, ("table", "json"))

    cmd = command(sub, "delete", cmd_delete, help="delete the Istio resources a file names")
    cmd.add_argument("-f", "--file", required=True)

    cmd = command(sub, "get", cmd_get, help="list the Istio resources the boss holds, or the pods (get pods)")
    cmd.add_argument("kind", choices=sorted([*GET_KINDS, *POD_KINDS]))
    output_choice(cmd, ("table", "yaml"))

    cmd = command(sub, "xds", cmd_xds, help="print the xDS a file would produce for a pod, without applying it")
    cmd.add_argument("file", nargs="?", default="", help="Istio YAML (omit for the current config)")
    cmd.add_argument("--pod", default="productpage-v1")
    cmd.add_argument("--type", dest="types", action="append", choices=["CDS", "EDS", "LDS", "RDS"],
                     help="only these types (repeatable)")
    output_choice(cmd, ("yaml", "json"))

    cmd = command(sub, "mesh", cmd_mesh, help="mesh-wide settings (MeshConfig)")
    cmd.add_argument("action", choices=["set"])
    cmd.add_argument("setting", choices=["outbound-traffic-policy"])
    cmd.add_argument("value", choices=["ALLOW_ANY", "REGISTRY_ONLY"])

    cmd = command(sub, "revert", cmd_revert, help="drop raw overrides: back to the generated config")
    cmd.add_argument("--pod", action="append", default=[], help="target pod (repeatable; default: all)")

    cmd = command(sub, "lab", cmd_lab, help="boot the mesh and open the labs in JupyterLab")
    cmd.add_argument("--mode", choices=["self-study", "workshop", "instructor"], default=None,
                     help="instructor opens the solved notebooks with notes, autopilot and fault buttons")
    cmd.add_argument("--runtime", choices=["local", "kind"], default="local",
                     help="where the mesh runs: local (booted here) or kind (`meshkit cluster up` first)")
    cmd.add_argument("--name", default=None, help="kind: the cluster's name (default: meshkit)")
    cmd.add_argument("--lang", choices=["en", "ko"], default=None,
                     help="the labs' language: en, or ko for the Korean edition (default: $MESHKIT_LANG or en)")
    cmd.add_argument("--port", type=int, default=8888)
    cmd.add_argument("--no-browser", action="store_true")
    cmd.add_argument("--topology", metavar="FILE", action="append", help=TOPOLOGY_HELP + " (local runtime)")

    command(sub, "progress", cmd_progress, help="which lab exercises you have done (self-study progress)")

    cmd = command(sub, "hints", cmd_hints, help="workshop mode: unlock the hints for this machine")
    cmd.add_argument("action", choices=["unlock"])

    cmd = sub.add_parser("cluster", help="the kind path: a real Kubernetes cluster with the same mesh")
    csub = cmd.add_subparsers(title="cluster commands", metavar="ACTION")
    up = command(csub, "up", cmd_cluster_up, help="create (or re-use) the kind cluster and deploy the mesh")
    up.add_argument("--name", default="meshkit")
    up.add_argument("--dry-run", action="store_true", help="print every command, in order; change nothing")
    down = command(csub, "down", cmd_cluster_down, help="delete the kind cluster and stop the port-forwards")
    down.add_argument("--name", default="meshkit")
    status = command(csub, "status", cmd_cluster_status, help="deployments and port-forwards of the kind cluster")
    status.add_argument("--name", default="meshkit")

    cmd = command(sub, "serve-xds", cmd_serve_xds, help="run only the control plane (the kind cluster's xDS server)")
    cmd.add_argument("--listen", default="127.0.0.1:15010", help="host:port of the ADS server")
    cmd.add_argument("--learn-pod-ips", action="store_true",
                     help="take pod names and IPs from the connecting sidecars' node ids")
    cmd.add_argument("--control", metavar="HOST:PORT",
                     help="also answer meshkit's control protocol here (status, apply, ...); keep it on 127.0.0.1")

    command(sub, "ingress", cmd_ingress, help="where this machine reaches the ingress gateway (address, ports, URL)")

    cmd = command(sub, "history", cmd_history, help="every push: what changed and who ACKed or NACKed")
    output_choice(cmd, ("table", "json"))
    return parser
