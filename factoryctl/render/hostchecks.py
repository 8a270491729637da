"""The host checks a factory implies, as plain data: build/verify/checks.json.

Nothing here is written per site: every check follows from factory.yaml (roles, node groups,
GPUs, NICs, fabric, storage, Slurm, Kubernetes, inference) and from the roles that install
it (package names and the driver branch are read from the roles' own vars and defaults, so
what verify expects is what the playbook installs). The test functions that look at hosts
are fixed (templates/verify/test_hosts.py, factoryctl.verify.probes); this data
parametrises them.

One entry per (host, check):

    {"host": "gpu01",          # the host the check is about (the result names it)
     "check": "gpu-count",     # stable id, unique per host
     "kind": "gpu_count",      # which probe judges it (factoryctl.verify.probes.PROBES)
     "on": "gpu01",            # where the commands run (scheduler views run on a controller)
     "needs": "",              # hardware that must be present, else skipped: nvidia-gpu, rdma
     "expect": {...}}          # what the model says, for that probe
"""

from __future__ import annotations

from functools import cache
from typing import Any

import yaml

from .. import catalog
from ..resolve.storage import transport as storage_transport
from ..resources import templates_dir
from . import ansible_vars
from . import slurm as slurm_facts

SCHEMA = "factoryctl.verify.checks/v1"
FAMILIES = ("Debian", "RedHat")
SLURM_PORTS = {"slurmctld": 6817, "slurmd": 6818, "slurmdbd": 6819}  # templates/slurm/*.conf
KUBE_API_PORT, KUBELET_PORT = 6443, 10250
INFERENCE_NAMESPACE = "inference"  # render/kube.py INFERENCE_NS
INFERENCE_SERVICE_PORT = 8000  # render/kube.py SERVICE_PORT, which the Slurm batch scripts serve on too
# Process names a service runs as (pgrep -x), first match wins.
PROCESSES = {"munge": ["munged"], "slurmctld": ["slurmctld"], "slurmd": ["slurmd"],
             "slurmdbd": ["slurmdbd"], "mariadb": ["mariadbd", "mysqld"],
             "containerd": ["containerd"], "kubelet": ["kubelet"]}
FSTYPES = {"nfs": ["nfs", "nfs4"], "vast": ["nfs", "nfs4"], "lustre": ["lustre"], "beegfs": ["beegfs"],
           "ceph": ["ceph"], "weka": ["wekafs"], "gpfs": ["gpfs"]}
# Kernel modules per need: GPU driver (open or proprietary: both are named nvidia), RDMA
# fabric on Mellanox/NVIDIA adapters, filesystem clients.
GPU_MODULES = ["nvidia", "nvidia_uvm"]
RDMA_MODULES = ["ib_core", "ib_uverbs", "mlx5_core", "mlx5_ib"]
FS_MODULES = {"lustre": ["lustre"], "beegfs": ["beegfs"], "ceph": ["ceph"], "nfs": ["nfs"],
              "vast": ["nfs"]}
RDMA_FABRICS = ("infiniband", "roce")


@cache
def _role_file(role: str, rel: str) -> dict:
    path = templates_dir() / "ansible" / "project" / "roles" / role / rel
    return yaml.safe_load(path.read_text()) or {} if path.is_file() else {}


def _packages(family: str, parts: list[str], k8s: bool, fs_types: list[str]) -> list[str]:
    slurm = _role_file("slurm", f"vars/{family}.yml").get("_slurm_packages", {})
    out: list[str] = []
    if parts:
        out += slurm.get("common", [])
    for part in parts:
        out += slurm.get(part, [])
    if k8s:
        out += _role_file("kubernetes", "defaults/main.yml").get("kubernetes_packages", [])
    storage = _role_file("storage_client", "defaults/main.yml").get("storage_client_packages", {})
    nfs = _role_file("storage_client", f"vars/{family}.yml").get("_storage_client_nfs_packages", [])
    for t in fs_types:
        out += nfs if t in ("nfs", "vast") else storage.get(t, [])
    return sorted(set(out))


def _entry(host: str, check: str, kind: str, expect: dict, on: str | None = None, needs: str = "") -> dict:
    return {"host": host, "check": check, "kind": kind, "on": on or host, "needs": needs, "expect": expect}


def _slurm_parts(h, accounting: bool, dbd: list[str], db_host: str) -> list[str]:
    parts = []
    if "slurm-controller" in h.roles:
        parts.append("controller")
    if "slurm-compute" in h.roles:
        parts.append("compute")
    if accounting and h.name in dbd:
        parts.append("dbd")
    if accounting and h.name == db_host:
        parts.append("database")
    if not parts and "login" in h.roles:
        parts.append("login")  # client commands only: the common packages
    return parts


def _nics(node_group) -> dict[str, Any]:
    return {n.name: n for n in node_group.hardware.nics}


def build(site) -> dict[str, Any]:
    """Every check of the site, hosts in declaration order, checks in a fixed order per host."""
    f = site.factory
    gv = ansible_vars.group_vars(f.model_dump(mode="json"), storage_transport(f))
    groups = {g.group: g for g in f.nodes}
    slurm_on = f.slurm.enabled
    sf = slurm_facts.build(site) if slurm_on else {}
    accounting = bool(sf.get("accounting"))
    dbd = [d["name"] for d in sf.get("dbd_hosts", [])] if accounting else []
    db_host = dbd[0] if dbd else ""
    controllers = [h.name for h in site.hosts if "slurm-controller" in h.roles]
    k8s_on = f.kubernetes.enabled
    control_planes = [h.name for h in site.hosts if "kube-control-plane" in h.roles]
    branch = str(_role_file("nvidia_driver", "defaults/main.yml").get("nvidia_driver_branch", ""))
    host_driver = bool(gv["nvidia_driver_enabled"])
    extra: dict[str, list[dict]] = {}  # checks about a host that run elsewhere (sinfo, kubectl)
    for e in ((_slurm(site, controllers[0]) if slurm_on and controllers else [])
              + (_kube(site, control_planes[0]) if k8s_on and control_planes else [])
              + _inference(f, control_planes, controllers, [h.name for h in site.hosts if "login" in h.roles])
              + _prometheus_targets(site, gv)):
        extra.setdefault(e["host"], []).append(e)
    checks: list[dict] = []
    # Hosts of one group with the same part share their checks: made once, stamped per host
    # (a 16k-host site has a handful of distinct kinds of host).
    made: dict[tuple, list[dict]] = {}
    for h in site.hosts:
        parts = _slurm_parts(h, accounting, dbd, db_host) if slurm_on and (
            {"slurm-controller", "slurm-compute", "login"} & set(h.roles) or h.name in dbd) else []
        kube = k8s_on and bool({"kube-control-plane", "kube-worker"} & set(h.roles))
        key = (h.group, tuple(parts), kube, h.roles, h.gpus)
        if key not in made:
            made[key] = _host_checks(h, groups[h.group], f, parts, kube, branch if host_driver else "", host_driver)
        checks.append(_entry(h.name, "hostname", "hostname", {"name": h.name}))
        checks += [{**e, "host": h.name, "on": h.name} for e in made[key]]
        checks += extra.get(h.name, [])
    return {
        "schema": SCHEMA,
        "site": f.metadata.name,
        "hosts": {h.name: {"address": h.address or "", "group": h.group, "roles": list(h.roles), "gpus": h.gpus}
                  for h in site.hosts},
        "checks": checks,
    }


def _host_checks(h, ng, f, parts: list[str], kube: bool, branch: str, host_driver: bool) -> list[dict]:
    """Everything a host checks on itself but its name, in a fixed order."""
    mounts = [s for s in f.storage if s.mount and s.type in FSTYPES and (not s.clients or h.group in s.clients)]
    c = []
    pkgs = {fam.lower(): _packages(fam, parts, kube, sorted({s.type for s in mounts})) for fam in FAMILIES}
    if any(pkgs.values()):
        c.append(_entry(h.name, "packages", "packages", pkgs))
    if h.gpus and host_driver:
        nccl = _role_file("cuda_nccl", "defaults/main.yml").get("cuda_nccl_nccl_packages", [])[:1]
        c.append(_entry(h.name, "packages:gpu", "packages", {"debian": nccl, "redhat": nccl}, needs="nvidia-gpu"))
    c += _modules(h, ng, f, mounts)
    for s in mounts:
        c.append(_entry(h.name, f"mount:{s.mount}", "mount",
                        {"path": s.mount, "fstypes": FSTYPES[s.type], "storage": s.name, "type": s.type}))
    c += _health(h, f, parts)
    c += _daemons(h, parts, kube)
    c += _gpus(h, ng, branch)
    c += _gpu_health(h, ng, f)
    c += _fabric(h, ng, f)
    return c


def disk_paths(parts: list[str]) -> list[str]:
    """The filesystems a host needs room on: / and Slurm's own state (slurmd's spool on
    compute hosts, slurmctld's StateSaveLocation on controllers: render/slurm.py's paths)."""
    return (["/"] + ([slurm_facts.SLURMD_SPOOL] if "compute" in parts else [])
            + ([slurm_facts.STATE_SAVE] if "controller" in parts else []))


def _health(h, f, parts: list[str]) -> list[dict]:
    """Disk space and time sync, thresholds from verify.thresholds."""
    t = f.verify.thresholds
    return [_entry(h.name, "disk-space", "disk_space",
                   {"paths": disk_paths(parts), "min_free_fraction": t.disk_free_fraction}),
            _entry(h.name, "time-sync", "time_sync", {"max_offset_ms": t.clock_offset_ms})]


def _modules(h, ng, f, mounts) -> list[dict]:
    out = []
    if h.gpus:
        out.append(_entry(h.name, "kernel-modules:gpu", "modules", {"modules": GPU_MODULES}, needs="nvidia-gpu"))
    nics = _nics(ng)
    rdma = any(fab and fab.type in RDMA_FABRICS and name in nics
               for name, fab in (("compute", f.fabric.compute), ("storage", f.fabric.storage)))
    if rdma:
        out.append(_entry(h.name, "kernel-modules:fabric", "modules", {"modules": RDMA_MODULES}, needs="rdma"))
    fs = sorted({m for s in mounts for m in FS_MODULES.get(s.type, [])})
    if fs:
        out.append(_entry(h.name, "kernel-modules:storage", "modules", {"modules": fs}))
    return out


def _daemons(h, parts: list[str], kube: bool) -> list[dict]:
    services: list[tuple[str, int | None]] = []
    if parts:
        services.append(("munge", None))
    for part, daemon in (("controller", "slurmctld"), ("compute", "slurmd"), ("dbd", "slurmdbd")):
        if part in parts:
            services.append((daemon, SLURM_PORTS[daemon]))
    if "database" in parts:
        services.append(("mariadb", None))
    if kube:
        services += [("containerd", None), ("kubelet", KUBELET_PORT)]
        if "kube-control-plane" in h.roles:
            services.append(("kube-apiserver", KUBE_API_PORT))
    out = []
    for name, port in services:
        if name != "kube-apiserver":  # a static pod: its port is the check
            out.append(_entry(h.name, f"service:{name}", "process",
                              {"service": name, "processes": PROCESSES.get(name, [name])}))
        if port:
            out.append(_entry(h.name, f"port:{port}", "port", {"port": port, "daemon": name}))
    return out


def _gpus(h, ng, branch: str) -> list[dict]:
    if not h.gpus:
        return [_entry(h.name, "gpu-count", "gpu_count", {"count": 0})]
    model = ng.hardware.gpu.model
    spec = catalog.gpu(model)
    canonical = spec.name if spec else model
    out = [_entry(h.name, "gpu-count", "gpu_count", {"count": h.gpus}, needs="nvidia-gpu"),
           _entry(h.name, "gpu-model", "gpu_model", {"model": canonical}, needs="nvidia-gpu"),
           _entry(h.name, "gpu-driver", "gpu_driver", {"branch": branch}, needs="nvidia-gpu")]
    if spec and spec.nvlink_gbps and spec.nvlink_domain > 1 and spec.vendor == "nvidia":
        out.append(_entry(h.name, "nvlink", "nvlink", {"gpus": h.gpus, "gbps_per_gpu": spec.nvlink_gbps},
                          needs="nvidia-gpu"))
    return out


def _gpu_health(h, ng, f) -> list[dict]:
    """The health-grade GPU check (verify/probes.py gpu_health): what the node should be (GPU
    count, NVLink when the GPU has a domain, the InfiniBand rate of the declared link speed) and
    the thresholds of verify.health."""
    if not h.gpus:
        return []
    spec = catalog.gpu(ng.hardware.gpu.model)
    nvlink = bool(spec and spec.nvlink_gbps and spec.nvlink_domain > 1 and spec.vendor == "nvidia")
    nics = _nics(ng)
    ib = [fab.link_gbps for name, fab in (("compute", f.fabric.compute), ("storage", f.fabric.storage))
          if fab is not None and fab.type == "infiniband" and name in nics]
    return [_entry(h.name, "gpu-health", "gpu_health",
                   {"gpus": h.gpus, "nvlink": nvlink, "ib_gbps": min(ib) if ib else None,
                    "thresholds": dict(sorted(f.verify.health.items()))}, needs="nvidia-gpu")]


def _fabric(h, ng, f) -> list[dict]:
    nics = _nics(ng)
    out = []
    rdma_ports = 0
    for name, fab in (("compute", f.fabric.compute), ("storage", f.fabric.storage)):
        nic = nics.get(name)
        if fab is None or nic is None:
            continue
        ports = nic.count * nic.ports
        rdma = fab.type in RDMA_FABRICS
        rdma_ports += nic.count if rdma else 0
        out.append(_entry(h.name, f"fabric-ports:{name}", "fabric_ports",
                          {"fabric": name, "type": fab.type, "ports": ports, "gbps": fab.link_gbps},
                          needs="rdma" if rdma else ""))
    if rdma_ports:
        out.append(_entry(h.name, "rdma-devices", "rdma_devices", {"min": rdma_ports}, needs="rdma"))
    return out


def _slurm(site, on: str) -> list[dict]:
    f = site.factory
    members = {g: list(site.groups[g].hostnames) for g in site.groups}
    out = []
    node_parts: dict[str, list[str]] = {}
    for p in f.slurm.partitions:
        gs = [p.nodes] if isinstance(p.nodes, str) else list(p.nodes)
        nodes = [n for g in gs for n in members.get(g, [])]
        for n in nodes:
            node_parts.setdefault(n, []).append(p.name)
        out.append(_entry(on, f"slurm-partition:{p.name}", "slurm_partition",
                          {"partition": p.name, "nodes": nodes, "default": p.default}))
    for h in site.hosts:
        if "slurm-compute" in h.roles:
            out.append(_entry(h.name, "slurm-node", "slurm_node",
                              {"partitions": sorted(node_parts.get(h.name, []))}, on=on))
    return out


def _kube(site, on: str) -> list[dict]:
    out = []
    for h in site.hosts:
        if {"kube-control-plane", "kube-worker"} & set(h.roles):
            out.append(_entry(h.name, "kube-node", "kube_node",
                              {"gpus": h.gpus, "control_plane": "kube-control-plane" in h.roles}, on=on))
    return out


def _prometheus_targets(site, gv: dict) -> list[dict]:
    """Every exporter the monitoring role's prometheus.yml scrapes, checked up from the first
    monitoring host: node exporters where they run, DCGM exporters on GPU hosts where they
    run (roles/monitoring/templates/prometheus.yml.j2 names each target by its host)."""
    servers = [h.name for h in site.hosts if "monitoring" in h.roles]
    if not servers:
        return []
    port = _role_file("monitoring", "defaults/main.yml").get("monitoring_prometheus_port", 9090)
    out = []
    for h in site.hosts:
        if gv["monitoring_node_exporter"]:
            out.append(_entry(h.name, "prometheus-target:node", "prometheus_target",
                              {"job": "node", "server_port": port}, on=servers[0]))
        if gv["monitoring_dcgm_exporter"] and h.gpus:
            out.append(_entry(h.name, "prometheus-target:dcgm", "prometheus_target",
                              {"job": "dcgm", "server_port": port}, on=servers[0]))
    return out


def _inference(f, control_planes: list[str], controllers: list[str], logins: list[str]) -> list[dict]:
    out = []
    for i in f.inference:
        if i.platform == "kubernetes":
            on = control_planes[0] if control_planes and f.kubernetes.enabled else None
        else:
            on = (logins or controllers or [None])[0] if f.slurm.enabled else None
        if on is None:
            continue
        out.append(_entry(on, f"inference:{i.name}", "inference", {
            "name": i.name, "platform": i.platform, "model": i.model, "engine": i.engine,
            "namespace": INFERENCE_NAMESPACE, "service": i.name, "port": INFERENCE_SERVICE_PORT,
            "job": f"inference-{i.name}"}))
    return out
