"""meshkit: a live Envoy + xDS mesh to learn how Istio drives its sidecars.

>>> import meshkit
>>> mesh = meshkit.up()            # boot (or attach to) the demo mesh
>>> mesh.status()                  # istioctl proxy-status
>>> mesh.pc.listeners("productpage-v1")
"""

from .api import Mesh, connect, down, home_dir, up
from .control import ControlError, NotRunning

__all__ = ["ControlError", "Mesh", "NotRunning", "connect", "down", "home_dir", "up"]
__version__ = "0.1.0"
