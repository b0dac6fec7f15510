"""The orders a learner gives: apply, delete, revert, mesh-wide settings — each waits for every ACK."""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import Nack
from ..protocol import format_push
from .common import mesh_of, read_file


def cmd_apply(args: argparse.Namespace) -> int:
    text = read_file(args.file)
    mesh = mesh_of(args)
    try:
        push = mesh.apply(text, args.pod)
    except Nack as exc:
        print(format_push(exc.push), file=sys.stderr)
        raise
    print(json.dumps(push, indent=2) if args.output == "json" else format_push(push))
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    print(format_push(mesh_of(args).delete(read_file(args.file))))
    return 0


def cmd_mesh(args: argparse.Namespace) -> int:
    print(format_push(mesh_of(args).set_outbound_traffic_policy(args.value)))
    return 0


def cmd_revert(args: argparse.Namespace) -> int:
    print(format_push(mesh_of(args).revert(args.pod)))
    return 0
