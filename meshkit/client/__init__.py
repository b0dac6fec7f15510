"""The client side of meshkit: one `Mesh`, a transport per runtime, no daemon or grpc imports.

    >>> import meshkit
    >>> mesh = meshkit.up()                        # boot (or attach to) the local mesh
    >>> mesh = meshkit.connect(runtime="kind")     # or the kind cluster `meshkit cluster up` made

`client/mesh.py` is the API; `transport.py` the interface a runtime implements (`ControlTransport`
for the local daemon's socket, `kind.KindTransport` for kind); `fake.py` a contract-checked stand-in
for tests; `local.py` starts and stops the local boss as a process.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from ..constants import default_home as home_dir
from .local import DOWN_TIMEOUT_S, UP_TIMEOUT_S, connect_local, down, up_local
from .mesh import Mesh, ProxyConfig
from .transport import ControlTransport, Transport

__all__ = ["DOWN_TIMEOUT_S", "UP_TIMEOUT_S", "ControlTransport", "Mesh", "ProxyConfig", "Transport", "connect",
           "down", "home_dir", "up"]


def connect(home: str | os.PathLike | None = None, runtime: str | None = None, name: str | None = None) -> Mesh:
    """Attach to the running mesh; raises `meshkit.errors.NotRunning` if none answers.

    `runtime`: "local" or "kind" (default: $MESHKIT_RUNTIME, else local). On kind, the cluster
    `meshkit cluster up --name NAME` made (`name`, default $MESHKIT_KIND_CLUSTER, else meshkit).
    """
    from . import kind

    if kind.runtime_name(runtime) == "kind":
        return kind.connect_kind(home, name)
    return connect_local(home)


def up(home: str | os.PathLike | None = None, timeout: float = UP_TIMEOUT_S, capture: str | None = None,
       xds: str | None = None, xds_pods: Mapping[str, str] | None = None) -> Mesh:
    """Start the mesh in the background (or attach to the one already running) and wait for it.

    `capture`: "iptables", "userspace" or "auto" (default: $MESHKIT_CAPTURE, else auto: iptables
    when this process can, userspace otherwise). `xds`: "delta" (Istio's default) or "sotw" for
    every sidecar (default: $MESHKIT_XDS, else delta); `xds_pods`: {pod or deployment: variant}
    for the exceptions. An already running mesh keeps its capture and xDS variants.
    With $MESHKIT_RUNTIME=kind this attaches to the cluster `meshkit cluster up` made.
    """
    from . import kind

    if kind.runtime_name() == "kind":
        return kind.connect_kind(home)
    return up_local(home, timeout, capture, xds, xds_pods)
