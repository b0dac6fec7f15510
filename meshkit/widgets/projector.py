"""`Projector`: the instructor's wall view. MeshGraph and SyncTable side by side, in large type.

    >>> mw.Projector(mesh)               # or lab.projector() in an instructor notes cell
    >>> mw.Projector(mesh, scale=2.0)    # the back row is far away

On a projector the room must read the boss's streams and the sync states from ten metres: the
two views sit in one row (wrapping under each other on a narrow screen), the table's type is
scaled by `scale` (CSS font-size) and the graph may grow past the size Graphviz drew it at, so
its labels scale with it. Everything else of the page stays as it is.
"""

from __future__ import annotations

import itertools
from typing import Any

import ipywidgets as w

from .base import View
from .graphs import MeshGraph
from .panels import SyncTable

__all__ = ["Projector", "projector_css"]

_ids = itertools.count(1)


def projector_css(scope: str, scale: float) -> str:
    """The style of one projector: large type for the table, a graph allowed to fill its half."""
    return (f"<style>.{scope} {{ font-size: {scale * 100:.0f}% }}"
            f" .{scope} table, .{scope} pre, .{scope} .widget-html-content {{ font-size: inherit !important;"
            f" line-height: 1.35 }}"
            f" .{scope} svg.meshkit-graph {{ max-width: none !important }}"
            f" .{scope} .widget-button {{ font-size: {scale * 100:.0f}%; height: auto }}</style>")


class Projector(View):
    """MeshGraph (left, the larger part) and SyncTable (right), type scaled by `scale` for a projector."""

    def __init__(self, mesh: Any, *, scale: float = 1.6, refresh_s: float = 1.0, watch: bool = True) -> None:
        super().__init__()
        if not 1.0 <= scale <= 4.0:
            raise ValueError(f"scale {scale} is out of range: use 1.0 (as is) to 4.0 (four times the type)")
        self.mesh, self.scale = mesh, scale
        self.graph = MeshGraph(mesh, refresh_s=refresh_s, watch=watch)
        self.table = SyncTable(mesh, watch=watch)
        self.scope = f"meshkit-projector-{next(_ids)}"
        self.graph.widget.layout = w.Layout(flex="3 1 480px", min_width="0")
        self.table.widget.layout = w.Layout(flex="2 1 320px", min_width="0", overflow="auto")
        row = w.HBox([self.graph.widget, self.table.widget],
                     layout=w.Layout(flex_flow="row wrap", align_items="flex-start", width="100%"))
        self.widget = w.VBox([w.HTML(projector_css(self.scope, scale)), row])
        self.widget.add_class(self.scope)

    def text(self) -> str:
        return f"{self.graph.text()}\n\n{self.table.text()}"

    def html(self) -> str:
        return (f'<div class="{self.scope}">{projector_css(self.scope, self.scale)}'
                f'<div style="display:flex;flex-wrap:wrap;gap:1em"><div style="flex:3 1 480px">{self.graph.html()}'
                f'</div><div style="flex:2 1 320px">{self.table.html()}</div></div></div>')

    @property
    def closed(self) -> bool:
        return self.graph.closed and self.table.closed

    def close(self) -> None:
        """Stop both views' watchers and remove them from the page."""
        self.graph.close()
        self.table.close()
        super().close()
