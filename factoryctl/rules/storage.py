"""Rules: storage (names, mounts, server declarations, the parallel-filesystem tier, throughput)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from .. import resolve
from ..findings import Severity
from ..model import Factory
from ..resolve import Site, storage
from .base import Issue, rule

# High-performance storage (HPS): POSIX parallel filesystems with RDMA clients (DGX SuperPOD
# H100 RA, storage architecture).
PARALLEL_FS = ("lustre", "gpfs", "weka", "beegfs", "vast")
SU_NODES = 32  # SuperPOD H100 scalable unit
GOOD_READ_PER_SU, GOOD_WRITE_PER_SU = 15.0, 7.0  # GB/s, "Good" level, RA-11333-001 Table 6
GOOD_READ_NODE, GOOD_WRITE_NODE = 4.0, 2.0  # GB/s, single node "Good"
NEEDS_SERVERS = ("lustre", "gpfs", "weka", "beegfs", "ceph")
_NFS_EXPORT = re.compile(r"^[A-Za-z0-9._\-\[\]:]+:/\S*$")
_URL = re.compile(r"^https?://[^\s/]+(/\S*)?$")


@rule("STO001", Severity.error, "Duplicate mount point")
def duplicate_mount(f: Factory, site: Site) -> Iterable[Issue]:
    """Two storage entries cannot mount at the same path on the clients: the second mount hides
    the first."""
    seen: dict[str, int] = {}
    for i, st in enumerate(f.storage):
        if st.mount is None:
            continue
        key = st.mount.rstrip("/") or "/"
        if key in seen:
            yield Issue(("storage", i, "mount"),
                        f"storage {st.name!r} mounts at {st.mount}, already the mount point of "
                        f"storage {f.storage[seen[key]].name!r}",
                        "give each filesystem its own mount point")
        seen.setdefault(key, i)


@rule("STO002", Severity.error, "Duplicate storage name")
def duplicate_name(f: Factory, site: Site) -> Iterable[Issue]:
    """Storage names must be unique: rendered mount units, Kubernetes storage classes and
    reports are keyed by them."""
    seen: dict[str, int] = {}
    for i, st in enumerate(f.storage):
        if st.name in seen:
            yield Issue(("storage", i, "name"),
                        f"storage name {st.name!r} is already used by storage[{seen[st.name]}]",
                        "rename one of the entries")
        seen.setdefault(st.name, i)


@rule("STO003", Severity.error, "Storage lacks the servers or endpoint its type needs")
def storage_target(f: Factory, site: Site) -> Iterable[Issue]:
    """What clients connect to, by type: lustre (MGS NIDs), gpfs, weka, beegfs and ceph (monitors)
    need `servers`; nfs needs `server` as host:/export; vast needs `server` (host:/export) or
    `servers`; s3 needs `endpoint` as an http(s) URL."""
    for i, st in enumerate(f.storage):
        loc = ("storage", i)
        if st.type in NEEDS_SERVERS and not st.servers:
            yield Issue((*loc, "servers"), f"{st.type} storage {st.name!r} declares no servers",
                        "list the servers clients mount from (for lustre the MGS NIDs, e.g. 10.0.0.5@o2ib)")
        elif st.type == "nfs" or (st.type == "vast" and not st.servers):
            if st.server is None:
                yield Issue((*loc, "server"), f"{st.type} storage {st.name!r} declares no server",
                            "set server: host:/export (e.g. 10.20.0.210:/export/home)")
            elif not _NFS_EXPORT.match(st.server):
                yield Issue((*loc, "server"),
                            f"{st.type} server {st.server!r} of storage {st.name!r} is not host:/export",
                            "write it as host:/absolute/export/path")
        elif st.type == "s3":
            if st.endpoint is None:
                yield Issue((*loc, "endpoint"), f"s3 storage {st.name!r} declares no endpoint",
                            "set endpoint: https://s3.example.internal")
            elif not _URL.match(st.endpoint):
                yield Issue((*loc, "endpoint"),
                            f"s3 endpoint {st.endpoint!r} of storage {st.name!r} is not an http(s) URL",
                            "write it as https://host[:port]")


@rule("STO004", Severity.error, "Invalid or missing mount point")
def mount_point(f: Factory, site: Site) -> Iterable[Issue]:
    """A filesystem needs a `mount` that is an absolute, normalised path without whitespace
    (it reaches fstab and systemd mount units); an object store (s3) is reached by URL and takes
    no mount."""
    for i, st in enumerate(f.storage):
        loc = ("storage", i, "mount")
        if st.type == "s3":
            if st.mount is not None:
                yield Issue(loc, f"s3 storage {st.name!r} is an object store and cannot be mounted "
                            f"at {st.mount}", "remove mount; clients reach it by its endpoint")
            continue
        if st.mount is None:
            yield Issue(loc, f"{st.type} storage {st.name!r} has no mount point",
                        f"set mount to an absolute path such as /{st.name}")
            continue
        parts = st.mount.split("/")
        if (not st.mount.startswith("/") or any(p in (".", "..") for p in parts)
                or re.search(r"\s", st.mount) or "//" in st.mount):
            yield Issue(loc, f"mount point {st.mount!r} of storage {st.name!r} is not an absolute, "
                        "normalised path", f"use an absolute path such as /{st.name}")


@rule("STO005", Severity.warning, "No parallel filesystem on a training site")
def hps_tier(f: Factory, site: Site) -> Iterable[Issue]:
    """A site that trains (Slurm schedules GPU nodes) should have a high-performance storage
    tier: a parallel filesystem (lustre, gpfs, weka, beegfs, vast) with RDMA clients, beside
    NFS user storage; checkpoints and datasets stream through it (DGX SuperPOD H100 RA RA-11333-001,
    storage architecture)."""
    if resolve.training_nodes(f) == 0 or any(st.type in PARALLEL_FS for st in f.storage):
        return
    yield Issue(("storage",),
                f"{resolve.training_nodes(f)} GPU nodes train under Slurm but no parallel filesystem "
                f"({', '.join(PARALLEL_FS)}) is declared",
                "add a high-performance storage entry (e.g. type: lustre with its servers and mount)")


def _client_gpu_nodes(f: Factory, site: Site, clients: list[str]) -> int:
    return sum(g.count for name, g in site.groups.items()
               if g.gpus_per_node and (not clients or name in clients))


@rule("STO006", Severity.warning, "Parallel filesystem slower than the SuperPOD Good level")
def hps_throughput(f: Factory, site: Site) -> Iterable[Issue]:
    """A parallel filesystem's aggregate `read_gbps` should reach the DGX SuperPOD "Good" level,
    15 GB/s read and 7 GB/s write per 32-node scalable unit, pro rata for its GPU client nodes
    and at least the single-node Good level (4 GB/s read, 2 GB/s write) (DGX SuperPOD H100 RA
    RA-11333-001 Table 6). Undeclared figures are not checked."""
    for i, st in enumerate(f.storage):
        if st.type not in PARALLEL_FS:
            continue
        nodes = _client_gpu_nodes(f, site, st.clients)
        if nodes == 0:
            continue
        su = nodes / SU_NODES
        targets = (("read_gbps", st.read_gbps, max(GOOD_READ_NODE, GOOD_READ_PER_SU * su), "read"),
                   ("write_gbps", st.write_gbps, max(GOOD_WRITE_NODE, GOOD_WRITE_PER_SU * su), "write"))
        for key, value, need, what in targets:
            if value is not None and value < need:
                yield Issue(("storage", i, key),
                            f"storage {st.name!r} offers {value:g} GB/s aggregate {what} for {nodes} GPU "
                            f"nodes ({su:.2f} SU); the SuperPOD Good level is {need:.1f} GB/s",
                            f"size the filesystem for at least {need:.1f} GB/s {what}")


@rule("STO007", Severity.error, "Storage clients name an unknown node group")
def unknown_clients(f: Factory, site: Site) -> Iterable[Issue]:
    """Each name in `storage[].clients` must be a node group (`nodes[].group`); an empty list
    means every group mounts the storage."""
    groups = {ng.group for ng in f.nodes}
    for i, st in enumerate(f.storage):
        for j, name in enumerate(st.clients):
            if name not in groups:
                yield Issue(("storage", i, "clients", j),
                            f"storage {st.name!r} lists client {name!r}, which is not a node group "
                            f"(groups: {', '.join(sorted(groups))})",
                            "use a node group name, or leave clients empty for all groups")


@rule("STO008", Severity.error, "RDMA storage without an RDMA storage fabric")
def rdma_without_fabric(f: Factory, site: Site) -> Iterable[Issue]:
    """A mount over RDMA (Lustre servers on an `o2ib` LNet network, or `rdma: true`, or the
    default for WEKA, BeeGFS and VAST on an RDMA fabric) needs a storage network that carries
    RDMA: `fabric.storage` of type infiniband or roce. On Ethernet, o2ib LNet cannot start and
    an RDMA mount fails (Lustre Operations Manual, "Configuring Lustre Networking (LNet)")."""
    if storage.storage_fabric_rdma(f):
        return
    where = (f"the storage fabric is {f.fabric.storage.type}" if f.fabric.storage
             else "no storage fabric (fabric.storage) is declared")
    for i, st in enumerate(f.storage):
        if not storage.rdma(f, st):
            continue
        if st.type == "lustre":
            nets = sorted({n for s in st.servers if (n := storage.lnet_network(s)) and n.startswith("o2ib")})
            yield Issue(("storage", i, "servers"),
                        f"lustre storage {st.name!r} has servers on LNet network {', '.join(nets)} (RDMA), but {where}",
                        "declare fabric.storage with type infiniband or roce, or give the servers' tcp NIDs "
                        "(e.g. 10.0.0.5@tcp)")
        else:
            yield Issue(("storage", i, "rdma"), f"{st.type} storage {st.name!r} mounts over RDMA, but {where}",
                        "declare fabric.storage with type infiniband or roce, or set rdma: false")


@rule("STO009", Severity.error, "rdma contradicts the storage type or its NIDs")
def rdma_contradiction(f: Factory, site: Site) -> Iterable[Issue]:
    """`rdma` is for the types whose client mount has an RDMA mode factoryctl renders (lustre,
    weka, beegfs, vast, nfs). GPFS configures RDMA on its cluster (verbsRdma), Ceph and S3
    have none here. A Lustre client's transport is its servers' LNet network: `rdma: true`
    with tcp NIDs, or `rdma: false` with o2ib NIDs, says two things at once."""
    for i, st in enumerate(f.storage):
        if st.rdma is None:
            continue
        loc = ("storage", i, "rdma")
        if st.type not in storage.RDMA_TYPES:
            yield Issue(loc, f"{st.type} storage {st.name!r} sets rdma, but factoryctl mounts {st.type} "
                        "without an RDMA mode", "remove rdma (GPFS: configure verbsRdma on the GPFS cluster)")
        elif st.type == "lustre" and st.rdma != storage.rdma(f, st):
            nets = sorted({n for s in st.servers if (n := storage.lnet_network(s))}) or ["none"]
            yield Issue(loc, f"lustre storage {st.name!r} sets rdma: {str(st.rdma).lower()}, but its servers' "
                        f"LNet network is {', '.join(nets)}",
                        "remove rdma: Lustre's transport is the servers' NIDs (@o2ib is RDMA, @tcp is not)")


@rule("STO010", Severity.warning, "RDMA mount without the clients' storage interfaces")
def rdma_interfaces(f: Factory, site: Site) -> Iterable[Issue]:
    """An RDMA mount names the clients' ports on the storage network: Lustre's LNet networks
    (`o2ib0(ib0)`), WEKA's `net=<interface>` (without it WEKA mounts in UDP mode), VAST's
    `localports`. Declare them in `fabric.storage.interfaces`; without them LNet takes ib0 and
    WEKA and VAST use the kernel's routing."""
    if f.fabric.storage is None or f.fabric.storage.interfaces:
        return
    for st in f.storage:
        if st.type in ("lustre", "weka", "vast") and storage.rdma(f, st):
            yield Issue(("fabric", "storage"),
                        f"{st.type} storage {st.name!r} mounts over RDMA, but fabric.storage.interfaces names no "
                        "client interface", "set fabric.storage.interfaces to the clients' storage ports, e.g. [ib0, ib1]")
            return
