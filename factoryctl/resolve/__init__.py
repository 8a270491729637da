"""Derived facts of a factory: pure functions of the model and the catalog.

Rules, templates and reports read these facts; none of them recomputes them.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

from .. import catalog
from ..model import Factory, NodeGroup
from ..model.common import countries
from ..model.fabric import ComputeFabric

RUNTIME_OVERHEAD_GB = 3.0  # CUDA context, activations, graphs: ~2-4 GB, an estimate (no vendor figure)
OEM_POWER_FACTOR = 1.8  # node max kW ~ 1.8 x GPU TDP sum: DGX H100 10.2/5.6 kW, DGX B200 14.3/8.0 (user guides)
CPU_NODE_KW = 1.0  # assumed max draw of a CPU-only node without a declared figure
GB = 1e9
NODE_NVLINK_MAX = 8  # largest NVLink domain inside one node (HGX baseboard); larger ones span nodes


def rack_scale_nvlink(nvlink_domain: int) -> bool:
    """Whether an NVLink domain spans several nodes (NVL72: 72 GPUs over 18 trays)."""
    return nvlink_domain > NODE_NVLINK_MAX


@dataclass(frozen=True)
class Host:
    name: str
    group: str
    index: int
    rack: str
    roles: tuple[str, ...]
    address: str | None  # management IP; None when the CIDR ran out (rule NET001 says so)
    oob_address: str | None
    gpus: int
    country: str


@dataclass(frozen=True)
class GroupFacts:
    name: str
    count: int
    hostnames: tuple[str, ...]
    racks: tuple[str, ...]  # rack of each host, in host order
    gpus_per_node: int
    gpu_model: str | None
    power_kw: float  # per node, declared or estimated
    power_estimated: bool
    compute_ports: int  # switch-facing compute-fabric ports per node
    storage_ports: int
    country: str


@dataclass(frozen=True)
class RackLoad:
    name: str
    it_kw: float
    facility_kw: float
    budget_kw: float
    cooling: str
    hosts: int
    gpus: int
    declared: bool = True

    @property
    def utilisation(self) -> float:
        return self.it_kw / self.budget_kw if self.budget_kw else math.inf


@dataclass(frozen=True)
class FabricSize:
    name: str
    endpoints: int  # switch-facing ports of nodes
    port_gbps: int
    radix: int  # switch ports at port_gbps (0: the switch cannot run at that speed)
    downlinks_per_leaf: int
    uplinks_per_leaf: int
    planes: int
    scalable_units: int
    nodes_per_su: int
    leaves: int
    spines: int
    cores: int
    tiers: int
    max_endpoints: int  # largest fabric this switch and tier count can build
    node_leaf_cables: int
    leaf_spine_cables: int
    spine_core_cables: int


@dataclass(frozen=True)
class InferenceFit:
    name: str
    model: str
    known_model: bool
    gpu_model: str | None
    gpus: int  # tp x pp x replicas
    gpus_available: int
    weights_gb_per_gpu: float
    kv_gb_per_gpu: float
    overhead_gb: float
    memory_gb_per_gpu: float
    usable_gb_per_gpu: float  # HBM x gpu_memory_utilization
    groups: tuple[str, ...] = ()  # node groups the deployment may run on (inference_groups)
    gpus_per_node: int = 0  # the most GPUs one node of those groups has
    nvlink_domain: int = 0  # GPUs per NVLink domain of gpu_model (catalog); 0 when unknown

    @property
    def scale_up_gpus(self) -> int:
        """GPUs one tensor-parallel group can span without the network: a node, or a whole
        rack-scale NVLink domain (NVL72) that spans nodes."""
        if rack_scale_nvlink(self.nvlink_domain):
            return max(self.gpus_per_node, self.nvlink_domain)
        return self.gpus_per_node

    @property
    def fits(self) -> bool:
        return self.memory_gb_per_gpu <= self.usable_gb_per_gpu


@dataclass(frozen=True)
class IpPlan:
    cidr: str
    capacity: int  # usable host addresses after reserved ones
    needed: int


@dataclass
class Site:
    factory: Factory
    groups: dict[str, GroupFacts]
    hosts: list[Host]
    racks: list[RackLoad]
    fabric: dict[str, FabricSize]
    inference: list[InferenceFit]
    management: IpPlan
    oob: IpPlan | None
    totals: dict[str, float] = field(default_factory=dict)

    @cached_property
    def hosts_by_group(self) -> dict[str, list[Host]]:
        out: dict[str, list[Host]] = {}
        for h in self.hosts:
            out.setdefault(h.group, []).append(h)
        return out

    def _node_group(self, group: str) -> NodeGroup | None:
        return next((ng for ng in self.factory.nodes if ng.group == group), None)

    def slurm_gpus(self, group: str) -> int:
        """GPUs per node of node group `group` that Slurm schedules (resolve.slurm_gpus)."""
        ng = self._node_group(group)
        return slurm_gpus(ng) if ng else 0

    def kube_gpus(self, group: str) -> int:
        """GPUs per node of node group `group` that Kubernetes schedules (resolve.kube_gpus)."""
        ng = self._node_group(group)
        return kube_gpus(ng) if ng else 0

    def scheduled_gpus(self, platform: str) -> int:
        """GPUs of the whole site that a platform (slurm | kubernetes) schedules."""
        per = self.kube_gpus if platform == "kubernetes" else self.slurm_gpus
        return sum(g.count * per(name) for name, g in self.groups.items())

    def deployments_on(self, platform: str) -> list[tuple[Any, InferenceFit]]:
        """(declared deployment, its fit) for every inference deployment on `platform`
        (slurm | kubernetes), in file order: `inference` is resolved one-to-one from it."""
        return [(inf, fit) for inf, fit in zip(self.factory.inference, self.inference, strict=True)
                if inf.platform == platform]

    def to_dict(self) -> dict:
        return {
            "name": self.factory.metadata.name,
            "totals": self.totals,
            "groups": [asdict(g) for g in self.groups.values()],
            "hosts": [_host_dict(h) for h in self.hosts],  # asdict's deep copy is slow at 16k hosts
            "racks": [asdict(r) | {"utilisation": round(r.utilisation, 4)} for r in self.racks],
            "fabric": {k: asdict(v) for k, v in self.fabric.items()},
            "network": {
                "management": asdict(self.management),
                "oob": asdict(self.oob) if self.oob else None,
            },
            "inference": [asdict(i) | {"fits": i.fits} for i in self.inference],
            "quotas": [asdict(q) | {"over": q.over} for q in quota_use(self)],
        }


def _host_dict(h: Host) -> dict:
    return {"name": h.name, "group": h.group, "index": h.index, "rack": h.rack, "roles": list(h.roles),
            "address": h.address, "oob_address": h.oob_address, "gpus": h.gpus, "country": h.country}


# --- hosts and racks -------------------------------------------------------------------------


def hostname_error(g: NodeGroup) -> str | None:
    """Why the hostname template cannot be expanded ({index:q}, {index[0]}), or None."""
    try:
        g.hostname.format(index=g.start_index, group=g.group)
    except (ValueError, TypeError, IndexError, KeyError, AttributeError) as e:
        return f"{type(e).__name__}: {e}"
    return None


def hostnames(g: NodeGroup) -> list[str]:
    """Expanded hostnames; a template that cannot be expanded falls back to <group>-<index>
    so the rest of the site still resolves (rule NOD010 reports the template)."""
    if hostname_error(g) is not None:
        return [f"{g.group}-{g.start_index + i}" for i in range(g.count)]
    return [g.hostname.format(index=g.start_index + i, group=g.group) for i in range(g.count)]


def rack_of_each(g: NodeGroup) -> list[str]:
    """A list of racks spreads the group evenly in order: 4 nodes over [r01, r02] -> 2 + 2."""
    racks = [g.rack] if isinstance(g.rack, str) else list(g.rack)
    n, k = g.count, len(racks)
    return [racks[(i * k) // n] for i in range(n)]


def node_power_kw(g: NodeGroup) -> tuple[float, bool]:
    hw = g.hardware
    if hw.power_kw is not None:
        return hw.power_kw, False
    spec = catalog.gpu(hw.gpu.model) if hw.gpu else None
    if spec is not None and spec.tdp_w:
        return round(OEM_POWER_FACTOR * spec.tdp_w * hw.gpu.count / 1000, 3), True
    return CPU_NODE_KW, True


def gpu_tdp_kw(g: NodeGroup) -> float | None:
    """Sum of the GPUs' TDP per node in kW; None without GPUs or a catalog TDP."""
    hw = g.hardware
    spec = catalog.gpu(hw.gpu.model) if hw.gpu else None
    if spec is None or not spec.tdp_w:
        return None
    return round(spec.tdp_w * hw.gpu.count / 1000, 3)


def _ports(g: NodeGroup, prefix: str) -> int:
    return sum(n.count * n.ports for n in g.hardware.nics if n.name.startswith(prefix))


def nic_gbps(g: NodeGroup, prefix: str = "compute") -> int:
    """Aggregate Gb/s per node of the NICs serving `prefix` (count x ports x speed)."""
    return sum(n.count * n.ports * n.speed_gbps for n in g.hardware.nics if n.name.startswith(prefix))


def training_nodes(f: Factory) -> int:
    """GPU nodes Slurm schedules (the site trains when this is > 0)."""
    if not f.slurm.enabled:
        return 0
    return sum(g.count for g in f.nodes if g.hardware.gpu and "slurm-compute" in g.roles)


def slurm_gpus(g: NodeGroup) -> int:
    """GPUs per node Slurm schedules: gpu_split.slurm where the group declares a split, else
    every GPU of a slurm-compute node (none without the role)."""
    gpu = g.hardware.gpu
    if gpu is None or "slurm-compute" not in g.roles:
        return 0
    return min(g.gpu_split.slurm, gpu.count) if g.gpu_split else gpu.count


def kube_gpus(g: NodeGroup) -> int:
    """GPUs per node the Kubernetes device plugin advertises: gpu_split.kubernetes where the
    group declares a split (the devices after Slurm's), else every GPU of a kube-worker."""
    gpu = g.hardware.gpu
    if gpu is None or "kube-worker" not in g.roles:
        return 0
    if g.gpu_split:
        return max(0, min(g.gpu_split.kubernetes, gpu.count - slurm_gpus(g)))
    return gpu.count


def platform_gpus(g: NodeGroup, platform: str) -> int:
    """GPUs per node of `g` that a platform (slurm | kubernetes) schedules."""
    return kube_gpus(g) if platform == "kubernetes" else slurm_gpus(g)


def group_facts(f: Factory, g: NodeGroup) -> GroupFacts:
    power, estimated = node_power_kw(g)
    gpu = g.hardware.gpu
    return GroupFacts(
        name=g.group,
        count=g.count,
        hostnames=tuple(hostnames(g)),
        racks=tuple(rack_of_each(g)),
        gpus_per_node=gpu.count if gpu else 0,
        gpu_model=gpu.model if gpu else None,
        power_kw=power,
        power_estimated=estimated,
        compute_ports=_ports(g, "compute"),
        storage_ports=_ports(g, "storage"),
        country=g.location.country if g.location else f.site.country,
    )


def _addresses(cidr: str, reserved: int, n: int) -> tuple[list[str | None], int]:
    net = ipaddress.IPv4Network(cidr)
    first = int(net.network_address) + 1 + reserved
    last = int(net.broadcast_address) - 1
    capacity = max(0, last - first + 1)
    out: list[str | None] = [
        str(ipaddress.IPv4Address(first + i)) if i < capacity else None for i in range(n)
    ]
    return out, capacity


def build_hosts(f: Factory, facts: list[GroupFacts]) -> tuple[list[Host], IpPlan, IpPlan | None]:
    total = sum(g.count for g in facts)
    mgmt = f.fabric.management
    mgmt_addrs, mgmt_cap = _addresses(mgmt.cidr, mgmt.reserved, total)
    oob = f.fabric.oob
    oob_addrs, oob_cap = _addresses(oob.cidr, oob.reserved, total) if oob else ([None] * total, 0)
    hosts: list[Host] = []
    i = 0
    for ng, gf in zip(f.nodes, facts, strict=True):
        explicit = ng.network.management.addresses
        for j, (name, rack) in enumerate(zip(gf.hostnames, gf.racks, strict=True)):
            addr = explicit[j] if j < len(explicit) else mgmt_addrs[i]
            hosts.append(
                Host(name, ng.group, ng.start_index + j, rack, tuple(ng.roles), addr,
                     oob_addrs[i], gf.gpus_per_node, gf.country)
            )
            i += 1
    return (
        hosts,
        IpPlan(mgmt.cidr, mgmt_cap, total),
        IpPlan(oob.cidr, oob_cap, total) if oob else None,
    )


def rack_loads(f: Factory, facts: list[GroupFacts]) -> list[RackLoad]:
    it: dict[str, float] = {}
    hosts: dict[str, int] = {}
    gpus: dict[str, int] = {}
    for g in facts:
        for r in g.racks:
            it[r] = it.get(r, 0.0) + g.power_kw
            hosts[r] = hosts.get(r, 0) + 1
            gpus[r] = gpus.get(r, 0) + g.gpus_per_node
    pue = f.facility.pue
    out = [
        RackLoad(r.name, round(it.get(r.name, 0.0), 3), round(it.get(r.name, 0.0) * pue, 3),
                 r.power_kw, r.cooling, hosts.get(r.name, 0), gpus.get(r.name, 0))
        for r in f.facility.racks
    ]
    declared = {r.name for r in f.facility.racks}
    for name in sorted(set(it) - declared):  # referenced but undeclared: shown, and NOD005 fires
        out.append(RackLoad(name, round(it[name], 3), round(it[name] * pue, 3), 0.0, "unknown",
                            hosts[name], gpus[name], declared=False))
    return out


KUBE_ROLES = ("kube-control-plane", "kube-worker")


def pod_cidr_plan(f: Factory, hosts: list[Host]) -> IpPlan | None:
    """Per-node pod subnets (node_pod_prefix) the pod CIDR holds, against Kubernetes nodes."""
    k = f.kubernetes
    if not k.enabled:
        return None
    net = ipaddress.IPv4Network(k.pod_cidr)
    capacity = 2 ** (k.node_pod_prefix - net.prefixlen) if k.node_pod_prefix >= net.prefixlen else 0
    needed = sum(1 for h in hosts if any(r in KUBE_ROLES for r in h.roles))
    return IpPlan(k.pod_cidr, capacity, needed)


# --- fabric ----------------------------------------------------------------------------------


def switch_radix(model: str | None, gbps: int) -> int:
    """Ports a switch offers at gbps: the catalog's breakout table where it lists the speed
    (SN5600: 256 ports at 100G, not 512), else native ports or even splits (64x400G -> 128x200G)."""
    spec = catalog.switch(model) if model else None
    if spec is None or gbps <= 0:
        return 0
    if spec.ports_at(gbps):
        return spec.ports_at(gbps)
    if gbps == spec.port_gbps:
        return spec.ports
    if gbps < spec.port_gbps and spec.port_gbps % gbps == 0:
        return spec.ports * (spec.port_gbps // gbps)
    return 0


def _spines_for(leaves: int, uplinks: int, radix: int) -> int:
    """Fewest spines that take every uplink with equal links from each leaf to each spine."""
    if leaves <= 1:
        return 0
    need = math.ceil(leaves * uplinks / radix)
    for s in range(need, uplinks + 1):
        if uplinks % s == 0:
            return s
    return need


def size_fabric(name: str, endpoints: int, gbps: int, switch: str | None, oversubscription: float,
                planes: int = 1, rails: int = 0, gpu_nodes: int = 0, su_nodes: int | None = None) -> FabricSize:
    """Leaf/spine/core counts: k-port switches, k/2 down and k/2 up when non-blocking
    (fat-tree arithmetic, checked against the DGX SuperPOD H100/B200 RA tables); rail-optimised fabrics build `rails` leaves per scalable unit."""
    k = switch_radix(switch, gbps)
    if k < 2 or endpoints == 0:
        return FabricSize(name, endpoints, gbps, k, 0, 0, planes, 0, 0, 0, 0, 0, 0, 0, endpoints, 0, 0)
    down = max(1, math.floor(k * oversubscription / (1 + oversubscription)))
    up = k - down
    per_plane = math.ceil(endpoints / planes)
    per_node_rail_ports = max(1, per_plane // max(1, gpu_nodes * rails)) if rails and gpu_nodes else 1
    nodes_per_su = su_nodes or max(1, down // per_node_rail_ports)
    sus = math.ceil(gpu_nodes / nodes_per_su) if rails and gpu_nodes else 0
    leaves = max(math.ceil(per_plane / down), sus * rails)
    two_tier_max = k * down
    if leaves == 1:
        spines = cores = 0
        tiers = 1
        max_ep = down
    elif per_plane <= two_tier_max:
        spines, cores, tiers, max_ep = _spines_for(leaves, up, k), 0, 2, two_tier_max
    else:
        spines = leaves  # every pod's spine layer mirrors its leaves: d down, k-d up
        cores = math.ceil(spines * up / k)
        tiers, max_ep = 3, k * down * up
    return FabricSize(
        name=name, endpoints=endpoints, port_gbps=gbps, radix=k,
        downlinks_per_leaf=down, uplinks_per_leaf=up, planes=planes,
        scalable_units=sus, nodes_per_su=nodes_per_su if rails else 0,
        leaves=leaves * planes, spines=spines * planes, cores=cores * planes, tiers=tiers,
        max_endpoints=max_ep * planes, node_leaf_cables=endpoints,
        leaf_spine_cables=(leaves * up if spines else 0) * planes,
        spine_core_cables=(spines * up if cores else 0) * planes,
    )


def compute_fabric(cf: ComputeFabric, facts: list[GroupFacts]) -> FabricSize:
    endpoints = sum(g.count * g.compute_ports for g in facts)
    gpu_nodes = sum(g.count for g in facts if g.gpus_per_node and g.compute_ports)
    rails = cf.rails if cf.topology == "rail-optimized" else 0
    return size_fabric("compute", endpoints, cf.link_gbps, cf.switch, cf.oversubscription,
                       cf.planes, rails, gpu_nodes, cf.su_nodes)


# --- inference -------------------------------------------------------------------------------

PRECISION_BYTES = catalog.PRECISION_BYTES


def model_shape(inf) -> Any:
    """The architecture a deployment serves: its model_spec, else the catalog entry, else None."""
    return inf.model_spec or catalog.llm(inf.model)


def inference_groups(f: Factory, inf) -> list[NodeGroup]:
    """Node groups a deployment may be placed on: GPU groups with the platform's worker role
    (kube-worker or slurm-compute), narrowed to `nodes` when that is given."""
    role = "kube-worker" if inf.platform == "kubernetes" else "slurm-compute"
    wants_gpu = inf.device == "gpu"  # a CPU build runs on any node with the role
    return [
        ng for ng in f.nodes
        if (ng.hardware.gpu or not wants_gpu) and role in ng.roles and (not inf.nodes or ng.group in inf.nodes)
    ]


def inference_fit(f: Factory, inf, groups: dict[str, GroupFacts]) -> InferenceFit:
    chosen = inference_groups(f, inf)
    # Only the platform's share of a node shared through gpu_split (kube_gpus / slurm_gpus).
    available = sum(groups[ng.group].count * platform_gpus(ng, inf.platform) for ng in chosen)
    gpu_model = next((ng.hardware.gpu.model for ng in chosen if ng.hardware.gpu), None)
    gspec = catalog.gpu(gpu_model) if gpu_model else None
    spec = model_shape(inf)
    tp, pp = inf.tensor_parallel, inf.pipeline_parallel
    weights = kv = 0.0
    if spec is not None:
        weights = spec.params_b * 1e9 * PRECISION_BYTES[inf.precision] / (tp * pp) / GB
        kv_dtype = inf.kv_cache_dtype if inf.kv_cache_dtype != "auto" else (
            "bf16" if inf.precision in ("fp8", "int8", "fp4", "int4") else inf.precision)
        latent = getattr(spec, "kv_latent_dim", None)
        if latent:  # MLA: one latent per layer and token, replicated on every TP rank
            per_layer = latent
        else:  # KV heads split across TP ranks (replicated when TP exceeds them)
            per_layer = 2 * max(1, math.ceil(spec.kv_heads / tp)) * spec.head_dim
        per_token = math.ceil(spec.layers / pp) * per_layer * PRECISION_BYTES[kv_dtype]
        kv = per_token * inf.max_context * inf.max_num_seqs / GB
    hbm = gspec.memory_gb if gspec else 0.0
    return InferenceFit(
        name=inf.name, model=inf.model, known_model=spec is not None, gpu_model=gpu_model,
        gpus=tp * pp * inf.replicas if inf.device == "gpu" else 0, gpus_available=available,
        weights_gb_per_gpu=round(weights, 3), kv_gb_per_gpu=round(kv, 3),
        overhead_gb=RUNTIME_OVERHEAD_GB if spec is not None else 0.0,
        memory_gb_per_gpu=round(weights + kv + (RUNTIME_OVERHEAD_GB if spec else 0.0), 3),
        usable_gb_per_gpu=round(hbm * inf.gpu_memory_utilization, 3),
        groups=tuple(ng.group for ng in chosen),
        gpus_per_node=max((platform_gpus(ng, inf.platform) for ng in chosen), default=0),
        nvlink_domain=gspec.nvlink_domain if gspec else 0,
    )


def gpus_with_role(hosts: list[Host], role: str) -> int:
    """Every GPU on the hosts that carry `role` (kube-worker, slurm-compute), shared or not;
    what a scheduler may hand out is `Site.scheduled_gpus(platform)` (gpu_split's share)."""
    return sum(h.gpus for h in hosts if role in h.roles)


# --- GPU capabilities ------------------------------------------------------------------------
# The catalog has no MIG or FP4 figure yet; until it does, these families stand in (catalog
# canonical names up to the first '-'). A catalog field of the same meaning wins when present.
MIG_FAMILIES = frozenset({"A100", "A30", "H100", "H200", "H20", "B200", "B300", "GB200", "GB300"})
FP4_FAMILIES = frozenset({"B200", "B300", "GB200", "GB300", "MI350X", "MI355X"})  # Blackwell, CDNA4
EAR_3A090_TPP = 4800  # ECCN 3A090.a: total processing performance >= 4800 (EAR, 15 CFR 774 Supp. 1)


# Slurm releases that brought what the rendered configuration may use (SchedMD NEWS and
# slurm.conf(5)/topology.conf(5)): topology/block in 23.11, switch/nvidia_imex in 24.05.
# The lab's Debian bookworm slurm-wlm is 22.05, which has neither.
SLURM_BASE_RELEASE = (22, 5)
SLURM_BLOCK_TOPOLOGY = (23, 11)
SLURM_IMEX_SWITCH = (24, 5)


def slurm_release(version: str | None) -> tuple[int, int] | None:
    """(major, minor) of a declared slurm.version ("24.05.3", "v23.11" -> (24, 5), (23, 11));
    None when none is declared (the distribution's current release is assumed)."""
    if not version:
        return None
    parts = [int(p) for p in re.findall(r"\d+", version)[:2]]
    return (parts[0], parts[1] if len(parts) > 1 else 0) if parts else None


def slurm_supports(f: Factory, since: tuple[int, int]) -> bool:
    """Whether the declared Slurm release is at least `since` (true when none is declared)."""
    release = slurm_release(f.slurm.version)
    return release is None or release >= since


def slurm_imex_groups(f: Factory) -> list[str]:
    """Slurm compute groups whose NVLink domain spans nodes (NVL72 trays): their jobs need an
    IMEX channel, which switch/nvidia_imex sets up per job (NVIDIA IMEX guide, Slurm NEWS 24.05)."""
    out = []
    for ng in f.nodes:
        gpu = ng.hardware.gpu
        spec = catalog.gpu(gpu.model) if gpu else None
        if spec and "slurm-compute" in ng.roles and spec.nvlink_domain > gpu.count:
            out.append(ng.group)
    return out


def release_text(release: tuple[int, int]) -> str:
    return f"{release[0]}.{release[1]:02d}"


def recommended_topology(f: Factory, site: Site) -> tuple[str | None, str]:
    """Topology plugin for the Slurm GPU nodes, and why: block for multi-node NVLink domains
    (NVL72), tree for a switched compute fabric with more than one node, else None."""
    gpu_groups = [
        g for ng in f.nodes if "slurm-compute" in ng.roles
        for g in [site.groups.get(ng.group)] if g is not None and g.gpus_per_node
    ]
    for g in gpu_groups:
        spec = catalog.gpu(g.gpu_model) if g.gpu_model else None
        if spec is not None and rack_scale_nvlink(spec.nvlink_domain) and spec.nvlink_domain > g.gpus_per_node:
            return "block", f"{g.gpu_model} forms {spec.nvlink_domain}-GPU NVLink domains across nodes"
    if f.fabric.compute is not None and sum(g.count for g in gpu_groups) > 1:
        return "tree", f"the {f.fabric.compute.topology} {f.fabric.compute.type} compute fabric is a switch tree"
    return None, ""


def _family(spec) -> str:
    return spec.name.split("-")[0].upper()


def gpu_mig_capable(model: str | None) -> bool | None:
    """Whether the GPU can be split into MIG instances; None when the GPU is unknown."""
    spec = catalog.gpu(model) if model else None
    if spec is None:
        return None
    declared = getattr(spec, "mig", None)
    if isinstance(declared, bool):
        return declared
    return spec.vendor == "nvidia" and _family(spec) in MIG_FAMILIES


# NVIDIA GPU architecture of each catalog family (NVIDIA data center GPU pages; the driver
# branch and engine builds a GPU needs follow its architecture).
GPU_GENERATIONS = {"A100": "ampere", "L40S": "ada", "H100": "hopper", "H200": "hopper", "GH200": "hopper",
                   "B200": "blackwell", "B300": "blackwell", "GB200": "blackwell", "GB300": "blackwell"}


def gpu_generation(model: str | None) -> str | None:
    """ampere, ada, hopper or blackwell for an NVIDIA GPU of the catalog; None otherwise."""
    spec = catalog.gpu(model) if model else None
    if spec is None or spec.vendor != "nvidia":
        return None
    return GPU_GENERATIONS.get(_family(spec))


def group_arch(ng) -> str | None:
    """A node group's CPU architecture as Kubernetes labels it (kubernetes.io/arch: amd64,
    arm64); None when the CPU is not in the catalog."""
    spec = catalog.cpu(ng.hardware.cpu.model)
    if spec is None:
        return None
    return {"x86_64": "amd64", "aarch64": "arm64"}[spec.arch]


def gpu_native_precision(model: str | None, precision: str) -> bool | None:
    """Whether the GPU's tensor cores compute at `precision` (fp8: a catalog FP8 figure; fp4:
    Blackwell-class); None when the GPU is unknown. bf16/fp16/int8/int4 run on every catalog GPU."""
    spec = catalog.gpu(model) if model else None
    if spec is None:
        return None
    if precision == "fp8":
        return spec.fp8_tflops is not None
    if precision == "fp4":
        declared = spec.model_dump().get("fp4_tflops", ...)
        if declared is not ...:
            return declared is not None
        return _family(spec) in FP4_FAMILIES
    return True


def gpu_tpp(model: str | None) -> float | None:
    """US EAR 'total processing performance' of one GPU: dense TOPS x bit length, the highest
    over its precisions (bf16 x 16, fp8 x 8); None when the GPU is unknown."""
    spec = catalog.gpu(model) if model else None
    if spec is None:
        return None
    return max(spec.bf16_tflops * 16, (spec.fp8_tflops or 0.0) * 8)


# --- sovereignty -----------------------------------------------------------------------------


def jurisdiction_countries(jurisdiction: str | None) -> frozenset[str] | None:
    """Countries a jurisdiction covers: EU or EEA members, or one ISO country; None if unknown."""
    if not jurisdiction:
        return None
    key = jurisdiction.strip().upper()
    data = countries()
    if key in data["groups"]:
        return data["groups"][key]
    if key in data["iso"]:
        return frozenset({key})
    return None


def sovereign_countries(f: Factory) -> frozenset[str] | None:
    """Where machines, data, keys and operators may be: sovereignty.allowed_countries, else
    the jurisdiction's countries; None when the factory states no residency constraint."""
    s = f.sovereignty
    if s.allowed_countries:
        return frozenset(s.allowed_countries)
    return jurisdiction_countries(s.jurisdiction)


# --- the whole site --------------------------------------------------------------------------


def resolve(f: Factory) -> Site:
    facts = [group_facts(f, ng) for ng in f.nodes]
    groups: dict[str, GroupFacts] = {}
    for g in facts:
        groups.setdefault(g.name, g)  # a duplicate group name: NOD009 reports it
    hosts, mgmt, oob = build_hosts(f, facts)
    racks = rack_loads(f, facts)
    fabric: dict[str, FabricSize] = {}
    if f.fabric.compute:
        fabric["compute"] = compute_fabric(f.fabric.compute, facts)
    if f.fabric.storage:
        sf = f.fabric.storage
        eps = sum(g.count * g.storage_ports for g in facts)
        fabric["storage"] = size_fabric("storage", eps, sf.link_gbps, sf.switch, sf.oversubscription)
    inference = [inference_fit(f, inf, groups) for inf in f.inference]
    it_kw = sum(g.count * g.power_kw for g in facts)
    totals = {
        "nodes": len(hosts),
        "gpus": sum(g.count * g.gpus_per_node for g in facts),
        "racks": len(f.facility.racks),
        "it_kw": round(it_kw, 3),
        "facility_kw": round(it_kw * f.facility.pue, 3),
    }
    return Site(f, groups, hosts, racks, fabric, inference, mgmt, oob, totals)


# --- tenancy ---------------------------------------------------------------------------------


def gpu_type(model: str) -> str:
    """The canonical name of a GPU model (the catalog's, else as written): what per-type
    quotas and capacity are keyed by, so "h100-sxm5-80gb" and the catalog name meet."""
    spec = catalog.gpu(model)
    return spec.name if spec is not None else model


def gpu_capacity(site: Site) -> dict[str, int]:
    """GPUs of the site per GPU type, in node-group order."""
    out: dict[str, int] = {}
    for g in site.groups.values():
        if g.gpu_model and g.gpus_per_node:
            t = gpu_type(g.gpu_model)
            out[t] = out.get(t, 0) + g.count * g.gpus_per_node
    return out


@dataclass(frozen=True)
class QuotaUse:
    """Declared GPU quotas against the site's GPUs, per type ("*" = quotas given as a total)."""

    gpu_type: str
    capacity: int  # the site's GPUs of this type ("*": all GPUs)
    quota: int  # sum of the tenants' quotas of this type
    tenants: dict[str, int]

    @property
    def over(self) -> bool:
        return self.quota > self.capacity


def quota_use(site: Site) -> list[QuotaUse]:
    """Per GPU type the tenants' quotas for it against the GPUs of that type, then "*": every
    quota (typed or total) against every GPU. Empty without tenants."""
    f = site.factory
    if not f.tenants:
        return []
    cap = gpu_capacity(site)
    typed: dict[str, dict[str, int]] = {}
    for t in f.tenants:
        if isinstance(t.gpu_quota, dict):
            for model, n in t.gpu_quota.items():
                per = typed.setdefault(gpu_type(model), {})
                per[t.name] = per.get(t.name, 0) + n
    out = [QuotaUse(k, cap.get(k, 0), sum(v.values()), v) for k, v in typed.items()]
    totals = {t.name: t.gpu_total for t in f.tenants}
    out.append(QuotaUse("*", sum(cap.values()), sum(totals.values()), totals))
    return out


def cpu_cores(site: Site) -> int:
    """CPU cores of every host (sockets x cores per socket, the catalog's when not declared)."""
    return sum(ng.count * cpu_cores_of(ng) for ng in site.factory.nodes)


def cpu_cores_of(ng: NodeGroup) -> int:
    """Cores of one node of a group: sockets x cores per socket (the catalog's, else 1)."""
    cpu = ng.hardware.cpu
    cores = cpu.cores_per_socket
    if cores is None:
        spec = catalog.cpu(cpu.model)
        cores = spec.cores if spec else 1
    return cpu.sockets * cores


def memory_gb(site: Site) -> int:
    """Memory of every host, GB."""
    return int(sum(ng.count * ng.hardware.memory_gb for ng in site.factory.nodes))
