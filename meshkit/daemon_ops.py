"""Control ops for traces and config time travel: sidecars' access logs, push diffs, replay.

Kept apart from daemon.py so the daemon's handler table only names them:

- `access_log` {pods?, request_id?, client?, since?} → {pod: {"offset", "lines"}}: each pod's
  JSON access-log lines for one request (its x-request-id, or for TCP lines the client's
  ip:port), read from `since[pod]` (a byte offset an earlier call returned) or the last
  `TAIL_BYTES`. With neither request_id nor client it returns only the offsets: a mark to read from.
- `push_diff` {a, b, pods?, types?} → the per-resource YAML diff between two kept pushes.
- `replay` {id} → put back the config in force after push `id` and push it (the push record).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING

from . import control
from .xds.push_log import diff_states

if TYPE_CHECKING:
    from .daemon import Daemon

TAIL_BYTES = 512 * 1024  # how far back a read without `since` looks: minutes of lab traffic


def handlers(daemon: Daemon) -> dict[str, control.Handler]:
    """The ops this module answers, bound to `daemon`."""

    async def access_log(args: dict) -> dict:
        runtime = daemon._runtime()
        pods = daemon._pods(list(args.get("pods") or []))
        since = dict(args.get("since") or {})
        request_id, client = str(args.get("request_id") or ""), str(args.get("client") or "")

        def run() -> dict:
            return {pod.name: read_access_log(runtime.access_log(pod.name), since.get(pod.name), request_id, client)
                    for pod in pods if pod.sidecar}

        return await asyncio.to_thread(run)

    async def push_diff(args: dict) -> list[dict]:
        plane = daemon._plane()
        try:
            a, b = plane.pushes.get(int(args["a"])), plane.pushes.get(int(args["b"]))
        except KeyError as exc:
            raise control.ControlError(exc.args[0], "not-found") from exc
        return diff_states(a, b, args.get("pods") or None, args.get("types") or None)

    async def replay(args: dict) -> dict:
        plane = daemon._plane()
        try:
            push = await plane.replay(int(args["id"]))
        except KeyError as exc:
            raise control.ControlError(exc.args[0], "not-found") from exc
        return daemon._push_result(push)

    return {"access_log": access_log, "push_diff": push_diff, "replay": replay}


def read_access_log(path: Path, since: int | None, request_id: str = "", client: str = "") -> dict:
    """{"offset": where the complete lines end, "lines": the parsed lines for this request}."""
    try:
        size = path.stat().st_size
    except OSError:
        return {"offset": 0, "lines": []}
    start = max(0, size - TAIL_BYTES) if since is None or since > size else int(since)
    if not request_id and not client:
        return {"offset": size, "lines": []}
    with path.open("rb") as handle:
        handle.seek(start)
        chunk = handle.read(size - start)
    complete = chunk[: chunk.rfind(b"\n") + 1]
    lines = []
    for raw in complete.splitlines():
        if (request_id and request_id.encode() not in raw) and (not client or client.encode() not in raw):
            continue  # cheap test first: most lines are other requests'
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        if isinstance(entry, dict) and ((request_id and entry.get("request_id") == request_id)
                                        or (client and entry.get("downstream_remote_address") == client)):
            lines.append(entry)
    return {"offset": start + len(complete), "lines": lines}
