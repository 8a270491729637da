"""What kubernetes/ needs from the model: namespaces and quotas, operator Helm values, the
NicClusterPolicy, and one set of manifests per inference deployment.

Every manifest is built here as plain data and printed by templates/kubernetes/ through
`to_yaml`, so no value is ever spliced into YAML text. Free text from factory.yaml (model
names, sources, images) only lands in YAML scalars and in container argument lists (never
in a shell script); Kubernetes expands `$(VAR)` in command, args and env values, so every
`$` of such text is doubled to stay literal.

Facts used (public docs): GPU Operator chart values (driver/toolkit/mig/migManager/
dcgmExporter/nfd and per-component `repository`); Network Operator chart values (nfd,
sriovNetworkOperator, operator.repository) and NicClusterPolicy (rdmaSharedDevicePlugin with
a configList, secondaryNetwork multus/cniPlugins, nvIpam; components tagged
`network-operator-v<release>` under nvcr.io/nvidia/mellanox since 25.x); vLLM OpenAI server
flags; SGLang launch_server flags; TGI launcher flags; NIM 2.x (`nim-serve` forwards vLLM
flags, NIM_MODEL_PATH, NIM_SERVER_PORT); Dynamo DynamoGraphDeployment (nvidia.com/v1alpha1:
services with componentType frontend/worker, extraPodSpec.mainContainer, multinode.nodeCount,
resources.limits.gpu); LeaderWorkerSet (leaderworkerset.x-k8s.io/v1, LWS_LEADER_ADDRESS).
"""

from __future__ import annotations

import json
import math
import posixpath
from urllib.parse import urlsplit

from ..resolve import Site, gpu_generation, group_arch
from . import kube_tenancy, versions

MANAGED = {"app.kubernetes.io/managed-by": "factoryctl"}
GPU_OPERATOR_NS = "gpu-operator"
NETWORK_OPERATOR_NS = "nvidia-network-operator"
INFERENCE_NS = "inference"
MODEL_ROOT = "/models"

# Defaults used when inference[].image is not set (factoryctl/data/versions.yaml); an
# air-gapped site gets the same path under its first sovereignty.registries entry
# (registry.example/vllm/vllm-openai:v0.8.5).
DEFAULT_IMAGES = {engine: versions.image(engine) for engine in ("vllm", "sglang", "tgi", "nim", "dynamo")}
SYNC_IMAGE = versions.image("aws_cli")  # init container that copies weights from S3
ENGINE_PORT = {"vllm": 8000, "sglang": 30000, "tgi": 8080, "nim": 8000, "dynamo": 8000}
SERVICE_PORT = 8000

# Network Operator release whose component images the NicClusterPolicy names.
NETWORK_OPERATOR_RELEASE = versions.version("network_operator")
DOCA_DRIVER_VERSION = versions.version("doca_driver")  # the DOCA driver of that release's docs
MELLANOX_REPO = "nvcr.io/nvidia/mellanox"
RDMA_RESOURCE = "rdma_shared_device_a"  # the shared device plugin's resource, requested as rdma/<name>

# GPU Operator chart: every component's public repository (chart values.yaml), mirrored
# under the site's registry when air-gapped.
GPU_OPERATOR_REPOS = {
    "operator": "nvcr.io/nvidia",
    "validator": "nvcr.io/nvidia",
    "driver": "nvcr.io/nvidia",
    "driver.manager": "nvcr.io/nvidia/cloud-native",
    "toolkit": "nvcr.io/nvidia/k8s",
    "devicePlugin": "nvcr.io/nvidia",
    "dcgm": "nvcr.io/nvidia/cloud-native",
    "dcgmExporter": "nvcr.io/nvidia/k8s",
    "gfd": "nvcr.io/nvidia",
    "migManager": "nvcr.io/nvidia/cloud-native",
    "nodeStatusExporter": "nvcr.io/nvidia",
    "gds": "nvcr.io/nvidia/cloud-native",
    "gdrcopy": "nvcr.io/nvidia/cloud-native",
    "vgpuDeviceManager": "nvcr.io/nvidia/cloud-native",
    "vfioManager": "nvcr.io/nvidia/cloud-native",
    "vfioManager.driverManager": "nvcr.io/nvidia/cloud-native",
    "sandboxDevicePlugin": "nvcr.io/nvidia",
    "ccManager": "nvcr.io/nvidia/cloud-native",
}
NFD_REPO = "registry.k8s.io/nfd/node-feature-discovery"

# The pod network: Calico through its tigera-operator chart (docs.tigera.io/calico/3.29/
# getting-started/kubernetes/helm), the Installation resource applied right after it.
CALICO_NS = "tigera-operator"
CALICO_CHART_REPO = "https://docs.tigera.io/calico/charts"
TIGERA_OPERATOR_IMAGE = "quay.io/tigera/operator"  # chart values tigeraOperator.{registry,image}
# Calico's MTU page (docs.tigera.io/calico/latest/networking/configuring/mtu): IPv4 VXLAN
# adds a 50-byte header, so the pod MTU is the host interface's MTU less 50.
VXLAN_OVERHEAD = 50
# Calico IPAM block sizes run from /20 to /32 (IPPool blockSize, operator.tigera.io API).
CALICO_BLOCK_MIN = 20

KUBE_VIP_IMAGE = versions.image("kube_vip")
API_PORT = 6443


def literal(text: str) -> str:
    """Text for a container command/args/env value that Kubernetes keeps as written."""
    return str(text).replace("$", "$$")


def airgap_registry(site: Site) -> str | None:
    """The registry an air-gapped site pulls from; None when the site is not air-gapped."""
    f = site.factory
    s = f.sovereignty
    if not s.air_gapped:
        return None
    if s.registries:
        return s.registries[0].strip().rstrip("/")
    m = f.site.mirrors
    if m is not None and m.containers:
        return m.containers[0].strip().rstrip("/")
    return None


def _strip_host(ref: str) -> str:
    """Image path without its registry host (nvcr.io/nvidia/k8s -> nvidia/k8s)."""
    first, sep, rest = ref.partition("/")
    return rest if sep and ("." in first or ":" in first) else ref


def mirrored(ref: str, registry: str | None) -> str:
    return f"{registry}/{_strip_host(ref)}" if registry else ref


def _set(d: dict, dotted: str, value) -> None:
    keys = dotted.split(".")
    for k in keys[:-1]:
        d = d.setdefault(k, {})
    d[keys[-1]] = value


# --- namespaces -------------------------------------------------------------------------


def _namespace(name: str, labels: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {**MANAGED, **(labels or {})}}}


def namespaces(site: Site, inference: list[dict]) -> list[dict]:
    k = site.factory.kubernetes
    if not k.enabled:
        return []
    privileged = {"pod-security.kubernetes.io/enforce": "privileged"}
    docs: dict[str, list[dict]] = {}
    if k.gpu_operator is not None:
        docs[GPU_OPERATOR_NS] = [_namespace(GPU_OPERATOR_NS, privileged)]
    if k.network_operator is not None and k.network_operator.enabled:
        docs[NETWORK_OPERATOR_NS] = [_namespace(NETWORK_OPERATOR_NS, privileged)]
    if inference:
        host_paths = any(d["host_path"] for d in inference)
        labels = {} if host_paths else {"pod-security.kubernetes.io/enforce": "baseline"}
        docs.setdefault(INFERENCE_NS, [_namespace(INFERENCE_NS, labels)])
    for t in site.factory.tenants:
        if t.name in docs:
            continue  # a tenant named like a system namespace: TEN rules report duplicates
        docs[t.name] = kube_tenancy.tenant_documents(site, t)
    return [d for name in docs for d in docs[name]]


# --- operators --------------------------------------------------------------------------


def host_drivers(site: Site) -> bool:
    """Whether GPU drivers are installed on the hosts (not by the GPU Operator): asked for,
    or needed anyway because Slurm runs on the nodes (the Ansible side does the same)."""
    f = site.factory
    op = f.kubernetes.gpu_operator
    return op is None or not op.driver_enabled or f.slurm.enabled


def gpu_operator_values(site: Site) -> dict:
    k = site.factory.kubernetes
    op = k.gpu_operator
    if not k.enabled or op is None:
        return {}
    net = k.network_operator
    rdma = bool(net and net.enabled and (net.rdma_shared_device or net.sriov))
    values: dict = {
        "driver": {"enabled": not host_drivers(site)},
        "toolkit": {"enabled": True},
        "devicePlugin": {"enabled": True},
        "nfd": {"enabled": True},  # the Network Operator reuses it (its own NFD stays off)
        "mig": {"strategy": op.mig_strategy},  # ClusterPolicy MigStrategy: none, single, mixed
        "migManager": {"enabled": op.mig_strategy != "none"},
        "dcgmExporter": {"enabled": op.dcgm_exporter},
    }
    if not host_drivers(site) and _generations(site) & {"blackwell"}:
        # Blackwell needs a newer driver container than the chart's default (GPU Operator
        # platform support: HGX B200 requires 570.133.20 or later; R580 for the Blackwell family)
        blackwell = versions.components()["gpu_operator_driver_blackwell"]
        values["driver"]["version"] = blackwell.version
    if rdma:
        # GPUDirect RDMA: the driver container loads nvidia-peermem against the host's or
        # the Network Operator's DOCA-OFED
        values["driver"]["rdma"] = {"enabled": True, "useHostMofed": not _ofed_container(site)}
    registry = airgap_registry(site)
    if registry:
        for component, repo in GPU_OPERATOR_REPOS.items():
            _set(values, f"{component}.repository", mirrored(repo, registry))
        _set(values, "node-feature-discovery.image.repository", mirrored(NFD_REPO, registry))
    return values


def _generations(site: Site) -> set[str]:
    """GPU generations of the Kubernetes GPU workers."""
    return {g for ng in site.factory.nodes if ng.hardware.gpu and "kube-worker" in ng.roles
            for g in [gpu_generation(ng.hardware.gpu.model)] if g}


def _ofed_container(site: Site) -> bool:
    """DOCA-OFED from the Network Operator's driver container only where the GPU driver
    comes from a container too; hosts with installed drivers carry their own OFED."""
    return not host_drivers(site)


def network_operator_values(site: Site) -> dict:
    k = site.factory.kubernetes
    net = k.network_operator
    if not k.enabled or net is None or not net.enabled:
        return {}
    values: dict = {
        "nfd": {"enabled": k.gpu_operator is None},  # never two NFD deployments
        "sriovNetworkOperator": {"enabled": net.sriov},
    }
    registry = airgap_registry(site)
    if registry:
        values["operator"] = {"repository": mirrored("nvcr.io/nvidia/cloud-native", registry),
                              "ofedDriver": {"initContainer": {"repository": mirrored(MELLANOX_REPO, registry)}}}
        if k.gpu_operator is None:
            values["node-feature-discovery"] = {"image": {"repository": mirrored(NFD_REPO, registry)}}
    return values


def nic_cluster_policy(site: Site) -> dict | None:
    k = site.factory.kubernetes
    net = k.network_operator
    if not k.enabled or net is None or not net.enabled:
        return None
    repo = mirrored(MELLANOX_REPO, airgap_registry(site))
    tag = f"network-operator-v{NETWORK_OPERATOR_RELEASE}"
    spec: dict = {}
    if _ofed_container(site):
        spec["ofedDriver"] = {"image": "doca-driver", "repository": repo, "version": DOCA_DRIVER_VERSION}
    if net.rdma_shared_device:
        config = {"configList": [{"resourceName": RDMA_RESOURCE, "rdmaHcaMax": 63,
                                  "selectors": {"vendors": ["15b3"]}}]}
        spec["rdmaSharedDevicePlugin"] = {"image": "k8s-rdma-shared-dev-plugin", "repository": repo,
                                          "version": tag, "config": json.dumps(config, sort_keys=True)}
    if net.rdma_shared_device or net.sriov:
        spec["nvIpam"] = {"image": "nvidia-k8s-ipam", "repository": repo, "version": tag,
                          "enableWebhook": False}
        spec["secondaryNetwork"] = {
            "cniPlugins": {"image": "plugins", "repository": repo, "version": tag},
            "multus": {"image": "multus-cni", "repository": repo, "version": tag},
        }
    return {"apiVersion": "mellanox.com/v1alpha1", "kind": "NicClusterPolicy",
            "metadata": {"name": "nic-cluster-policy", "labels": dict(MANAGED)}, "spec": spec}


# --- control plane endpoint and pod network ----------------------------------------------


def kube_vip(site: Site) -> dict | None:
    """The static pod that holds kubernetes.control_plane_endpoint on one control-plane host
    at a time (kube-vip.io/docs/installation/static: ARP mode, control plane, leader election
    through a Lease in kube-system; the manifest sits in /etc/kubernetes/manifests before
    kubeadm init). It reads /etc/kubernetes/admin.conf; the role points the first host's copy
    at super-admin.conf until init has made admin.conf's RBAC binding (kube-vip issue 684,
    Kubernetes >= 1.29)."""
    k = site.factory.kubernetes
    ep = k.control_plane_endpoint
    if not k.enabled or k.distribution != "kubeadm" or ep is None or ep.provider != "kube-vip":
        return None
    cps = [h for h in site.hosts if "kube-control-plane" in h.roles]
    groups = {ng.group: ng for ng in site.factory.nodes}
    interface = groups[cps[0].group].network.management.interface if cps else "eno1"
    env = {
        "vip_arp": "true", "port": str(API_PORT), "vip_interface": interface, "vip_cidr": "32",
        "cp_enable": "true", "cp_namespace": "kube-system", "vip_leaderelection": "true",
        "vip_leasename": "plndr-cp-lock", "vip_leaseduration": "5", "vip_renewdeadline": "3",
        "vip_retryperiod": "1", "address": ep.address,
    }
    kubeconfig = "/etc/kubernetes/admin.conf"
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "kube-vip", "namespace": "kube-system", "labels": dict(MANAGED)},
        "spec": {
            "hostNetwork": True,
            "hostAliases": [{"ip": "127.0.0.1", "hostnames": ["kubernetes"]}],
            "containers": [{
                "name": "kube-vip", "image": mirrored(KUBE_VIP_IMAGE, airgap_registry(site)),
                "imagePullPolicy": "IfNotPresent", "args": ["manager"],
                "env": [{"name": n, "value": v} for n, v in env.items()],
                "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"]}},
                "volumeMounts": [{"name": "kubeconfig", "mountPath": kubeconfig}],
            }],
            "volumes": [{"name": "kubeconfig", "hostPath": {"path": kubeconfig}}],
        },
    }


def pod_mtu(site: Site) -> int:
    """The pod interfaces' MTU: the management network's, less Calico's VXLAN header."""
    return site.factory.fabric.management.mtu - VXLAN_OVERHEAD


def calico_values(site: Site) -> dict:
    """tigera-operator chart values: the operator only (its image from the mirror when
    air-gapped); the Installation comes as a manifest of its own (calico_installation)."""
    k = site.factory.kubernetes
    if not k.enabled or k.distribution != "kubeadm":
        return {}
    values: dict = {"installation": {"enabled": False}, "apiServer": {"enabled": False}}
    registry = airgap_registry(site)
    if registry:
        values["tigeraOperator"] = {"registry": registry, "image": _strip_host(TIGERA_OPERATOR_IMAGE)}
    return values


def calico_installation(site: Site) -> dict | None:
    """The operator's Installation: Calico CNI and IPAM, one VXLAN IPv4 pool over
    kubernetes.pod_cidr (no BGP needed between nodes), the MTU from the management network,
    node addresses as the kubelet reports them, images from the site's registry when
    air-gapped (spec.registry replaces docker.io/quay.io: <registry>/calico/node:<tag>)."""
    k = site.factory.kubernetes
    if not k.enabled or k.distribution != "kubeadm":
        return None
    spec: dict = {
        "cni": {"type": "Calico", "ipam": {"type": "Calico"}},
        "calicoNetwork": {
            "bgp": "Disabled",
            "mtu": pod_mtu(site),
            "nodeAddressAutodetectionV4": {"kubernetes": "NodeInternalIP"},
            "ipPools": [{"name": "default-ipv4-ippool", "cidr": k.pod_cidr, "encapsulation": "VXLAN",
                         "natOutgoing": "Enabled", "nodeSelector": "all()",
                         "blockSize": max(CALICO_BLOCK_MIN, k.node_pod_prefix)}],
        },
    }
    registry = airgap_registry(site)
    if registry:
        spec["registry"] = registry.rstrip("/") + "/"
    return {"apiVersion": "operator.tigera.io/v1", "kind": "Installation",
            "metadata": {"name": "default", "labels": dict(MANAGED)}, "spec": spec}


# --- controllers of the custom kinds the manifests use -----------------------------------

MPI_OPERATOR_NS = "mpi-operator"
LWS_NS = "lws-system"
LWS_IMAGE = "registry.k8s.io/lws/lws"
KUEUE_NS = "kueue-system"
KUEUE_IMAGE = "registry.k8s.io/kueue/kueue"


def _kinds_used(site: Site) -> set[str]:
    return {d["kind"] for dep in inference_deployments(site) for d in dep["docs"]}


def mpi_operator(site: Site) -> list[dict]:
    """The MPI Operator v2 (kubeflow/mpi-operator v0.6.0: deploy/v2beta1) for the benchmark
    stage's MPIJobs: its namespace, the MPIJob CRD (kubeflow.org/v2beta1, namespaced, status
    subresource; the schema keeps unknown fields rather than restating upstream's), the
    operator's service account, the cluster role its controller needs (pods, services,
    config maps, secrets, jobs for the launcher, events, leases for leader election, MPIJobs
    and their status, pod groups of gang schedulers, priority classes) and its Deployment."""
    from . import kube_bench

    if not kube_bench.build(site)["enabled"]:
        return []
    ns = MPI_OPERATOR_NS
    labels = {**MANAGED, "app.kubernetes.io/name": "mpi-operator"}
    verbs_rw = ["create", "delete", "get", "list", "patch", "update", "watch"]
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "mpijobs.kubeflow.org", "labels": dict(MANAGED)},
        "spec": {
            "group": "kubeflow.org", "scope": "Namespaced",
            "names": {"kind": "MPIJob", "listKind": "MPIJobList", "plural": "mpijobs",
                      "singular": "mpijob", "shortNames": ["mpij"]},
            "versions": [{"name": "v2beta1", "served": True, "storage": True,
                          "subresources": {"status": {}},
                          "schema": {"openAPIV3Schema": {"type": "object",
                                                         "x-kubernetes-preserve-unknown-fields": True}}}],
        },
    }
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "mpi-operator", "labels": labels},
        "rules": [
            {"apiGroups": [""], "resources": ["configmaps", "secrets", "services", "pods"], "verbs": verbs_rw},
            {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]},
            {"apiGroups": [""], "resources": ["endpoints"], "verbs": ["create", "get", "update"]},
            {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
            {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": verbs_rw},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create", "get", "update"]},
            {"apiGroups": ["kubeflow.org"], "resources": ["mpijobs", "mpijobs/finalizers", "mpijobs/status"],
             "verbs": ["*"]},
            {"apiGroups": ["scheduling.incubator.k8s.io", "scheduling.sigs.dev", "scheduling.volcano.sh",
                           "scheduling.x-k8s.io"], "resources": ["podgroups"], "verbs": ["*"]},
            {"apiGroups": ["scheduling.k8s.io"], "resources": ["priorityclasses"], "verbs": ["get", "list", "watch"]},
        ],
    }
    image = mirrored(versions.image("mpi_operator"), airgap_registry(site))
    return [
        _namespace(ns),
        crd,
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": "mpi-operator", "namespace": ns, "labels": labels}},
        role,
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "mpi-operator", "labels": labels},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "mpi-operator"},
         "subjects": [{"kind": "ServiceAccount", "name": "mpi-operator", "namespace": ns}]},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "mpi-operator", "namespace": ns, "labels": labels},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": "mpi-operator"}},
                  "template": {"metadata": {"labels": labels},
                               "spec": {"serviceAccountName": "mpi-operator",
                                        "containers": [{"name": "mpi-operator", "image": image,
                                                        "args": ["-alsologtostderr", f"--lock-namespace={ns}"]}]}}}},
    ]


def controller_releases(site: Site, helm: str | None) -> list[dict]:
    """Charts of the controllers whose kinds the inference manifests use, in the order they
    install (the Kubernetes phase, before any object of their kinds): LeaderWorkerSet's
    (lws.sigs.k8s.io installation: OCI chart, namespace lws-system), Dynamo's CRDs and
    platform (Dynamo's Kubernetes installation guide: dynamo-crds in default, the platform in
    the namespace of its graph deployments), Kueue's when `kubernetes.queueing: kueue` asks for it
    (kueue.sigs.k8s.io installation: OCI chart, namespace kueue-system). Air-gapped: the
    charts from the site's Helm mirror, the OCI charts and their images from its registry."""
    f = site.factory
    kinds = _kinds_used(site)
    registry = airgap_registry(site)
    gapped = f.sovereignty.air_gapped
    out: list[dict] = []
    if "LeaderWorkerSet" in kinds:
        lws = versions.components()["lws"]
        url = (f"oci://{registry}/lws/charts/lws" if registry else None) if gapped else lws.chart
        # chart values.yaml: image.manager.repository (registry.k8s.io/lws/lws), tag = appVersion
        values = {"image": {"manager": {"repository": mirrored(LWS_IMAGE, registry)}}} if registry else {}
        entry = {"name": "lws", "chart": "lws", "version": lws.version, "namespace": LWS_NS,
                 "values": values, "phase": "controllers"}
        entry.update({"url": url} if url else {"repo": helm})
        out.append(entry)
    if f.kubernetes.kueue:
        kueue = versions.components()["kueue"]
        url = (f"oci://{registry}/kueue/charts/kueue" if registry else None) if gapped else kueue.chart
        # chart values.yaml: controllerManager.manager.image.repository, tag = appVersion
        values = ({"controllerManager": {"manager": {"image": {"repository": mirrored(KUEUE_IMAGE, registry)}}}}
                  if registry else {})
        entry = {"name": "kueue", "chart": "kueue", "version": kueue.version, "namespace": KUEUE_NS,
                 "values": values, "phase": "controllers"}
        if kube_tenancy.kueue_documents(site):  # the tenants' queues, once Kueue's CRDs exist
            entry["after"] = ["kubernetes/kueue/queues.yaml"]
        entry.update({"url": url} if url else {"repo": helm})
        out.append(entry)
    if "DynamoGraphDeployment" in kinds:
        dyn = versions.components()["dynamo_platform"]
        for chart, ns in (("dynamo-crds", "default"), ("dynamo-platform", INFERENCE_NS)):
            entry = {"name": chart, "chart": chart, "version": dyn.version, "namespace": ns,
                     "values": {}, "phase": "controllers"}
            entry.update({"repo": helm} if gapped else {"url": f"{dyn.chart}/{chart}-{dyn.version}.tgz"})
            out.append(entry)
    return out


def helm_releases(site: Site) -> list[dict]:
    """Charts to install, in order, with the values file each takes (for the apply step)."""
    f = site.factory
    k = f.kubernetes
    if not k.enabled:
        return []
    helm = f.site.mirrors.helm[0] if f.site.mirrors and f.site.mirrors.helm else None
    repo = helm or (None if f.sovereignty.air_gapped else "https://helm.ngc.nvidia.com/nvidia")
    out = []
    if k.distribution == "kubeadm":  # Kubespray installs its own CNI
        out.append({"name": "calico", "chart": versions.components()["calico"].chart,
                    "repo": helm or (None if f.sovereignty.air_gapped else CALICO_CHART_REPO),
                    "version": versions.version("calico"), "namespace": CALICO_NS,
                    "values": "kubernetes/cni/values.yaml", "wait": False,
                    "after": ["kubernetes/cni/installation.yaml"], "phase": "cni"})
    out += controller_releases(site, helm)
    if k.gpu_operator is not None:
        out.append({"name": "gpu-operator", "chart": "gpu-operator", "repo": repo,
                    "version": k.gpu_operator.version, "namespace": GPU_OPERATOR_NS,
                    "values": "kubernetes/gpu-operator/values.yaml"})
    if k.network_operator is not None and k.network_operator.enabled:
        out.append({"name": "network-operator", "chart": "network-operator", "repo": repo,
                    "version": NETWORK_OPERATOR_RELEASE, "namespace": NETWORK_OPERATOR_NS,
                    "values": "kubernetes/network-operator/values.yaml",
                    "after": ["kubernetes/network-operator/nicclusterpolicy.yaml"]})
    return out


# --- inference --------------------------------------------------------------------------


def _image(site: Site, inf) -> str:
    return inf.image.strip() if inf.image else mirrored(DEFAULT_IMAGES[inf.engine], airgap_registry(site))


def weights_cache_gi(inf, fit) -> int:
    """Size of a pod's weights cache in GiB: the weights of one replica (fit: weights per GPU
    x tensor x pipeline parallel), with a tenth spare for tokenizer and config files, at
    least 1."""
    weights_gb = (fit.weights_gb_per_gpu if fit else 0.0) * inf.tensor_parallel * inf.pipeline_parallel
    return max(1, math.ceil(weights_gb * 1.1 * 1e9 / 2**30))


def model_volume(site: Site, inf, fit=None) -> dict:
    """How the weights reach /models/<name>: a PVC (pvc://claim/sub/path), an NFS export
    (nfs://server/export), a directory every node mounts (/path), or an init container that
    copies them from an S3 store (s3://host/bucket/prefix) into the pod. Nothing is fetched
    from a model hub."""
    src = inf.model_source.strip()
    path = posixpath.join(MODEL_ROOT, inf.name)
    vol = {"name": "model"}
    mount = {"name": "model", "mountPath": path, "readOnly": True}
    init: list[dict] = []
    host_path = False
    scheme = src.split("://", 1)[0].lower() if "://" in src else ""
    if scheme == "pvc":
        claim, _, sub = src[len("pvc://"):].partition("/")
        vol["persistentVolumeClaim"] = {"claimName": claim, "readOnly": True}
        if sub.strip("/"):
            mount["subPath"] = sub.strip("/")
    elif scheme == "nfs":
        parts = urlsplit(src)
        vol["nfs"] = {"server": parts.hostname or "", "path": parts.path or "/", "readOnly": True}
    elif scheme in ("", "file") and src.startswith(("/", "file:///")):
        vol["hostPath"] = {"path": src[len("file://"):] if scheme else src, "type": "Directory"}
        host_path = True
    else:
        # a cache of the weights, bounded: the kubelet evicts a pod whose emptyDir outgrows
        # sizeLimit, and the init container's ephemeral-storage request makes the scheduler
        # place the pod only on a node with that much local disk free
        size = f"{weights_cache_gi(inf, fit)}Gi"
        vol["emptyDir"] = {"sizeLimit": size}
        mount = {"name": "model", "mountPath": path}
        sync = _sync_container(site, inf, scheme, src, path)
        sync["resources"] = {"requests": {"ephemeral-storage": size}, "limits": {"ephemeral-storage": size}}
        init.append(sync)
    return {"volume": vol, "mount": mount, "init": init, "path": path, "host_path": host_path}


def _sync_container(site: Site, inf, scheme: str, src: str, path: str) -> dict:
    image = mirrored(SYNC_IMAGE, airgap_registry(site))
    c: dict = {"name": "fetch-model", "image": image,
               "volumeMounts": [{"name": "model", "mountPath": path}]}
    if scheme == "s3":
        parts = urlsplit(src)
        host = parts.netloc
        if "." in host:  # s3://store.example/bucket/prefix: the authority is the endpoint
            bucket_key = parts.path.lstrip("/")
            endpoint = f"https://{host}"
        else:  # s3://bucket/prefix on the provider's default endpoint
            bucket_key, endpoint = f"{host}{parts.path}", None
        args = ["s3", "sync", literal(f"s3://{bucket_key}"), path, "--no-progress", "--only-show-errors"]
        if endpoint:
            args += ["--endpoint-url", literal(endpoint)]
        c.update({
            "command": ["aws"], "args": args,
            "env": [{"name": "AWS_EC2_METADATA_DISABLED", "value": "true"}],
            "envFrom": [{"secretRef": {"name": "model-store-credentials", "optional": True}}],
        })
    else:
        c.update({
            "command": ["/bin/sh", "-c", 'echo "model_source scheme not supported: $1" >&2; exit 1', "fetch"],
            "args": [literal(src)],
        })
    return c


def _precision_args(engine: str, inf) -> list[str]:
    p, kv = inf.precision, inf.kv_cache_dtype
    if engine == "tgi":
        out = {"bf16": ["--dtype", "bfloat16"], "fp16": ["--dtype", "float16"],
               "fp8": ["--quantize", "fp8"]}.get(p, [])
        return out  # int8/int4/fp4: a pre-quantized checkpoint, detected from its config
    if engine == "sglang":
        out = {"bf16": ["--dtype", "bfloat16"], "fp16": ["--dtype", "float16"],
               "fp8": ["--quantization", "fp8"]}.get(p, [])
        if kv == "fp8":
            out += ["--kv-cache-dtype", "fp8_e4m3"]
        return out
    # vLLM and vLLM-based runtimes (NIM 2.x, Dynamo's vLLM worker)
    out = {"bf16": ["--dtype", "bfloat16"], "fp16": ["--dtype", "float16"],
           "fp8": ["--quantization", "fp8"]}.get(p, [])
    if kv == "fp8":
        out += ["--kv-cache-dtype", "fp8"]
    return out


def engine_args(inf, model_path: str, port: int) -> list[str]:
    """Server flags for every field the deployment declares: model path, parallelism,
    context, concurrent sequences, memory share and precision, then engine_options.flags
    (vLLM "Engine Arguments"; SGLang server arguments --max-running-requests; TGI launcher
    --max-concurrent-requests)."""
    tp, pp = inf.tensor_parallel, inf.pipeline_parallel
    e = inf.engine
    if e == "sglang":
        args = ["--model-path", model_path, "--served-model-name", literal(inf.model),
                "--host", "0.0.0.0", "--port", str(port), "--tp-size", str(tp),
                "--context-length", str(inf.max_context),
                "--max-running-requests", str(inf.max_num_seqs),
                "--mem-fraction-static", str(inf.gpu_memory_utilization)]
        if pp > 1:
            args += ["--pp-size", str(pp)]
    elif e == "tgi":
        args = ["--model-id", model_path, "--hostname", "0.0.0.0", "--port", str(port),
                "--num-shard", str(tp), "--max-total-tokens", str(inf.max_context),
                "--max-concurrent-requests", str(inf.max_num_seqs),
                "--cuda-memory-fraction", str(inf.gpu_memory_utilization)]
    else:  # vllm, nim (nim-serve forwards vLLM flags), dynamo (dynamo.vllm takes vLLM flags)
        args = ["--served-model-name", literal(inf.model),
                "--tensor-parallel-size", str(tp), "--pipeline-parallel-size", str(pp),
                "--max-model-len", str(inf.max_context),
                "--max-num-seqs", str(inf.max_num_seqs),
                "--gpu-memory-utilization", str(inf.gpu_memory_utilization)]
        if e == "vllm":
            args = ["--model", model_path, "--host", "0.0.0.0", "--port", str(port), *args]
        elif e == "dynamo":
            args = ["--model", model_path, *args]
    from .slurm_inference import extra_flags  # slurm_inference imports this module's constants

    return args + _precision_args(e, inf) + [literal(a) for a in extra_flags(inf)]


def engine_env(inf) -> list[dict]:
    """engine_options.env as container environment (values kept literal)."""
    return [{"name": k, "value": literal("true" if v is True else "false" if v is False else str(v))}
            for k, v in sorted(inf.engine_options.env.items())]


def _probes(engine: str, port: int) -> dict:
    live = "/v1/health/live" if engine == "nim" else "/health"
    http = {"port": port}
    return {
        # weights can take many minutes to load: up to 30 minutes before liveness applies
        "startupProbe": {"httpGet": {**http, "path": live}, "periodSeconds": 10, "failureThreshold": 180},
        "livenessProbe": {"httpGet": {**http, "path": live}, "periodSeconds": 15, "failureThreshold": 4},
        "readinessProbe": {"httpGet": {**http, "path": "/v1/models"}, "periodSeconds": 10, "failureThreshold": 3},
    }


def _labels(inf, extra: dict | None = None) -> dict:
    return {"app.kubernetes.io/name": inf.name, "app.kubernetes.io/component": "inference",
            "factoryctl.io/engine": inf.engine, **MANAGED, **(extra or {})}


def _annotations(inf) -> dict:
    return {"factoryctl.io/model": inf.model, "factoryctl.io/model-source": inf.model_source,
            "factoryctl.io/precision": inf.precision}


def _arches(site: Site, fit) -> set[str]:
    """CPU architectures (kubernetes.io/arch) of the groups a deployment may run on."""
    return {a for ng in site.factory.nodes if ng.group in fit.groups for a in [group_arch(ng)] if a}


def rdma(site: Site) -> dict:
    """What an inference pod needs for GPUDirect RDMA on an InfiniBand/RoCE compute fabric:
    IPC_LOCK (to pin memory for RDMA; NVIDIA Network Operator docs, RDMA shared device
    plugin example pods) and one device of the Network Operator's shared RDMA resource
    (rdma/<resourceName> of the NicClusterPolicy's configList)."""
    f = site.factory
    cf = f.fabric.compute
    if cf is None or cf.type not in ("infiniband", "roce"):
        return {}
    out: dict = {"capabilities": ["IPC_LOCK"], "resources": {}}
    net = f.kubernetes.network_operator
    if net is not None and net.enabled and net.rdma_shared_device:
        out["resources"] = {f"rdma/{RDMA_RESOURCE}": "1"}
    return out


def _placement(site: Site, inf, fit) -> dict:
    spec: dict = {"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}
    arches = _arches(site, fit)
    if len(arches) == 1:  # Grace trays are arm64: the image must be pulled for the node's arch
        spec["nodeSelector"] = {"kubernetes.io/arch": arches.pop()}
    if inf.nodes:
        hosts = [h.name for h in site.hosts if h.group in fit.groups and "kube-worker" in h.roles]
        spec["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": hosts}]}]}}}
    return spec


def _shm() -> tuple[dict, dict]:
    return ({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}},
            {"name": "dshm", "mountPath": "/dev/shm"})


def _container(name: str, image: str, command: list[str] | None, args: list[str], port: int,
               gpus: int, mounts: list[dict], probes: dict | None, env: list[dict] | None = None,
               net: dict | None = None) -> dict:
    net = net or {}
    c: dict = {"name": name, "image": image, "args": args,
               "ports": [{"name": "http", "containerPort": port}],
               "resources": {"limits": {"nvidia.com/gpu": str(gpus), **net.get("resources", {})}},
               "volumeMounts": mounts}
    if net.get("capabilities"):
        c["securityContext"] = {"capabilities": {"add": list(net["capabilities"])}}
    if command:
        c["command"] = command
    if env:
        c["env"] = env
    if probes:
        c.update(probes)
    return c


def _service(inf, port: int, selector: dict) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": inf.name, "namespace": INFERENCE_NS, "labels": _labels(inf)},
            "spec": {"type": "ClusterIP", "selector": selector,
                     "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": port,
                                "protocol": "TCP"}]}}


def _command(engine: str) -> list[str] | None:
    return {"vllm": ["python3", "-m", "vllm.entrypoints.openai.api_server"],
            "sglang": ["python3", "-m", "sglang.launch_server"],
            "tgi": ["text-generation-launcher"],
            "nim": ["nim-serve"]}.get(engine)


def _single_node(site: Site, inf, fit, mv: dict) -> list[dict]:
    port = ENGINE_PORT[inf.engine]
    gpus = inf.tensor_parallel * inf.pipeline_parallel
    shm_vol, shm_mount = _shm()
    env = engine_env(inf)
    if inf.engine == "nim":
        env = [{"name": "NIM_MODEL_PATH", "value": literal(mv["path"])},
               {"name": "NIM_SERVER_PORT", "value": str(port)}, *env]
    net = rdma(site)
    main = _container(inf.engine, _image(site, inf), _command(inf.engine),
                      engine_args(inf, mv["path"], port), port, gpus,
                      [mv["mount"], shm_mount], _probes(inf.engine, port), env, net)
    selector = {"app.kubernetes.io/name": inf.name}
    pod_spec = {"containers": [main], "volumes": [mv["volume"], shm_vol], **_placement(site, inf, fit)}
    if mv["init"]:
        pod_spec["initContainers"] = mv["init"]
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": inf.name, "namespace": INFERENCE_NS, "labels": _labels(inf),
                     "annotations": _annotations(inf)},
        "spec": {
            "replicas": inf.replicas,
            "selector": {"matchLabels": selector},
            # GPUs are the scarce resource: replace pods one by one instead of surging
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
            "template": {"metadata": {"labels": _labels(inf), "annotations": _annotations(inf)},
                         "spec": pod_spec},
        },
    }
    return [deployment, _service(inf, port, selector)]


LEADER_SCRIPTS = {
    "vllm": 'ray start --head --port=6379 && exec python3 -m vllm.entrypoints.openai.api_server "$@"',
    "nim": 'exec nim-serve-ray --head --port 6379 "$@"',
}
WORKER_SCRIPTS = {
    "vllm": 'exec ray start --address="$LWS_LEADER_ADDRESS:6379" --block',
    "nim": 'exec nim-serve-ray --head-address "$LWS_LEADER_ADDRESS:6379"',
}


def _multi_node(site: Site, inf, fit, mv: dict, nodes: int, gpus_per_pod: int) -> list[dict]:
    """A LeaderWorkerSet per deployment: one group of `nodes` pods per replica; the leader
    serves the API. vLLM and NIM form a Ray cluster; SGLang ranks itself from LWS's index."""
    port = ENGINE_PORT[inf.engine]
    shm_vol, shm_mount = _shm()
    image = _image(site, inf)
    args = engine_args(inf, mv["path"], port)
    mounts = [mv["mount"], shm_mount]
    probes = _probes(inf.engine, port)
    env = engine_env(inf)
    if inf.engine == "nim":
        env = [{"name": "NIM_MODEL_PATH", "value": literal(mv["path"])},
               {"name": "NIM_SERVER_PORT", "value": str(port)}, *env]
    net = rdma(site)
    if inf.engine == "sglang":
        dist = ["--nnodes", str(nodes), "--node-rank", "$(LWS_WORKER_INDEX)",
                "--dist-init-addr", "$(LWS_LEADER_ADDRESS):20000"]
        leader = _container(inf.engine, image, _command("sglang"), args + dist, port, gpus_per_pod, mounts, probes,
                            env, net)
        worker = _container(inf.engine, image, _command("sglang"), args + dist, port, gpus_per_pod, mounts, None,
                            env, net)
    else:
        if inf.engine == "vllm":
            args = args + ["--distributed-executor-backend", "ray"]
        leader = _container(inf.engine, image, ["/bin/sh", "-c", LEADER_SCRIPTS[inf.engine], inf.engine],
                            args, port, gpus_per_pod, mounts, probes, env, net)
        worker = _container(inf.engine, image, ["/bin/sh", "-c", WORKER_SCRIPTS[inf.engine]],
                            [], port, gpus_per_pod, mounts, None, env, net)
    base = {"volumes": [mv["volume"], shm_vol], **_placement(site, inf, fit)}
    if mv["init"]:
        base["initContainers"] = mv["init"]
    role = "factoryctl.io/role"
    lws = {
        "apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet",
        "metadata": {"name": inf.name, "namespace": INFERENCE_NS, "labels": _labels(inf),
                     "annotations": _annotations(inf)},
        "spec": {
            "replicas": inf.replicas,
            "leaderWorkerTemplate": {
                "size": nodes,
                "restartPolicy": "RecreateGroupOnPodRestart",
                "leaderTemplate": {"metadata": {"labels": _labels(inf, {role: "leader"})},
                                   "spec": {**base, "containers": [leader]}},
                "workerTemplate": {"metadata": {"labels": _labels(inf, {role: "worker"})},
                                   "spec": {**base, "containers": [worker]}},
            },
        },
    }
    selector = {"app.kubernetes.io/name": inf.name, role: "leader"}
    return [lws, _service(inf, port, selector)]


def _dynamo(site: Site, inf, fit, mv: dict, nodes: int, gpus_per_pod: int) -> list[dict]:
    """A DynamoGraphDeployment: a frontend (OpenAI API, KV-aware routing) and vLLM workers;
    with `disaggregated`, the replicas split into prefill and decode pools."""
    image = _image(site, inf)
    port = ENGINE_PORT["dynamo"]
    shm_vol, shm_mount = _shm()
    args = engine_args(inf, mv["path"], port)
    env = engine_env(inf)
    caps = rdma(site).get("capabilities")

    def worker(extra: list[str], replicas: int) -> dict:
        main: dict = {"image": image, "command": ["python3", "-m", "dynamo.vllm"],
                      "args": args + extra, "volumeMounts": [mv["mount"], shm_mount]}
        if env:
            main["env"] = env
        if caps:  # the RDMA device itself: Dynamo's resources name GPUs only (see K8S006's hint)
            main["securityContext"] = {"capabilities": {"add": list(caps)}}
        pod = {"volumes": [mv["volume"], shm_vol], "mainContainer": main, **_placement(site, inf, fit)}
        if mv["init"]:
            pod["initContainers"] = mv["init"]
        svc = {"dynamoNamespace": inf.name, "componentType": "worker", "replicas": replicas,
               "resources": {"limits": {"gpu": str(gpus_per_pod)}}, "extraPodSpec": pod}
        if nodes > 1:
            svc["multinode"] = {"nodeCount": nodes}
        return svc

    probes = _probes("dynamo", port)
    services: dict = {
        "Frontend": {
            "dynamoNamespace": inf.name, "componentType": "frontend", "replicas": 1,
            "livenessProbe": probes["livenessProbe"], "readinessProbe": probes["readinessProbe"],
            "extraPodSpec": {"mainContainer": {"image": image, "command": ["python3", "-m", "dynamo.frontend"],
                                               "args": ["--http-port", str(port)]}},
        },
    }
    if inf.disaggregated and inf.replicas >= 2:
        prefill = inf.replicas // 2
        services["VllmPrefillWorker"] = worker(["--is-prefill-worker"], prefill)
        services["VllmDecodeWorker"] = worker([], inf.replicas - prefill)
    else:
        services["VllmWorker"] = worker([], inf.replicas)
    dgd = {"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment",
           "metadata": {"name": inf.name, "namespace": INFERENCE_NS, "labels": _labels(inf),
                        "annotations": _annotations(inf)},
           "spec": {"services": services}}
    return [dgd]


def inference_deployments(site: Site) -> list[dict]:
    """One entry per Kubernetes inference deployment: its name, how it is laid out and the
    documents that run it (empty, with a note, when the engine cannot run that layout)."""
    f = site.factory
    if not f.kubernetes.enabled:
        return []
    out = []
    for inf, fit in site.deployments_on("kubernetes"):
        mv = model_volume(site, inf, fit)
        per_replica = inf.tensor_parallel * inf.pipeline_parallel
        per_node = fit.gpus_per_node or per_replica
        nodes = max(1, math.ceil(per_replica / per_node))
        gpus_per_pod = math.ceil(per_replica / nodes)
        note = ""
        if inf.engine == "dynamo":
            docs = _dynamo(site, inf, fit, mv, nodes, gpus_per_pod)
            layout = "dynamo"
        elif nodes == 1:
            docs = _single_node(site, inf, fit, mv)
            layout = "single-node"
        elif inf.engine == "tgi":
            docs, layout = [], "unsupported"
            note = f"TGI shards within one node; {per_replica} GPUs per replica need {nodes} nodes"
        else:
            docs = _multi_node(site, inf, fit, mv, nodes, gpus_per_pod)
            layout = "multi-node"
        out.append({"name": inf.name, "engine": inf.engine, "layout": layout, "nodes": nodes,
                    "gpus_per_pod": gpus_per_pod, "image": _image(site, inf), "note": note,
                    "host_path": mv["host_path"], "docs": docs})
    return out


def build(site: Site) -> dict:
    """The `kube` key of the render context."""
    from . import kube_bench

    k = site.factory.kubernetes
    inference = inference_deployments(site)
    registry = airgap_registry(site)
    out = {
        "enabled": k.enabled,
        "version": k.version,
        "air_gapped": site.factory.sovereignty.air_gapped,
        "registry": registry or "",
        "namespaces": namespaces(site, inference),
        "gpu_operator": {"enabled": k.enabled and k.gpu_operator is not None,
                         "version": k.gpu_operator.version if k.gpu_operator else "",
                         "values": gpu_operator_values(site)},
        "network_operator": {"enabled": bool(k.enabled and k.network_operator and k.network_operator.enabled),
                             "version": NETWORK_OPERATOR_RELEASE,
                             "values": network_operator_values(site),
                             "policy": nic_cluster_policy(site)},
        "helm_releases": helm_releases(site),
        "kube_vip": kube_vip(site),
        "cni": {"values": calico_values(site), "installation": calico_installation(site)},
        "mpi_operator": mpi_operator(site),
        "inference": inference,
        "inference_namespace": INFERENCE_NS,
        "kueue": kube_tenancy.kueue_documents(site),  # kubernetes/kueue/queues.yaml
        "bench": kube_bench.build(site),
        "gpu_split": gpu_split_device_plugins(site),
    }
    # a JSON round trip unshares repeated parts (volumes, probes), so YAML has no aliases
    return json.loads(json.dumps(out))


# --- gpu_split: the Kubernetes share of nodes Slurm shares ---------------------------------
# The device plugin advertises every GPU its container sees and has no device filter of its
# own; NVIDIA's answer for "some GPUs of a node to Kubernetes" is a device plugin DaemonSet per
# node set with NVIDIA_VISIBLE_DEVICES naming those GPUs (NVIDIA/k8s-device-plugin issues #81
# and #236, maintainers' replies), with the GPU Operator's own device plugin kept off those
# nodes by the node label nvidia.com/gpu.deploy.device-plugin=false (GPU Operator docs,
# "Disabling an operand on a node" through the nvidia.com/gpu.deploy.<operand> labels).
DEVICE_PLUGIN_IMAGE = versions.image("k8s_device_plugin")
SPLIT_LABEL = "nvidia.com/gpu.deploy.device-plugin"


def gpu_split_device_plugins(site: Site) -> list[dict]:
    """One device plugin DaemonSet per node group with a gpu_split that gives Kubernetes a
    share, advertising only the GPUs after Slurm's (indices slurm .. slurm+kubernetes-1)."""
    from ..resolve import kube_gpus, slurm_gpus

    f = site.factory
    if not f.kubernetes.enabled or f.kubernetes.gpu_operator is None:
        return []
    registry = airgap_registry(site)
    out = []
    for ng in f.nodes:
        share = kube_gpus(ng)
        hosts = [h.name for h in site.hosts_by_group.get(ng.group, []) if "kube-worker" in h.roles]
        if ng.gpu_split is None or not share or not hosts:
            continue
        first = slurm_gpus(ng)
        devices = ",".join(str(i) for i in range(first, first + share))
        name = f"nvidia-device-plugin-{ng.group}"[:63].rstrip("-")
        labels = {**MANAGED, "app.kubernetes.io/name": name}
        out.append({
            "group": ng.group,
            "hosts": hosts,
            "devices": devices,
            "label": SPLIT_LABEL,
            "manifest": _device_plugin_daemonset(name, labels, hosts, devices, mirrored(DEVICE_PLUGIN_IMAGE, registry)),
        })
    return out


def _device_plugin_daemonset(name: str, labels: dict, hosts: list[str], devices: str, image: str) -> dict:
    plugin_dir = "/var/lib/kubelet/device-plugins"
    return {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": GPU_OPERATOR_NS, "labels": labels},
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": labels["app.kubernetes.io/name"]}},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    # the "nvidia" RuntimeClass the GPU Operator's toolkit installs: it injects
                    # exactly the GPUs NVIDIA_VISIBLE_DEVICES names into this container
                    "runtimeClassName": "nvidia",
                    "priorityClassName": "system-node-critical",
                    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{"matchExpressions": [
                            {"key": "kubernetes.io/hostname", "operator": "In", "values": hosts}]}]}}},
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    "containers": [{
                        "name": "nvidia-device-plugin",
                        "image": image,
                        "command": ["nvidia-device-plugin"],
                        "env": [
                            {"name": "NVIDIA_VISIBLE_DEVICES", "value": devices},
                            {"name": "NVIDIA_DRIVER_CAPABILITIES", "value": "compute,utility"},
                            # pods get their GPUs by UUID in NVIDIA_VISIBLE_DEVICES (the default strategy)
                            {"name": "DEVICE_LIST_STRATEGY", "value": "envvar"},
                            {"name": "FAIL_ON_INIT_ERROR", "value": "true"},
                        ],
                        "securityContext": {"allowPrivilegeEscalation": False,
                                            "capabilities": {"drop": ["ALL"]}},
                        "volumeMounts": [{"name": "device-plugin", "mountPath": plugin_dir}],
                    }],
                    "volumes": [{"name": "device-plugin", "hostPath": {"path": plugin_dir}}],
                },
            },
        },
    }

