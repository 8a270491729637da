"""The fabric topology as clean generated SVG: nodes, their rail ports, leaves, spines, cores.

One picture per fabric, drawn from the resolved FabricSize so it shows exactly what the BOM
counts. Small fabrics draw every node, GPU port, leaf and spine; larger ones aggregate:
nodes into one block per scalable unit (or per leaf), leaves into one block per SU, spines
and cores into blocks, and a full leaf-spine mesh into one band labelled with its cable
count. Thresholds keep a 4-node pilot and a 256-node site readable at page width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from ..resolve import FabricSize, Site

MAX_NODES = 64  # nodes drawn one by one up to this many
MAX_LEAVES = 32  # leaves drawn one by one up to this many
MAX_SPINES = 32
MAX_MESH_LINES = 160  # leaf-spine lines drawn one by one up to this many, else a band
RAIL_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
SWITCH_FILL = "#eef2f7"
NODE_FILL = "#fbfbf4"
INK = "#222"
FONT = "font-family:DejaVu Sans,Arial,Helvetica,sans-serif"


def rail_color(r: int) -> str:
    if r < len(RAIL_COLORS):
        return RAIL_COLORS[r]
    return f"hsl({(r * 47) % 360},65%,45%)"


@dataclass
class Box:
    key: str
    label: str
    sub: str = ""
    fill: str = SWITCH_FILL
    stroke: str = INK
    ports: list[str] = field(default_factory=list)  # port colours along the top edge (rails)
    group: str = ""  # boxes of one group get a frame (a scalable unit)
    width: float = 0.0
    x: float = 0.0
    y: float = 0.0
    height: float = 34.0


@dataclass
class Edge:
    a: str  # upper box
    b: str  # lower box
    color: str = "#8a8f98"
    b_slot: int | None = None  # port index on the lower box
    links: int = 1
    label: str = ""


@dataclass
class Picture:
    title: str
    rows: list[list[Box]] = field(default_factory=list)  # top row first
    row_names: list[str] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    bands: list[tuple[int, str]] = field(default_factory=list)  # (upper row index, label): a mesh band
    legend: list[tuple[str, str]] = field(default_factory=list)
    caption: str = ""


# --- building the picture from the site ---------------------------------------------------------


@dataclass
class _Endpoint:
    name: str
    ports: int
    gpu: bool


def _endpoints(site: Site, fabric: str) -> list[_Endpoint]:
    out = []
    for h in site.hosts:
        g = site.groups[h.group]
        ports = g.compute_ports if fabric == "compute" else g.storage_ports
        if ports:
            out.append(_Endpoint(h.name, ports, bool(g.gpus_per_node)))
    return out


def _span(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{names[0]}\u2013{names[-1]}"


def _blocks(total: int, most: int) -> list[tuple[int, int]]:
    """Split range(total) into at most `most` contiguous (start, stop) blocks of equal size."""
    size = max(1, math.ceil(total / most))
    return [(i, min(total, i + size)) for i in range(0, total, size)]


def _switch_rows(pic: Picture, fs: FabricSize, leaf_keys: list[str]) -> None:
    """Spines and cores above the leaves, individually or in blocks, with mesh edges or bands."""
    planes = max(1, fs.planes)
    tiers = []
    if fs.cores:
        tiers.append(("core", fs.cores))
    if fs.spines:
        tiers.append(("spine", fs.spines))
    rows: list[list[Box]] = []
    for tier, n in tiers:
        if n <= MAX_SPINES:
            row = [Box(f"{tier}{i}", f"{tier[0].upper()}{i + 1}", group=f"plane {i * planes // n + 1}" if planes > 1 else "")
                   for i in range(n)]
        else:
            row = [Box(f"{tier}{a}", f"{tier[0].upper()}{a + 1}\u2013{b}", f"\u00d7{b - a}") for a, b in _blocks(n, 16)]
        rows.append(row)
    pic.rows = rows + pic.rows
    pic.row_names = [f"{t}s ({n})" for t, n in tiers] + pic.row_names
    # leaf -> spine: every leaf meets every spine of its plane
    if fs.spines:
        spine_row = rows[-1]
        lines = len(leaf_keys) * len(spine_row)
        if lines <= MAX_MESH_LINES:
            for li, lk in enumerate(leaf_keys):
                lp = li * planes // max(1, len(leaf_keys))
                for si, sb in enumerate(spine_row):
                    if si * planes // len(spine_row) == lp:
                        pic.edges.append(Edge(sb.key, lk))
        else:
            pic.bands.append((len(rows) - 1, f"full leaf\u2013spine mesh: {fs.leaf_spine_cables:,} cables"))
    if fs.cores:
        core_row, spine_row = rows[0], rows[1]
        if len(core_row) * len(spine_row) <= MAX_MESH_LINES:
            for cb in core_row:
                for sb in spine_row:
                    pic.edges.append(Edge(cb.key, sb.key))
        else:
            pic.bands.append((0, f"spine\u2013core mesh: {fs.spine_core_cables:,} cables"))


def _rail_picture(pic: Picture, fs: FabricSize, eps: list[_Endpoint], rails: int) -> list[str]:
    """Rail-optimised: per SU, one leaf per rail (and plane); node port r goes to leaf r of its SU."""
    planes = max(1, fs.planes)
    sus = max(1, fs.scalable_units)
    per_su = fs.leaves // sus if fs.leaves else rails * planes
    gpu = [e for e in eps if e.gpu]
    other = [e for e in eps if not e.gpu]
    nps = fs.nodes_per_su or max(1, len(gpu))
    su_nodes = [gpu[i * nps:(i + 1) * nps] for i in range(sus)]
    leaf_keys: list[str] = []
    leaves: list[Box] = []
    individual = fs.leaves <= MAX_LEAVES
    if individual:
        for s in range(sus):
            for j in range(per_su):
                r, p = j % rails, j // rails
                key = f"leaf{s}.{j}"
                name = f"L{s + 1}.{r + 1}" + (f"{'ab'[p] if p < 2 else p}" if planes > 1 else "")
                leaves.append(Box(key, name, fill=SWITCH_FILL, stroke=rail_color(r), group=f"SU {s + 1}"))
                leaf_keys.append(key)
    else:
        su_blocks = _blocks(sus, 16)
        for a, b in su_blocks:
            key = f"leafsu{a}"
            label = f"SU {a + 1}" if b - a == 1 else f"SU {a + 1}\u2013{b}"
            leaves.append(Box(key, label, f"{(b - a) * per_su} leaves", height=40,
                              ports=[rail_color(j % rails) for j in range(min(per_su, 16))]))
            leaf_keys.append(key)
    nodes: list[Box] = []
    if len(gpu) <= MAX_NODES:
        for s, members in enumerate(su_nodes):
            for e in members:
                key = f"n:{e.name}"
                ports = [rail_color(i % rails) for i in range(e.ports)]
                nodes.append(Box(key, e.name, fill=NODE_FILL, ports=ports, group=f"SU {s + 1}", height=40))
                for i in range(e.ports):
                    r, p = i % rails, (i // rails) % planes
                    j = p * rails + r
                    target = f"leaf{s}.{j}" if individual else f"leafsu{_block_of(s, sus)}"
                    nodes_edge = Edge(target, key, rail_color(r), b_slot=i)
                    pic.edges.append(nodes_edge)
    else:
        for a, b in _blocks(sus, 16):
            members = [e for s in range(a, b) for e in su_nodes[s]]
            if not members:
                continue
            key = f"nsu{a}"
            label = f"SU {a + 1}" if b - a == 1 else f"SU {a + 1}\u2013{b}"
            nodes.append(Box(key, f"{len(members)} nodes", f"{label}: {_span([m.name for m in members])}",
                             fill=NODE_FILL, ports=[rail_color(r) for r in range(rails)], height=40))
            for s in range(a, b):
                if individual:
                    for j in range(per_su):
                        pic.edges.append(Edge(f"leaf{s}.{j}", key, rail_color(j % rails), b_slot=j % rails))
                else:
                    pic.edges.append(Edge(f"leafsu{_block_of(s, sus)}", key, "#555", links=len(members) * rails))
    if other:
        ports = sum(e.ports for e in other)
        nodes.append(Box("other", _span([e.name for e in other]), f"{ports} ports on the leaves",
                         fill="#f4f4f4", height=40))
    pic.rows = [leaves, nodes]
    pic.row_names = [f"leaves ({fs.leaves})", f"nodes ({len(gpu)}{' + ' + str(len(other)) if other else ''})"]
    pic.legend = [(rail_color(r), f"rail {r + 1}") for r in range(rails)]
    return leaf_keys


def _block_of(su: int, sus: int) -> int:
    for a, b in _blocks(sus, 16):
        if a <= su < b:
            return a
    return 0


def _tree_picture(pic: Picture, fs: FabricSize, eps: list[_Endpoint]) -> list[str]:
    """Fat tree without rails: node ports fill the leaves in order, `downlinks_per_leaf` each."""
    n_leaves = max(1, fs.leaves)
    down = max(1, fs.downlinks_per_leaf)
    leaf_blocks = [(i, i + 1) for i in range(n_leaves)] if n_leaves <= MAX_LEAVES else _blocks(n_leaves, 16)
    leaves = [Box(f"leaf{a}", f"L{a + 1}" if b - a == 1 else f"leaves {a + 1}\u2013{b}", "" if b - a == 1 else f"\u00d7{b - a}")
              for a, b in leaf_blocks]
    if fs.radix < 2:
        leaves = [Box("leaf0", "leaf switches", "not sized: no switch declared", stroke="#b00")]
        leaf_blocks = [(0, 1)]

    def block(leaf: int) -> str:
        for a, b in leaf_blocks:
            if a <= leaf < b:
                return f"leaf{a}"
        return leaves[-1].key

    nodes: list[Box] = []
    port = 0
    if len(eps) <= MAX_NODES:
        for e in eps:
            key = f"n:{e.name}"
            nodes.append(Box(key, e.name, fill=NODE_FILL, ports=["#555"] * min(e.ports, 8), height=40))
            targets: dict[str, int] = {}
            for _ in range(e.ports):
                t = block(min(port // down, n_leaves - 1))
                targets[t] = targets.get(t, 0) + 1
                port += 1
            for t, n in targets.items():
                pic.edges.append(Edge(t, key, "#666", links=n))
    else:
        for a, b in leaf_blocks:
            lo, hi = a * down, b * down
            members, acc = [], 0
            for e in eps:
                if lo <= acc < hi:
                    members.append(e.name)
                acc += e.ports
            if members:
                key = f"nb{a}"
                nodes.append(Box(key, f"{len(members)} nodes", _span(members), fill=NODE_FILL, height=40))
                pic.edges.append(Edge(f"leaf{a}", key, "#666"))
    pic.rows = [leaves, nodes]
    pic.row_names = [f"leaves ({fs.leaves})", f"nodes ({len(eps)})"]
    return [b.key for b in leaves]


def build(site: Site, fabric: str = "compute") -> Picture | None:
    fs = site.fabric.get(fabric)
    if fs is None:
        return None
    f = site.factory.fabric
    spec = f.compute if fabric == "compute" else f.storage
    eps = _endpoints(site, fabric)
    switch = getattr(spec, "switch", None) or "switch not declared"
    pic = Picture(f"{fabric} fabric: {spec.type}, {fs.port_gbps}G, {switch}")
    rails = f.compute.rails if fabric == "compute" and f.compute.topology == "rail-optimized" else 0
    if rails and fs.radix >= 2:
        leaf_keys = _rail_picture(pic, fs, eps, rails)
    else:
        leaf_keys = _tree_picture(pic, fs, eps)
    _switch_rows(pic, fs, leaf_keys)
    parts = [f"{fs.leaves} leaves", f"{fs.spines} spines"] + ([f"{fs.cores} cores"] if fs.cores else [])
    cables = [f"{fs.node_leaf_cables:,} node\u2013leaf", f"{fs.leaf_spine_cables:,} leaf\u2013spine"]
    if fs.spine_core_cables:
        cables.append(f"{fs.spine_core_cables:,} spine\u2013core")
    su = f"{fs.scalable_units} SU of {fs.nodes_per_su} nodes, " if fs.scalable_units else ""
    pic.caption = f"{su}{', '.join(parts)}, {fs.tiers} tier(s); cables: {', '.join(cables)}"
    return pic


# --- layout and SVG -------------------------------------------------------------------------------

ROW_GAP = 110
MARGIN = 16
LABEL_W = 96
BOX_GAP = 6
GROUP_GAP = 16


def _widths(row: list[Box], avail: float) -> None:
    changes = sum(1 for i in range(1, len(row)) if row[i].group != row[i - 1].group)
    gaps = (len(row) - 1) * BOX_GAP + changes * GROUP_GAP
    w = max(18.0, min(150.0, (avail - gaps) / max(1, len(row))))
    for b in row:
        b.width = w


def _layout(pic: Picture, width: float) -> float:
    avail = width - 2 * MARGIN - LABEL_W
    y = MARGIN + 34
    for row in pic.rows:
        _widths(row, avail)
        total = sum(b.width for b in row) + (len(row) - 1) * BOX_GAP
        total += GROUP_GAP * sum(1 for i in range(1, len(row)) if row[i].group != row[i - 1].group)
        x = MARGIN + LABEL_W + max(0.0, (avail - total) / 2)
        for i, b in enumerate(row):
            if i and b.group != row[i - 1].group:
                x += GROUP_GAP
            b.x, b.y = x, y
            x += b.width + BOX_GAP
        y += max(b.height for b in row) + ROW_GAP if row else ROW_GAP
    last = pic.rows[-1] if pic.rows else []
    rotated = [b for b in last if not _size(b)]
    below = max((len(b.label) * 5.6 + 8 for b in rotated), default=0.0)
    return y - ROW_GAP + 60 + below


def _text(x: float, y: float, s: str, size: float = 11, anchor: str = "middle", weight: str = "normal",
          rotate: bool = False, fill: str = INK) -> str:
    rot = f' transform="rotate(-90 {x:.1f} {y:.1f})"' if rotate else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" font-weight="{weight}" '
            f'fill="{fill}"{rot}>{escape(s)}</text>')


def _fit(s: str, width: float, size: float) -> bool:
    return len(s) * size * 0.6 <= width - 4


def _size(b: Box) -> float:
    """Font size that fits the label inside the box, or 0 when it must run below it."""
    return next((size for size in (11, 9) if _fit(b.label, b.width, size)), 0)


def _box_svg(b: Box) -> list[str]:
    out = [f'<rect x="{b.x:.1f}" y="{b.y:.1f}" width="{b.width:.1f}" height="{b.height:.1f}" rx="4" '
           f'fill="{b.fill}" stroke="{b.stroke}" stroke-width="{2 if b.stroke != INK else 1}"/>']
    cx = b.x + b.width / 2
    for i, color in enumerate(b.ports):
        px = b.x + (i + 0.5) * b.width / len(b.ports)
        pw = max(2.0, min(10.0, b.width / len(b.ports) - 1.5))
        out.append(f'<rect x="{px - pw / 2:.1f}" y="{b.y + 2:.1f}" width="{pw:.1f}" height="7" fill="{color}"/>')
    size = _size(b)
    top = b.y + (16 if b.ports else 12)
    if size:
        out.append(_text(cx, top + 10, b.label, size))
        sub = b.sub if _fit(b.sub, b.width, 9) else b.sub.split(":")[0]
        if sub and _fit(sub, b.width, 9):
            out.append(_text(cx, top + 21, sub, 9, fill="#555"))
    else:  # narrow: the name runs downwards below the box
        out.append(_text(cx + 3, b.y + b.height + 6, b.label, 9, anchor="end", rotate=True))
    return out


def _port_x(b: Box, slot: int | None) -> float:
    if slot is None or not b.ports:
        return b.x + b.width / 2
    return b.x + (slot % len(b.ports) + 0.5) * b.width / len(b.ports)


def svg(pic: Picture, width: int = 1200) -> str:
    height = _layout(pic, width)
    boxes = {b.key: b for row in pic.rows for b in row}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height:.0f}" width="100%" '
           f'role="img" aria-label="{escape(pic.title)}" style="{FONT};max-width:{width}px">',
           f'<rect width="{width}" height="{height:.0f}" fill="#fff"/>',
           _text(MARGIN, MARGIN + 8, pic.title, 14, anchor="start", weight="bold")]
    # SU frames
    for row in pic.rows:
        groups: dict[str, list[Box]] = {}
        for b in row:
            if b.group:
                groups.setdefault(b.group, []).append(b)
        if len(groups) > 1 or any(g.startswith("SU") for g in groups):
            for name, members in groups.items():
                x0, x1 = members[0].x - 5, members[-1].x + members[-1].width + 5
                y0 = members[0].y - 15
                out.append(f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{x1 - x0:.1f}" height="{members[0].height + 20:.1f}" '
                           f'rx="6" fill="none" stroke="#b8bec8" stroke-dasharray="4 3"/>')
                out.append(_text(x0 + 4, y0 + 10, name, 9, anchor="start", fill="#666"))
    # edges under the boxes
    thin = len(pic.edges) > 120
    labelled = sum(1 for e in pic.edges if e.links > 1) <= 12
    for e in pic.edges:
        a, b = boxes.get(e.a), boxes.get(e.b)
        if a is None or b is None:
            continue
        x1, y1 = a.x + a.width / 2, a.y + a.height
        x2, y2 = _port_x(b, e.b_slot), b.y
        w = 1.0 if e.links <= 1 else min(6.0, 1 + math.log2(e.links))
        op = 0.45 if thin else 0.8
        out.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{e.color}" '
                   f'stroke-width="{w:.1f}" stroke-opacity="{op}"/>')
        if e.links > 1 and labelled and not thin:
            out.append(_text((x1 + x2) / 2, (y1 + y2) / 2, f"\u00d7{e.links}", 9, fill="#444"))
    for upper, label in pic.bands:
        up, low = pic.rows[upper], pic.rows[upper + 1]
        ya, yb = up[0].y + up[0].height, low[0].y
        xa0, xa1 = up[0].x, up[-1].x + up[-1].width
        xb0, xb1 = low[0].x, low[-1].x + low[-1].width
        out.append(f'<polygon points="{xa0:.1f},{ya:.1f} {xa1:.1f},{ya:.1f} {xb1:.1f},{yb:.1f} {xb0:.1f},{yb:.1f}" '
                   f'fill="#9aa5b4" fill-opacity="0.35" stroke="#7a8596"/>')
        out.append(_text(width / 2, (ya + yb) / 2 + 4, label, 11, weight="bold"))
    for row in pic.rows:
        for b in row:
            out += _box_svg(b)
    for name, row in zip(pic.row_names, pic.rows, strict=True):
        if row:
            out.append(_text(MARGIN, row[0].y + row[0].height / 2 + 4, name, 11, anchor="start", weight="bold"))
    y = height - 34
    x = MARGIN
    for color, name in pic.legend:
        out.append(f'<rect x="{x}" y="{y - 9:.1f}" width="14" height="10" fill="{color}"/>')
        out.append(_text(x + 18, y, name, 10, anchor="start"))
        x += 26 + len(name) * 6.5
    out.append(_text(MARGIN, height - 12, pic.caption, 11, anchor="start", fill="#333"))
    out.append("</svg>")
    return "\n".join(out)


def topology_svg(site: Site, fabric: str = "compute", width: int = 1200) -> str | None:
    pic = build(site, fabric)
    return svg(pic, width) if pic else None
