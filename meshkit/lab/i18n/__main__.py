"""`python -m meshkit.lab.i18n todo [LAB] [--lang ko]`: what still lacks a translation, ready to fill in.

Prints, per lab, a YAML skeleton: each missing markdown cell and text under its key, with its
English (and the old translation when the English changed) as comments.
"""

from __future__ import annotations

import argparse
import sys

import nbformat

from ..build import SOLUTIONS
from . import TRANSLATED, missing, names, orphans


def notebook_cells(lab: str) -> list:
    return nbformat.read(SOLUTIONS / f"{lab}.ipynb", as_version=4).cells


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["todo"])
    parser.add_argument("lab", nargs="?", default=None)
    parser.add_argument("--lang", default=TRANSLATED[0])
    args = parser.parse_args(argv)
    total = 0
    for lab in [n for n in names() if args.lab is None or n.startswith(args.lab)]:
        cells = notebook_cells(lab)
        todo = missing(lab, args.lang, cells)
        total += len(todo)
        if not todo:
            continue
        print(f"# ===== {lab}: {len(todo)} missing; orphans: {', '.join(orphans(lab, args.lang, cells)) or 'none'}")
        for item in todo:
            print(f"# --- {item.where} {item.key}")
            for line in item.english.splitlines() or [""]:
                print(f"#EN {line}")
            for line in item.stale.splitlines():
                print(f"#OLD {line}")
    print(f"# {total} missing")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
