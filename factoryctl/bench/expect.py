"""What a healthy factory should measure: expectations from the catalog and the fabric.

Every figure carries its unit, where it comes from, and whether it is a measured figure on
healthy hardware ("measured": the catalog's ``expected`` block, each figure with the published
result it comes from) or computed by a stated rule ("derived"). ``value`` is None when nothing supports a figure;
the judge then skips with the reason in ``source``.

Units: GB/s = 1e9 bytes/s (as nccl-tests prints), TFLOPS = 1e12 FLOP/s, link rates in Gb/s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict

from .. import catalog
from ..catalog import GPU
from ..resolve import rack_scale_nvlink

GIB = 1 << 30
# Bandwidth is judged only on sizes that reach the large-message plateau: 8x H100 NVLS reads
# 401 GB/s at 128 MB, 466 at 1 GB and 479 at 8 GB (Azure/AI-benchmarking-guide
# ND_H100_v5_results.md).
JUDGE_MIN_BYTES = GIB
NIC_EFFICIENCY = 0.96  # 48 of 50 GB/s per 400G NIC: NVIDIA quotes 46-49 (nccl-tests#290, #267)
# all_reduce on two nodes of NVLS GPUs (NVLS/NVLSTree, NCCL's default there): a healthy 2x8 H100
# with 8x 400G NDR NICs reached 469.21 GB/s busbw at 16 GiB (tests/fixtures/nccl/
# h100-2n-all_reduce-nvidia-i309.log, nccl-tests#309; NVIDIA/nccl#2409 takes ~470 as the norm),
# i.e. 1.173 x the NICs' line rate (8 x 50 GB/s): busbw is not a wire speed with NVLS
# (sjeaugey, nccl-tests#212). Measured on 2 nodes only: more nodes are judged on the ring figure.
NVLS_2N_RAIL_EFFICIENCY = round(469.21 / (8 * 50), 3)
RING_EFFICIENCY = 0.80  # NCCL's effective NVLink rate ~80 % of line rate (nccl-tests#212)
NVLS_MIN_GPUS = 5  # NCCL picks NVLS from 5 GPUs per NVLink domain (stas00/ml-engineering network/README.md, H200 sweep)
COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter", "alltoall")
GEMM_DTYPES = ("bf16", "fp16", "fp8")
# Rule of thumb when the catalog has no measured fraction (stas00/ml-engineering MAMF table):
# NVIDIA BF16 80-87 %,
# FP8 ~70-76 % of dense peak; MI300X ~45-55 %. The low end of each range is used.
GEMM_RULE = {("nvidia", "bf16"): 0.80, ("nvidia", "fp8"): 0.70,
             ("amd", "bf16"): 0.50, ("amd", "fp8"): 0.44}
HBM_RULE = 0.80  # BabelStream copy reaches ~80-90 % of peak (Azure/AI-benchmarking-guide); low end
HOST_LINK_RULE = 0.85  # PCIe Gen5 H2D 51-55 of ~63 GB/s (~87 %), A100 26.3 of 32 (Azure nvbandwidth)

Basis = Literal["measured", "derived", "none"]


class Expectation(BaseModel):
    """One expected achieved value (None: not known, ``source`` says why)."""

    model_config = ConfigDict(frozen=True)

    name: str  # nccl.all_reduce.busbw | gemm.bf16.tflops | hbm.copy.gbps | h2d.gbps | d2h.gbps
    value: float | None
    unit: str
    source: str
    basis: Basis = "measured"
    scope: str = ""  # "1 node x 8 GPUs" for NCCL figures, "per GPU" otherwise
    min_bytes: int | None = None  # NCCL: sizes below this are not judged

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")


@dataclass(frozen=True)
class Context:
    """What the expectations of one GPU node group depend on."""

    gpu: GPU
    gpus_per_node: int
    nodes: int = 1
    nic_ports: int = 0  # compute-fabric ports per node
    port_gbps: int = 0  # Gb/s per compute port
    fabric: str | None = None  # infiniband | roce | ethernet
    group: str | None = None


def _none(name: str, unit: str, why: str, scope: str = "") -> Expectation:
    return Expectation(name=name, value=None, unit=unit, source=why, basis="none", scope=scope)


def _scope(nodes: int, per_node: int) -> str:
    return f"{nodes} node{'s' if nodes > 1 else ''} x {per_node} GPUs"


# --- NCCL ------------------------------------------------------------------------------------


def _ring(gpu: GPU) -> tuple[float | None, str, Basis]:
    """Ring busbw inside one NVLink domain: the catalog's NVLS-off figure, else 80 % of NVLink."""
    exp = gpu.expected
    if exp.nccl_busbw_no_nvls_gbps is not None:
        return exp.nccl_busbw_no_nvls_gbps, exp.source("nccl_busbw_no_nvls_gbps") or "catalog", "measured"
    if gpu.nvlink_gbps > 0:
        val = round(RING_EFFICIENCY * gpu.nvlink_gbps, 1)
        return val, (f"{RING_EFFICIENCY:.0%} of the {gpu.nvlink_gbps:g} GB/s NVLink line rate "
                     "(NCCL's protocol overhead ~20 %, sjeaugey in nccl-tests#212)"), "derived"
    return None, f"{gpu.name} has no NVLink and no published PCIe-only figure was found", "none"


def _domain_figure(gpu: GPU, collective: str, gpus: int) -> tuple[float | None, str, Basis]:
    """busbw of `gpus` ranks inside one NVLink domain."""
    ring, ring_src, ring_basis = _ring(gpu)
    if collective == "all_reduce" and gpu.nvls and gpus >= NVLS_MIN_GPUS:
        nvls = gpu.expected.nccl_busbw_nvls_gbps
        if nvls is not None:
            return nvls, f"NVLS: {gpu.expected.source('nccl_busbw_nvls_gbps')}", "measured"
        if ring is not None:
            return ring, f"NVLS, no NVLS figure in the catalog, so the ring one: {ring_src}", ring_basis
    if ring is None:
        return None, ring_src, "none"
    if collective == "alltoall":
        return ring, ("alltoall over NVLink: each GPU's link carries (n-1)/n of its buffer, taken "
                      f"at the ring's effective rate (no measured figure): {ring_src}"), "derived"
    why = (f"ring (NVLS needs an NVLS GPU and >= {NVLS_MIN_GPUS} GPUs)" if collective == "all_reduce"
           else f"ring ({collective} has no NVLS path, nccl-tests#212)")
    return ring, f"{why}: {ring_src}", ring_basis


def _nic_gbytes(ctx: Context, ranks_per_node: int) -> tuple[float, int]:
    """Per-node NIC busbw a ring reaches: one NIC per rank, up to the node's compute ports."""
    nics = min(ctx.nic_ports, ranks_per_node)
    return round(nics * ctx.port_gbps / 8 * NIC_EFFICIENCY, 1), nics


def nccl_busbw(ctx: Context, collective: str, ranks_per_node: int | None = None,
               nodes: int | None = None) -> Expectation:
    """Expected large-message busbw of a collective on `nodes` x `ranks_per_node` ranks."""
    per_node = ranks_per_node or ctx.gpus_per_node
    nodes = nodes or 1
    name, unit, scope = f"nccl.{collective}.busbw", "GB/s", _scope(nodes, per_node)
    gpu = ctx.gpu
    if collective not in COLLECTIVES:
        return _none(name, unit, f"no expectation for {collective} (judged: {', '.join(COLLECTIVES)})", scope)
    total = per_node * nodes
    if total < 2:
        return _none(name, unit, "one rank: nothing is communicated", scope)
    rack_domain = rack_scale_nvlink(gpu.nvlink_domain)  # NVL72: one NVLink domain across nodes
    if nodes == 1 or (rack_domain and total <= gpu.nvlink_domain):
        if gpu.nvlink_gbps > 0 and per_node > gpu.nvlink_domain and not rack_domain:
            return _none(name, unit, f"{per_node} GPUs exceed {gpu.name}'s NVLink domain of "
                         f"{gpu.nvlink_domain}: traffic crosses PCIe; no sourced figure", scope)
        val, src, basis = _domain_figure(gpu, collective, total)
        if rack_domain and nodes > 1:
            src = f"one NVLink domain of {gpu.nvlink_domain} GPUs spans the nodes: {src}"
        exp = Expectation(name=name, value=val, unit=unit, source=src, basis=basis, scope=scope,
                          min_bytes=JUDGE_MIN_BYTES)
        return exp if val is not None else _none(name, unit, src, scope)
    if ctx.nic_ports <= 0 or ctx.port_gbps <= 0:
        return _none(name, unit, "no compute-fabric NICs declared for the group", scope)
    nic, used = _nic_gbytes(ctx, per_node)
    eff = (f"{NIC_EFFICIENCY * ctx.port_gbps / 8:.0f} of {ctx.port_gbps / 8:g} GB/s per "
           f"{ctx.port_gbps}G NIC (NVIDIA: 46-49 GB/s per 400G NIC, nccl-tests#290/#267)")
    if collective == "alltoall":
        val = round(ctx.port_gbps / 8 * NIC_EFFICIENCY, 1)
        return Expectation(name=name, value=val, unit=unit, basis="derived", scope=scope,
                           min_bytes=JUDGE_MIN_BYTES,
                           source=f"alltoall cannot aggregate NICs: one NIC's rate, {eff} "
                                  "(sjeaugey nccl-tests#267)")
    intra = None
    if per_node > 1:  # the ring also crosses NVLink inside each node
        intra = nccl_busbw(ctx, "all_gather", per_node, 1).value
        if intra is None:
            return _none(name, unit, "no figure for the intra-node part of the ring: "
                         + nccl_busbw(ctx, "all_gather", per_node, 1).source, scope)
    if collective == "all_reduce" and gpu.nvls and per_node >= NVLS_MIN_GPUS and nodes == 2:
        return _nvls_two_nodes(ctx, per_node, scope)
    val = nic if intra is None else min(nic, intra)
    src = f"ring across nodes: {used} NICs x {eff} = {nic:g} GB/s"
    if intra is not None and intra < nic:
        src += f", bounded by the single-node ring figure {intra:g} GB/s"
    return Expectation(name=name, value=val, unit=unit, source=src, basis="derived",
                       scope=scope, min_bytes=JUDGE_MIN_BYTES)


def _nvls_two_nodes(ctx: Context, per_node: int, scope: str) -> Expectation:
    """all_reduce on 2 nodes of NVLS GPUs: what healthy runs reach per rail (NIC), times the
    rails, bounded by the single-node NVLS figure. One rail of 8 down reads ~7/8 of it."""
    rails = min(ctx.nic_ports, per_node)
    line = rails * ctx.port_gbps / 8
    val = round(line * NVLS_2N_RAIL_EFFICIENCY, 1)
    src = (f"NVLS across 2 nodes: {rails} rails x {ctx.port_gbps / 8:g} GB/s line rate x "
           f"{NVLS_2N_RAIL_EFFICIENCY} (healthy 2x8 H100 + 8x 400G NDR: 469.21 GB/s, nccl-tests#309 "
           f"log; NVIDIA/nccl#2409) = {val:g} GB/s")
    single = nccl_busbw(ctx, "all_reduce", per_node, 1).value
    if single is not None and single < val:
        val, src = single, f"{src}, bounded by the single-node figure {single:g} GB/s"
    return Expectation(name="nccl.all_reduce.busbw", value=val, unit="GB/s", source=src,
                       basis="derived", scope=scope, min_bytes=JUDGE_MIN_BYTES)


# --- GEMM, memory, host link -----------------------------------------------------------------


def gemm_tflops(gpu: GPU, dtype: str) -> Expectation:
    """Expected large dense GEMM throughput: a fraction of the dense peak for the dtype."""
    name, unit = f"gemm.{dtype}.tflops", "TFLOPS"
    if dtype not in GEMM_DTYPES:
        return _none(name, unit, f"no dense-peak figure for {dtype} in the catalog", "per GPU")
    peak_key = "fp8" if dtype == "fp8" else "bf16"
    peak = gpu.fp8_tflops if dtype == "fp8" else gpu.bf16_tflops
    if peak is None:
        return _none(name, unit, f"{gpu.name} has no {dtype.upper()} tensor cores", "per GPU")
    field = f"gemm_{peak_key}_fraction"
    frac = getattr(gpu.expected, field)
    if frac is not None:
        src, basis = gpu.expected.source(field) or "catalog", "measured"
    else:
        frac = GEMM_RULE.get((gpu.vendor, peak_key))
        if frac is None:
            return _none(name, unit, f"no GEMM fraction for {gpu.vendor} {dtype}", "per GPU")
        src, basis = (f"rule of thumb {frac:.0%} of dense peak (stas00/ml-engineering MAMF table: NVIDIA "
                      "BF16 80-87 %, FP8 ~70-76 %, MI300X ~45-55 %)"), "derived"
    if dtype == "fp16":
        src = f"FP16 tensor-core peak equals BF16 (Azure ND_A100_v4_results.md: A100 FP16 256.5 = 82 % of 312); {src}"
    val = round(frac * peak, 1)
    return Expectation(name=name, value=val, unit=unit, basis=basis, scope="per GPU",
                       source=f"{frac:.1%} of {peak:g} dense {peak_key.upper()} TFLOPS: {src}")


def hbm_copy(gpu: GPU) -> Expectation:
    """Expected device-to-device copy bandwidth (read + write bytes / time)."""
    peak = gpu.hbm_tbps * 1000
    frac = gpu.expected.hbm_copy_fraction
    if frac is not None:
        src, basis = gpu.expected.source("hbm_copy_fraction") or "catalog", "measured"
    else:
        frac, basis = HBM_RULE, "derived"
        src = "rule of thumb: copy reaches ~80-90 % of peak (Azure/AI-benchmarking-guide BabelStream); low end"
    return Expectation(name="hbm.copy.gbps", value=round(frac * peak, 1), unit="GB/s", basis=basis,
                       scope="per GPU", source=f"{frac:.1%} of {peak:g} GB/s peak: {src}")


def host_copy(gpu: GPU, direction: str = "h2d") -> Expectation:
    """Expected pinned host<->device copy bandwidth; D2H is taken equal to H2D."""
    name, unit = f"{direction}.gbps", "GB/s"
    same = "" if direction == "h2d" else "D2H read equal to H2D in every source (Azure nvbandwidth results); "
    if gpu.expected.h2d_gbps is not None:
        return Expectation(name=name, value=gpu.expected.h2d_gbps, unit=unit, scope="per GPU",
                           source=same + (gpu.expected.source("h2d_gbps") or "catalog"))
    if gpu.host_link_gbps:
        val = round(HOST_LINK_RULE * gpu.host_link_gbps, 1)
        return Expectation(name=name, value=val, unit=unit, basis="derived", scope="per GPU",
                           source=same + f"{HOST_LINK_RULE:.0%} of the {gpu.host_link_gbps:g} GB/s "
                                  "host link (Azure nvbandwidth: PCIe Gen5 H2D 51-55 of ~63 GB/s)")
    return _none(name, unit, f"no host-link figure for {gpu.name}", "per GPU")


# --- one group / the whole factory -----------------------------------------------------------


def expectations(ctx: Context) -> list[Expectation]:
    """The full table for a group: NCCL on one node and on all nodes, GEMM, HBM, host link."""
    out = [nccl_busbw(ctx, c, ctx.gpus_per_node, 1) for c in COLLECTIVES]
    if ctx.nodes > 1:
        out += [nccl_busbw(ctx, c, ctx.gpus_per_node, ctx.nodes) for c in COLLECTIVES]
    out += [gemm_tflops(ctx.gpu, d) for d in GEMM_DTYPES]
    out += [hbm_copy(ctx.gpu), host_copy(ctx.gpu, "h2d"), host_copy(ctx.gpu, "d2h")]
    return out


def contexts(factory, site=None) -> list[Context]:
    """One Context per node group with a GPU the catalog knows (an unknown GPU gets none: the
    NOD rules report it). Ports per node come from the site's facts when given."""
    cf = factory.fabric.compute
    out = []
    for ng in factory.nodes:
        hw = ng.hardware
        spec = catalog.gpu(hw.gpu.model) if hw.gpu else None
        if spec is None:
            continue
        nics = [n for n in hw.nics if n.name.startswith("compute")]
        facts = site.groups.get(ng.group) if site is not None else None
        ports = facts.compute_ports if facts else sum(n.count * n.ports for n in nics)
        speed = min((n.speed_gbps for n in nics), default=0)
        if cf is not None:
            speed = min(speed, cf.link_gbps) if speed else cf.link_gbps
            ports = ports or cf.rails
        out.append(Context(gpu=spec, gpus_per_node=hw.gpu.count, nodes=ng.count, nic_ports=ports,
                           port_gbps=speed, fabric=cf.type if cf else None, group=ng.group))
    return out


def for_gpu(name: str | None, gpus_per_node: int = 8) -> Context | None:
    """A one-node Context from a GPU name alone (nvidia-smi spelling works), for runs without FILE."""
    spec = catalog.gpu(name) if name else None
    return Context(gpu=spec, gpus_per_node=gpus_per_node) if spec else None
