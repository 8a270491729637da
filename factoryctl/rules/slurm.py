"""Rules: slurm. Partitions, controller and accounting roles, containers, MPI and topology.

Every rule here is silent while `slurm.enabled` is false.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from ..findings import Severity
from ..model import Factory
from ..model.slurm import Partition
from ..resolve import (
    SLURM_BLOCK_TOPOLOGY,
    SLURM_IMEX_SWITCH,
    Site,
    recommended_topology,
    release_text,
    slurm_imex_groups,
    slurm_release,
)
from .base import Issue, Loc, rule


def _did_you_mean(name: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _partition_groups(i: int, p: Partition) -> list[tuple[Loc, str]]:
    """(YAML path, group name) of each node group a partition names."""
    base: Loc = ("slurm", "partitions", i, "nodes")
    if isinstance(p.nodes, str):
        return [(base, p.nodes)]
    return [((*base, j), g) for j, g in enumerate(p.nodes)]


def _roles(f: Factory, group: str) -> set[str]:
    return {r for ng in f.nodes if ng.group == group for r in ng.roles}


def _hosts_with(site: Site, role: str) -> int:
    return sum(1 for h in site.hosts if role in h.roles)


@rule("SLM001", Severity.error, "partition names an unknown node group")
def partition_unknown_group(f: Factory, site: Site) -> Iterable[Issue]:
    """Each name in `slurm.partitions[].nodes` must be a `nodes[].group`: the partition's
    `Nodes=` list in slurm.conf is built from those groups' hostnames."""
    if not f.slurm.enabled:
        return
    for i, p in enumerate(f.slurm.partitions):
        for loc, g in _partition_groups(i, p):
            if g not in site.groups:
                yield Issue(
                    loc,
                    f"partition {p.name!r} names node group {g!r}, which is not declared"
                    f"{_did_you_mean(g, site.groups)}",
                    f"use one of the groups under nodes: {', '.join(sorted(site.groups))}",
                )


@rule("SLM002", Severity.error, "duplicate partition name")
def partition_duplicate(f: Factory, site: Site) -> Iterable[Issue]:
    """Partition names must be unique: slurm.conf keeps one `PartitionName=` line per name and
    a second definition would silently replace the first."""
    if not f.slurm.enabled:
        return
    seen: dict[str, int] = {}
    for i, p in enumerate(f.slurm.partitions):
        if p.name in seen:
            yield Issue(
                ("slurm", "partitions", i, "name"),
                f"partition name {p.name!r} is already used by slurm.partitions[{seen[p.name]}]",
                "rename one of the partitions, or merge their node groups into one entry",
            )
        else:
            seen[p.name] = i


@rule("SLM003", Severity.error, "default partition: more than one, or none")
def partition_default(f: Factory, site: Site) -> Iterable[Issue]:
    """Exactly one partition should carry `default: true` (slurm.conf `Default=YES`): it takes
    jobs submitted without `-p`. More than one is an error (only one can win); none is
    reported as info, since every job must then name its partition."""
    if not f.slurm.enabled or not f.slurm.partitions:
        return
    defaults = [i for i, p in enumerate(f.slurm.partitions) if p.default]
    for i in defaults[1:]:
        yield Issue(
            ("slurm", "partitions", i, "default"),
            f"partition {f.slurm.partitions[i].name!r} is a second default partition; "
            f"{f.slurm.partitions[defaults[0]].name!r} already is the default",
            "set default: true on one partition only",
        )
    if not defaults:
        yield Issue(
            ("slurm", "partitions"),
            "no partition has default: true, so jobs submitted without -p/--partition are refused",
            f"set default: true on the partition most jobs use (e.g. {f.slurm.partitions[0].name!r})",
            Severity.info,
        )


@rule("SLM004", Severity.error, "Slurm enabled without a controller host")
def no_controller(f: Factory, site: Site) -> Iterable[Issue]:
    """Slurm needs slurmctld: at least one host whose group has the `slurm-controller` role."""
    if f.slurm.enabled and not _hosts_with(site, "slurm-controller"):
        yield Issue(
            ("slurm", "enabled"),
            "slurm is enabled but no node group has the slurm-controller role, so nothing runs slurmctld",
            "add slurm-controller to the roles of a head/management group (3 hosts give controller failover)",
        )


@rule("SLM005", Severity.error, "partition group lacks the slurm-compute role")
def partition_group_not_compute(f: Factory, site: Site) -> Iterable[Issue]:
    """A partition's node groups must have the `slurm-compute` role; otherwise slurmd is not
    installed on them and the partition's nodes stay DOWN."""
    if not f.slurm.enabled:
        return
    for i, p in enumerate(f.slurm.partitions):
        for loc, g in _partition_groups(i, p):
            if g in site.groups and "slurm-compute" not in _roles(f, g):
                yield Issue(
                    loc,
                    f"partition {p.name!r} uses node group {g!r}, which lacks the slurm-compute role",
                    f"add slurm-compute to the roles of node group {g!r}, or take it out of the partition",
                )


@rule("SLM006", Severity.error, "pyxis without enroot")
def pyxis_without_enroot(f: Factory, site: Site) -> Iterable[Issue]:
    """pyxis is a SPANK plugin that runs containers through enroot (NVIDIA/pyxis README):
    `containers.pyxis: true` needs `containers.enroot: true`."""
    c = f.slurm.containers
    if f.slurm.enabled and c is not None and c.pyxis and not c.enroot:
        yield Issue(
            ("slurm", "containers", "enroot"),
            "containers.pyxis is true but containers.enroot is false; pyxis cannot start containers without enroot",
            "set slurm.containers.enroot: true",
        )


def _partition_gpu_nodes(site: Site, i: int, p: Partition) -> int:
    names = {g for _, g in _partition_groups(i, p)}
    return sum(g.count for n, g in site.groups.items() if n in names and g.gpus_per_node)


@rule("SLM007", Severity.warning, "multi-node GPU partition with mpi_default none")
def mpi_none_multinode(f: Factory, site: Site) -> Iterable[Issue]:
    """Multi-node GPU jobs launched by `srun` need a PMI (`MpiDefault=pmix` or `pmi2`) so that
    NCCL/MPI ranks find each other; `mpi_default: none` leaves it to every job to set --mpi."""
    if not f.slurm.enabled or f.slurm.mpi_default != "none":
        return
    multi = [p.name for i, p in enumerate(f.slurm.partitions) if _partition_gpu_nodes(site, i, p) > 1]
    if multi:
        yield Issue(
            ("slurm", "mpi_default"),
            f"mpi_default is none, yet partition(s) {', '.join(multi)} span more than one GPU node",
            "set slurm.mpi_default: pmix (or pmi2)",
        )


@rule("SLM008", Severity.warning, "Slurm topology plugin does not match the hardware")
def topology_mismatch(f: Factory, site: Site) -> Iterable[Issue]:
    """`topology/block` suits multi-node NVLink domains (NVL72: nvlink_domain larger than the
    GPUs per node); `topology/tree` suits switched IB/Ethernet fabrics (SchedMD topology.conf(5),
    slurm.schedmd.com/topology.conf.html). Only an explicit setting other than `auto` and the recommended one warns."""
    if not f.slurm.enabled or f.slurm.topology == "auto":
        return
    want, why = recommended_topology(f, site)
    if want is not None and f.slurm.topology != want:
        yield Issue(
            ("slurm", "topology"),
            f"topology is {f.slurm.topology!r}, but {why}: jobs may be placed across distant switches or domains",
            f"set slurm.topology: {want} (or auto)",
        )


@rule("SLM009", Severity.error, "Slurm enabled without compute nodes")
def no_compute(f: Factory, site: Site) -> Iterable[Issue]:
    """Slurm needs at least one host with the `slurm-compute` role to run slurmd and jobs."""
    if f.slurm.enabled and not _hosts_with(site, "slurm-compute"):
        yield Issue(
            ("slurm", "enabled"),
            "slurm is enabled but no node group has the slurm-compute role, so there is nowhere to run jobs",
            "add slurm-compute to the roles of the GPU node groups, or set slurm.enabled: false",
        )


@rule("SLM010", Severity.info, "accounting without a slurm-dbd host")
def accounting_without_dbd(f: Factory, site: Site) -> Iterable[Issue]:
    """`accounting: true` runs slurmdbd and its database. Without a host carrying the
    `slurm-dbd` role they are placed on the controller hosts, which is fine for small sites."""
    if f.slurm.enabled and f.slurm.accounting and not _hosts_with(site, "slurm-dbd"):
        yield Issue(
            ("slurm", "accounting"),
            "accounting is on but no node group has the slurm-dbd role; slurmdbd and its database run on the controller",
            "give slurm-dbd to a separate management group if the controller should not carry the database",
        )


@rule("SLM011", Severity.warning, "container images without pyxis")
def images_without_pyxis(f: Factory, site: Site) -> Iterable[Issue]:
    """Images in `slurm.containers.images` are pre-imported for `srun --container-image`,
    which only exists with the pyxis plugin."""
    c = f.slurm.containers
    if f.slurm.enabled and c is not None and c.images and not c.pyxis:
        yield Issue(
            ("slurm", "containers", "pyxis"),
            f"{len(c.images)} container image(s) are listed but pyxis is off, so srun cannot run them",
            "set slurm.containers.pyxis: true and enroot: true, or remove the images",
        )


@rule("SLM012", Severity.warning, "Slurm enabled without partitions")
def no_partitions(f: Factory, site: Site) -> Iterable[Issue]:
    """Jobs are submitted to partitions; a cluster without any accepts no work."""
    if f.slurm.enabled and not f.slurm.partitions:
        yield Issue(
            ("slurm", "partitions"),
            "slurm is enabled but declares no partitions, so no job can be submitted",
            "add a partition, e.g. {name: gpu, nodes: <gpu group>, default: true}",
        )


@rule("SLM013", Severity.info, "Slurm compute group in no partition")
def compute_group_unpartitioned(f: Factory, site: Site) -> Iterable[Issue]:
    """A group with the `slurm-compute` role that no partition names runs slurmd but never
    receives a job."""
    if not f.slurm.enabled or not f.slurm.partitions:
        return
    named = {g for i, p in enumerate(f.slurm.partitions) for _, g in _partition_groups(i, p)}
    for i, ng in enumerate(f.nodes):
        if "slurm-compute" in ng.roles and ng.group not in named:
            yield Issue(
                ("nodes", i, "roles"),
                f"node group {ng.group!r} has the slurm-compute role but is in no partition",
                f"add {ng.group!r} to a partition's nodes, or drop slurm-compute from its roles",
            )


# Mounted filesystems (every storage type but the object store) can hold slurmctld state.
_OBJECT_STORES = ("s3",)


def _controller_groups(f: Factory) -> list[str]:
    return [ng.group for ng in f.nodes if "slurm-controller" in ng.roles and ng.count > 0]


def _under(path: str, mount: str) -> bool:
    mount = mount.rstrip("/") or "/"
    return path == mount or path.startswith(mount if mount == "/" else mount + "/")


@rule("SLM020", Severity.error, "HA controllers without a shared StateSaveLocation")
def state_save_not_shared(f: Factory, site: Site) -> Iterable[Issue]:
    """With more than one `slurm-controller` host, slurm.conf lists several SlurmctldHost lines
    and a backup takes over only when it reads the state the primary wrote: StateSaveLocation
    must be on a filesystem every controller mounts (slurm.conf(5), SlurmctldHost /
    StateSaveLocation: "shared by the primary and backup"). `slurm.state_save_location` must
    therefore lie under the `mount` of a declared `storage` filesystem whose clients include
    every controller group; the default /var/spool/slurmctld is each controller's local disk."""
    if not f.slurm.enabled or _hosts_with(site, "slurm-controller") < 2:
        return
    controllers = _controller_groups(f)
    path = f.slurm.state_save_location
    loc: Loc = ("slurm", "state_save_location") if path else ("slurm",)
    mounts = [st for st in f.storage if st.type not in _OBJECT_STORES and st.mount]
    example = next((st.mount for st in mounts), "/shared")
    if path is None:
        yield Issue(loc, f"{_hosts_with(site, 'slurm-controller')} hosts have the slurm-controller role but "
                    "slurm.state_save_location is not set, so each keeps its state on local disk "
                    "(/var/spool/slurmctld) and a takeover loses the job queue",
                    f"set slurm.state_save_location to a folder on shared storage, e.g. {example}/slurm/statesave")
        return
    holder = next((st for st in mounts if _under(path, st.mount)), None)
    if holder is None:
        declared = ", ".join(f"{st.mount} ({st.name})" for st in mounts) or "none"
        yield Issue(loc, f"state_save_location {path} is on no declared storage mount (declared: {declared}), "
                    "so the controllers do not share it and a takeover loses the job queue",
                    f"put it under a shared mount, e.g. {example}/slurm/statesave, or declare the "
                    "filesystem under storage")
        return
    missing = [g for g in controllers if holder.clients and g not in holder.clients]
    if missing:
        yield Issue(loc, f"state_save_location {path} is on storage {holder.name!r}, which controller "
                    f"group(s) {', '.join(missing)} do not mount (its clients: {', '.join(holder.clients)})",
                    f"add {', '.join(missing)} to storage {holder.name!r} clients, or use a mount they have")


@rule("SLM021", Severity.warning, "HA controllers with the accounting database on one controller")
def dbd_on_single_controller(f: Factory, site: Site) -> Iterable[Issue]:
    """With more than one controller (HA declared) and accounting on, slurmdbd's database
    (StorageHost in slurmdbd.conf) is placed on the first slurm-dbd host, or the first
    controller when no group has the slurm-dbd role: a single controller's local MariaDB that
    the other controllers cannot take over. slurmctld keeps accounting records while slurmdbd
    is unreachable (slurmdbd.conf(5), accounting docs), so jobs keep running, but accounting,
    limits and fair share stop with that one host. Give the database its own `slurm-dbd` group."""
    if not (f.slurm.enabled and f.slurm.accounting) or _hosts_with(site, "slurm-controller") < 2:
        return
    dbd = [h for h in site.hosts if "slurm-dbd" in h.roles]
    db_host = (dbd or [h for h in site.hosts if "slurm-controller" in h.roles])[0]
    if "slurm-controller" not in db_host.roles:
        return
    yield Issue(("slurm", "accounting"),
                f"the controllers fail over, but the accounting database is the local MariaDB of "
                f"controller {db_host.name} alone; when it is down, accounting and its limits stop",
                "give the slurm-dbd role to a separate management group (its first host holds the "
                "database), so the database does not live on one of the failover controllers")


@rule("SLM022", Severity.warning, "air-gapped site with pyxis but no pyxis source")
def pyxis_without_source(f: Factory, site: Site) -> Iterable[Issue]:
    """pyxis is built from its git repository at the pinned tag (NVIDIA/pyxis README: `make
    install`, against the Slurm release deployed). An air-gapped site cannot reach
    github.com, so it names its mirror in `slurm.containers.pyxis_repo`. Without one, pyxis
    is left out: plugstack.conf must not `require` a spank_pyxis.so that is never installed
    (slurmd and srun refuse to start with a required SPANK plugin missing, spank(8)), so the
    cluster runs, but `srun --container-image` does not work there (a warning, not an error:
    the reference example, the input contract, declares no mirror)."""
    c = f.slurm.containers
    if not (f.slurm.enabled and c is not None and c.pyxis and f.sovereignty.air_gapped and not c.pyxis_repo):
        return
    yield Issue(("slurm", "containers", "pyxis"),
                "pyxis is on and the site is air-gapped, but slurm.containers.pyxis_repo names no mirror "
                "of pyxis to build it from: pyxis is left out of plugstack.conf, and srun --container-image "
                "will not work",
                "set slurm.containers.pyxis_repo to the site's git mirror of https://github.com/NVIDIA/pyxis.git, "
                "or set pyxis: false")


@rule("SLM023", Severity.error, "Slurm version too old for the rendered topology or IMEX")
def version_lacks_feature(f: Factory, site: Site) -> Iterable[Issue]:
    """A declared `slurm.version` must support what the configuration needs: topology/block
    exists since Slurm 23.11 (SchedMD NEWS 23.11, topology.conf(5)), so an older release with
    block topology (declared, or `auto` on NVL72 racks) fails to start slurmctld (error);
    switch/nvidia_imex, which sets up the per-job IMEX channel NVL72 trays need, exists since
    24.05 (Slurm NEWS 24.05); older releases leave IMEX channels to the site (warning)."""
    if not f.slurm.enabled:
        return
    release = slurm_release(f.slurm.version)
    if release is None:
        return
    topo = f.slurm.topology if f.slurm.topology != "auto" else recommended_topology(f, site)[0]
    loc: Loc = ("slurm", "version")
    if topo == "block" and release < SLURM_BLOCK_TOPOLOGY:
        yield Issue(loc, f"Slurm {f.slurm.version} has no topology/block (it came with "
                    f"{release_text(SLURM_BLOCK_TOPOLOGY)}), which "
                    + ("slurm.topology asks for" if f.slurm.topology == "block" else "these NVLink domains need"),
                    f"declare slurm.version {release_text(SLURM_BLOCK_TOPOLOGY)} or later, or set slurm.topology: tree")
    imex = slurm_imex_groups(f)
    if imex and release < SLURM_IMEX_SWITCH:
        yield Issue(loc, f"Slurm {f.slurm.version} has no switch/nvidia_imex (since "
                    f"{release_text(SLURM_IMEX_SWITCH)}), so jobs on {', '.join(imex)} get no IMEX channel "
                    "from Slurm and multi-node NVLink memory sharing fails unless the site creates channels itself",
                    f"declare slurm.version {release_text(SLURM_IMEX_SWITCH)} or later",
                    Severity.warning)
