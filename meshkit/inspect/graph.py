"""The picture model both graphs share, and its two renderings: Graphviz DOT and a text tree.

`Node`/`Edge`/`Subgraph`/`Graph` are plain data: `proxy_graph.proxy_graph()` fills one from a
sidecar's config dump, `mesh_graph.mesh_graph()` from the whole mesh. `to_dot(graph)` lays it out
for a notebook: at most `width_px` wide (Graphviz `size`), labels wrapped and shortened so text
stays readable at that width, states as colours, `changed` nodes in bold orange, a request's path
(`highlight`) in bold blue. `to_text(graph)` is the plain-text fallback (an indented tree).

`mark_changes(before, after)` and `highlight(graph, nodes, edges)` are the two overlays a live
view adds between redraws.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

__all__ = ["Edge", "Graph", "Node", "Subgraph", "changed", "fingerprint", "highlight", "mark_changes", "to_dot",
           "to_text"]

# Node/edge states a view colours: ok (healthy), bad (unhealthy endpoint), error (NACK, 5xx),
# missing (referenced, not received), idle (configured, no traffic), blackhole; stream states
# synced/stale/notsent/disconnected, and flash-sent/-ack/-nack for a moment after an xDS event.
STATES = ("ok", "bad", "error", "missing", "idle", "blackhole", "synced", "stale", "notsent", "disconnected",
          "flash-sent", "flash-ack", "flash-nack", "mixed")


@dataclass(frozen=True)
class Node:
    """A thing in the picture; `kind` picks its shape, `state` its colour, `detail` more lines.

    `version` is what Envoy says about the resource's age (`last_updated`): a new one marks it
    changed. `changed` and `highlight` are overlays set by `mark_changes` and `highlight`.
    """

    id: str
    label: str
    kind: str
    detail: str = ""
    state: str = ""
    version: str = ""
    tooltip: str = ""
    changed: bool = False
    highlight: bool = False


@dataclass(frozen=True)
class Edge:
    """An arrow; `share` (0–1) thickens it, `state` colours it, `highlight` draws it bold blue."""

    src: str
    dst: str
    label: str = ""
    state: str = ""
    share: float = 0.0
    highlight: bool = False
    constraint: bool = True  # False: drawn, but not used to rank the nodes (layout stays the story's)


@dataclass(frozen=True)
class Subgraph:
    """A labelled box around some nodes (a Service around its pods, the Upstream hosts)."""

    id: str
    label: str
    members: tuple[str, ...]
    style: str = ""  # "" dashed grey frame; "side" a filled band (Downstream / Upstream)


@dataclass
class Graph:
    """Nodes (by id, in insertion order), edges and subgraphs; `rankdir` LR (proxy) or TB (mesh)."""

    title: str = ""
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    subgraphs: list[Subgraph] = field(default_factory=list)
    rankdir: str = "LR"
    first: tuple[str, ...] = ()  # nodes drawn in the first rank (left in LR, top in TB)
    last: tuple[str, ...] = ()  # nodes drawn in the last rank
    note: str = ""  # a line under the picture: what was left out, how to see it
    columns: tuple[tuple[str, str], ...] = ()  # (kind, heading): a heading over each column of that kind

    def add(self, node: Node) -> str:
        """Add `node` unless one with its id exists; returns the id."""
        self.nodes.setdefault(node.id, node)
        return node.id

    def link(self, src: str, dst: str, label: str = "", state: str = "", share: float = 0.0, **more: object) -> None:
        edge = Edge(src, dst, label, state, share, **more)  # type: ignore[arg-type]
        if edge not in self.edges:
            self.edges.append(edge)

    def children(self) -> dict[str, list[Edge]]:
        """Outgoing edges by source node."""
        children: dict[str, list[Edge]] = {}
        for edge in self.edges:
            children.setdefault(edge.src, []).append(edge)
        return children

    def keep(self, keep: Iterable[str]) -> Graph:
        """The graph with only the nodes in `keep` (and the edges and frames among them)."""
        kept = set(keep)
        return replace(self, nodes={k: v for k, v in self.nodes.items() if k in kept},
                       edges=[e for e in self.edges if e.src in kept and e.dst in kept],
                       subgraphs=[replace(s, members=tuple(m for m in s.members if m in kept))
                                  for s in self.subgraphs if any(m in kept for m in s.members)],
                       first=tuple(n for n in self.first if n in kept), last=tuple(n for n in self.last if n in kept))

    def reachable_from(self, roots: Iterable[str]) -> Graph:
        """The part of the graph reachable from `roots` (following edges forward)."""
        return self.keep(descendants(self, roots))


def descendants(graph: Graph, roots: Iterable[str]) -> list[str]:
    """`roots` (those in the graph) and every node reachable from them, in visiting order."""
    children = graph.children()
    seen: list[str] = []
    todo = [r for r in roots if r in graph.nodes]
    while todo:
        node = todo.pop(0)
        if node not in seen:
            seen.append(node)
            todo += [e.dst for e in children.get(node, [])]
    return seen


def ancestors(graph: Graph, targets: Iterable[str]) -> set[str]:
    """`targets` and every node with a path to one of them."""
    parents: dict[str, list[str]] = {}
    for edge in graph.edges:
        parents.setdefault(edge.dst, []).append(edge.src)
    seen: set[str] = set()
    todo = [t for t in targets if t in graph.nodes]
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo += parents.get(node, [])
    return seen


# --- overlays -----------------------------------------------------------------------------------

def _signature(graph: Graph, children: Mapping[str, list[Edge]], node: Node) -> tuple:
    # the request counts on edges into endpoints are traffic, not config: they change nothing
    return (node.label, node.detail, node.state, node.version,
            tuple(sorted((e.dst, "" if graph.nodes.get(e.dst, node).kind == "endpoint" else e.label, e.share)
                         for e in children.get(node.id, []))))


def fingerprint(graph: Graph) -> tuple:
    """What the config in `graph` is, without live counters: equal fingerprints, same version."""
    children = graph.children()
    return tuple((nid, _signature(graph, children, n)) for nid, n in graph.nodes.items())


def mark_changes(before: Graph | None, after: Graph) -> Graph:
    """`after` with `changed=True` on nodes that are new, or whose content, state, outgoing edges or
    Envoy `last_updated` differ from `before` (the previous picture). Nothing is marked without one."""
    if before is None:
        return after
    old, new = before.children(), after.children()
    previous = {nid: _signature(before, old, n) for nid, n in before.nodes.items()}
    nodes = {nid: replace(n, changed=previous.get(nid) != _signature(after, new, n)) for nid, n in after.nodes.items()}
    gone = [n.label for nid, n in before.nodes.items() if nid not in after.nodes and n.kind not in ("downstream",)]
    note = after.note
    if gone:
        note = (note + "; " if note else "") + f"removed since the last picture: {', '.join(gone[:4])}" + \
            (f" +{len(gone) - 4}" if len(gone) > 4 else "")
    return replace(after, nodes=nodes, note=note)


def changed(graph: Graph) -> list[str]:
    """The ids of nodes marked changed."""
    return [nid for nid, n in graph.nodes.items() if n.changed]


def highlight(graph: Graph, nodes: Iterable[str], edges: Iterable[tuple[str, str]], *,
              labels: Mapping[str, str] | None = None) -> Graph:
    """`graph` with `nodes` and `edges` (src, dst) drawn as a request's path; `labels` adds a line
    to some of those nodes (the response code at the endpoint, say)."""
    on, pairs, extra = set(nodes), set(edges), dict(labels or {})
    new_nodes = {}
    for nid, node in graph.nodes.items():
        lit = nid in on
        detail = node.detail
        if nid in extra:
            detail = f"{detail}\n{extra[nid]}" if detail else extra[nid]
        new_nodes[nid] = replace(node, highlight=lit, detail=detail)
    return replace(graph, nodes=new_nodes, edges=[replace(e, highlight=(e.src, e.dst) in pairs) for e in graph.edges])


# --- output -------------------------------------------------------------------------------------

_SHAPES = {  # kind: (shape, fill)
    "downstream": ("box", "#efefef"), "listener": ("box", "#cfe2f3"), "chain": ("box", "#e8f0fa"),
    "collapsed": ("box", "#e8f0fa"), "filter": ("box", "#d0e0e3"), "route_config": ("folder", "#fff2cc"),
    "virtual_host": ("box", "#fff8e1"), "route": ("box", "#fffbee"), "direct_response": ("octagon", "#f3f3f3"),
    "redirect": ("octagon", "#f3f3f3"), "cluster": ("box3d", "#d9ead3"), "endpoint": ("box", "#ffffff"),
    "boss": ("box", "#fce5cd"), "pod": ("box", "#cfe2f3"), "outsider": ("box", "#ffffff"),
    "outside": ("box", "#f3f3f3"), "external": ("ellipse", "#f3f3f3"),
}
_STATE_STYLE = {  # state: extra DOT attributes of a node
    "ok": {"color": "#38761d"}, "bad": {"fillcolor": "#f4cccc", "color": "#cc0000"},
    "error": {"fillcolor": "#f4cccc", "color": "#cc0000", "penwidth": "2.5", "fontcolor": "#990000"},
    "missing": {"fillcolor": "#ffffff", "color": "#999999", "style": "dashed,filled"},
    "idle": {"fontcolor": "#777777", "color": "#bbbbbb"},
    "blackhole": {"fillcolor": "#333333", "fontcolor": "#ffffff"},
    "outsider": {"style": "dashed,filled", "color": "#777777"},
}
_EDGE_STYLE = {
    "error": {"color": "#cc0000", "fontcolor": "#cc0000"},
    "mixed": {"color": "#e69138", "fontcolor": "#b45f06"},
    "ok": {"color": "#38761d", "fontcolor": "#274e13"},
    "idle": {"color": "#b7b7b7", "style": "dashed", "fontcolor": "#888888"},
    "missing": {"color": "#b7b7b7", "style": "dotted", "fontcolor": "#888888"},
    "synced": {"color": "#6aa84f", "fontcolor": "#38761d", "style": "dashed"},
    "stale": {"color": "#e69138", "fontcolor": "#b45f06", "style": "dashed", "penwidth": "2"},
    "notsent": {"color": "#999999", "fontcolor": "#777777", "style": "dotted"},
    "disconnected": {"color": "#999999", "fontcolor": "#777777", "style": "dotted"},
    "flash-sent": {"color": "#3d85c6", "fontcolor": "#0b5394", "penwidth": "3"},
    "flash-ack": {"color": "#00a000", "fontcolor": "#006000", "penwidth": "3.5"},
    "flash-nack": {"color": "#cc0000", "fontcolor": "#cc0000", "penwidth": "3.5"},
    "invisible": {"style": "invis", "minlen": "3"},  # only places a node (the outsider below the pods)
}
_CHANGED = {"color": "#e69138", "penwidth": "3", "fontname": "Helvetica-Bold"}
_LIT = {"color": "#1155cc", "penwidth": "3.5", "fillcolor": "#c9daf8", "fontname": "Helvetica-Bold"}
WIDTH_PX = 900
FONT_PT = 10.5  # at 96 dpi: 14 px unscaled; ≥ 11 px after Graphviz shrinks a wide picture to WIDTH_PX
WRAP = 13  # characters per label line: ten columns of this fit 900 px with 11 px text


def to_dot(graph: Graph, width_px: int = WIDTH_PX) -> str:
    """Graphviz DOT source that fits `width_px` (Graphviz shrinks only a picture wider than that)."""
    inches = width_px / 96
    lines = ["digraph meshkit {",
             f'  graph [rankdir={graph.rankdir}, fontname="Helvetica", fontsize={FONT_PT + 1}, labelloc=t, '
             f'labeljust=l, label={_quote(_title(graph))}, size="{inches * 0.985:.3f},60", nodesep=0.1, '
             f'ranksep={0.12 if graph.rankdir == "LR" else 0.3}, '
             'margin=0.05, pad=0.05, newrank=true, forcelabels=true];',
             f'  node [fontname="Helvetica", fontsize={FONT_PT}, style="rounded,filled", margin="0.04,0.03", '
             'width=0.3, height=0.3];',
             f'  edge [fontname="Helvetica", fontsize={FONT_PT}, color="#555555", arrowsize=0.6];']
    for index, subgraph in enumerate(graph.subgraphs):
        members = " ".join(_quote(m) for m in subgraph.members)
        look = ('style="rounded,filled"; color="#b4c7dc"; fillcolor="#f4f8fc"' if subgraph.style == "side"
                else 'style="rounded,dashed"; color="#888888"')
        lines.append(f"  subgraph cluster_{index} {{ label={_quote(subgraph.label)}; {look}; {members} }}")
    lines += _headings(graph)
    for rank, members in (("source", graph.first), ("sink", graph.last)):
        if members:
            lines.append(f"  {{ rank={rank}; {' '.join(_quote(m) for m in members)} }}")
    for node in graph.nodes.values():
        shape, fill = _SHAPES.get(node.kind, ("box", "#ffffff"))
        label = _wrap(_short(node.label)) + (f"\n{_detail(node.detail)}" if node.detail else "")
        if node.changed:
            label += "\n● changed"
        attrs = {"label": label, "shape": shape, "fillcolor": fill,
                 "tooltip": node.tooltip or f"{node.kind.replace('_', ' ')}: {node.label}\n{node.detail}",
                 **_STATE_STYLE.get(node.state, {}), **(_CHANGED if node.changed else {}),
                 **(_LIT if node.highlight else {})}
        if node.state == "error" and node.highlight:
            attrs["fillcolor"] = "#f4cccc"
        lines.append(f"  {_quote(node.id)} [{_attrs(attrs)}];")
    for edge in graph.edges:
        attrs = {**_EDGE_STYLE.get(edge.state, {})}
        if edge.label and graph.rankdir == "TB":
            attrs["label"] = _wrap(_short(edge.label), 22)
        elif edge.share:  # left to right, only weights: the matches are in the nodes, and a label
            attrs["xlabel"] = edge.label  # beside the edge would widen the gap between columns
        if edge.share:
            attrs["penwidth"] = f"{max(float(attrs.get('penwidth', 1)), 1 + 3 * edge.share):.2f}"
        if not edge.constraint:
            attrs["constraint"] = "false"
        if edge.highlight:
            attrs.update({"color": "#1155cc", "penwidth": "4", "fontcolor": "#1155cc", "style": "solid"})
        lines.append(f"  {_quote(edge.src)} -> {_quote(edge.dst)} [{_attrs(attrs)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _headings(graph: Graph) -> list[str]:
    """A plain heading over each column (`graph.columns`), in the same rank as that column's nodes."""
    shown = [(kind, text) for kind, text in graph.columns if any(n.kind == kind for n in graph.nodes.values())]
    lines = []
    for kind, text in shown:
        members = " ".join(_quote(nid) for nid, n in graph.nodes.items() if n.kind == kind)
        lines.append(f'  {_quote("heading:" + kind)} [label={_quote(_wrap(text, 10))}, shape=plaintext, '
                     f'style="", fontcolor="#666666", tooltip={_quote(text)}];')
        lines.append(f'  {{ rank=same; {_quote("heading:" + kind)} {members} }}')
    for (before, _), (after, _) in itertools.pairwise(shown):
        lines.append(f'  {_quote("heading:" + before)} -> {_quote("heading:" + after)} [style=invis];')
    return lines


def _title(graph: Graph) -> str:
    return graph.title + (f"\n{_wrap(_short(graph.note), 90)}" if graph.note else "")


def _short(text: str) -> str:
    """Kubernetes' long host names, as a learner reads them: `reviews.default` for the FQDN."""
    return text.replace(".svc.cluster.local", "")


def _detail(text: str) -> str:
    return "\n".join(_wrap(line, WRAP + 1) for line in _short(text).splitlines()[:8])


def _wrap(text: str, width: int = WRAP) -> str:
    """Break at `|`, `.`, `;`, `,` and spaces so no line is much longer than `width`."""
    lines: list[str] = []
    for raw in text.split("\n"):
        line = ""
        pieces = re.findall(r"[^|.;, /:]*[|.;, /:]?", raw)
        if re.fullmatch(r"[\d.]+:\d+", raw):  # an address:port breaks only before its port
            pieces = [raw] if len(raw) <= width + 2 else [raw[:raw.rindex(":")], raw[raw.rindex(":"):]]
        # a long CamelCase name (PassthroughFilterChain) breaks between its words
        pieces = [part for piece in pieces if piece for part in
                  (re.findall(r"[A-Z]?[^A-Z]*", piece)[:-1] if len(piece) > width else [piece])]
        for piece in pieces:
            if line and len(line) + len(piece.rstrip()) > width:
                lines.append(line.rstrip())
                line = ""
            line += piece
        lines.append(line.rstrip())
    return "\n".join(lines)


def to_text(graph: Graph) -> str:
    """The plain-text view: each root (a node nothing points to) and the tree below it.

    A node reached a second time prints once more with `(see above)` instead of its subtree.
    """
    children = {src: [e for e in out if e.state != "invisible"] for src, out in graph.children().items()}
    pointed_at = {e.dst for e in graph.edges if e.state != "invisible"}
    shown: set[str] = set()
    lines = [graph.title] if graph.title else []

    def walk(nid: str, depth: int, via: Edge | None) -> None:
        node = graph.nodes[nid]
        arrow = f"-[{via.label}]-> " if via is not None and via.label else "-> " if via is not None else ""
        shown_detail = node.detail
        if via is not None and via.label and shown_detail.startswith(via.label):  # said on the arrow already
            shown_detail = shown_detail[len(via.label):].strip()
        detail = f" ({shown_detail.replace(chr(10), '; ')})" if shown_detail else ""
        state = f" [{node.state}]" if node.state and node.state != "ok" else ""
        marks = (" [changed]" if node.changed else "") + (" [request path]" if node.highlight else "")
        again = " (see above)" if nid in shown and children.get(nid) else ""
        lines.append(f"{'  ' * depth}{arrow}{node.kind.replace('_', ' ')} {node.label}{detail}{state}{marks}{again}")
        if nid in shown:
            return
        shown.add(nid)
        for edge in children.get(nid, []):
            walk(edge.dst, depth + 1, edge)

    roots = [n for n in graph.nodes if n not in pointed_at]
    for nid in roots + [n for n in graph.nodes if n not in roots]:  # then whatever only cycles reach
        if nid not in shown:
            walk(nid, 0, None)
    if graph.note:
        lines.append(f"({graph.note})")
    return "\n".join(lines)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _attrs(attrs: Mapping[str, str]) -> str:
    return ", ".join(f"{key}={_quote(str(value))}" for key, value in attrs.items())
