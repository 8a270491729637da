"""Rules: kubernetes. Control plane, version, GPU and network operators and MIG (tenants: rules/tenants.py).

Every rule here is silent while `kubernetes.enabled` is false.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import yaml

from .. import catalog
from ..findings import Severity
from ..model import Factory
from ..resolve import Site, gpu_generation, gpu_mig_capable, group_arch
from .base import Issue, rule

MIN_VERSION = (1, 28)
_VERSION = re.compile(r"^(\d+)\.(\d+)$")


def _gpu_workers(f: Factory) -> list[tuple[int, object]]:
    """(index, node group) of each GPU group with the kube-worker role."""
    return [(i, ng) for i, ng in enumerate(f.nodes) if ng.hardware.gpu and "kube-worker" in ng.roles]


@rule("K8S001", Severity.error, "Kubernetes enabled without a control-plane host")
def no_control_plane(f: Factory, site: Site) -> Iterable[Issue]:
    """Kubernetes needs at least one host with the `kube-control-plane` role to run the API
    server, scheduler and etcd."""
    if f.kubernetes.enabled and not any("kube-control-plane" in h.roles for h in site.hosts):
        yield Issue(
            ("kubernetes", "enabled"),
            "kubernetes is enabled but no node group has the kube-control-plane role",
            "add kube-control-plane to the roles of a head group (3 hosts for a highly available etcd)",
        )


@rule("K8S002", Severity.warning, "even number of control-plane hosts")
def even_control_plane(f: Factory, site: Site) -> Iterable[Issue]:
    """etcd needs a majority (floor(n/2)+1) of members: an even count adds a host without adding
    failure tolerance (2 members tolerate no failure, 4 tolerate one, as 3 do). Use 1, 3 or 5."""
    if not f.kubernetes.enabled:
        return
    n = sum(1 for h in site.hosts if "kube-control-plane" in h.roles)
    if n and n % 2 == 0:
        i = next(i for i, ng in enumerate(f.nodes) if "kube-control-plane" in ng.roles)
        yield Issue(
            ("nodes", i, "count"),
            f"{n} control-plane hosts run etcd with a quorum of {n // 2 + 1}: it tolerates "
            f"{(n - 1) // 2} failure(s), no more than {n - 1} hosts would",
            f"use an odd number of kube-control-plane hosts ({n - 1} or {n + 1})",
        )


@rule("K8S003", Severity.error, "Kubernetes version malformed or too old")
def version_supported(f: Factory, site: Site) -> Iterable[Issue]:
    """`kubernetes.version` is a minor release written "MAJOR.MINOR" (the installer picks the
    latest patch), at least 1.28: older minors are long out of upstream support, which covers
    only the three newest."""
    if not f.kubernetes.enabled:
        return
    v = f.kubernetes.version
    m = _VERSION.match(v.strip())
    if not m:
        yield Issue(
            ("kubernetes", "version"),
            f"version {v!r} is not a Kubernetes minor release written MAJOR.MINOR",
            'write the minor release in quotes, e.g. version: "1.31" (patch releases are chosen by the installer)',
        )
    elif (int(m.group(1)), int(m.group(2))) < MIN_VERSION:
        yield Issue(
            ("kubernetes", "version"),
            f"Kubernetes {v} is older than {MIN_VERSION[0]}.{MIN_VERSION[1]}, the oldest release factoryctl supports",
            'use a supported release, e.g. version: "1.31"',
        )


@rule("K8S004", Severity.warning, "GPU operator without GPU workers")
def gpu_operator_no_gpus(f: Factory, site: Site) -> Iterable[Issue]:
    """The NVIDIA GPU Operator only does work on GPU nodes that are Kubernetes workers; with
    none it installs DaemonSets that schedule nowhere."""
    if f.kubernetes.enabled and f.kubernetes.gpu_operator and not _gpu_workers(f):
        yield Issue(
            ("kubernetes", "gpu_operator"),
            "a GPU operator is configured but no GPU node group has the kube-worker role",
            "add kube-worker to the roles of the GPU node groups, or remove kubernetes.gpu_operator",
        )


@rule("K8S005", Severity.error, "MIG strategy without MIG-capable, MIG-enabled GPUs")
def mig_strategy_without_mig(f: Factory, site: Site) -> Iterable[Issue]:
    """`mig_strategy: single` or `mixed` makes the device plugin advertise MIG devices (GPU
    Operator MIG docs). It needs GPUs that support MIG (A100, H100, H200, B200 class; not L40S
    or AMD) and at least one GPU worker group with `hardware.gpu.mig: true`."""
    op = f.kubernetes.gpu_operator
    if not f.kubernetes.enabled or op is None or op.mig_strategy == "none":
        return
    loc = ("kubernetes", "gpu_operator", "mig_strategy")
    workers = _gpu_workers(f)
    for _, ng in workers:
        if gpu_mig_capable(ng.hardware.gpu.model) is False:
            yield Issue(
                loc,
                f"mig_strategy is {op.mig_strategy!r} but node group {ng.group!r} has "
                f"{ng.hardware.gpu.model} GPUs, which do not support MIG",
                "set mig_strategy: none, or run MIG only on MIG-capable GPU groups",
            )
    if workers and not any(ng.hardware.gpu.mig for _, ng in workers):
        yield Issue(
            loc,
            f"mig_strategy is {op.mig_strategy!r} but no GPU worker group sets hardware.gpu.mig: true",
            "set hardware.gpu.mig: true on the groups to partition, or set mig_strategy: none",
        )


@rule("K8S006", Severity.warning, "RDMA fabric without the network operator's RDMA plugin")
def rdma_without_network_operator(f: Factory, site: Site) -> Iterable[Issue]:
    """With an InfiniBand or RoCE compute fabric, pods reach the RDMA devices (GPUDirect RDMA
    for multi-node NCCL) only through the NVIDIA Network Operator's RDMA shared device plugin
    or SR-IOV (NVIDIA Network Operator docs, NicClusterPolicy); without it they fall back to TCP."""
    cf = f.fabric.compute
    if not f.kubernetes.enabled or cf is None or cf.type not in ("infiniband", "roce"):
        return
    if not _gpu_workers(f):
        return
    no = f.kubernetes.network_operator
    if no is None or not no.enabled or not (no.rdma_shared_device or no.sriov):
        yield Issue(
            ("kubernetes", "network_operator"),
            f"the compute fabric is {cf.type} but Kubernetes GPU workers get no RDMA device plugin, "
            "so pods use TCP instead of GPUDirect RDMA",
            "set kubernetes.network_operator: {enabled: true, rdma_shared_device: true} (or sriov: true)",
        )


# K8S007 (tenant quotas over the workers' GPUs) and K8S008 (duplicate tenant) moved to the
# site-wide tenancy rules TEN002 and TEN006 (rules/tenants.py); the codes are retired, never reused.


@rule("K8S009", Severity.warning, "NVIDIA GPU operator on AMD GPUs")
def gpu_operator_on_amd(f: Factory, site: Site) -> Iterable[Issue]:
    """The NVIDIA GPU Operator manages NVIDIA drivers and devices only; AMD Instinct workers
    need AMD's own GPU operator and device plugin, which this section does not install."""
    if not f.kubernetes.enabled or f.kubernetes.gpu_operator is None:
        return
    for i, ng in _gpu_workers(f):
        spec = catalog.gpu(ng.hardware.gpu.model)
        if spec is not None and spec.vendor != "nvidia":
            yield Issue(
                ("nodes", i, "hardware", "gpu", "model"),
                f"node group {ng.group!r} has {spec.vendor.upper()} {spec.name} GPUs, which the NVIDIA GPU operator does not manage",
                "deploy the vendor's GPU operator for this group, or keep it out of Kubernetes",
            )


@rule("K8S010", Severity.warning, "MIG enabled on nodes but the MIG strategy is none")
def mig_nodes_strategy_none(f: Factory, site: Site) -> Iterable[Issue]:
    """Groups with `hardware.gpu.mig: true` expose MIG slices to pods only when the GPU
    Operator's `mig_strategy` is single or mixed; with none, pods see no usable GPU."""
    op = f.kubernetes.gpu_operator
    if not f.kubernetes.enabled or op is None or op.mig_strategy != "none":
        return
    migged = [ng.group for _, ng in _gpu_workers(f) if ng.hardware.gpu.mig]
    if migged:
        yield Issue(
            ("kubernetes", "gpu_operator", "mig_strategy"),
            f"node group(s) {', '.join(migged)} enable MIG but mig_strategy is none",
            "set mig_strategy: single (same MIG profile on every GPU) or mixed",
        )


@rule("K8S011", Severity.warning, "NVIDIA GPU workers without a GPU operator")
def gpu_workers_without_operator(f: Factory, site: Site) -> Iterable[Issue]:
    """Pods can request `nvidia.com/gpu` only when a device plugin advertises it; factoryctl
    installs it with the NVIDIA GPU Operator (GPU Operator docs, getting started)."""
    if not f.kubernetes.enabled or f.kubernetes.gpu_operator is not None:
        return
    nvidia = []
    for _, ng in _gpu_workers(f):
        spec = catalog.gpu(ng.hardware.gpu.model)
        if spec is None or spec.vendor == "nvidia":
            nvidia.append(ng.group)
    if nvidia:
        yield Issue(
            ("kubernetes",),
            f"GPU worker group(s) {', '.join(nvidia)} have no GPU operator, so pods cannot request nvidia.com/gpu",
            "add kubernetes.gpu_operator: {version: v25.3.0}",
        )


def _control_planes(site: Site) -> list:
    return [h for h in site.hosts if "kube-control-plane" in h.roles]


@rule("K8S012", Severity.error, "several control-plane hosts without a shared API endpoint")
def ha_without_endpoint(f: Factory, site: Site) -> Iterable[Issue]:
    """With more than one control-plane host, every node and kubeconfig must reach the API
    servers through one address that survives the loss of any of them (kubeadm HA topology:
    `controlPlaneEndpoint` is a load balancer or a virtual IP). Without
    `kubernetes.control_plane_endpoint` the cluster would name the first control-plane host,
    a single point of failure."""
    if not f.kubernetes.enabled or f.kubernetes.distribution != "kubeadm" or f.kubernetes.control_plane_endpoint:
        return
    cps = _control_planes(site)
    if len(cps) > 1:
        yield Issue(
            ("kubernetes",),
            f"{len(cps)} control-plane hosts but no kubernetes.control_plane_endpoint: the cluster would "
            f"reach its API at {cps[0].name} alone, a single point of failure",
            "add control_plane_endpoint: {address: <free IP in the management network>, provider: kube-vip} "
            "(or provider: external for the site's load balancer on TCP 6443)",
        )


@rule("K8S013", Severity.error, "API endpoint outside the management network or taken by a host")
def endpoint_address(f: Factory, site: Site) -> Iterable[Issue]:
    """`kubernetes.control_plane_endpoint.address` must be a usable address of the management
    network (kube-vip announces it there by ARP; the nodes reach an external load balancer
    there), and no host, gateway or network/broadcast address: a duplicate IP breaks both."""
    ep = f.kubernetes.control_plane_endpoint
    if not f.kubernetes.enabled or ep is None:
        return
    loc = ("kubernetes", "control_plane_endpoint", "address")
    mgmt = f.fabric.management
    net = ipaddress.ip_network(mgmt.cidr, strict=False)
    addr = ipaddress.ip_address(ep.address)
    first_free = net.network_address + 2 if net.num_addresses > 4 else None
    hint_free = f" (e.g. {first_free}, in the {mgmt.reserved} addresses kept free at its start)" if first_free and mgmt.reserved >= 2 else ""
    if addr not in net:
        yield Issue(loc, f"endpoint {ep.address} is not in the management network {mgmt.cidr}",
                    f"pick a free address in {mgmt.cidr}{hint_free}")
        return
    if net.num_addresses > 2 and addr in (net.network_address, net.broadcast_address):
        yield Issue(loc, f"endpoint {ep.address} is the network or broadcast address of {mgmt.cidr}",
                    f"pick a free host address in {mgmt.cidr}{hint_free}")
        return
    if mgmt.gateway and ipaddress.ip_address(mgmt.gateway) == addr:
        yield Issue(loc, f"endpoint {ep.address} is the management network's gateway",
                    f"pick an address no router or host uses{hint_free}")
        return
    for h in site.hosts:
        if h.address == ep.address:
            yield Issue(loc, f"endpoint {ep.address} is the management address of host {h.name}",
                        f"pick an address no host uses{hint_free}")
            return


@rule("K8S014", Severity.warning, "two DCGM exporters on the same GPUs")
def dcgm_exporter_twice(f: Factory, site: Site) -> Iterable[Issue]:
    """Hosts that run Slurm get the monitoring role's DCGM exporter; the GPU Operator's
    `dcgm_exporter` puts a second one on every Kubernetes GPU worker. On a node with both
    roles two exporters (and two DCGM host engines) read the same GPUs: profiling metrics
    can only be held by one DCGM instance (DCGM docs, profiling: one client at a time), and
    every GPU is reported twice."""
    op = f.kubernetes.gpu_operator
    if not f.kubernetes.enabled or op is None or not op.dcgm_exporter or not f.slurm.enabled:
        return
    if f.site.provider == "lab":
        return  # the lab runs no host exporter
    both = [ng.group for _, ng in _gpu_workers(f)]
    if both:
        yield Issue(
            ("kubernetes", "gpu_operator", "dcgm_exporter"),
            f"GPU worker group(s) {', '.join(both)} run the host DCGM exporter (Slurm is enabled) and "
            "the GPU Operator's as well",
            "set kubernetes.gpu_operator.dcgm_exporter: false (the host exporter serves both schedulers)",
        )


@rule("K8S015", Severity.warning, "air-gapped Kubernetes without a Helm mirror")
def airgapped_without_helm(f: Factory, site: Site) -> Iterable[Issue]:
    """The operators, the CNI and the controllers are Helm releases; an air-gapped site
    cannot download Helm from get.helm.sh. With `kubernetes.helm_mirror` the role installs
    the pinned Helm from there (checksum verified); without it each control-plane host must
    already have that Helm installed."""
    if f.kubernetes.enabled and f.kubernetes.distribution == "kubeadm" and f.sovereignty.air_gapped \
            and f.kubernetes.helm_mirror is None:
        yield Issue(
            ("kubernetes",),
            "air-gapped site without kubernetes.helm_mirror: Helm cannot be downloaded, so it must already "
            "be installed on the control-plane hosts",
            "add kubernetes.helm_mirror: https://<files mirror>/helm (serving helm-vX.Y.Z-linux-amd64.tar.gz)",
        )


# What each engine's default image is built for: factoryctl/data/versions.yaml (arches,
# generations), each figure with its source there. Read as data: rules never import render.
_VERSIONS_FILE = Path(__file__).resolve().parent.parent / "data" / "versions.yaml"


@cache
def _image_builds() -> dict[str, dict]:
    comps = yaml.safe_load(_VERSIONS_FILE.read_text())["components"]
    return {name: {"image": f"{c['image']}:{c['version']}", "arches": c.get("arches"),
                   "generations": c.get("generations")}
            for name, c in comps.items() if "image" in c}


def _k8s_defaults(f: Factory, site: Site):
    """(index, deployment, its node groups, default build) of each Kubernetes deployment
    that runs the engine's default image."""
    if not f.kubernetes.enabled:
        return
    groups = {ng.group: ng for ng in f.nodes}
    for i, (inf, fit) in enumerate(zip(f.inference, site.inference, strict=True)):
        if inf.platform != "kubernetes" or inf.image:
            continue
        build = _image_builds().get(inf.engine)
        if build is None:
            continue
        yield i, inf, [groups[g] for g in fit.groups if g in groups], build


@rule("K8S016", Severity.error, "default engine image not built for the nodes' CPU architecture")
def image_arch(f: Factory, site: Site) -> Iterable[Issue]:
    """A deployment without `image` runs its engine's default image, and Kubernetes pins its
    pods to the nodes' architecture (kubernetes.io/arch). Grace-based trays (GB200, GB300,
    GH200) are arm64; vLLM's and TGI's published images are linux/amd64 only (data/versions.yaml
    cites each), so the pods would never start there."""
    for i, inf, ngs, build in _k8s_defaults(f, site):
        if not build["arches"]:
            continue
        wrong = sorted({ng.group for ng in ngs if (a := group_arch(ng)) and a not in build["arches"]})
        if wrong:
            arch = group_arch(next(ng for ng in ngs if ng.group == wrong[0]))
            yield Issue(
                ("inference", i, "engine"),
                f"deployment {inf.name!r} runs the default {inf.engine} image {build['image']}, built for "
                f"{', '.join(build['arches'])} only, on {arch} node group(s) {', '.join(wrong)}",
                f"set inference[{i}].image to a {arch} build of {inf.engine} (e.g. NVIDIA's multi-arch NGC container)",
            )


@rule("K8S017", Severity.error, "default engine image not built for the GPU generation")
def image_gpu_generation(f: Factory, site: Site) -> Iterable[Issue]:
    """The default engine image must carry kernels for the GPUs it serves on: a build without
    Blackwell (sm_100) kernels cannot run on B200/B300/GB200/GB300 (data/versions.yaml names
    the generations of each pinned default and cites the release note)."""
    for i, inf, ngs, build in _k8s_defaults(f, site):
        if not build["generations"]:
            continue
        wrong = {ng.group: gen for ng in ngs if ng.hardware.gpu
                 and (gen := gpu_generation(ng.hardware.gpu.model)) and gen not in build["generations"]}
        if wrong:
            gens = ", ".join(sorted(set(wrong.values())))
            yield Issue(
                ("inference", i, "engine"),
                f"deployment {inf.name!r} runs the default {inf.engine} image {build['image']}, which has no "
                f"{gens} support, on node group(s) {', '.join(sorted(wrong))}",
                f"set inference[{i}].image to a {inf.engine} build that supports {gens} GPUs",
            )
