"""Make a file or folder usable by the pods' unprivileged uids, wherever meshkit is installed.

The proxy runs as uid 1337 and the apps as uid 1000. When meshkit (or its venv, with the Envoy
binary) lives under a folder only root may enter — a clone under /root, a 0700 CI workspace —
those uids cannot run what they need. Rather than fail, meshkit stages a copy in a cache every
uid can read, once per content, and uses that.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from .netns import usable_by_any_uid

CACHE = Path(os.environ.get("MESHKIT_SHARED_CACHE", "/var/cache/meshkit"))


def world_usable(path: Path) -> Path:
    """`path` itself when every uid can use it, else a world-readable copy of it in the cache."""
    path = path.resolve()
    if usable_by_any_uid(path):
        return path
    stat = path.stat()
    key = hashlib.sha256(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    target = CACHE / f"{path.name}-{key}" / path.name
    if not target.exists():
        staging = target.parent.with_name(target.parent.name + f".tmp{os.getpid()}")
        staging.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            shutil.copytree(path, staging / path.name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, staging / path.name)
        for folder in (CACHE, staging, *[p for p in (staging / path.name).rglob("*") if p.is_dir()]):
            folder.chmod(0o755)
        for item in [staging / path.name, *(staging / path.name).rglob("*")]:
            if item.is_file():
                item.chmod(0o755 if os.access(item, os.X_OK) else 0o644)
        try:
            staging.rename(target.parent)
        except OSError:  # another process staged it first
            shutil.rmtree(staging, ignore_errors=True)
    return target
