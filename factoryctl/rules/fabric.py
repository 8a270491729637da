"""Rules: fabric (compute east/west and storage networks: ports, speeds, switches, tiers, RoCE)."""

from __future__ import annotations

from collections.abc import Iterable

from .. import catalog, resolve
from ..findings import Severity
from ..model import Factory
from ..resolve import Site
from .base import Issue, rule

MIN_EW_GBPS_PER_GPU = 200  # NVIDIA Enterprise RA: 2-x-x-200 is the smallest E/W design point


def _kind(fabric_type: str) -> str:
    """The catalog fabric a model fabric type runs on: RoCE is Ethernet."""
    return "infiniband" if fabric_type == "infiniband" else "ethernet"


def _fabrics(f: Factory):
    """(name, section) of each declared switched fabric."""
    if f.fabric.compute is not None:
        yield "compute", f.fabric.compute
    if f.fabric.storage is not None:
        yield "storage", f.fabric.storage


def _nics(f: Factory, prefix: str):
    """(node index, nic index, group, nic) of every NIC serving `prefix` (compute, storage)."""
    for i, ng in enumerate(f.nodes):
        for j, nic in enumerate(ng.hardware.nics):
            if nic.name.startswith(prefix):
                yield i, j, ng, nic


def _first_nic(ng, prefix: str) -> int | None:
    return next((j for j, n in enumerate(ng.hardware.nics) if n.name.startswith(prefix)), None)


@rule("FAB001", Severity.error, "Too few compute-fabric ports on a GPU node")
def compute_ports(f: Factory, site: Site) -> Iterable[Issue]:
    """Each GPU node on the compute fabric needs at least `rails` x `planes` switch-facing
    compute ports (NICs named `compute...`, count x ports), one per rail and plane: e.g. 8 on a
    DGX H100 (8 rails, 1 plane), 16 on a DGX B300 (8 rails x 2 planes) (DGX SuperPOD H100 and B300 RAs,
    network fabrics).
    A GPU node that Slurm schedules with no compute port at all is reported as a warning."""
    cf = f.fabric.compute
    if cf is None:
        return
    need = cf.rails * cf.planes
    for i, ng in enumerate(f.nodes):
        if ng.hardware.gpu is None:
            continue
        ports = resolve.group_facts(f, ng).compute_ports
        j = _first_nic(ng, "compute")
        if ports == 0:
            if "slurm-compute" in ng.roles:
                yield Issue(("nodes", i, "hardware", "nics"),
                            f"GPU node group {ng.group!r} has no compute-fabric NIC, so its GPUs are not "
                            f"on the {cf.type} compute fabric",
                            f"add a NIC named 'compute' with {need} ports in total (e.g. count: {need})",
                            Severity.warning)
        elif ports < need:
            yield Issue(("nodes", i, "hardware", "nics", j, "count"),
                        f"node group {ng.group!r} has {ports} compute-fabric ports per node, but the "
                        f"fabric has {cf.rails} rails x {cf.planes} planes = {need}",
                        f"give each node {need} compute ports (count x ports), or lower fabric.compute.rails")


@rule("FAB002", Severity.error, "NIC speed differs from the fabric link rate")
def nic_speed(f: Factory, site: Site) -> Iterable[Issue]:
    """A compute NIC's `speed_gbps` must equal `fabric.compute.link_gbps` (a storage NIC's the
    storage fabric's): slower ports cannot run the links the fabric is sized for (error); faster
    ports will run at the link rate, wasting their bandwidth (warning)."""
    for name, fab in _fabrics(f):
        for i, j, ng, nic in _nics(f, name):
            if nic.speed_gbps == fab.link_gbps:
                continue
            below = nic.speed_gbps < fab.link_gbps
            yield Issue(("nodes", i, "hardware", "nics", j, "speed_gbps"),
                        f"{name} NIC of node group {ng.group!r} runs at {nic.speed_gbps} Gb/s but the "
                        f"{name} fabric links run at {fab.link_gbps} Gb/s",
                        f"use {fab.link_gbps} Gb/s NICs, or set fabric.{name}.link_gbps to {nic.speed_gbps}"
                        if below else f"the ports will run at {fab.link_gbps} Gb/s; match the speeds",
                        None if below else Severity.warning)


@rule("FAB003", Severity.error, "Unknown switch model")
def unknown_switch(f: Factory, site: Site) -> Iterable[Issue]:
    """`fabric.compute.switch` and `fabric.storage.switch` must name a switch in the catalog;
    its radix at the link rate sizes the fabric (leaves, spines, cores)."""
    for name, fab in _fabrics(f):
        if fab.switch is not None and catalog.switch(fab.switch) is None:
            close = catalog.suggest("switch", fab.switch)
            yield Issue(("fabric", name, "switch"), f"unknown switch model {fab.switch!r}",
                        ("did you mean " + " or ".join(repr(c) for c in close) + "?") if close
                        else "known switches: " + ", ".join(catalog.names("switch")))


@rule("FAB004", Severity.error, "Switch cannot run at the fabric link rate")
def switch_speed(f: Factory, site: Site) -> Iterable[Issue]:
    """The switch must offer ports at `link_gbps`: its native speed, a breakout listed in the
    catalog, or an even split of its native speed (QM9700: 64 x 400G or 128 x 200G; SN5600:
    64 x 800G, 128 x 400G, 256 x 100G; NVIDIA switch spec sheets)."""
    for name, fab in _fabrics(f):
        spec = catalog.switch(fab.switch) if fab.switch else None
        size = site.fabric.get(name)
        if spec is None or size is None or size.radix:
            continue
        speeds = sorted(set(spec.splits) | {spec.port_gbps}, reverse=True)
        yield Issue(("fabric", name, "link_gbps"),
                    f"switch {spec.name} cannot run ports at {fab.link_gbps} Gb/s "
                    f"(it offers {', '.join(f'{spec.ports_at(s) or spec.ports} x {s}G' for s in speeds)})",
                    f"set fabric.{name}.link_gbps to one of {', '.join(str(s) for s in speeds)}, "
                    "or choose a switch for that speed")


@rule("FAB005", Severity.error, "Fabric too large for its switch")
def fabric_tiers(f: Factory, site: Site) -> Iterable[Issue]:
    """Switch-facing node ports must fit what radix-k switches can build: k/2 x k (k^2/2) in two
    tiers and k^3/4 in three tiers when non-blocking (QM9700 @400G: 2,048 / 65,536 per plane;
    SN5600 @400G: 8,192; Q3400 @800G: 10,368). Beyond three tiers is an error; needing the third
    (core) tier is reported as info, since it adds a switch layer to buy and cable
    (fat-tree arithmetic, checked against the SuperPOD B200 RA 16+ SU tables)."""
    for name, fab in _fabrics(f):
        size = site.fabric.get(name)
        if size is None or size.radix < 2 or size.endpoints == 0:
            continue
        if size.endpoints > size.max_endpoints:
            yield Issue(("fabric", name, "switch"),
                        f"the {name} fabric has {size.endpoints} node ports, but {fab.switch} "
                        f"({size.radix} ports at {size.port_gbps}G) builds at most {size.max_endpoints} "
                        f"in {size.tiers} tiers",
                        "use a higher-radix switch, more planes, or split the site into several fabrics")
        elif size.tiers == 3:
            yield Issue(("fabric", name, "switch"),
                        f"the {name} fabric's {size.endpoints} node ports exceed a two-tier {fab.switch} "
                        f"fabric ({size.radix * size.downlinks_per_leaf * size.planes}); it needs a core tier: "
                        f"{size.leaves} leaves, {size.spines} spines, {size.cores} cores",
                        "plan the core switches and spine-core cabling (or a higher-radix switch for two tiers)",
                        Severity.info)


@rule("FAB006", Severity.warning, "East/west bandwidth per GPU below 200 Gb/s")
def ew_bandwidth(f: Factory, site: Site) -> Iterable[Issue]:
    """A GPU node's compute-fabric bandwidth (sum of compute NIC count x ports x speed) divided by
    its GPUs should be at least 200 Gb/s, the smallest east/west figure of NVIDIA's Enterprise RA
    designs (C-G-N-B naming, B = E/W Gb/s per GPU; docs.nvidia.com/ai-enterprise/reference-architecture). PCIe designs with one NIC per
    two GPUs reach it with 400G NICs."""
    if f.fabric.compute is None:
        return
    for i, ng in enumerate(f.nodes):
        gpu, j = ng.hardware.gpu, _first_nic(ng, "compute")
        if gpu is None or j is None:
            continue
        per_gpu = resolve.nic_gbps(ng, "compute") / gpu.count
        if per_gpu < MIN_EW_GBPS_PER_GPU:
            yield Issue(("nodes", i, "hardware", "nics", j),
                        f"node group {ng.group!r} has {per_gpu:g} Gb/s of east/west bandwidth per GPU; "
                        f"reference designs start at {MIN_EW_GBPS_PER_GPU} Gb/s per GPU",
                        f"add compute NICs or faster ones to reach {MIN_EW_GBPS_PER_GPU * gpu.count} Gb/s per node")


@rule("FAB007", Severity.warning, "RoCE fabric without a complete lossless class")
def roce_lossless(f: Factory, site: Site) -> Iterable[Issue]:
    """A RoCE compute fabric needs a lossless traffic class declared end to end: DSCP trust with
    RoCE in its own priority (convention DSCP 26 -> priority 3), PFC no-drop on it (off: error),
    ECN marking for DCQCN congestion control and a PFC watchdog (~100 ms). Host and switch
    mismatches fail silently, so factoryctl renders both from the `roce:` block (NVIDIA Spectrum-X RoCE
    configuration; DCQCN)."""
    cf = f.fabric.compute
    if cf is None or cf.type != "roce":
        return
    base = ("fabric", "compute", "roce")
    if cf.roce is None:
        yield Issue(base, "the RoCE compute fabric declares no lossless class (fabric.compute.roce)",
                    "add roce: {dscp: 26, priority: 3, pfc: true, ecn: true, pfc_watchdog_ms: 100}")
        return
    if not cf.roce.pfc:
        yield Issue((*base, "pfc"), "PFC is off on the RoCE compute fabric: RDMA traffic will be dropped "
                    "under congestion and collectives stall on retransmits",
                    "set pfc: true (no-drop on the RoCE priority)", Severity.error)
    if not cf.roce.ecn:
        yield Issue((*base, "ecn"), "ECN is off on the RoCE compute fabric: DCQCN congestion control "
                    "cannot act, so PFC pauses spread through the fabric",
                    "set ecn: true")
    if not cf.roce.pfc_watchdog_ms:
        yield Issue((*base, "pfc_watchdog_ms"), "the PFC watchdog is disabled: a stuck receiver can "
                    "pause the fabric indefinitely (PFC storm)",
                    "set pfc_watchdog_ms: 100")


@rule("FAB008", Severity.error, "Fabric type does not match the switch")
def switch_fabric_type(f: Factory, site: Site) -> Iterable[Issue]:
    """An InfiniBand fabric needs an InfiniBand switch (Quantum: QM9700, Q3400); a RoCE or
    Ethernet fabric an Ethernet switch (Spectrum: SN5600, SN5610) (NVIDIA switch spec sheets)."""
    for name, fab in _fabrics(f):
        spec = catalog.switch(fab.switch) if fab.switch else None
        if spec is not None and spec.fabric != _kind(fab.type):
            yield Issue(("fabric", name, "switch"),
                        f"the {name} fabric is {fab.type} but {spec.name} is an {spec.fabric} switch",
                        f"choose an {_kind(fab.type)} switch, or set fabric.{name}.type to match the switch")


@rule("FAB009", Severity.warning, "Oversubscribed compute fabric on a training site")
def training_oversubscribed(f: Factory, site: Site) -> Iterable[Issue]:
    """A site that trains (Slurm schedules GPU nodes) should have a non-blocking compute fabric
    (`oversubscription: 1.0`): collectives span every rail at once and an oversubscribed
    leaf-spine tier caps all-reduce bandwidth; every SuperPOD compute fabric is 1:1
    (DGX SuperPOD H100 RA RA-11333-001, network fabrics)."""
    cf = f.fabric.compute
    if cf is None or cf.oversubscription <= 1.0 or resolve.training_nodes(f) == 0:
        return
    yield Issue(("fabric", "compute", "oversubscription"),
                f"the compute fabric is {cf.oversubscription:g}:1 oversubscribed on a training site",
                "use oversubscription: 1.0 (non-blocking) for training")


@rule("FAB010", Severity.warning, "Multi-node training without a compute fabric")
def training_without_fabric(f: Factory, site: Site) -> Iterable[Issue]:
    """More than one GPU node scheduled by Slurm implies multi-node jobs, which need an RDMA
    east/west fabric (`fabric.compute`); NVIDIA's ERA makes it optional only for pure inference
    (NVL72 ERA, network logical architecture: fabric roles)."""
    n = resolve.training_nodes(f)
    if f.fabric.compute is None and n > 1:
        yield Issue(("fabric", "compute"),
                    f"{n} GPU nodes are scheduled by Slurm but no compute fabric is declared; "
                    "multi-node jobs would run over the management network",
                    "declare fabric.compute (type, rails, link_gbps, switch)")


@rule("FAB011", Severity.warning, "Rail count differs from GPUs per node")
def rails_per_gpu(f: Factory, site: Site) -> Iterable[Issue]:
    """In a rail-optimised fabric NIC i of every node goes to leaf i, so `rails` should equal the
    GPUs per node (one NIC per GPU: DGX, 2-8-9-400), or half of them in the ERA designs with one
    NIC per two GPUs (2-8-5-200) (NVIDIA ERA-00010-001 and ERA-00016-001; SuperPOD network
    fabrics)."""
    cf = f.fabric.compute
    if cf is None or cf.topology != "rail-optimized":
        return
    seen: set[int] = set()
    for ng in f.nodes:
        gpu = ng.hardware.gpu
        if gpu is None or _first_nic(ng, "compute") is None or gpu.count in seen:
            continue
        ports = resolve.group_facts(f, ng).compute_ports
        half = cf.rails * 2 == gpu.count and ports == cf.rails * cf.planes
        if cf.rails != gpu.count and not half:
            seen.add(gpu.count)
            yield Issue(("fabric", "compute", "rails"),
                        f"the rail-optimised fabric has {cf.rails} rails but node group {ng.group!r} "
                        f"has {gpu.count} GPUs per node",
                        f"set rails: {gpu.count} (one rail per GPU), or topology: fat-tree")


@rule("FAB012", Severity.error, "NIC cannot run on its fabric")
def nic_capability(f: Factory, site: Site) -> Iterable[Issue]:
    """A compute or storage NIC must support its fabric's type (InfiniBand, or Ethernet for RoCE
    and Ethernet), at the declared `speed_gbps` and `ports`, per the catalog: e.g. BlueField-3
    B3140H is Ethernet only; ConnectX-8 runs 800G on InfiniBand but 400G per port on Ethernet."""
    for name, fab in _fabrics(f):
        kind = _kind(fab.type)
        for i, j, ng, nic in _nics(f, name):
            spec = catalog.nic(nic.model)
            if spec is None:
                continue  # NOD002
            loc = ("nodes", i, "hardware", "nics", j)
            if kind not in spec.fabrics:
                yield Issue((*loc, "model"),
                            f"{spec.name} in node group {ng.group!r} does not support {kind}, the "
                            f"{name} fabric's type (it runs {', '.join(spec.fabrics)})",
                            f"choose a NIC with {kind} ports, or change fabric.{name}.type")
                continue
            if nic.speed_gbps > spec.fabrics[kind]:
                yield Issue((*loc, "speed_gbps"),
                            f"{spec.name} runs at most {spec.fabrics[kind]} Gb/s per port on {kind}, "
                            f"not {nic.speed_gbps}",
                            f"lower speed_gbps to {spec.fabrics[kind]} or choose a faster NIC")
            if nic.ports > spec.ports:
                yield Issue((*loc, "ports"),
                            f"{spec.name} has at most {spec.ports} port(s) per card, not {nic.ports}",
                            f"set ports to {spec.ports} or less and raise count instead")
