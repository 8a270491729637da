"""What slurm/*.conf needs from the model: nodes, partitions, GRES, topology, plugins.

Plain, sorted data; templates/slurm/ only prints it (every value through the `slurm` filter).

Two plugin profiles:
- `cluster` (every real site): cgroup process tracking and task binding, which Slurm's
  cgroup/v2 plugin supports on current distributions (cgroup.conf(5), slurm.conf(5)).
- `lab` (provider: lab): the local test hosts run Debian bookworm's Slurm 22.05 with no
  systemd and the machine's cgroup hierarchies mirrored read-write; they run with
  proctrack/linuxproc, task/none, jobacct_gather/none and MpiDefault=none (mpi/pmix_v4
  fails to initialise there, as slurmd's log on the lab hosts shows; tests/lab). Slurm thus
  creates no cgroups in hierarchies the hosts share.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from .. import catalog
from ..resolve import (
    SLURM_BASE_RELEASE,
    SLURM_BLOCK_TOPOLOGY,
    SLURM_IMEX_SWITCH,
    Site,
    rack_scale_nvlink,
    recommended_topology,
    release_text,
    slurm_gpus,
    slurm_imex_groups,
    slurm_supports,
)

# Memory the OS and firmware keep: slurmd drains a node whose RealMemory exceeds what it
# detects, and the detected figure is always below the nominal DIMM size.
REAL_MEMORY_FRACTION = 0.95
# pyxis `make install` puts the SPANK plugin here (NVIDIA/pyxis Makefile: $(prefix)/lib/slurm).
PYXIS_PLUGIN = "/usr/local/lib/slurm/spank_pyxis.so"
STATE_SAVE = "/var/spool/slurmctld"
SLURMD_SPOOL = "/var/spool/slurmd"
LOG_DIR = "/var/log/slurm"
RUN_DIR = "/run"
DBD_PASSWORD_ENV = "FACTORYCTL_SLURMDBD_STORAGE_PASS"
# HealthCheckInterval (seconds) when a health check program is set: slurm.conf(5) runs
# HealthCheckProgram on every slurmd this often (0 disables it).
HEALTH_CHECK_INTERVAL = 300
# Every node, a share of them each interval (CYCLE: no burst of checks at once; slurm.conf(5)).
HEALTH_CHECK_NODE_STATE = "ANY,CYCLE"

_NUMBERED = re.compile(r"^(.*?)(\d+)$")


def hostlist(names: Iterable[str]) -> str:
    """Slurm hostlist expression: gpu01,gpu02,gpu03,head01 -> gpu[01-03],head01.

    Names keep their first-seen order by prefix; a range is written with the width of its
    first number, which is how Slurm expands it again (gpu[01-10] -> gpu01 .. gpu10)."""
    seen: list[str] = []
    by_prefix: dict[str, list[tuple[int, str]]] = {}
    for n in names:
        m = _NUMBERED.match(n)
        key = m.group(1) if m else n
        if key not in by_prefix:
            seen.append(key)
            by_prefix[key] = []
        if m:
            by_prefix[key].append((int(m.group(2)), m.group(2)))
    parts: list[str] = []
    for prefix in seen:
        nums = sorted(set(by_prefix[prefix]))
        if not nums:
            parts.append(prefix)
            continue
        ranges: list[str] = []
        start = prev = nums[0]
        for cur in nums[1:]:
            width = len(start[1])
            if cur[0] == prev[0] + 1 and cur[1] == str(cur[0]).zfill(width):
                prev = cur
                continue
            ranges.append(start[1] if start == prev else f"{start[1]}-{prev[1]}")
            start = prev = cur
        ranges.append(start[1] if start == prev else f"{start[1]}-{prev[1]}")
        if len(nums) == 1:
            parts.append(prefix + nums[0][1])
        else:
            parts.append(f"{prefix}[{','.join(ranges)}]")
    return ",".join(parts)


def gres_type(gpu_model: str) -> str:
    """GRES type of a GPU: the catalog family in lower case (H100-SXM-80GB -> h100).

    With AutoDetect=nvml, Slurm matches a configured Type as a substring of the name NVML
    reports, spaces turned to underscores (gres.conf(5)): 'nvidia_h100_80gb_hbm3' contains
    'h100', not 'h100-sxm-80gb'. Unknown models are sanitised the same way."""
    spec = catalog.gpu(gpu_model)
    name = spec.name if spec else gpu_model
    family = name.split("-")[0] if spec else name
    return re.sub(r"[^a-z0-9_]+", "_", family.lower()).strip("_") or "gpu"


def _cpu_shape(ng) -> tuple[int, int, int]:
    """(sockets, cores per socket, threads per core) of a node group: the model's figures,
    else the catalog's (threads as the CPU ships: SMT on is 2, e.g. DGX H100's Xeon 8480C,
    112 cores / 224 threads); cores and threads 1 when neither says (a node configured below
    its hardware still registers). slurm.conf(5): CPUs = Sockets x CoresPerSocket x
    ThreadsPerCore, and slurmd drains a node that reports fewer than configured."""
    cpu = ng.hardware.cpu
    spec = catalog.cpu(cpu.model)
    cores = cpu.cores_per_socket
    if cores is None:
        cores = spec.cores if spec else 1
    threads = cpu.threads_per_core
    if threads is None:
        threads = spec.threads_per_core if spec else 1
    return cpu.sockets, cores, threads


def _node_groups(site: Site) -> list[dict]:
    f = site.factory
    out = []
    by_group = site.hosts_by_group
    for ng in f.nodes:
        hosts = [h for h in by_group.get(ng.group, []) if "slurm-compute" in h.roles]
        if not hosts or any(g["group"] == ng.group for g in out):
            continue
        sockets, cores, threads = _cpu_shape(ng)
        gpu = ng.hardware.gpu
        spec = catalog.gpu(gpu.model) if gpu else None
        # Slurm's share of the node's GPUs (gpu_split: devices 0..N-1; the rest are Kubernetes')
        count = slurm_gpus(ng)
        gtype = gres_type(gpu.model) if gpu else ""
        real_memory = max(1, math.floor(ng.hardware.memory_gb * 1024 * REAL_MEMORY_FRACTION))
        features = [ng.group] + ([gtype] if gtype and gtype != ng.group else [])
        cpus = sockets * cores * threads
        out.append({
            "group": ng.group,
            "hosts": [{"name": h.name, "address": h.address} for h in hosts],
            "hostlist": hostlist(h.name for h in hosts),
            "sockets": sockets,
            "cores_per_socket": cores,
            "threads_per_core": threads,
            "cpus": cpus,
            "real_memory": real_memory,
            "gpus": count,
            "gpus_on_node": gpu.count if gpu else 0,
            "gpu_vendor": spec.vendor if spec else ("nvidia" if gpu else ""),
            "gres_type": gtype,
            "gres": f"gpu:{gtype}:{count}" if count else "",
            "features": ",".join(features),
            "def_mem_per_cpu": max(1, real_memory // cpus),
        })
    return out


def _partitions(f, groups: list[dict]) -> list[dict]:
    by_name = {g["group"]: g for g in groups}
    out = []
    for p in f.slurm.partitions:
        names = [p.nodes] if isinstance(p.nodes, str) else list(p.nodes)
        members = [by_name[n] for n in dict.fromkeys(names) if n in by_name]
        hosts = [h["name"] for g in members for h in g["hosts"]]
        out.append({
            "name": p.name,
            "groups": list(dict.fromkeys(names)),
            "nodes": hostlist(hosts),
            "default": p.default,
            "max_time": p.max_time,
            "def_mem_per_cpu": min((g["def_mem_per_cpu"] for g in members), default=0),
        })
    return out


def _chunks(items: list, size: int) -> list[list]:
    size = max(1, size)
    return [items[i:i + size] for i in range(0, len(items), size)]


def _tree(site: Site, groups: list[dict]) -> list[dict]:
    """Switches for topology/tree. Rail-optimised fabrics: every node of a scalable unit
    reaches every rail leaf of that unit in one hop, so one Slurm switch stands for the
    unit's rail leaves (`su01`, ...). Fat trees: leaves filled rack by rack up to their
    downlink ports. Nodes without compute-fabric ports hang off one switch per rack.
    More than one leaf gets a root switch over all of them."""
    f = site.factory
    cf = f.fabric.compute
    size = site.fabric.get("compute")
    fabric_hosts, other_hosts = [], []
    for g in groups:
        facts = site.groups[g["group"]]
        target = fabric_hosts if (cf is not None and facts.compute_ports) else other_hosts
        target.extend((h["name"], facts.racks[i], facts.compute_ports)
                      for i, h in enumerate(g["hosts"]))
    # host order follows the racks each group declared; keep site host order for stability
    order = {h.name: i for i, h in enumerate(site.hosts)}
    fabric_hosts.sort(key=lambda t: order[t[0]])
    other_hosts.sort(key=lambda t: order[t[0]])
    leaves: list[dict] = []
    if fabric_hosts:
        if cf.topology == "rail-optimized" and size is not None and size.nodes_per_su:
            for i, chunk in enumerate(_chunks(fabric_hosts, size.nodes_per_su), 1):
                leaves.append({"name": f"su{i:02d}", "nodes": hostlist(n for n, _, _ in chunk),
                               "note": f"scalable unit {i}: its {cf.rails * cf.planes} rail leaves"})
        else:
            ports = max(p for _, _, p in fabric_hosts)
            per_leaf = max(1, (size.downlinks_per_leaf if size and size.downlinks_per_leaf else 1) // max(1, ports))
            n = 0
            for rack in dict.fromkeys(r for _, r, _ in fabric_hosts):
                in_rack = [t for t in fabric_hosts if t[1] == rack]
                for chunk in _chunks(in_rack, per_leaf):
                    n += 1
                    leaves.append({"name": f"leaf{n:02d}", "nodes": hostlist(x for x, _, _ in chunk),
                                   "note": f"rack {rack}"})
    for rack in dict.fromkeys(r for _, r, _ in other_hosts):
        leaves.append({"name": f"rack-{rack}", "nodes": hostlist(n for n, r, _ in other_hosts if r == rack),
                       "note": f"rack {rack}, management network"})
    switches = [dict(leaf, switches="") for leaf in leaves]
    if len(leaves) > 1:
        switches.append({"name": "root", "nodes": "", "switches": hostlist(x["name"] for x in leaves),
                         "note": "spines and cores above the leaves"})
    return switches


def _blocks(site: Site, groups: list[dict]) -> tuple[list[dict], list[int], list[str]]:
    """Blocks for topology/block: one per multi-node NVLink domain (an NVL72 rack of 18
    four-GPU trays), filled rack by rack. BlockSizes starts at the nodes of one domain and
    doubles up to the whole set (topology.conf(5): each further size a power of two larger;
    NVIDIA Topograph infers the same doublings). Nodes left short of a full domain are
    returned separately: a block smaller than the base size is not allowed."""
    blocks: list[dict] = []
    leftover: list[str] = []
    base = 0
    for g in groups:
        facts = site.groups[g["group"]]
        spec = catalog.gpu(facts.gpu_model) if facts.gpu_model else None
        if not (spec and g["gpus"] and rack_scale_nvlink(spec.nvlink_domain)):
            leftover.extend(h["name"] for h in g["hosts"])
            continue
        per_block = max(1, spec.nvlink_domain // g["gpus"])
        base = per_block if not base else min(base, per_block)
        racks: dict[str, list[str]] = {}
        for i, h in enumerate(g["hosts"]):
            racks.setdefault(facts.racks[i], []).append(h["name"])
        for rack, names in racks.items():
            chunks = _chunks(names, per_block)
            for j, chunk in enumerate(chunks, 1):
                if len(chunk) < per_block:
                    leftover.extend(chunk)
                    continue
                name = rack if len(chunks) == 1 else f"{rack}-b{j}"
                blocks.append({"name": name, "nodes": hostlist(chunk)})
    sizes: list[int] = []
    if blocks:
        size = base
        while size <= base * len(blocks):
            sizes.append(size)
            size *= 2
    return blocks, sizes, leftover


def topology_plugin(site: Site) -> str | None:
    """tree, block or None: slurm.topology, with `auto` taking the recommendation resolve derives."""
    want = site.factory.slurm.topology
    if want == "auto":
        want = recommended_topology(site.factory, site)[0]
    return None if want in (None, "none") else want


def health_check(site: Site) -> tuple[str | None, int]:
    """(HealthCheckProgram, HealthCheckInterval) for slurm.conf: the rendered
    factoryctl-healthcheck.sh (render/healthcheck.py) where it is rendered, else none;
    slurm.conf renders the HealthCheck lines only with a program."""
    from . import healthcheck

    built = healthcheck.build(site)
    return (built[0]["program"], built[0]["interval"]) if built else (None, HEALTH_CHECK_INTERVAL)


def min_release(site: Site, topology: str | None, switch_type: str | None) -> tuple[int, int]:
    """The oldest Slurm release the rendered configuration runs on: 22.05 (the lab's), later
    when it uses topology/block (23.11) or switch/nvidia_imex (24.05)."""
    need = SLURM_BASE_RELEASE
    if topology == "block":
        need = max(need, SLURM_BLOCK_TOPOLOGY)
    if switch_type == "switch/nvidia_imex":
        need = max(need, SLURM_IMEX_SWITCH)
    return need


def pyxis_available(site: Site) -> bool:
    """pyxis is wanted and has a source: github.com for sites that reach it, else the
    declared mirror (rule SLM022 refuses air-gapped sites without one). plugstack.conf must
    not `require` a spank_pyxis.so that nothing installs: slurmd would not start (spank(8))."""
    f = site.factory
    c = f.slurm.containers
    return bool(c and c.pyxis and (c.pyxis_repo or not f.sovereignty.air_gapped))


def build(site: Site) -> dict:
    """The `slurm` key of the render context."""
    from . import slurm_accounts  # it reads gres_type from here

    f = site.factory
    s = f.slurm
    lab = f.site.provider == "lab"
    controllers = [h for h in site.hosts if "slurm-controller" in h.roles]
    dbd_hosts = [h for h in site.hosts if "slurm-dbd" in h.roles] or controllers
    groups = _node_groups(site)
    gpu_groups = [g for g in groups if g["gpus"]]
    topo = topology_plugin(site) if s.enabled else None
    if topo == "block" and not slurm_supports(f, SLURM_BLOCK_TOPOLOGY):
        topo = "tree"  # the declared release has no topology/block (rule SLM023 refuses this file)
    tree = _tree(site, groups) if topo == "tree" else []
    blocks, block_sizes, unblocked = _blocks(site, groups) if topo == "block" else ([], [], [])
    mpi = s.mpi_default
    mpi_note = ""
    if lab and "mpi_default" not in s.model_fields_set and mpi == "pmix":
        mpi, mpi_note = "none", "lab hosts: mpi/pmix_v4 fails to initialise there (slurmd log); set slurm.mpi_default to override"
    # switch/nvidia_imex: an IMEX channel per job for NVL72 trays (Slurm 24.05+, Slurm NEWS;
    # NVIDIA IMEX guide, "IMEX Channels"); older declared releases get rule SLM023's warning.
    switch_type = ("switch/nvidia_imex" if s.enabled and slurm_imex_groups(f)
                   and slurm_supports(f, SLURM_IMEX_SWITCH) else None)
    health_program, health_interval = health_check(site)
    parts = _partitions(f, groups)
    if lab:
        plugins = {"proctrack": "proctrack/linuxproc", "task": "task/none",
                   "jobacct_gather": "jobacct_gather/none", "prolog_flags": ""}
    else:
        plugins = {"proctrack": "proctrack/cgroup", "task": "task/cgroup,task/affinity",
                   "jobacct_gather": "jobacct_gather/cgroup", "prolog_flags": "Contain"}
    return {
        "enabled": s.enabled,
        "profile": "lab" if lab else "cluster",
        "cluster_name": s.cluster_name,
        "controllers": [{"name": h.name, "address": h.address} for h in controllers],
        "dbd_hosts": [{"name": h.name, "address": h.address} for h in dbd_hosts[:2]],
        "accounting": s.accounting and bool(dbd_hosts),
        # tenants: accounts and QOS (slurm/accounts.yml), enforcement and fair share (slurm.conf)
        "tenancy": slurm_accounts.enabled(site) and bool(dbd_hosts),
        "enforce": slurm_accounts.ENFORCE,
        # typed GPU TRES are tracked (and limitable in GrpTRES) only when listed (tres.html)
        "accounting_tres": ",".join(["gres/gpu", *(f"gres/gpu:{t}" for t in dict.fromkeys(
            g["gres_type"] for g in gpu_groups) if t and slurm_accounts.enabled(site))]),
        "priority": slurm_accounts.PRIORITY,
        "accounts": slurm_accounts.accounts(site),
        "dbd_password_env": DBD_PASSWORD_ENV,
        "node_groups": groups,
        "gpu_groups": [dict(g, devices=_devices(g)) for g in gpu_groups],
        "gres_autodetect": "off" if lab else None,
        "partitions": [dict(p, billing=w) for p, w in zip(
            parts, slurm_accounts.billing_weights(site, [p["groups"] for p in parts]), strict=True)],
        "topology": topo,
        "switches": tree,
        "blocks": blocks,
        "block_sizes": ",".join(str(x) for x in block_sizes),
        "unblocked": hostlist(unblocked),
        "mpi_default": mpi,
        "mpi_note": mpi_note,
        "plugins": plugins,
        "select_parameters": "CR_Core_Memory",
        "pyxis": pyxis_available(site),
        "pyxis_plugin": PYXIS_PLUGIN,
        "switch_type": switch_type,
        "min_release": release_text(min_release(site, topo, switch_type)),
        "lab_release": release_text(SLURM_BASE_RELEASE),
        "health_check_program": health_program,
        "health_check_interval": health_interval,
        "health_check_node_state": HEALTH_CHECK_NODE_STATE,
        "paths": {"state_save": s.state_save_location or STATE_SAVE, "slurmd_spool": SLURMD_SPOOL, "log_dir": LOG_DIR,
                  "run_dir": RUN_DIR},
        "cgroup": {"ignore_systemd": lab},
    }


def _devices(g: dict) -> dict:
    """Device files and autodetection per GPU vendor: NVIDIA /dev/nvidiaN with NVML,
    AMD render nodes with ROCm SMI (gres.conf(5))."""
    n = g["gpus"]
    if g["gpu_vendor"] == "amd":
        first = 128
        files = f"/dev/dri/renderD{first}" if n == 1 else f"/dev/dri/renderD[{first}-{first + n - 1}]"
        return {"files": files, "autodetect": "rsmi"}
    files = "/dev/nvidia0" if n == 1 else f"/dev/nvidia[0-{n - 1}]"
    return {"files": files, "autodetect": "nvml"}
