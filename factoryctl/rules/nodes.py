"""Rules: nodes (hardware known to the catalog, hostnames, racks, per-GPU CPU and memory, power, GPU split between schedulers)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from .. import catalog, resolve
from ..findings import Severity
from ..model import Factory
from ..resolve import Site
from .base import Issue, rule

MIN_CORES_PER_GPU = 7  # NVIDIA AI Enterprise RA, compute-node hardware minimum
MIN_RAM_GB_PER_GPU = 128  # same source
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def _did_you_mean(kind: str, name: str) -> str:
    close = catalog.suggest(kind, name)
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    known = catalog.names(kind)
    return f"known {kind} models: {', '.join(known)}" if known else f"add the {kind} to the catalog"


@rule("NOD001", Severity.error, "Unknown GPU model")
def unknown_gpu(f: Factory, site: Site) -> Iterable[Issue]:
    """A node group's `hardware.gpu.model` must name a GPU in the catalog (canonical name or
    alias), because power estimates, memory-fit checks and benchmark expectations are all read
    from the catalog entry."""
    for i, ng in enumerate(f.nodes):
        gpu = ng.hardware.gpu
        if gpu is not None and catalog.gpu(gpu.model) is None:
            yield Issue(("nodes", i, "hardware", "gpu", "model"),
                        f"unknown GPU model {gpu.model!r} in node group {ng.group!r}",
                        _did_you_mean("gpu", gpu.model))


@rule("NOD002", Severity.error, "Unknown NIC model")
def unknown_nic(f: Factory, site: Site) -> Iterable[Issue]:
    """Every `hardware.nics[].model` must name a NIC or DPU in the catalog, whose port speeds
    and fabrics the fabric rules check the declared `speed_gbps` against."""
    for i, ng in enumerate(f.nodes):
        for j, nic in enumerate(ng.hardware.nics):
            if catalog.nic(nic.model) is None:
                yield Issue(("nodes", i, "hardware", "nics", j, "model"),
                            f"unknown NIC model {nic.model!r} in node group {ng.group!r}",
                            _did_you_mean("nic", nic.model))


@rule("NOD003", Severity.warning, "Unknown CPU model")
def unknown_cpu(f: Factory, site: Site) -> Iterable[Issue]:
    """`hardware.cpu.model` should name a CPU in the catalog so that cores per GPU (NOD006) can
    be checked. With `cores_per_socket` declared the core count is known anyway, and the finding
    drops to info."""
    for i, ng in enumerate(f.nodes):
        cpu = ng.hardware.cpu
        if catalog.cpu(cpu.model) is None:
            declared = cpu.cores_per_socket is not None
            yield Issue(("nodes", i, "hardware", "cpu", "model"),
                        f"unknown CPU model {cpu.model!r} in node group {ng.group!r}"
                        + ("" if declared else "; its core count is unknown"),
                        _did_you_mean("cpu", cpu.model)
                        + ("" if declared else " (or declare hardware.cpu.cores_per_socket)"),
                        Severity.info if declared else None)


@rule("NOD004", Severity.error, "Hostnames collide")
def hostname_collision(f: Factory, site: Site) -> Iterable[Issue]:
    """Every expanded hostname must be unique across all node groups. Two groups whose
    templates produce the same name, or a template without `{index}` in a group of more than
    one node, would give two machines one name in DNS, inventory and Slurm."""
    owner: dict[str, str] = {}
    reported: set[int] = set()
    for i, ng in enumerate(f.nodes):
        for name in resolve.hostnames(ng):
            if name in owner and i not in reported:
                reported.add(i)
                other = owner[name]
                where = "within the group" if other == ng.group else f"with node group {other!r}"
                yield Issue(("nodes", i, "hostname"),
                            f"hostname template {ng.hostname!r} of node group {ng.group!r} yields "
                            f"{name!r}, which collides {where}",
                            "include {index} in the template and give each group a distinct prefix "
                            "(or a start_index that keeps the ranges apart)")
            owner.setdefault(name, ng.group)


@rule("NOD005", Severity.error, "Node group placed in an undeclared rack")
def undeclared_rack(f: Factory, site: Site) -> Iterable[Issue]:
    """Each rack a node group names in `rack` must be declared under `facility.racks`, where its
    power budget and cooling are given; otherwise its load cannot be checked. Sites that declare
    no racks at all (cloud providers) are not checked."""
    declared = {r.name for r in f.facility.racks}
    if not declared:
        return
    for i, ng in enumerate(f.nodes):
        racks = [(("nodes", i, "rack"), ng.rack)] if isinstance(ng.rack, str) else [
            (("nodes", i, "rack", j), r) for j, r in enumerate(ng.rack)]
        for loc, name in racks:
            if name not in declared:
                yield Issue(loc, f"node group {ng.group!r} is placed in rack {name!r}, which "
                            f"facility.racks does not declare (declared: {', '.join(sorted(declared))})",
                            f"declare rack {name!r} under facility.racks with its power_kw and "
                            "cooling, or place the group in a declared rack")


def _cores(ng) -> int | None:
    cpu = ng.hardware.cpu
    per_socket = cpu.cores_per_socket
    if per_socket is None:
        spec = catalog.cpu(cpu.model)
        per_socket = spec.cores if spec else None
    return per_socket * cpu.sockets if per_socket else None


@rule("NOD006", Severity.warning, "Too few CPU cores per GPU")
def cores_per_gpu(f: Factory, site: Site) -> Iterable[Issue]:
    """GPU nodes should have at least 7 physical CPU cores per GPU (sockets x cores per socket,
    from the catalog or `cores_per_socket`): the minimum of NVIDIA's AI Enterprise reference
    architecture compute-node requirements (docs.nvidia.com/ai-enterprise/reference-architecture,
    compute-node hardware)."""
    for i, ng in enumerate(f.nodes):
        gpu, cores = ng.hardware.gpu, _cores(ng)
        if gpu is None or cores is None:
            continue
        if cores < MIN_CORES_PER_GPU * gpu.count:
            yield Issue(("nodes", i, "hardware", "cpu"),
                        f"node group {ng.group!r} has {cores} CPU cores for {gpu.count} GPUs "
                        f"({cores / gpu.count:.1f} per GPU); at least {MIN_CORES_PER_GPU} per GPU "
                        f"({MIN_CORES_PER_GPU * gpu.count} cores) are recommended",
                        "choose a CPU with more cores or add a socket (hardware.cpu.model / sockets)")


@rule("NOD007", Severity.warning, "Too little system memory per GPU")
def ram_per_gpu(f: Factory, site: Site) -> Iterable[Issue]:
    """GPU nodes should have at least 128 GB of system RAM per GPU (`memory_gb` / GPU count):
    NVIDIA AI Enterprise reference architecture compute-node minimum (docs.nvidia.com/ai-enterprise/reference-architecture, compute-node hardware)."""
    for i, ng in enumerate(f.nodes):
        gpu = ng.hardware.gpu
        if gpu is None:
            continue
        need = MIN_RAM_GB_PER_GPU * gpu.count
        if ng.hardware.memory_gb < need:
            yield Issue(("nodes", i, "hardware", "memory_gb"),
                        f"node group {ng.group!r} has {ng.hardware.memory_gb} GB of RAM for "
                        f"{gpu.count} GPUs ({ng.hardware.memory_gb / gpu.count:.0f} GB per GPU); "
                        f"at least {MIN_RAM_GB_PER_GPU} GB per GPU ({need} GB) are recommended",
                        f"raise hardware.memory_gb to {need} or more")


@rule("NOD008", Severity.error, "Node power below its GPUs' TDP")
def node_power(f: Factory, site: Site) -> Iterable[Issue]:
    """A declared `hardware.power_kw` (maximum draw per node) cannot be below the sum of its
    GPUs' TDP from the catalog (error). Where no figure is declared for a GPU node, the estimate
    used for rack and site power is reported (info): 1.8 x the GPUs' TDP sum, the ratio of DGX
    maximum power to GPU TDP (DGX H100 10.2 kW / 5.6 kW, DGX B200 14.3 / 8.0; DGX user guides)."""
    for i, ng in enumerate(f.nodes):
        tdp = resolve.gpu_tdp_kw(ng)
        declared = ng.hardware.power_kw
        if declared is not None and tdp is not None and declared < tdp:
            yield Issue(("nodes", i, "hardware", "power_kw"),
                        f"node group {ng.group!r} declares {declared:g} kW per node, below the "
                        f"{tdp:g} kW TDP of its {ng.hardware.gpu.count} x {ng.hardware.gpu.model} alone",
                        f"use the vendor's maximum system power (about {resolve.OEM_POWER_FACTOR * tdp:.1f} kW "
                        "for an 8-GPU SXM system), or omit power_kw to use the estimate")
        elif declared is None and ng.hardware.gpu is not None:
            kw, _ = resolve.node_power_kw(ng)
            yield Issue(("nodes", i, "hardware"),
                        f"node group {ng.group!r} declares no power_kw; {kw:g} kW per node is assumed"
                        + (f" ({resolve.OEM_POWER_FACTOR} x {tdp:g} kW GPU TDP)" if tdp else ""),
                        "declare hardware.power_kw from the vendor's system specification",
                        Severity.info)


@rule("NOD009", Severity.error, "Duplicate node group name")
def duplicate_group(f: Factory, site: Site) -> Iterable[Issue]:
    """Node group names (`nodes[].group`) must be unique: partitions, storage clients and
    inference deployments refer to groups by name."""
    seen: dict[str, int] = {}
    for i, ng in enumerate(f.nodes):
        if ng.group in seen:
            yield Issue(("nodes", i, "group"),
                        f"node group name {ng.group!r} is already used by nodes[{seen[ng.group]}]",
                        "rename one of the groups (or merge them if they are the same hardware)")
        seen.setdefault(ng.group, i)


@rule("NOD010", Severity.error, "Hostname is not a valid RFC 1123 label")
def hostname_label(f: Factory, site: Site) -> Iterable[Issue]:
    """The hostname template must expand, for every index, to an RFC 1123 label: 1-63 lowercase
    letters, digits and '-', starting and ending with a letter or digit. A template whose format
    spec cannot be applied to an integer index (`{index:q}`) is reported here too."""
    for i, ng in enumerate(f.nodes):
        err = resolve.hostname_error(ng)
        if err is not None:
            yield Issue(("nodes", i, "hostname"),
                        f"hostname template {ng.hostname!r} cannot be expanded ({err})",
                        "use {index} with an integer format such as {index:02d}, and {group}")
            continue
        bad = next((n for n in resolve.hostnames(ng) if not _LABEL.match(n)), None)
        if bad is not None:
            yield Issue(("nodes", i, "hostname"),
                        f"hostname template {ng.hostname!r} yields {bad!r}, which is not an RFC 1123 "
                        "label (1-63 lowercase letters, digits and '-', no leading or trailing '-')",
                        "use lowercase letters, digits and '-' only, e.g. gpu{index:02d}")


_BOTH = ("slurm-compute", "kube-worker")


@rule("NOD011", Severity.error, "GPUs handed to Slurm and Kubernetes at once")
def gpus_in_two_schedulers(f: Factory, site: Site) -> Iterable[Issue]:
    """A GPU node group with both the `slurm-compute` and `kube-worker` roles hands the same
    GPUs to two schedulers: slurmd's gres.conf and the Kubernetes device plugin would both
    allocate every device, and jobs of one land on GPUs the other is using. Such a group must
    declare `gpu_split: {slurm: N, kubernetes: M}`: Slurm then gets /dev/nvidia0..N-1, the
    device plugin the other M."""
    for i, ng in enumerate(f.nodes):
        gpu = ng.hardware.gpu
        if gpu is None or ng.gpu_split is not None or not all(r in ng.roles for r in _BOTH):
            continue
        half = gpu.count // 2
        yield Issue(("nodes", i, "roles"),
                    f"node group {ng.group!r} is slurm-compute and kube-worker, so both Slurm and "
                    f"Kubernetes would schedule all {gpu.count} GPUs of each node",
                    f"declare gpu_split: {{slurm: {gpu.count - half}, kubernetes: {half}}} on the group "
                    "(the two add up to its GPUs), or drop one of the two roles")


@rule("NOD012", Severity.error, "gpu_split does not match the node group")
def gpu_split_mismatch(f: Factory, site: Site) -> Iterable[Issue]:
    """`gpu_split.slurm + gpu_split.kubernetes` must equal the node's GPUs
    (`hardware.gpu.count`): fewer leaves devices no scheduler uses, more promises devices that
    do not exist. A split is only meaningful on a GPU group with both the `slurm-compute` and
    `kube-worker` roles."""
    for i, ng in enumerate(f.nodes):
        split = ng.gpu_split
        if split is None:
            continue
        loc = ("nodes", i, "gpu_split")
        gpu = ng.hardware.gpu
        if gpu is None:
            yield Issue(loc, f"node group {ng.group!r} declares gpu_split but has no GPUs",
                        "remove gpu_split, or declare hardware.gpu")
            continue
        missing = [r for r in _BOTH if r not in ng.roles]
        if missing:
            yield Issue(loc, f"node group {ng.group!r} declares gpu_split but lacks the "
                        f"{' and '.join(missing)} role, so one share has no scheduler",
                        f"add {' and '.join(missing)} to its roles, or remove gpu_split")
            continue
        total = split.slurm + split.kubernetes
        if total != gpu.count:
            yield Issue(loc, f"gpu_split of node group {ng.group!r} gives {split.slurm} GPUs to Slurm "
                        f"and {split.kubernetes} to Kubernetes ({total}), but each node has {gpu.count}",
                        f"make slurm + kubernetes equal {gpu.count}, e.g. "
                        f"{{slurm: {gpu.count - gpu.count // 2}, kubernetes: {gpu.count // 2}}}")
