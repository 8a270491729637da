"""Kubernetes artifacts a real GPU site can apply (issue 16): the pod network, the API
endpoint, the controllers of every custom kind, and inference pods that carry every
declared engine argument, the RDMA device, the node architecture and a bounded cache."""

from __future__ import annotations

import re

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError

from factoryctl.render import versions
from tests.helpers import reference_doc, write_doc
from tests.unit.render.test_render_kubernetes import (
    IDS,
    NOT_MANIFESTS,
    SOURCES,
    documents,
    inference_docs,
    render_to,
    schema_version,
)

BENCH = "kubernetes/bench/"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Render each source once for this module: (checked, build folder)."""
    done: dict[str, tuple] = {}
    tmp = tmp_path_factory.mktemp("kube-site")

    def get(path):
        key = str(path)
        if key not in done:
            out = tmp / f"{len(done)}" / "build"
            done[key] = (render_to(path, out), out)
        return done[key]

    return get


def _pod_specs(d: dict) -> list[dict]:
    if d["kind"] == "Deployment":
        return [d["spec"]["template"]["spec"]]
    if d["kind"] == "LeaderWorkerSet":
        t = d["spec"]["leaderWorkerTemplate"]
        return [t["leaderTemplate"]["spec"], t["workerTemplate"]["spec"]]
    if d["kind"] == "DynamoGraphDeployment":
        return [{**s["extraPodSpec"], "containers": [s["extraPodSpec"]["mainContainer"]]}
                for s in d["spec"]["services"].values() if s["componentType"] == "worker"]
    return []


# --- pod network ------------------------------------------------------------------------


@pytest.mark.parametrize("source", SOURCES, ids=IDS)
def test_calico_comes_first_with_pod_cidr_and_mtu(source, rendered):
    c, out = rendered(source)
    k = c.factory.kubernetes
    files = documents(out)
    inst = files["kubernetes/cni/installation.yaml"]
    releases = files["kubernetes/helm-releases.yaml"][0]["releases"]
    if not k.enabled:
        assert inst == [] and releases == []
        return
    (doc,) = inst
    assert (doc["apiVersion"], doc["kind"], doc["metadata"]["name"]) == ("operator.tigera.io/v1", "Installation", "default")
    net = doc["spec"]["calicoNetwork"]
    (pool,) = net["ipPools"]
    assert pool["cidr"] == k.pod_cidr and pool["encapsulation"] == "VXLAN"
    assert 20 <= pool["blockSize"] <= 32
    assert net["mtu"] == c.factory.fabric.management.mtu - 50  # Calico MTU docs: VXLAN header
    first = releases[0]
    assert (first["name"], first["chart"], first["version"]) == ("calico", "tigera-operator", versions.version("calico"))
    assert first["after"] == ["kubernetes/cni/installation.yaml"] and first["wait"] is False
    if c.factory.sovereignty.air_gapped:
        reg = c.factory.sovereignty.registries[0]
        assert doc["spec"]["registry"] == reg + "/"
        assert files["kubernetes/cni/values.yaml"][0]["tigeraOperator"]["registry"] == reg


def test_pod_mtu_follows_the_management_network(tmp_path):
    doc = reference_doc()
    doc["fabric"]["management"]["mtu"] = 9000
    out = tmp_path / "b"
    render_to(write_doc(doc, tmp_path / "factory.yaml"), out)
    (inst,) = documents(out)["kubernetes/cni/installation.yaml"]
    assert inst["spec"]["calicoNetwork"]["mtu"] == 8950


# --- control plane endpoint -------------------------------------------------------------


@pytest.mark.parametrize("source", SOURCES, ids=IDS)
def test_kube_vip_static_pod(source, rendered):
    c, out = rendered(source)
    k = c.factory.kubernetes
    docs = documents(out)["kubernetes/kube-vip/kube-vip.yaml"]
    ep = k.control_plane_endpoint
    if not k.enabled or ep is None or ep.provider != "kube-vip":
        assert docs == []
        return
    (pod,) = docs
    kubernetes_validate.validate(pod, schema_version(k.version), strict=True)
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    cp_group = next(ng for ng in c.factory.nodes if "kube-control-plane" in ng.roles)
    assert env["address"] == ep.address and env["vip_arp"] == "true" and env["cp_enable"] == "true"
    assert env["vip_interface"] == cp_group.network.management.interface
    assert pod["spec"]["hostNetwork"] is True
    image = pod["spec"]["containers"][0]["image"]
    assert image.endswith(f"/kube-vip/kube-vip:{versions.version('kube_vip')}")
    group_vars = yaml.safe_load((out / "ansible/inventory/group_vars/all.yml").read_text())
    assert group_vars["kubernetes_control_plane_endpoint"] == f"{ep.address}:6443"
    assert group_vars["kubernetes_kube_vip"] is True


def test_external_endpoint_renders_no_kube_vip(tmp_path):
    doc = reference_doc()
    doc["kubernetes"]["control_plane_endpoint"] = {"address": "10.20.0.6", "provider": "external"}
    out = tmp_path / "b"
    render_to(write_doc(doc, tmp_path / "factory.yaml"), out)
    assert documents(out)["kubernetes/kube-vip/kube-vip.yaml"] == []
    group_vars = yaml.safe_load((out / "ansible/inventory/group_vars/all.yml").read_text())
    assert group_vars["kubernetes_control_plane_endpoint"] == "10.20.0.6:6443"
    assert group_vars["kubernetes_kube_vip"] is False


# --- every kind has its controller before it --------------------------------------------


def _builtin(doc: dict, version: str) -> bool:
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except SchemaNotFoundError:
        return False
    return True


@pytest.mark.parametrize("source", SOURCES, ids=IDS)
def test_every_kind_is_builtin_or_installed_earlier(source, rendered):
    """The apply order: the kubernetes role (Calico and its Installation, namespaces, the
    controllers of helm-releases.yaml, the MPI Operator manifest), the GPU and Network
    Operator roles (the NicClusterPolicy after its chart), the inference role, then the
    benchmark stage. Each custom kind must be provided by a step before the one using it."""
    c, out = rendered(source)
    k = c.factory.kubernetes
    if not k.enabled:
        return
    version = schema_version(k.version)
    files = documents(out)
    releases = files["kubernetes/helm-releases.yaml"][0]["releases"]
    provides = {"calico": {"Installation"}, "lws": {"LeaderWorkerSet"}, "dynamo-crds": {"DynamoGraphDeployment"},
                "network-operator": {"NicClusterPolicy"},
                "kueue": {"ClusterQueue", "LocalQueue", "ResourceFlavor", "Workload"}}
    steps: list[tuple[set[str], list[dict]]] = []  # (kinds installed by the step, objects applied after it)
    by_name = {r["name"]: r for r in releases}
    order = [r["name"] for r in releases if r.get("phase") in ("cni", "controllers")]
    for name in order:
        r = by_name[name]
        steps.append((provides.get(name, set()), [d for rel in r.get("after", []) for d in files[rel]]))
    mpi = files["kubernetes/controllers/mpi-operator.yaml"]
    crds = {d["spec"]["names"]["kind"] for d in mpi if d["kind"] == "CustomResourceDefinition"}
    steps.append((crds, mpi))
    for name in ("gpu-operator", "network-operator"):
        if name in by_name:
            r = by_name[name]
            steps.append((provides.get(name, set()), [d for rel in r.get("after", []) for d in files[rel]]))
    steps.append((set(), [d for rel, docs in files.items() if rel.startswith("kubernetes/inference/") for d in docs]))
    steps.append((set(), [d for rel, docs in files.items() if rel.startswith(BENCH) for d in docs]))
    known: set[str] = set()
    used = set()
    for installs, objects in steps:
        known |= installs
        for d in objects:
            used.add(d["kind"])
            assert _builtin(d, version) or d["kind"] in known, f"{d['kind']} {d['metadata']['name']} has no controller before it"
    # every rendered manifest is covered by a step
    covered = {id(d) for _, objs in steps for d in objs}
    for rel, docs in files.items():
        if rel in NOT_MANIFESTS or rel.startswith(("kubernetes/kube-vip/", "kubernetes/namespaces")):
            continue
        for d in docs:
            assert id(d) in covered or _builtin(d, version), (rel, d["kind"])
    assert ("MPIJob" in used) == bool(mpi)  # the MPI Operator comes exactly with the benchmark's MPIJobs


def test_site_plays_in_controller_order():
    from factoryctl.resources import templates_dir

    text = (templates_dir() / "ansible/project/site.yml.j2").read_text()
    names = re.findall(r"- role: (\w+)", text)
    assert names.index("kubernetes") < names.index("gpu_operator") < names.index("network_operator") < names.index("inference")


# --- inference pods ---------------------------------------------------------------------


def _flag(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


@pytest.mark.parametrize(("engine", "flag"), [("vllm", "--max-num-seqs"), ("sglang", "--max-running-requests"),
                                              ("tgi", "--max-concurrent-requests"), ("nim", "--max-num-seqs")])
def test_every_declared_engine_field_reaches_the_args(tmp_path, engine, flag):
    doc = reference_doc()
    inf = doc["inference"][0]
    inf.update({"engine": engine, "max_num_seqs": 7, "max_context": 4096, "gpu_memory_utilization": 0.85,
                "engine_options": {"flags": {"enforce-eager": True, "swap-space": 4}, "env": {"FOO_BAR": "x@y"}}})
    out = tmp_path / "b"
    render_to(write_doc(doc, tmp_path / "factory.yaml"), out)
    (dep,) = [d for d in inference_docs(out) if d["kind"] == "Deployment"]
    ctr = dep["spec"]["template"]["spec"]["containers"][0]
    args = ctr["args"]
    assert _flag(args, flag) == "7"
    assert "--enforce-eager" in args and _flag(args, "--swap-space") == "4"
    assert {"name": "FOO_BAR", "value": "x@y"} in ctr["env"]


@pytest.mark.parametrize("source", SOURCES, ids=IDS)
def test_inference_pods_on_rdma_arch_and_cache(source, rendered):
    c, out = rendered(source)
    f = c.factory
    cf = f.fabric.compute
    rdma_fabric = cf is not None and cf.type in ("infiniband", "roce")
    net = f.kubernetes.network_operator
    shared = bool(net and net.enabled and net.rdma_shared_device)
    from factoryctl.resolve import group_arch

    for d in inference_docs(out):
        for spec in _pod_specs(d):
            for ctr in spec["containers"]:
                caps = ctr.get("securityContext", {}).get("capabilities", {}).get("add", [])
                assert ("IPC_LOCK" in caps) == rdma_fabric, (d["metadata"]["name"], caps)
                if d["kind"] != "DynamoGraphDeployment":
                    assert ("rdma/rdma_shared_device_a" in ctr["resources"]["limits"]) == (rdma_fabric and shared)
            fit = next(x for x in c.site.inference if x.name == d["metadata"]["name"])
            arches = {group_arch(ng) for ng in f.nodes if ng.group in fit.groups}
            if len(arches) == 1:
                assert spec["nodeSelector"]["kubernetes.io/arch"] == arches.pop()
            for vol in spec["volumes"]:
                if "emptyDir" in vol and vol["name"] == "model":
                    assert re.fullmatch(r"\d+Gi", vol["emptyDir"]["sizeLimit"])  # never unbounded
                    (sync,) = spec["initContainers"]
                    assert sync["resources"]["requests"]["ephemeral-storage"] == vol["emptyDir"]["sizeLimit"]


def test_grace_trays_get_arm64_and_blackwell_driver(rendered):
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    c, out = rendered(root / "blueprints/gb300-nvl72-neocloud/factory.yaml")
    for d in inference_docs(out):
        for spec in _pod_specs(d):
            assert spec["nodeSelector"] == {"kubernetes.io/arch": "arm64"}
    values = documents(out)["kubernetes/gpu-operator/values.yaml"][0]
    assert values["driver"]["version"] == versions.version("gpu_operator_driver_blackwell")
    assert int(values["driver"]["version"].split(".")[0]) >= 570  # GPU Operator: B200 needs 570.133.20+
    pilot = documents(rendered(root / "examples/reference/factory.yaml")[1])["kubernetes/gpu-operator/values.yaml"][0]
    assert "version" not in pilot.get("driver", {})  # Hopper: the chart's default driver


def test_weights_cache_size_follows_the_model(tmp_path):
    doc = reference_doc()
    inf = doc["inference"][0]
    inf["model_source"] = "s3://models.fra1.example.internal/llama"
    out = tmp_path / "b"
    c = render_to(write_doc(doc, tmp_path / "factory.yaml"), out)
    (dep,) = [d for d in inference_docs(out) if d["kind"] == "Deployment"]
    (vol,) = [v for v in dep["spec"]["template"]["spec"]["volumes"] if v["name"] == "model"]
    fit = c.site.inference[0]
    gib = int(vol["emptyDir"]["sizeLimit"][:-2])
    weights = fit.weights_gb_per_gpu * inf.get("tensor_parallel", 1) * 1e9 / 2**30
    assert weights < gib <= weights * 1.1 + 1


def test_air_gapped_controllers_come_from_the_mirrors(tmp_path):
    doc = reference_doc()  # air-gapped; a 16-GPU replica spans two nodes: a LeaderWorkerSet
    doc["inference"][0].update({"tensor_parallel": 16, "model_source": "pvc://models/llama"})
    doc["inference"].append({**doc["inference"][0], "name": "graph", "engine": "dynamo", "tensor_parallel": 8})
    out = tmp_path / "b"
    c = render_to(write_doc(doc, tmp_path / "factory.yaml"), out)
    reg = c.factory.sovereignty.registries[0]
    releases = {r["name"]: r for r in documents(out)["kubernetes/helm-releases.yaml"][0]["releases"]}
    assert releases["lws"]["url"] == f"oci://{reg}/lws/charts/lws"
    assert releases["lws"]["values"]["image"]["manager"]["repository"] == f"{reg}/lws/lws"
    assert "url" not in releases["dynamo-crds"] and "url" not in releases["dynamo-platform"]
    assert releases["dynamo-platform"]["namespace"] == "inference"
    names = list(releases)
    assert names.index("calico") < names.index("lws") < names.index("gpu-operator")
    mpi = documents(out)["kubernetes/controllers/mpi-operator.yaml"]
    (deploy,) = [d for d in mpi if d["kind"] == "Deployment"]
    assert deploy["spec"]["template"]["spec"]["containers"][0]["image"] == f"{reg}/mpioperator/mpi-operator:0.6.0"


def test_kueue_is_installed_only_when_declared(tmp_path):
    doc = reference_doc()
    out = tmp_path / "a"
    render_to(write_doc(doc, tmp_path / "a.yaml"), out)
    assert "kueue" not in [r["name"] for r in documents(out)["kubernetes/helm-releases.yaml"][0]["releases"]]
    doc["kubernetes"]["queueing"] = "kueue"
    out = tmp_path / "b"
    c = render_to(write_doc(doc, tmp_path / "b.yaml"), out)
    reg = c.factory.sovereignty.registries[0]
    releases = documents(out)["kubernetes/helm-releases.yaml"][0]["releases"]
    names = [r["name"] for r in releases]
    assert names.index("calico") < names.index("kueue") < names.index("gpu-operator")
    kueue = releases[names.index("kueue")]
    assert kueue["phase"] == "controllers" and kueue["namespace"] == "kueue-system"
    assert kueue["url"] == f"oci://{reg}/kueue/charts/kueue" and kueue["version"] == versions.version("kueue")
    assert kueue["values"]["controllerManager"]["manager"]["image"]["repository"] == f"{reg}/kueue/kueue"
