"""Live views and editors for notebooks, all fed by what the Envoys actually hold.

    >>> import meshkit, meshkit.widgets as mw
    >>> mesh = meshkit.connect()
    >>> mw.ProxyGraph(mesh, "productpage-v1")        # Downstream → listener → chain → … → endpoints (Upstream)
    >>> mw.MeshGraph(mesh)                           # the boss, its xDS streams, the call graph, live rates
    >>> mw.WeightSliders(mesh, "reviews", ["v1", "v2", "v3"])
    >>> mw.HeaderMatchForm(mesh, "reviews"); mw.FaultForm(mesh, "ratings"); mw.YamlEditor(mesh)
    >>> mw.SyncTable(mesh); mw.TrafficPanel(mesh, "productpage-v1", "http://reviews:9080/reviews/0")
    >>> mw.TraceView(mesh, "productpage-v1", "http://productpage:9080/productpage")  # one request, hop by hop
    >>> mw.PushTimeline(mesh)                        # every push; diff two, replay one
    >>> mw.Projector(mesh)                           # MeshGraph + SyncTable side by side, large type
    >>> mw.stop_watching()                           # a lab's last cell: live views stop polling

Every widget also has `.text()` and displays a text/plain (and text/html) fallback for front
ends that cannot render widgets; `mw.fallback_only()` or `MESHKIT_WIDGETS=text` shows only text.
Names load lazily: importing this package does not import ipywidgets until a widget is used.
"""

from __future__ import annotations

import importlib

_PUBLIC = {
    "ProxyGraph": "graphs", "MeshGraph": "graphs",
    "WeightSliders": "editors", "HeaderMatchForm": "editors", "FaultForm": "editors", "YamlEditor": "editors",
    "SyncTable": "panels", "TrafficPanel": "panels",
    "TraceView": "trace", "PushTimeline": "timeline",
    "Projector": "projector",
    "fallback_only": "base", "text_only": "base", "stop_watching": "base",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> object:
    if name in _PUBLIC:
        return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module 'meshkit.widgets' has no attribute {name!r}")
