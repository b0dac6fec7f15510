"""A sidecar's access log (Envoy's JSON lines), read for one request from a byte offset on.

`read_access_log(path, since, request_id, client)` → {"offset": where the complete lines end,
"lines": the parsed lines of that request}: HTTP lines by x-request-id, TCP ones by the client's
ip:port. Without `since` it looks back `TAIL_BYTES`; with neither id nor client it returns only
the offset, a mark to read from later.
"""

from __future__ import annotations

import json
from pathlib import Path

TAIL_BYTES = 512 * 1024  # how far back a read without `since` looks: minutes of lab traffic


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
    return {"offset": start + len(complete), "lines": select_lines(complete.splitlines(), request_id, client)}


def select_lines(raw_lines: list[bytes], request_id: str = "", client: str = "") -> list[dict]:
    """The JSON access-log lines of one request: its x-request-id, or for TCP lines the client's ip:port."""
    lines = []
    for raw in raw_lines:
        if (request_id and request_id.encode() not in raw) and (not client or client.encode() not in raw):
            continue  # cheap test first: most lines are other requests'
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        if isinstance(entry, dict) and ((request_id and entry.get("request_id") == request_id)
                                        or (client and entry.get("downstream_remote_address") == client)):
            lines.append(entry)
    return lines
