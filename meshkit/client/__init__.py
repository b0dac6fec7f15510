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
from ..errors import Unsupported
from ..runtime.choose import TopologyFiles
from .local import DOWN_TIMEOUT_S, UP_TIMEOUT_S, connect_local, down, topology_notes, up_local
from .mesh import Mesh, ProxyConfig
from .transport import ControlTransport, Transport

__all__ = ["DOWN_TIMEOUT_S", "UP_TIMEOUT_S", "ControlTransport", "Mesh", "ProxyConfig", "Transport", "connect",
           "down", "home_dir", "topology_notes", "up"]


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
       topology: TopologyFiles | None = None, xds: str | None = None,
       xds_pods: Mapping[str, str] | None = None) -> Mesh:
    """Start the mesh in the background (or attach to the one already running) and wait for it.

    `topology`: a Kubernetes manifest file (Services, Deployments, ServiceAccounts, Namespaces), a
    folder of them or a list of those, booted instead of the built-in Bookinfo demo, e.g. Istio's
    samples/httpbin/httpbin.yaml; what meshkit ignores in it is logged (`topology_notes(files)`).

    `capture`: "iptables", "userspace" or "auto" (default: $MESHKIT_CAPTURE, else auto: iptables
    when this process can, userspace otherwise). `xds`: "delta" (Istio's default) or "sotw" for
    every sidecar (default: $MESHKIT_XDS, else delta); `xds_pods`: {pod or deployment: variant}
    for the exceptions. An already running mesh keeps its capture and xDS variants.
    With $MESHKIT_RUNTIME=kind this attaches to the cluster `meshkit cluster up` made.
    """
    from . import kind

    if kind.runtime_name() == "kind":
        if topology is not None:
            raise Unsupported("--topology boots local meshes only; the kind cluster runs the built-in demo")
        return kind.connect_kind(home)
    return up_local(home, timeout, capture, topology, xds, xds_pods)
