"""Rack elevations as clean generated SVG: the nodes in each rack, and its power against budget.

Node heights are drawing heights, not a placement plan (factory.yaml does not say where in a
rack a node sits): 8-GPU HGX/DGX systems 8U (DGX H100 user guide), B200/B300 systems 10U
(DGX B200), NVL72 compute trays 1U, other GPU nodes 4U, CPU nodes 1U; nodes stack from the
bottom in file order. Beside each rack a bar shows IT kW against the rack's budget (green
below 80 %, amber to 100 %, red above). Many racks: identical racks (same nodes, budget and
cooling) are drawn once with their count.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape

from ..resolve import NODE_NVLINK_MAX, RackLoad, Site
from .topology import FONT, INK

U_PX = 9
RACK_W = 92
BAR_W = 14
CELL_W = RACK_W + BAR_W + 34
MAX_DRAWN = 40  # racks drawn one by one up to this many; above, identical racks are merged
GROUP_FILLS = ("#dbe8f6", "#fde6cf", "#d9f0d9", "#f6d8d8", "#e6dcf3", "#eadfd7", "#f8dff0", "#d6f1f5")


def node_units(gpu_model: str | None, gpus: int, nvlink_domain: int) -> int:
    if not gpu_model or not gpus:
        return 1
    if nvlink_domain > NODE_NVLINK_MAX:
        return 1  # NVL72 compute tray
    if gpu_model.upper().startswith(("B200", "B300")):
        return 10
    return 8 if gpus >= 8 else 4


@dataclass
class _Slot:
    host: str
    group: str
    units: int


@dataclass
class _Rack:
    load: RackLoad
    height_u: int
    slots: list[_Slot]
    names: list[str]

    @property
    def signature(self) -> tuple:
        return (tuple((s.group, s.units) for s in self.slots), self.load.budget_kw, self.load.cooling,
                self.height_u, round(self.load.it_kw, 3))


def _racks(site: Site) -> tuple[list[_Rack], dict[str, str]]:
    from .. import catalog

    heights = {r.name: r.height_u for r in site.factory.facility.racks}
    units: dict[str, int] = {}
    for g in site.groups.values():
        spec = catalog.gpu(g.gpu_model) if g.gpu_model else None
        units[g.name] = node_units(g.gpu_model, g.gpus_per_node, spec.nvlink_domain if spec else 0)
    slots: dict[str, list[_Slot]] = {}
    for h in site.hosts:
        slots.setdefault(h.rack, []).append(_Slot(h.name, h.group, units.get(h.group, 1)))
    fills = {g: GROUP_FILLS[i % len(GROUP_FILLS)] for i, g in enumerate(site.groups)}
    racks = [_Rack(r, heights.get(r.name, 42), slots.get(r.name, []), [r.name]) for r in site.racks]
    return racks, fills


def _merge(racks: list[_Rack]) -> list[_Rack]:
    out: dict[tuple, _Rack] = {}
    for r in racks:
        key = r.signature
        if key in out:
            out[key].names.append(r.load.name)
        else:
            out[key] = _Rack(r.load, r.height_u, r.slots, [r.load.name])
    return list(out.values())


def _bar_color(frac: float) -> str:
    return "#2e9d48" if frac < 0.8 else ("#e0a100" if frac <= 1.0 else "#d0312d")


def _t(x: float, y: float, s: str, size: float = 10, anchor: str = "middle", fill: str = INK, weight: str = "normal") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}" '
            f'font-weight="{weight}">{escape(s)}</text>')


def _rack_svg(r: _Rack, x: float, y: float, fills: dict[str, str], tall: int) -> list[str]:
    hu = r.height_u
    top = y + 30 + (tall - hu) * U_PX
    h = hu * U_PX
    title = r.load.name if len(r.names) == 1 else f"{r.names[0]}\u2013{r.names[-1]}"
    out = [_t(x + RACK_W / 2, y + 12, title, 11, weight="bold")]
    if len(r.names) > 1:
        out.append(_t(x + RACK_W / 2, y + 24, f"\u00d7{len(r.names)} identical racks", 9, fill="#555"))
    else:
        out.append(_t(x + RACK_W / 2, y + 24, f"{hu}U, {r.load.cooling}", 9, fill="#555"))
    out.append(f'<rect x="{x:.1f}" y="{top:.1f}" width="{RACK_W}" height="{h}" fill="#fafafa" stroke="{INK}" stroke-width="1.5"/>')
    for u in range(0, hu + 1, 6):  # U ticks
        out.append(f'<line x1="{x - 3:.1f}" y1="{top + h - u * U_PX:.1f}" x2="{x:.1f}" y2="{top + h - u * U_PX:.1f}" stroke="#999"/>')
    used = 0
    for s in r.slots:
        if used + s.units > hu:
            out.append(_t(x + RACK_W / 2, top - 2, "overfull", 9, fill="#d0312d", weight="bold"))
            break
        sy = top + h - (used + s.units) * U_PX
        out.append(f'<rect x="{x + 2:.1f}" y="{sy + 0.5:.1f}" width="{RACK_W - 4}" height="{s.units * U_PX - 1:.1f}" '
                   f'rx="1.5" fill="{fills.get(s.group, "#ddd")}" stroke="#667"/>')
        size = min(9.0, s.units * U_PX - 1.5)
        name = s.group if len(r.names) > 1 else s.host  # a merged rack shows groups, not one rack's hosts
        out.append(_t(x + RACK_W / 2, sy + s.units * U_PX / 2 + size * 0.36, name, size))
        used += s.units
    # power bar against budget
    bx = x + RACK_W + 10
    budget = r.load.budget_kw
    frac = r.load.it_kw / budget if budget else 2.0
    out.append(f'<rect x="{bx:.1f}" y="{top:.1f}" width="{BAR_W}" height="{h}" fill="#fff" stroke="#888"/>')
    fh = min(1.0, frac) * h
    out.append(f'<rect x="{bx:.1f}" y="{top + h - fh:.1f}" width="{BAR_W}" height="{fh:.1f}" fill="{_bar_color(frac)}"/>')
    if frac > 1.0:
        out.append(f'<rect x="{bx - 2:.1f}" y="{top - 4:.1f}" width="{BAR_W + 4}" height="4" fill="#d0312d"/>')
    label = f"{r.load.it_kw:g}/{budget:g} kW" if budget else f"{r.load.it_kw:g} kW, no budget"
    out.append(_t(x + (RACK_W + BAR_W + 10) / 2, top + h + 14, label, 10, weight="bold", fill=_bar_color(frac)))
    out.append(_t(x + (RACK_W + BAR_W + 10) / 2, top + h + 26,
                  f"{frac:.0%} of budget" if budget else "undeclared rack", 9, fill="#555"))
    return out


def racks_svg(site: Site, per_row: int = 10, width: int = 1420) -> str:
    racks, fills = _racks(site)
    merged = len(racks) > MAX_DRAWN
    if merged:
        racks = _merge(racks)
    if not racks:
        return ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 400 40" width="400">'
                f'<text x="10" y="24" style="{FONT}">no racks declared</text></svg>')
    per_row = max(1, min(per_row, (width - 20) // CELL_W))
    tall = max(r.height_u for r in racks)
    row_h = 30 + tall * U_PX + 40
    rows = (len(racks) + per_row - 1) // per_row
    legend_h = 26
    height = rows * row_h + legend_h + 10
    legend_w = 40 + sum(30 + len(g) * 6.5 for g in fills) + 3 * 120 + (180 if merged else 0)
    width = int(min(width, max(20 + min(per_row, len(racks)) * CELL_W, legend_w)))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" role="img" '
           f'aria-label="rack elevations" style="{FONT};max-width:100%;height:auto">',
           f'<rect width="{width}" height="{height}" fill="#fff"/>']
    for i, r in enumerate(racks):
        x = 20 + (i % per_row) * CELL_W
        y = 4 + (i // per_row) * row_h
        out += _rack_svg(r, x, y, fills, tall)
    y = height - 12
    x = 20.0
    for g, fill in fills.items():
        out.append(f'<rect x="{x:.1f}" y="{y - 10:.1f}" width="14" height="11" fill="{fill}" stroke="#667"/>')
        out.append(_t(x + 18, y, g, 10, anchor="start"))
        x += 30 + len(g) * 6.5
    for color, name in (("#2e9d48", "< 80 % of budget"), ("#e0a100", "80-100 %"), ("#d0312d", "over budget")):
        out.append(f'<rect x="{x:.1f}" y="{y - 10:.1f}" width="14" height="11" fill="{color}"/>')
        out.append(_t(x + 18, y, name, 10, anchor="start"))
        x += 36 + len(name) * 6
    if merged:
        out.append(_t(width - 10, y, "identical racks merged", 10, anchor="end", fill="#555"))
    out.append("</svg>")
    return "\n".join(out)


__all__ = ["node_units", "racks_svg"]
