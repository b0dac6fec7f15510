"""What every `meshkit` command shares: attaching to the mesh, reading a file, the -o flag."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import client


def mesh_of(args: argparse.Namespace) -> client.Mesh:
    """The mesh at `--home` (or $MESHKIT_HOME, or ~/.meshkit), on the runtime $MESHKIT_RUNTIME names."""
    return client.connect(args.home)


def read_file(path: str) -> str:
    """A file's text, or standard input for "-"."""
    return sys.stdin.read() if path == "-" else Path(path).read_text()


def output_choice(cmd: argparse.ArgumentParser, choices: tuple[str, ...]) -> None:
    cmd.add_argument("-o", "--output", choices=choices, default=choices[0])
