"""What every `meshkit` command shares: its subcommand, attaching to the mesh, reading a file, the -o flag."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import client


def mesh_of(args: argparse.Namespace) -> client.Mesh:
    """The mesh at `--home` (or $MESHKIT_HOME, or ~/.meshkit), on the runtime $MESHKIT_RUNTIME names."""
    return client.connect(args.home)


def read_file(path: str) -> str:
    """A file's text, or standard input for "-"."""
    return sys.stdin.read() if path == "-" else Path(path).read_text()


def output_choice(cmd: argparse.ArgumentParser, choices: tuple[str, ...]) -> None:
    cmd.add_argument("-o", "--output", choices=choices, default=choices[0])


def command(sub: argparse._SubParsersAction, name: str, func: Callable[[argparse.Namespace], int | None],
            help: str, **options: Any) -> argparse.ArgumentParser:
    """The subcommand `name` (with `add_parser` options such as aliases), run by `func`."""
    cmd = sub.add_parser(name, help=help, **options)
    cmd.set_defaults(func=func)
    return cmd
