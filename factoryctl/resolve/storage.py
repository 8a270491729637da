"""Storage transport facts: which mounts run over RDMA, and the LNet networks Lustre clients need.

Read by rules/storage.py (contradictions) and render/ansible_vars.py (the storage_client role).
"""

from __future__ import annotations

import re

from ..model import Factory
from ..model.storage import Storage

RDMA_FABRICS = ("infiniband", "roce")
# Types whose client mount has an RDMA mode factoryctl renders: Lustre (o2ib LNet), WEKA (DPDK,
# net=<interface>), BeeGFS (connUseRDMA), VAST and NFS (proto=rdma, NFS/RDMA port 20049).
RDMA_TYPES = ("lustre", "weka", "beegfs", "vast", "nfs")
_NID = re.compile(r"^(?P<addr>[^@]+)@(?P<lnd>[a-z]+[a-z0-9]*?)(?P<num>[0-9]*)$")


def lnet_network(nid: str) -> str | None:
    """The LNet network of a Lustre NID, numbered (`10.0.0.5@o2ib` -> `o2ib0`, `@tcp1` ->
    `tcp1`); None when the server is not a NID. `o2ib` and `o2ib0` name the same network
    (Lustre Operations Manual, "Configuring Lustre Networking (LNet)", network identifiers)."""
    m = _NID.match(nid.strip())
    if not m:
        return None
    return f"{m['lnd']}{m['num'] or '0'}"


def storage_fabric_rdma(f: Factory) -> bool:
    return f.fabric.storage is not None and f.fabric.storage.type in RDMA_FABRICS


def rdma(f: Factory, st: Storage) -> bool:
    """Whether a storage entry's clients mount it over RDMA: Lustre when a server's NID is on
    an o2ib network; the other RDMA-capable types as `rdma` says, by default when the storage
    fabric is InfiniBand or RoCE (NFS only when asked: a plain NFS server rarely serves RDMA)."""
    if st.type == "lustre":
        return any((lnet_network(s) or "").startswith("o2ib") for s in st.servers)
    if st.rdma is not None:
        return st.rdma
    return st.type in ("weka", "beegfs", "vast") and storage_fabric_rdma(f)


def lnet_networks(f: Factory) -> list[dict]:
    """The LNet networks the Lustre clients configure before mounting, in the order the
    servers name them: [{net, interfaces}]. o2ib networks use the storage fabric's client
    interfaces; a tcp network uses them too when the storage fabric is declared, else LNet's
    default (the first IP interface)."""
    interfaces = list(f.fabric.storage.interfaces) if f.fabric.storage else []
    out: dict[str, dict] = {}
    for st in f.storage:
        if st.type != "lustre":
            continue
        for s in st.servers:
            net = lnet_network(s)
            if net and net not in out:
                out[net] = {"net": net, "interfaces": interfaces}
    return list(out.values())


def transport(f: Factory) -> dict:
    """What the storage_client role needs beyond the entries: RDMA per storage name, the LNet
    networks, and the clients' storage interfaces."""
    return {"rdma": {st.name: rdma(f, st) for st in f.storage},
            "lnet_networks": lnet_networks(f),
            "interfaces": list(f.fabric.storage.interfaces) if f.fabric.storage else [],
            "link_gbps": f.fabric.storage.link_gbps if f.fabric.storage else 0}
