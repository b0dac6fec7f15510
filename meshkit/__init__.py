"""meshkit: a live Envoy + xDS mesh to learn how Istio drives its sidecars.

>>> import meshkit
>>> mesh = meshkit.up()            # boot (or attach to) the demo mesh
>>> mesh.status()                  # istioctl proxy-status
>>> mesh.pc.listeners("productpage-v1")
>>> lab = meshkit.lab("04-rds")    # a lab session (see meshkit.lab)

The public names load lazily, so `import meshkit.model` stays light. Errors a caller may catch
are in `meshkit.errors` (and re-exported here): `NotRunning`, `InvalidInput`, `Nack`, ...
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_ERRORS = ("EnvironmentProblem", "InternalError", "InvalidInput", "MeshError", "Nack", "NotFound", "NotRunning",
           "Starting", "Timeout", "Unsupported")
_PUBLIC = {
    "Mesh": "client", "connect": "client", "down": "client", "home_dir": "client", "up": "client",
    "doctor": "doctor", **dict.fromkeys(_ERRORS, "errors"),
}
_SUBPACKAGES = ("lab", "widgets")
__all__ = sorted([*_PUBLIC, *_SUBPACKAGES])


def __getattr__(name: str) -> object:
    if name in _PUBLIC:
        return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    if name in _SUBPACKAGES:  # `meshkit.lab("04-rds")` without importing meshkit.lab first
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'meshkit' has no attribute {name!r}")
