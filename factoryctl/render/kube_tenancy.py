"""Kubernetes tenancy: per tenant a Namespace, ResourceQuota, LimitRange, default-deny
NetworkPolicy with its exceptions and a RoleBinding for its groups (namespaces.yaml, applied
by the kubernetes role), and Kueue queues when `kubernetes.queueing: kueue`
(kubernetes/kueue/queues.yaml, applied once Kueue's CRDs are installed).
"""

from __future__ import annotations

from ..resolve import Site, cpu_cores, gpu_capacity, gpu_type, memory_gb
from .slurm import gres_type

MANAGED = {"app.kubernetes.io/managed-by": "factoryctl"}
TENANT_LABEL = "factoryctl.io/tenant"
MONITORING_NS = "monitoring"  # where an in-cluster Prometheus scrapes from
# The Network Operator's RDMA shared device plugin advertises rdma/<resourceName>
# (k8s-rdma-shared-dev-plugin README; the NicClusterPolicy config of render/kube.py).
RDMA_RESOURCE = "rdma/rdma_shared_device_a"
GPU_TYPE_LABEL = "factoryctl.io/gpu-type"
KUEUE_API = "kueue.x-k8s.io/v1beta1"  # Kueue docs, concepts: ClusterQueue, LocalQueue, ResourceFlavor


def _meta(name: str, namespace: str | None = None, tenant: str | None = None) -> dict:
    m: dict = {"name": name, "labels": {**MANAGED, **({TENANT_LABEL: tenant} if tenant else {})}}
    if namespace:
        m["namespace"] = namespace
    return m


def rdma_resource(site: Site) -> str | None:
    net = site.factory.kubernetes.network_operator
    return RDMA_RESOURCE if net is not None and net.enabled and net.rdma_shared_device else None


def tenant_documents(site: Site, t) -> list[dict]:
    """The namespace of tenant `t` and what confines it."""
    ns = t.name
    # Extended resources (nvidia.com/gpu, rdma/...) are quota'd on requests only
    # (kubernetes.io/docs/concepts/policy/resource-quotas/#resource-quota-for-extended-resources).
    hard = {"requests.nvidia.com/gpu": str(t.gpu_total)}
    if t.cpu_quota is not None:
        hard["requests.cpu"] = str(t.cpu_quota)
    if t.memory_gb is not None:
        hard["requests.memory"] = f"{t.memory_gb}Gi"
    rdma = rdma_resource(site)
    if rdma:
        # one RDMA device share per GPU: a pod asks for both (GPUDirect RDMA)
        hard[f"requests.{rdma}"] = str(t.gpu_total)
    docs = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(ns, tenant=t.name)},
        {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": _meta("gpu-quota", ns, t.name),
         "spec": {"hard": hard}},
        # defaults so that pods without requests still count against the quota
        # (kubernetes.io/docs/concepts/policy/limit-range/)
        {"apiVersion": "v1", "kind": "LimitRange", "metadata": _meta("defaults", ns, t.name),
         "spec": {"limits": [{"type": "Container",
                              "defaultRequest": {"cpu": "100m", "memory": "256Mi"},
                              "default": {"cpu": "1", "memory": "1Gi"}}]}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
         "metadata": _meta("default-deny", ns, t.name),
         "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
         "metadata": _meta("allow-essentials", ns, t.name),
         "spec": {
             "podSelector": {},
             "policyTypes": ["Ingress", "Egress"],
             "ingress": [
                 {"from": [{"podSelector": {}}]},  # the tenant's own pods
                 {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": MONITORING_NS}}}]},
             ],
             "egress": [
                 {"to": [{"podSelector": {}}]},
                 # DNS: kube-system's CoreDNS (kubernetes.io/metadata.name is set on every namespace)
                 {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                          "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                  "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
             ],
         }},
    ]
    if t.members.groups or t.members.users:
        subjects = ([{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g} for g in t.members.groups]
                    + [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": u} for u in t.members.users])
        # the built-in "edit" ClusterRole, bound in the namespace only (RBAC user-facing roles)
        docs.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                     "metadata": _meta("tenant-edit", ns, t.name),
                     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
                     "subjects": subjects})
    return docs


def kueue_documents(site: Site) -> list[dict]:
    """One ResourceFlavor per GPU type, a ClusterQueue per tenant (nominal quota = its GPU quota,
    in one cohort so idle quota is borrowed) and a LocalQueue in its namespace."""
    f = site.factory
    k = f.kubernetes
    if not k.enabled or k.queueing != "kueue" or not f.tenants:
        return []
    flavors: dict[str, int] = {}  # GRES-style type name -> GPUs of that type
    for model, n in gpu_capacity(site).items():
        flavors[gres_type(model)] = flavors.get(gres_type(model), 0) + n
    docs: list[dict] = []
    for name in flavors:
        # One GPU type: a flavor without node labels (every node). Several: nodes carry
        # factoryctl.io/gpu-type=<type> so Kueue pins each flavor's pods to its GPUs.
        spec = {"nodeLabels": {GPU_TYPE_LABEL: name}} if len(flavors) > 1 else {}
        docs.append({"apiVersion": KUEUE_API, "kind": "ResourceFlavor", "metadata": _meta(name), "spec": spec})
    cpu_mem = ["cpu", "memory"]
    cores, mem = cpu_cores(site), memory_gb(site)
    for t in f.tenants:
        quotas = t.gpu_quota if isinstance(t.gpu_quota, dict) else None
        rgs = []
        for name, have in flavors.items():
            if quotas is not None:
                gpus = sum(n for m, n in quotas.items() if gres_type(gpu_type(m)) == name)
            else:
                gpus = min(t.gpu_total, have)  # the namespace's ResourceQuota caps the total across types
            # a workload's every requested resource must be covered; no CPU/memory quota = the site's
            rgs.append({"name": name, "resources": [
                {"name": "cpu", "nominalQuota": str(t.cpu_quota if t.cpu_quota is not None else cores)},
                {"name": "memory", "nominalQuota": f"{t.memory_gb if t.memory_gb is not None else mem}Gi"},
                {"name": "nvidia.com/gpu", "nominalQuota": str(gpus)}]})
        docs.append({"apiVersion": KUEUE_API, "kind": "ClusterQueue", "metadata": _meta(t.name, tenant=t.name),
                     "spec": {"cohort": f.metadata.name,
                              "namespaceSelector": {"matchLabels": {TENANT_LABEL: t.name}},
                              "resourceGroups": [{"coveredResources": [*cpu_mem, "nvidia.com/gpu"],
                                                  "flavors": rgs}] if rgs else []}})
        docs.append({"apiVersion": KUEUE_API, "kind": "LocalQueue", "metadata": _meta("default", t.name, t.name),
                     "spec": {"clusterQueue": t.name}})
    return docs
