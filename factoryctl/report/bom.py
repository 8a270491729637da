"""Bill of materials: what a resolved site takes to build, each count with the rule behind it.

Pure: Site in, BOM out. Fabric switch and cable counts are the resolved leaf/spine/core
sizes (resolve.size_fabric, which reproduces NVIDIA's SuperPOD tables); this module adds the
parts resolve does not size: management and out-of-band switches, transceivers, racks, PDUs.
The rules and their sources:

* compute/storage fabrics: leaves, spines, cores and node-leaf / leaf-spine / spine-core
  cables from the resolved FabricSize (DGX SuperPOD H100 RA RA-11333-001, network fabrics).
* transceivers: one per node port at the link rate; at switch ends one module per cage,
  and a cage carries two links where the switch has twin-port cages (QM9700: 32 twin-port
  OSFP cages for 64 x 400G, QM9700 spec sheet) or runs an 800G port as 2 x 400G (SN5600).
* in-band management: one port per in-band NIC port (NICs named `inband...`), else one per
  host (its management interface). Switches come in pairs (each node bonds across a pair,
  SuperPOD H100 RA "100 Gb/s bonded"; NVIDIA ERA network logical architecture: "2 ports to 2
  separate switches"); a switch gives 7/8
  of its ports to hosts and keeps 1/8 for uplinks and the MLAG peer link (as NVIDIA's
  BasePOD SN4600 configuration keeps swp57-64). More than one pair adds a spine pair.
  Model: fabric.management.switch, else SN4600C (SuperPOD H100 RA in-band network).
* out-of-band: one 1 GbE port per host BMC, per DPU (its BMC, as NVIDIA's SuperPOD RAs
  connect DPU BMCs to OOB), per switch management port and per rack PDU (SuperPOD: "the
  management ports of all devices ... networking gear, rack PDUs"); switches =
  ceil(ports / ports per switch). Model: fabric.oob.switch, else SN2201 (SuperPOD H100 RA OOB network).
* racks and PDUs: facility.racks, with facility.racks[].pdus per rack (default 2).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from .. import catalog
from ..resolve import FabricSize, Site

DEFAULT_INBAND_SWITCH = "SN4600C"
DEFAULT_OOB_SWITCH = "SN2201"
INBAND_UPLINK_SHARE = 8  # 1/8 of an in-band switch's ports kept for uplinks and the peer link
TWIN_PORT_CAGES = {"QM9700": 2, "QM9790": 2}  # links per switch cage at the native rate (QM9700 spec sheet)

CATEGORIES = (
    "nodes", "gpus", "nics", "compute fabric", "storage fabric", "in-band management",
    "out-of-band", "cables", "transceivers", "racks", "power",
)


@dataclass(frozen=True)
class BomLine:
    category: str
    item: str
    model: str
    quantity: int
    basis: str  # the rule and inputs behind the count
    unit: str = "each"


@dataclass
class Bom:
    name: str
    lines: list[BomLine] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, category: str, item: str, model: str, quantity: int, basis: str, unit: str = "each") -> None:
        if quantity:
            self.lines.append(BomLine(category, item, model, int(quantity), basis, unit))

    def find(self, category: str, item: str) -> BomLine | None:
        return next((x for x in self.lines if x.category == category and x.item == item), None)

    def quantity(self, category: str, item: str) -> int:
        line = self.find(category, item)
        return line.quantity if line else 0

    def switches(self) -> dict[str, int]:
        """Switch model -> count over every fabric (for costing)."""
        out: dict[str, int] = {}
        for x in self.lines:
            if x.item.endswith("switch"):
                out[x.model] = out.get(x.model, 0) + x.quantity
        return out

    def to_dict(self) -> dict:
        return {"name": self.name, "lines": [asdict(x) for x in self.lines], "notes": list(self.notes)}


# --- nodes, GPUs, NICs -----------------------------------------------------------------------


def _node_model(ng) -> str:
    hw = ng.hardware
    parts = []
    if hw.gpu:
        parts.append(f"{hw.gpu.count}x {hw.gpu.model}")
    parts.append(f"{hw.cpu.sockets}x {hw.cpu.model}")
    parts.append(f"{hw.memory_gb} GB")
    return ", ".join(parts)


def _nodes(site: Site, bom: Bom) -> None:
    by_model: dict[str, list[tuple[str, int]]] = {}
    for ng in site.factory.nodes:
        by_model.setdefault(_node_model(ng), []).append((ng.group, ng.count))
    for model, groups in by_model.items():
        n = sum(c for _, c in groups)
        bom.add("nodes", "node", model, n, " + ".join(f"nodes[{g}].count {c}" for g, c in groups))
    gpus: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    for g in site.groups.values():
        if g.gpu_model and g.gpus_per_node:
            counts[g.gpu_model] = counts.get(g.gpu_model, 0) + g.count * g.gpus_per_node
            gpus.setdefault(g.gpu_model, []).append(f"{g.name} {g.count} x {g.gpus_per_node}")
    for model, n in counts.items():
        bom.add("gpus", "GPU", model, n, " + ".join(gpus[model]))
    nics: dict[str, tuple[str, int, list[str]]] = {}
    for ng in site.factory.nodes:
        for nic in ng.hardware.nics:
            spec = catalog.nic(nic.model)
            kind = {"dpu": "DPU"}.get(spec.kind, "NIC") if spec else "NIC"
            name = spec.name if spec else nic.model
            k, n, why = nics.get(name, (kind, 0, []))
            nics[name] = (k, n + ng.count * nic.count, [*why, f"{ng.group} {ng.count} x {nic.count} ({nic.name})"])
    for name, (kind, n, why) in nics.items():
        bom.add("nics", kind, name, n, " + ".join(why))


def _dpus(site: Site) -> int:
    n = 0
    for ng in site.factory.nodes:
        for nic in ng.hardware.nics:
            spec = catalog.nic(nic.model)
            if spec is not None and spec.kind == "dpu":
                n += ng.count * nic.count
    return n


# --- fabrics ---------------------------------------------------------------------------------


def _links_per_module(switch: str | None, gbps: int) -> int:
    spec = catalog.switch(switch) if switch else None
    if spec is None:
        return 1
    if spec.name in TWIN_PORT_CAGES and gbps == spec.port_gbps:
        return TWIN_PORT_CAGES[spec.name]
    if gbps < spec.port_gbps and spec.port_gbps % gbps == 0:
        return spec.port_gbps // gbps
    return 1


def _fabric(site: Site, bom: Bom, fs: FabricSize, switch: str | None, kind: str) -> None:
    cat = f"{fs.name} fabric"
    rate = f"{fs.port_gbps}G"
    model = (catalog.switch(switch).name if switch and catalog.switch(switch) else switch) or "(not declared)"
    if fs.radix < 2:
        why = "no switch declared" if not switch else f"{model} has no ports at {fs.port_gbps} Gb/s"
        bom.notes.append(f"{fs.name} fabric: {why}, so its switches and switch-side parts are not counted "
                         f"(set fabric.{fs.name}.switch)")
    else:
        planes = f" x {fs.planes} planes" if fs.planes > 1 else ""
        per_plane = fs.leaves // fs.planes
        if fs.scalable_units:
            rails = per_plane // max(1, fs.scalable_units)
            leaf_basis = (f"{fs.scalable_units} SU x {rails} rails{planes} (rail-optimised, full SU built: "
                          f"{fs.nodes_per_su} nodes per SU, {fs.downlinks_per_leaf} node ports per leaf)")
        else:
            leaf_basis = (f"ceil({fs.endpoints} node ports{' / ' + str(fs.planes) + ' planes' if fs.planes > 1 else ''}"
                          f" / {fs.downlinks_per_leaf} down ports per leaf){planes}")
        bom.add(cat, "leaf switch", model, fs.leaves, leaf_basis + f"; {model} radix {fs.radix} at {rate}")
        if fs.spines:
            bom.add(cat, "spine switch", model, fs.spines,
                    f"{per_plane} leaves x {fs.uplinks_per_leaf} uplinks / {fs.radix} ports, equal links per "
                    f"leaf-spine pair{planes}")
        if fs.cores:
            bom.add(cat, "core switch", model, fs.cores,
                    f"{fs.spines // fs.planes} spines x {fs.uplinks_per_leaf} uplinks / {fs.radix} ports{planes} "
                    f"(three tiers: {fs.endpoints} ports > {fs.radix} x {fs.downlinks_per_leaf})")
    bom.add("cables", f"{fs.name} node-to-leaf cable", rate, fs.node_leaf_cables,
            f"one per {kind} node port: {fs.endpoints}")
    if fs.leaf_spine_cables:
        bom.add("cables", f"{fs.name} leaf-to-spine cable", rate, fs.leaf_spine_cables,
                f"{fs.leaves} leaves x {fs.uplinks_per_leaf} uplinks")
    if fs.spine_core_cables:
        bom.add("cables", f"{fs.name} spine-to-core cable", rate, fs.spine_core_cables,
                f"{fs.spines} spines x {fs.uplinks_per_leaf} uplinks")
    bom.add("transceivers", f"{fs.name} node-end transceiver", f"{rate} single-port", fs.node_leaf_cables,
            "one per node port (DGX systems take twin-port modules, one per 2 ports)")
    if fs.radix >= 2:
        lpm = _links_per_module(switch, fs.port_gbps)
        ends = fs.node_leaf_cables + 2 * fs.leaf_spine_cables + 2 * fs.spine_core_cables
        label = f"{fs.port_gbps * lpm}G twin-port (2 x {rate})" if lpm == 2 else (
            f"{fs.port_gbps * lpm}G ({lpm} x {rate})" if lpm > 1 else f"{rate} single-port")
        bom.add("transceivers", f"{fs.name} switch-end transceiver", label, math.ceil(ends / lpm),
                f"ceil(({fs.node_leaf_cables} node links + 2 x {fs.leaf_spine_cables} leaf-spine + "
                f"2 x {fs.spine_core_cables} spine-core link ends) / {lpm} link(s) per {model} cage)")


def _fabrics(site: Site, bom: Bom) -> None:
    fab = site.factory.fabric
    if "compute" in site.fabric:
        _fabric(site, bom, site.fabric["compute"], fab.compute.switch, "compute")
    if "storage" in site.fabric:
        _fabric(site, bom, site.fabric["storage"], fab.storage.switch, "storage")


# --- management and out-of-band -------------------------------------------------------------


def inband_ports(site: Site) -> tuple[int, list[str]]:
    total, why = 0, []
    for ng in site.factory.nodes:
        ports = sum(n.count * n.ports for n in ng.hardware.nics if n.name.startswith("inband"))
        per = ports or 1
        total += ng.count * per
        why.append(f"{ng.group} {ng.count} x {per}")
    return total, why


def inband_switches(ports: int, radix: int) -> tuple[int, int]:
    """(leaves, spines) of a paired in-band network: hosts bond across a pair of switches."""
    if ports <= 0 or radix < 2:
        return 0, 0
    down = radix - radix // INBAND_UPLINK_SHARE
    pairs = math.ceil(math.ceil(ports / 2) / down)
    return 2 * pairs, (2 if pairs > 1 else 0)


def _switch_spec(declared: str | None, default: str):
    spec = catalog.switch(declared) if declared else None
    if spec is not None:
        return spec, f"fabric switch {spec.name}"
    fallback = catalog.switch(default)
    if declared:
        return fallback, f"{declared!r} is not in the catalog, so {default} is assumed"
    return fallback, f"no switch declared, so {default} is assumed"


def _management(site: Site, bom: Bom) -> int:
    ports, why = inband_ports(site)
    spec, said = _switch_spec(site.factory.fabric.management.switch, DEFAULT_INBAND_SWITCH)
    leaves, spines = inband_switches(ports, spec.ports)
    down = spec.ports - spec.ports // INBAND_UPLINK_SHARE
    bom.add("in-band management", "in-band leaf switch", spec.name, leaves,
            f"2 x ceil(ceil({ports} ports / 2) / {down} host ports per switch): switch pairs, hosts bonded "
            f"across each pair ({said})")
    bom.add("in-band management", "in-band spine switch", spec.name, spines,
            "a spine pair joins more than one leaf pair")
    bom.add("cables", "in-band node cable", f"{spec.port_gbps}G", ports, "one per in-band port: " + " + ".join(why))
    return leaves + spines


def _oob(site: Site, bom: Bom, other_switches: int) -> None:
    oob = site.factory.fabric.oob
    if oob is None:
        bom.notes.append("no out-of-band network declared (fabric.oob): no OOB switches counted")
        return
    hosts = len(site.hosts)
    dpus = _dpus(site)
    pdus = sum(r.pdus for r in site.factory.facility.racks)
    ports = hosts + dpus + other_switches + pdus
    spec, said = _switch_spec(oob.switch, DEFAULT_OOB_SWITCH)
    n = math.ceil(ports / spec.ports) if ports else 0
    bom.add("out-of-band", "OOB switch", spec.name, n,
            f"ceil(({hosts} host BMCs + {dpus} DPU BMCs + {other_switches} switch mgmt ports + {pdus} PDUs) / "
            f"{spec.ports} ports) ({said})")
    bom.add("cables", "OOB cable", f"{spec.port_gbps}G RJ45", ports, "one per OOB port")


# --- racks and power ------------------------------------------------------------------------


def _racks(site: Site, bom: Bom) -> None:
    kinds: dict[tuple[str, float, int], list[str]] = {}
    for r in site.factory.facility.racks:
        kinds.setdefault((r.cooling, r.power_kw, r.height_u), []).append(r.name)
    for (cooling, kw, height), names in kinds.items():
        bom.add("racks", "rack", f"{height}U, {cooling}, {kw:g} kW budget", len(names), _names(names))
    undeclared = [r.name for r in site.racks if not r.declared]
    if undeclared:
        bom.notes.append(f"racks used by nodes but not declared in facility.racks: {_names(undeclared)}")
    by_count: dict[int, list[str]] = {}
    for r in site.factory.facility.racks:
        by_count.setdefault(r.pdus, []).append(r.name)
    for count, names in sorted(by_count.items()):
        bom.add("power", "rack PDU", "per facility.racks[].pdus", count * len(names),
                f"{len(names)} racks x {count} PDUs ({_names(names)})")


def _names(names: list[str], limit: int = 6) -> str:
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:3]) + f", ... {names[-1]} ({len(names)})"


def bom(site: Site) -> Bom:
    out = Bom(site.factory.metadata.name)
    _nodes(site, out)
    _fabrics(site, out)
    fabric_switches = sum(x.quantity for x in out.lines if x.item.endswith("switch"))
    mgmt = _management(site, out)
    _oob(site, out, fabric_switches + mgmt)
    _racks(site, out)
    order = {c: i for i, c in enumerate(CATEGORIES)}
    out.lines.sort(key=lambda x: order.get(x.category, len(order)))  # stable: rule order kept inside
    return out
