"""`Projector`: the instructor's wall view. MeshGraph and SyncTable side by side, in large type.

    >>> mw.Projector(mesh)               # or lab.projector() in an instructor notes cell
    >>> mw.Projector(mesh, scale=2.0)    # the back row is far away

On a projector the room must read the boss's streams and the sync states from ten metres: the
two views sit side by side when the screen is wide enough for the graph at more than the size
Graphviz drew it at, and wrap under each other when it is not (the graph then takes the whole
width, so its labels grow rather than shrink). The table's type is scaled by `scale` (CSS
font-size), its cells wrap instead of scrolling, and its ECDS column (always IGNORED: meshkit
sends no ECDS) is left out. Everything else of the page stays as it is.
"""

from __future__ import annotations

import itertools
from typing import Any

import ipywidgets as w

from ..inspect.sync_status import TYPES
from .base import View
from .graphs import MeshGraph
from .panels import SyncTable

__all__ = ["Projector", "projector_css"]

_ids = itertools.count(1)


GRAPH_BASIS_PX = 960  # about the width Graphviz draws the Bookinfo mesh at: side by side only when wider
TABLE_BASIS_PX = 420
BASE_PX = 13  # JupyterLab's widget and code font size, which `scale` multiplies


def projector_css(scope: str, scale: float) -> str:
    """The style of one projector: large type, a table that wraps, a graph allowed to fill its part."""
    ecds = TYPES.index("ECDS") + 2  # the column after PROXY and the types before it (CSS counts from 1)
    return (f"<style>.{scope} {{ font-size: {scale * 100:.0f}% }}"
            # widgets set their own font sizes (13 px): scale those, not the page's
            f" .{scope} table, .{scope} pre {{ font-size: {BASE_PX * scale:.0f}px !important; line-height: 1.35 }}"
            f" .{scope} table {{ table-layout: fixed; width: 100% }}"
            f" .{scope} td, .{scope} th {{ overflow-wrap: anywhere; white-space: normal }}"
            f" .{scope} tr > :nth-child({ecds}) {{ display: none }}"
            f" .{scope} svg.meshkit-graph {{ max-width: none !important }}"
            f" .{scope} .widget-button {{ font-size: {scale * 100:.0f}%; height: auto }}</style>")


class Projector(View):
    """MeshGraph (left, or on top) and SyncTable (right, or below), type scaled by `scale` for a projector."""

    def __init__(self, mesh: Any, *, scale: float = 1.6, refresh_s: float = 1.0, watch: bool = True) -> None:
        super().__init__()
        if not 1.0 <= scale <= 4.0:
            raise ValueError(f"scale {scale} is out of range: use 1.0 (as is) to 4.0 (four times the type)")
        self.mesh, self.scale = mesh, scale
        self.graph = MeshGraph(mesh, refresh_s=refresh_s, watch=watch)
        self.table = SyncTable(mesh, watch=watch)
        self.scope = f"meshkit-projector-{next(_ids)}"
        self.graph.widget.layout = w.Layout(flex=f"3 1 {GRAPH_BASIS_PX}px", min_width="0")
        self.table.widget.layout = w.Layout(flex=f"1 1 {TABLE_BASIS_PX}px", min_width="0")
        row = w.HBox([self.graph.widget, self.table.widget],
                     layout=w.Layout(flex_flow="row wrap", align_items="flex-start", width="100%"))
        self.widget = w.VBox([w.HTML(projector_css(self.scope, scale)), row])
        self.widget.add_class(self.scope)

    def text(self) -> str:
        return f"{self.graph.text()}\n\n{self.table.text()}"

    def html(self) -> str:
        return (f'<div class="{self.scope}">{projector_css(self.scope, self.scale)}'
                f'<div style="display:flex;flex-wrap:wrap;gap:1em"><div style="flex:3 1 {GRAPH_BASIS_PX}px">'
                f'{self.graph.html()}</div><div style="flex:1 1 {TABLE_BASIS_PX}px">{self.table.html()}</div>'
                '</div></div>')

    @property
    def closed(self) -> bool:
        return self.graph.closed and self.table.closed

    def close(self) -> None:
        """Stop both views' watchers and remove them from the page."""
        self.graph.close()
        self.table.close()
        super().close()
