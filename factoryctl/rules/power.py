"""Rules: power and cooling (rack budgets, cooling limits, site feed, PUE)."""

from __future__ import annotations

from collections.abc import Iterable

from .. import catalog, resolve
from ..findings import Severity
from ..model import Factory
from ..resolve import Site
from .base import Issue, rule

RACK_WARN_FRACTION = 0.9
PUE_MIN, PUE_MAX = 1.05, 2.0
NVL72_DOMAIN = 72


def _rack_index(f: Factory) -> dict[str, int]:
    out: dict[str, int] = {}
    for i, r in enumerate(f.facility.racks):
        out.setdefault(r.name, i)
    return out


@rule("PWR001", Severity.error, "Rack IT load over its power budget")
def rack_over_budget(f: Factory, site: Site) -> Iterable[Issue]:
    """The IT load of a rack (sum of the maximum power of the nodes placed in it, declared or
    estimated) must not exceed the rack's `power_kw` budget. E.g. four DGX H100 at 10.2 kW need
    40.8 kW (DGX SuperPOD H100 RA RA-11333-001)."""
    idx = _rack_index(f)
    for r in site.racks:
        if r.declared and r.it_kw > r.budget_kw:
            yield Issue(("facility", "racks", idx[r.name], "power_kw"),
                        f"rack {r.name!r} carries {r.it_kw:g} kW of IT load ({r.hosts} nodes) but its "
                        f"budget is {r.budget_kw:g} kW ({r.utilisation:.0%})",
                        f"raise power_kw to at least {r.it_kw:g} kW, or move nodes to another rack")


@rule("PWR002", Severity.warning, "Rack above 90% of its power budget")
def rack_near_budget(f: Factory, site: Site) -> Iterable[Issue]:
    """A rack loaded above 90% of its budget (but not over it) leaves no headroom for switches,
    PDU losses or nodes drawing their full rated power."""
    idx = _rack_index(f)
    for r in site.racks:
        if r.declared and RACK_WARN_FRACTION * r.budget_kw < r.it_kw <= r.budget_kw:
            yield Issue(("facility", "racks", idx[r.name], "power_kw"),
                        f"rack {r.name!r} is at {r.utilisation:.0%} of its budget "
                        f"({r.it_kw:g} of {r.budget_kw:g} kW); above {RACK_WARN_FRACTION:.0%} leaves "
                        "little headroom",
                        "spread the nodes over more racks or confirm the budget includes switches and losses")


@rule("PWR003", Severity.error, "Rack load beyond what its cooling removes")
def rack_cooling_limit(f: Factory, site: Site) -> Iterable[Issue]:
    """An air-cooled rack must not carry more IT load than `facility.air_cooling_limit_kw`
    (default 40 kW, the practical limit with containment), a rear-door cooled rack no more than
    `facility.rear_door_limit_kw` (default 60 kW); beyond ~60 kW direct liquid cooling is needed
    (coolnetpower.com, dcxps.com; DGX GB200 user guide, hybrid cooling)."""
    idx = _rack_index(f)
    limits = {"air": ("air_cooling_limit_kw", f.facility.air_cooling_limit_kw),
              "rear-door": ("rear_door_limit_kw", f.facility.rear_door_limit_kw)}
    for r in site.racks:
        if not r.declared or r.cooling not in limits:
            continue
        key, limit = limits[r.cooling]
        if r.it_kw > limit:
            yield Issue(("facility", "racks", idx[r.name], "cooling"),
                        f"rack {r.name!r} dissipates {r.it_kw:g} kW but {r.cooling} cooling is "
                        f"limited to {limit:g} kW (facility.{key})",
                        "use rear-door or liquid cooling for this rack, or spread its nodes over more racks")


@rule("PWR004", Severity.error, "NVL72-class GPUs in a rack that is not liquid-cooled")
def nvl72_needs_liquid(f: Factory, site: Site) -> Iterable[Issue]:
    """GPUs whose NVLink domain spans a rack (catalog `nvlink_domain` >= 72: GB200, GB300) only
    ship as liquid-cooled NVL72 racks of 120-142 kW; their rack must declare `cooling: liquid`
    (NVL72 ERA components: up to 142 kW; DGX GB200 user guide)."""
    idx = _rack_index(f)
    cooling = {r.name: r.cooling for r in f.facility.racks}
    flagged: set[str] = set()
    for ng in f.nodes:
        gpu = ng.hardware.gpu
        spec = catalog.gpu(gpu.model) if gpu else None
        if spec is None or spec.nvlink_domain < NVL72_DOMAIN:
            continue
        for rack in resolve.rack_of_each(ng):
            if rack in cooling and cooling[rack] != "liquid" and rack not in flagged:
                flagged.add(rack)
                yield Issue(("facility", "racks", idx[rack], "cooling"),
                            f"rack {rack!r} holds {spec.name} nodes (NVL{spec.nvlink_domain}-class) but "
                            f"is {cooling[rack]}-cooled; these systems are liquid-cooled only",
                            f"set cooling: liquid for rack {rack!r}")


@rule("PWR005", Severity.error, "Facility load over the site's power capacity")
def site_capacity(f: Factory, site: Site) -> Iterable[Issue]:
    """The facility load (IT load x `facility.pue`) must fit in `site.power_capacity_kw`, the
    feed for IT and cooling together (e.g. a DGX B200 SU is about 458 kW IT, a GB200 SU 1.2 MW:
    DGX SuperPOD B200 and GB200 RAs)."""
    cap = f.site.power_capacity_kw
    if cap is None:
        return
    load = site.totals["facility_kw"]
    if load > cap:
        yield Issue(("site", "power_capacity_kw"),
                    f"facility load is {load:g} kW ({site.totals['it_kw']:g} kW IT x PUE "
                    f"{f.facility.pue:g}) but the site provides {cap:g} kW",
                    f"raise site.power_capacity_kw to at least {load:g} kW, lower the PUE with better "
                    "cooling, or remove nodes")


@rule("PWR006", Severity.warning, "Implausible PUE")
def implausible_pue(f: Factory, site: Site) -> Iterable[Issue]:
    """`facility.pue` outside 1.05-2.0 is probably a mistake: hyperscale sites reach 1.1-1.2,
    new large sites <= 1.3 and the global average is ~1.55-1.58 (Uptime Institute Global Data
    Center Surveys)."""
    pue = f.facility.pue
    if pue < PUE_MIN or pue > PUE_MAX:
        yield Issue(("facility", "pue"),
                    f"PUE {pue:g} is outside the plausible range {PUE_MIN:g}-{PUE_MAX:g}",
                    "use the facility's measured annual PUE (1.1-1.6 is typical for current data centres)")


@rule("PWR007", Severity.info, "Declared rack holds no nodes")
def empty_rack(f: Factory, site: Site) -> Iterable[Issue]:
    """A rack declared under `facility.racks` that no node group is placed in: perhaps a
    misspelt rack name in `nodes[].rack`, or a rack reserved for switches and storage."""
    idx = _rack_index(f)
    for r in site.racks:
        if r.declared and r.hosts == 0:
            yield Issue(("facility", "racks", idx[r.name], "name"),
                        f"rack {r.name!r} is declared but holds no nodes",
                        "place a node group in it, or remove it if it is not needed")


@rule("PWR008", Severity.error, "Duplicate rack name")
def duplicate_rack(f: Factory, site: Site) -> Iterable[Issue]:
    """Rack names under `facility.racks` must be unique: nodes are placed in racks by name."""
    seen: dict[str, int] = {}
    for i, r in enumerate(f.facility.racks):
        if r.name in seen:
            yield Issue(("facility", "racks", i, "name"),
                        f"rack name {r.name!r} is already used by facility.racks[{seen[r.name]}]",
                        "give each rack a distinct name")
        seen.setdefault(r.name, i)
