"""What the Ansible tree needs from the model: inventory groups, host variables, group_vars.

Everything here is plain, sorted data; templates/ansible/ only prints it. Group names are
the node roles with '_' for '-' (`slurm_controller`, `kube_worker`, ...), `group_<node group>`,
`rack_<rack>`, plus `gpu_nodes`. Role variables carry their role's prefix. No secret is ever
placed here: munge keys, database passwords and tokens come from the environment or a vault
when the playbook runs.
"""

from __future__ import annotations

import ipaddress
from typing import Any, get_args
from urllib.parse import urlsplit

from .. import catalog
from ..model import Factory
from ..model.nodes import Role
from ..resolve.storage import transport as storage_transport
from . import versions
from .environment import config_word

ROLE_GROUPS: tuple[str, ...] = tuple(r.replace("-", "_") for r in get_args(Role))
DERIVED_GROUPS = ("gpu_nodes",)

# Storage types that have a mount on the clients (object stores have none).
MOUNTED_STORAGE = ("lustre", "weka", "vast", "gpfs", "nfs", "ceph", "beegfs")


def ident(name: str) -> str:
    """A model name (RFC 1123 label) as an Ansible identifier: '-' becomes '_'."""
    return name.replace("-", "_")


def _nvlink_domain(gpu_model: str | None) -> int:
    spec = catalog.gpu(gpu_model) if gpu_model else None
    return int(spec.nvlink_domain) if spec else 0


def inventory(hosts: list[dict], groups: dict[str, dict]) -> dict[str, Any]:
    """Groups (name -> sorted host names; every role group present, empty or not) and host vars."""
    members: dict[str, set[str]] = {g: set() for g in (*ROLE_GROUPS, *DERIVED_GROUPS)}
    hostvars: dict[str, dict] = {}
    for h in hosts:
        g = groups[h["group"]]
        for role in h["roles"]:
            members[ident(role)].add(h["name"])
        members.setdefault(f"group_{ident(h['group'])}", set()).add(h["name"])
        members.setdefault(f"rack_{ident(h['rack'])}", set()).add(h["name"])
        if h["gpus"]:
            members["gpu_nodes"].add(h["name"])
        hv = {
            "factory_group": h["group"],
            "factory_index": h["index"],
            "factory_rack": h["rack"],
            "factory_gpus": h["gpus"],
            "factory_gpu_model": g["gpu_model"] or "",
            "factory_nvlink_domain": _nvlink_domain(g["gpu_model"]) if h["gpus"] else 0,
            "factory_oob_address": h["oob_address"] or "",
        }
        if h["address"]:
            hv["ansible_host"] = h["address"]
        hostvars[h["name"]] = hv
    return {
        "groups": {k: sorted(v) for k, v in sorted(members.items())},
        "hostvars": hostvars,  # host declaration order, as the model lists them
    }


def _words(values, where: str) -> list[str]:
    return [config_word(v, where) for v in values]


def _vast_nconnect(link_gbps: int, interfaces: int) -> int:
    # VAST's guidance for RDMA: 2 connections per 100 Gb/s of client bandwidth, at least 8 for
    # load balancing (VAST KB "VAST Client NFS Multipathing", nconnect); the VAST NFS client
    # takes up to 64.
    return min(64, max(8, 2 * -(-link_gbps * max(1, interfaces) // 100)))


def transport_options(s: dict, rdma: bool, transport: dict) -> list[str]:
    """The site-specific mount options of an RDMA mount, added to the role's per-type RDMA
    options (roles/storage_client, storage_client_rdma_options) when storage[].options is
    empty. WEKA: one net=<interface> per storage interface (DPDK; WEKA docs, "Mount
    filesystems", advanced network configuration). VAST: the VAST NFS client's multipath
    options, nconnect, remoteports (the servers' VIPs, or `dns` for a VIP pool name) and
    localports (vastnfs docs, "Mount parameters"). BeeGFS takes RDMA from its client config and
    Lustre from LNet, not from mount options."""
    if not rdma:
        return []
    ifaces = list(transport["interfaces"])
    if s["type"] == "weka":
        return [f"net={i}" for i in ifaces]
    if s["type"] == "vast":
        out = [f"nconnect={_vast_nconnect(transport['link_gbps'], len(ifaces))}"]
        host = (s["server"] or "").rsplit(":", 1)[0]
        if s["servers"]:
            out.append("remoteports=" + "~".join(s["servers"]))
        elif host and not _is_address(host):
            out.append("remoteports=dns")
        if ifaces:
            out.append("localports=" + "~".join(ifaces))
        return out
    return []


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


def _storage(s: dict, rdma: bool, transport: dict) -> dict:
    # Every field but clients lands in an /etc/fstab line or a command (roles/storage_client).
    at = f"storage {s['name']!r}"
    return {
        "rdma": rdma,
        "transport_options": _words(transport_options(s, rdma, transport), f"{at} mount option"),
        "name": s["name"],
        "type": s["type"],
        "mount": config_word(s["mount"], f"{at} mount"),
        "server": config_word(s["server"], f"{at} server") if s["server"] else "",
        "servers": _words(s["servers"], f"{at} server"),
        "options": _words(s["options"], f"{at} mount option"),
        "clients": list(s["clients"]),
    }


def _pip_trusted_host(url: str) -> str:
    # pip.conf's trusted-host: only for a plain-http index (pip refuses http otherwise; pip
    # docs, "Configuration" and the --trusted-host option). host[:port], as pip matches it.
    parts = urlsplit(url)
    return parts.netloc if parts.scheme == "http" else ""


def mirror_vars(mirrors: dict, air_gapped: bool) -> dict[str, Any]:
    """The common role's mirror variables (apt, pip, container registries) and the Helm repo
    mirror the Kubernetes roles read; empty where site.mirrors declares none."""
    pypi = mirrors.get("pypi") or []
    helm = mirrors.get("helm") or []
    return {
        "common_apt_mirrors": _words(mirrors.get("apt") or [], "apt mirror"),
        # an air-gapped host cannot reach the distribution's own archive: the mirror replaces it
        "common_apt_replace_default_sources": bool(air_gapped and mirrors.get("apt")),
        "common_pip_index_url": config_word(pypi[0], "pypi mirror") if pypi else "",
        "common_pip_trusted_host": _pip_trusted_host(pypi[0]) if pypi else "",
        "common_container_mirrors": _words(mirrors.get("containers") or [], "container mirror"),
        "helm_repo_mirror": config_word(helm[0], "helm mirror") if helm else "",
    }


def _deployment(i: dict) -> dict:
    keys = ("name", "engine", "model", "model_source", "precision", "kv_cache_dtype",
            "tensor_parallel", "pipeline_parallel", "replicas", "platform", "max_context",
            "max_num_seqs", "gpu_memory_utilization", "disaggregated")
    out = {k: i[k] for k in keys}
    out["image"] = i["image"] or ""
    out["nodes"] = list(i["nodes"])
    install = i.get("engine_install") if not i["image"] and i["platform"] == "slurm" else None
    out["engine_packages"] = list(install["packages"]) if install else []
    out["engine_exclude"] = list(install["exclude"]) if install else []
    src = i["model_source"].strip()
    out["model_stage"] = i["platform"] == "slurm" and src.startswith(("http://", "https://"))
    return out


def group_vars(f: dict, transport: dict | None = None) -> dict[str, Any]:
    """Role variables for group_vars/all.yml, role-prefixed, from the model (defaults filled).
    `transport`: the storage transport facts (resolve.storage.transport), computed from the
    model when not given."""
    if transport is None:
        transport = storage_transport(Factory.model_validate(f))
    site, k8s, slurm, sov = f["site"], f["kubernetes"], f["slurm"], f["sovereignty"]
    lab = site["provider"] == "lab"  # namespaces sharing the machine's kernel and clock
    mirrors = site["mirrors"] or {"apt": [], "pypi": [], "containers": [], "helm": []}
    gpu_op = k8s["gpu_operator"] if k8s["enabled"] else None
    net_op = k8s["network_operator"] if k8s["enabled"] else None
    operator_driver = bool(gpu_op and gpu_op["driver_enabled"])
    operator_dcgm = bool(gpu_op and gpu_op["dcgm_exporter"])
    compute = f["fabric"]["compute"]
    storage_fabric = f["fabric"]["storage"]
    roce = (compute or {}).get("roce") or {"dscp": 26, "priority": 3, "pfc": True, "ecn": True,
                                            "pfc_watchdog_ms": 100}
    containers = slurm["containers"] or {"pyxis": False, "enroot": False, "images": []}
    helm_repo = mirrors["helm"][0] if mirrors["helm"] else ""
    public = not sov["air_gapped"]
    metrics = sorted(o["endpoint"] for o in sov["observability"] if o["kind"] == "metrics")

    out: dict[str, Any] = {
        # common
        "common_factory_name": f["metadata"]["name"],
        "common_description": f["metadata"]["description"] or "",
        "common_dns_domain": site["dns_domain"] or "",
        "common_dns_servers": list(site["dns_servers"]),
        "common_ntp_servers": _words(site["ntp_servers"], "NTP server"),  # chrony.conf lines
        "common_time_sync": not lab,
        "common_manage_kernel": not lab,
        "common_apt_update_cache": not lab,
        **mirror_vars(mirrors, sov["air_gapped"]),
        # nvidia_driver / cuda_nccl: host drivers unless the GPU Operator brings its own
        "nvidia_driver_enabled": not operator_driver or slurm["enabled"],
        "cuda_nccl_enabled": not operator_driver or slurm["enabled"],
        # enroot's GPU hook (98-nvidia.sh) runs nvidia-container-cli from libnvidia-container
        # (NVIDIA/enroot doc/installation.md, GPU support): installed with the driver where
        # Slurm runs containers
        "nvidia_driver_container_toolkit": bool(slurm["enabled"] and (containers["enroot"] or containers["pyxis"])),
        "cuda_nccl_tests_repo": versions.components()["nccl_tests"].repo if public else "",
        # fabric
        "fabric_compute_type": compute["type"] if compute else "",
        "fabric_compute_link_gbps": compute["link_gbps"] if compute else 0,
        "fabric_storage_type": storage_fabric["type"] if storage_fabric else "",
        "fabric_sharp": bool(compute and compute["sharp"]),
        "fabric_roce_dscp": roce["dscp"],
        "fabric_roce_priority": roce["priority"],
        "fabric_roce_pfc": roce["pfc"],
        "fabric_roce_ecn": roce["ecn"],
        "fabric_roce_pfc_watchdog_ms": roce["pfc_watchdog_ms"] or 0,
        # storage_client
        "storage_client_mounts": [_storage(s, transport["rdma"][s["name"]], transport) for s in f["storage"]
                                  if s["type"] in MOUNTED_STORAGE and s["mount"]],
        # LNet before any Lustre mount (Lustre Operations Manual, "Configuring Lustre Networking")
        "storage_client_lnet_networks": [{"net": n["net"], "interfaces": _words(n["interfaces"], "storage interface")}
                                         for n in transport["lnet_networks"]],
        "storage_client_interfaces": _words(transport["interfaces"], "storage interface"),
        # slurm
        "slurm_enabled": slurm["enabled"],
        "slurm_cluster_name": slurm["cluster_name"],
        "slurm_version": slurm["version"] or "",
        "slurm_accounting": slurm["accounting"],
        "slurm_mpi_default": slurm["mpi_default"],
        "slurm_pyxis": containers["pyxis"],
        "slurm_enroot": containers["enroot"] or containers["pyxis"],  # pyxis runs on enroot
        "slurm_container_images": _words(containers["images"], "container image"),
        # pyxis is built from the site's mirror when declared, else from GitHub where reachable
        # (air-gapped without a mirror: rule SLM022 refuses the file)
        "slurm_pyxis_repo": (containers.get("pyxis_repo") or (versions.components()["pyxis"].repo if public else "")
                             if containers["pyxis"] else ""),
        # kubernetes
        "kubernetes_enabled": k8s["enabled"],
        "kubernetes_version": k8s["version"],
        "kubernetes_distribution": k8s["distribution"],
        "kubernetes_pod_cidr": k8s["pod_cidr"],
        "kubernetes_service_cidr": k8s["service_cidr"],
        "kubernetes_node_pod_prefix": k8s["node_pod_prefix"],
        "kubernetes_image_repository": config_word(mirrors["containers"][0], "container mirror") if mirrors["containers"] else "",
        # containerd reads the common role's certs.d/<host>/hosts.toml only when the CRI registry's
        # config_path names the folder (containerd docs/hosts.md)
        "kubernetes_containerd_registry_config_path": "/etc/containerd/certs.d" if mirrors["containers"] else "",
        "kubernetes_cluster_name": f["metadata"]["name"],
        # kubeadm's controlPlaneEndpoint (the VIP or load balancer, port 6443); kube-vip's static pod
        "kubernetes_control_plane_endpoint": f"{k8s['control_plane_endpoint']['address']}:6443" if k8s["control_plane_endpoint"] else "",
        "kubernetes_kube_vip": bool(k8s["control_plane_endpoint"] and k8s["control_plane_endpoint"]["provider"] == "kube-vip"),
        "kubernetes_kube_vip_interface": next((g["network"]["management"]["interface"] for g in f["nodes"]
                                               if "kube-control-plane" in g["roles"]), ""),
        # Helm tarballs: the site's mirror, get.helm.sh when not air-gapped, else none (helm must be installed)
        "kubernetes_helm_mirror": k8s["helm_mirror"] or ("https://get.helm.sh" if public else ""),
        # public package repository for kubeadm/kubelet/kubectl; air-gapped sites configure their mirror
        "kubernetes_apt_repo_url": f"https://pkgs.k8s.io/core:/stable:/v{k8s['version']}/deb/" if public and k8s["enabled"] else "",
        "kubernetes_apt_key_url": f"https://pkgs.k8s.io/core:/stable:/v{k8s['version']}/deb/Release.key" if public and k8s["enabled"] else "",
        # gpu_operator / network_operator
        "gpu_operator_enabled": gpu_op is not None,
        "gpu_operator_version": gpu_op["version"] if gpu_op else "",
        "gpu_operator_mig_strategy": gpu_op["mig_strategy"] if gpu_op else "none",
        "gpu_operator_driver_enabled": operator_driver,
        "gpu_operator_dcgm_exporter": operator_dcgm,
        "gpu_operator_chart_repo": helm_repo or ("https://helm.ngc.nvidia.com/nvidia" if public else ""),
        # node groups whose GPUs Slurm shares (gpu_split with a Kubernetes share): their own
        # device plugin DaemonSet (kubernetes/gpu-operator/device-plugin-split.yaml), not the operator's
        "gpu_operator_split_groups": [ident(ng["group"]) for ng in f["nodes"] if gpu_op and ng["gpu_split"]
                                      and ng["gpu_split"]["kubernetes"] and "kube-worker" in ng["roles"]],
        "network_operator_enabled": bool(net_op and net_op["enabled"]),
        "network_operator_rdma_shared_device": bool(net_op and net_op["rdma_shared_device"]),
        "network_operator_sriov": bool(net_op and net_op["sriov"]),
        "network_operator_chart_repo": helm_repo or ("https://helm.ngc.nvidia.com/nvidia" if public else ""),
        # inference
        "inference_deployments": [_deployment(i) for i in f["inference"]],
        # engine_install: pip reads the site's first Python mirror; plain http needs --trusted-host
        "inference_pip_index": mirrors["pypi"][0] if mirrors["pypi"] else "",
        "inference_pip_trusted_host": (urlsplit(mirrors["pypi"][0]).hostname or "")
        if mirrors["pypi"] and mirrors["pypi"][0].startswith("http://") else "",
        # monitoring: DCGM exporter on hosts unless the GPU Operator runs it (Kubernetes-only GPUs)
        "monitoring_node_exporter": True,  # lab hosts too: Prometheus there scrapes every host
        "monitoring_dcgm_exporter": not lab and (not operator_dcgm or slurm["enabled"]),
        "monitoring_remote_write": metrics,
    }
    return dict(sorted(out.items()))


def build(factory: dict, hosts: list[dict], groups: dict[str, dict], transport: dict | None = None,
          extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The `ansible` key of the render context; `transport` is the storage mounts' (resolve/storage.py),
    `extra` adds role variables derived from the resolved site (render/monitoring.py)."""
    return {**inventory(hosts, groups),
            "group_vars": dict(sorted({**group_vars(factory, transport), **(extra or {})}.items()))}
