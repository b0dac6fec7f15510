"""One request to the boss over its control socket (unix path) or a TCP address ("host:port")."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from ..errors import MeshError, NotRunning, Timeout
from ..protocol import MAX_MESSAGE, decode_reply, encode_request, split_address

Address = Path | str  # a unix socket path, or "host:port" for TCP


def call(address: Address, op: str, args: dict[str, Any], timeout: float = 60.0) -> Any:
    """Send one request to the boss at `address`; its result, or the error it reported, raised."""
    sock = _connect(address, timeout)
    try:
        with sock, sock.makefile("rwb") as stream:
            stream.write(encode_request(op, args))
            stream.flush()
            line = stream.readline(MAX_MESSAGE)
    except TimeoutError as exc:
        raise Timeout(f"the mesh did not answer {op!r} within {timeout:.0f}s") from exc
    if not line:
        raise MeshError("the mesh closed the connection without an answer")
    return decode_reply(line)


def _connect(address: Address, timeout: float) -> socket.socket:
    if isinstance(address, str):
        host, port = split_address(address)
        try:
            return socket.create_connection((host, port), timeout=timeout)
        except (ConnectionRefusedError, TimeoutError) as exc:
            raise NotRunning(
                f"no mesh answers on {address} (kind: is the port-forward up? `meshkit cluster status`; "
                "`meshkit cluster up` starts it again)") from exc
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(address))
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        sock.close()
        raise NotRunning(f"no mesh is running at {address.parent} (start one with `meshkit up`)") from exc
    except PermissionError as exc:
        sock.close()
        raise NotRunning(f"the mesh at {address.parent} belongs to another user (its control socket is "
                         "private); use your own with --home or MESHKIT_HOME") from exc
    return sock
