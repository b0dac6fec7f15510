"""meshkit: a live Envoy + xDS mesh to learn how Istio drives its sidecars.

>>> import meshkit
>>> mesh = meshkit.up()            # boot (or attach to) the demo mesh
>>> mesh.status()                  # istioctl proxy-status
>>> mesh.pc.listeners("productpage-v1")
>>> lab = meshkit.lab("04-rds")    # a lab session (see meshkit.lab)

The public names load lazily, so `import meshkit.model` stays light.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "Mesh": "api", "connect": "api", "down": "api", "home_dir": "api", "up": "api",
    "ControlError": "control", "NotRunning": "control", "doctor": "doctor",
}
_SUBPACKAGES = ("lab", "widgets")
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> object:
    if name in _PUBLIC:
        return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    if name in _SUBPACKAGES:  # `meshkit.lab("04-rds")` without importing meshkit.lab first
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'meshkit' has no attribute {name!r}")
