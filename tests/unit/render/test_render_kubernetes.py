"""Kubernetes artifacts: rendered for every blueprint, parsed back and validated.

Every manifest is validated with kubernetes-validate (strict: unknown fields are errors)
against the schemas of the factory's `kubernetes.version` (1.31 in every blueprint; the
package ships 1.25 to 1.37, the nearest is taken outside that range). Custom resources
(DynamoGraphDeployment, LeaderWorkerSet, NicClusterPolicy) have no schema there: their
structure is checked here, and the pod templates they carry are validated as Pods.
Helm values files are not manifests; their keys are checked against what the charts read.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, all_versions, major_minor

from factoryctl.render import RenderError, render
from factoryctl.resolve.airgap import external_reference
from factoryctl.session import check
from tests.helpers import reference_doc, write_doc

ROOT = Path(__file__).resolve().parents[3]
BLUEPRINTS = sorted(p.parent.name for p in (ROOT / "blueprints").glob("*/factory.yaml"))
SOURCES = [ROOT / "blueprints" / b / "factory.yaml" for b in BLUEPRINTS] + [
    ROOT / "examples" / "lab.yaml", ROOT / "examples" / "reference" / "factory.yaml"]
IDS = [f"blueprint-{b}" for b in BLUEPRINTS] + ["examples-lab", "examples-reference"]
# MPIJob: kubernetes/bench/; Installation: Calico's operator (kubernetes/cni/); Kueue: kubernetes/kueue/
CRD_KINDS = {"DynamoGraphDeployment", "LeaderWorkerSet", "NicClusterPolicy", "MPIJob", "Installation",
             "ClusterQueue", "LocalQueue", "ResourceFlavor"}
NOT_MANIFESTS = {"kubernetes/gpu-operator/values.yaml", "kubernetes/network-operator/values.yaml",
                 "kubernetes/helm-releases.yaml", "kubernetes/cni/values.yaml"}


def schema_version(declared: str) -> str:
    """The schema set kubernetes-validate uses for a declared version: the same minor, or
    the nearest one it ships."""
    versions = [major_minor(v) for v in all_versions()]
    want = major_minor(declared.lstrip("v"))
    key = [int(x) for x in want.split(".")]
    return min(versions, key=lambda v: abs(int(v.split(".")[1]) - key[1]) if v.split(".")[0] == str(key[0]) else 99)


def test_kubernetes_validate_covers_the_declared_version():
    assert kubernetes_validate.__version__.split(".")[:2] >= ["1", "31"]
    assert schema_version("1.31") == "1.31"
    assert schema_version("1.99") == major_minor(all_versions()[-1])


# --- rendering ---------------------------------------------------------------------------


def render_to(path: Path, out: Path):
    c = check(path)
    assert c.site is not None, [f.message for f in c.findings]
    render(c.site, out)
    return c


@cache
def _rendered(path: str, tmp: str):
    out = Path(tmp) / Path(path).parent.name / "build"
    return render_to(Path(path), out), out


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("kube-render"))
    return lambda path: _rendered(str(path), tmp)


def documents(out: Path) -> dict[str, list[dict]]:
    """kubernetes/ file -> its YAML documents (comments-only files have none)."""
    files = {}
    for p in sorted((out / "kubernetes").rglob("*.yaml")):
        rel = p.relative_to(out).as_posix()
        files[rel] = [d for d in yaml.safe_load_all(p.read_text()) if d is not None]
    return files


def inference_docs(out: Path) -> list[dict]:
    """Documents of every kubernetes/inference/<name>/manifests.yaml."""
    return [d for rel, docs in documents(out).items() if rel.startswith("kubernetes/inference/") for d in docs]


def manifests(out: Path) -> list[dict]:
    return [d for rel, docs in documents(out).items() if rel not in NOT_MANIFESTS for d in docs]


def pods_inside(doc: dict) -> list[dict]:
    """The pod specs a custom resource carries, as Pods kubernetes-validate can check."""
    meta = {"name": doc["metadata"]["name"], "namespace": doc["metadata"].get("namespace", "default")}
    specs = []
    if doc["kind"] == "LeaderWorkerSet":
        t = doc["spec"]["leaderWorkerTemplate"]
        specs = [t["leaderTemplate"]["spec"], t["workerTemplate"]["spec"]]
    elif doc["kind"] == "MPIJob":
        specs = [r["template"]["spec"] for r in doc["spec"]["mpiReplicaSpecs"].values()]
    elif doc["kind"] == "DynamoGraphDeployment":
        for name, svc in doc["spec"]["services"].items():
            extra = dict(svc["extraPodSpec"])
            main = dict(extra.pop("mainContainer"), name=name.lower())
            specs.append({**extra, "containers": [main]})
    return [{"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": s} for s in specs]


def validate_all(docs: list[dict], version: str) -> list[str]:
    """Validate every manifest (strict); returns the kinds that had no schema (CRDs)."""
    skipped = []
    for d in docs:
        try:
            kubernetes_validate.validate(d, version, strict=True)
        except SchemaNotFoundError:
            skipped.append(d["kind"])
            for pod in pods_inside(d):
                kubernetes_validate.validate(pod, version, strict=True)
    return skipped


def k8s_expand(text: str) -> tuple[str, list[str]]:
    """What Kubernetes makes of a command/args/env string: `$$` -> `$`, `$(VAR)` -> the
    variable. Returns the result (references kept as written) and the references found."""
    out, refs, i = [], [], 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("$(", i) and ")" in text[i:]:
            end = text.index(")", i)
            refs.append(text[i + 2:end])
            out.append(text[i:end + 1])
            i = end + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out), refs


# --- every blueprint ---------------------------------------------------------------------


@pytest.mark.parametrize("source", SOURCES, ids=IDS)
def test_every_manifest_validates(source, rendered):
    c, out = rendered(source)
    k = c.factory.kubernetes
    files = documents(out)
    for rel in ("kubernetes/namespaces.yaml", "kubernetes/helm-releases.yaml",
                "kubernetes/gpu-operator/values.yaml", "kubernetes/network-operator/values.yaml",
                "kubernetes/network-operator/nicclusterpolicy.yaml"):
        assert rel in files, rel
    on_k8s = [i.name for i in c.factory.inference if i.platform == "kubernetes" and k.enabled]
    assert sorted(p.name for p in (out / "kubernetes" / "inference").glob("*")) == sorted(on_k8s)
    docs = manifests(out)
    if not k.enabled:
        assert docs == []
        return
    skipped = validate_all(docs, schema_version(k.version))
    assert set(skipped) <= CRD_KINDS, skipped
    for d in docs:
        if d["kind"] in CRD_KINDS:
            assert d["apiVersion"] in ("nvidia.com/v1alpha1", "leaderworkerset.x-k8s.io/v1", "mellanox.com/v1alpha1",
                                    "kubeflow.org/v2beta1", "kueue.x-k8s.io/v1beta1", "operator.tigera.io/v1")
            assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", d["metadata"]["name"])


@pytest.mark.parametrize("source", SOURCES, ids=IDS)
def test_namespaces_and_tenant_quotas(source, rendered):
    c, out = rendered(source)
    k = c.factory.kubernetes
    docs = documents(out)["kubernetes/namespaces.yaml"]
    if not k.enabled:
        assert docs == []
        return
    names = [d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"]
    assert len(names) == len(set(names))
    if k.gpu_operator:
        ns = next(d for d in docs if d["kind"] == "Namespace" and d["metadata"]["name"] == "gpu-operator")
        assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    quotas = {d["metadata"]["namespace"]: d["spec"]["hard"] for d in docs if d["kind"] == "ResourceQuota"}
    rdma = bool(k.network_operator and k.network_operator.enabled and k.network_operator.rdma_shared_device)
    assert quotas == {t.name: {"requests.nvidia.com/gpu": str(t.gpu_total),
                               **({"requests.cpu": str(t.cpu_quota)} if t.cpu_quota is not None else {}),
                               **({"requests.rdma/rdma_shared_device_a": str(t.gpu_total)} if rdma else {})}
                      for t in c.factory.tenants}
    for t in c.factory.tenants:  # every tenant namespace is confined
        mine = {(d["kind"], d["metadata"]["name"]) for d in docs if d["metadata"].get("namespace") == t.name}
        assert {("LimitRange", "defaults"), ("NetworkPolicy", "default-deny"), ("NetworkPolicy", "allow-essentials")} <= mine


@pytest.mark.parametrize("source", SOURCES, ids=IDS)
def test_operator_values(source, rendered):
    c, out = rendered(source)
    f = c.factory
    k = f.kubernetes
    files = documents(out)
    gpu = files["kubernetes/gpu-operator/values.yaml"]
    net = files["kubernetes/network-operator/values.yaml"]
    policy = files["kubernetes/network-operator/nicclusterpolicy.yaml"]
    releases = files["kubernetes/helm-releases.yaml"][0]["releases"]
    if not k.enabled or k.gpu_operator is None:
        assert gpu == []
    else:
        (v,) = gpu
        host_drivers = not k.gpu_operator.driver_enabled or f.slurm.enabled
        assert v["driver"]["enabled"] is (not host_drivers)
        assert v["toolkit"]["enabled"] is True
        assert v["mig"]["strategy"] == k.gpu_operator.mig_strategy
        assert v["migManager"]["enabled"] is (k.gpu_operator.mig_strategy != "none")
        assert v["dcgmExporter"]["enabled"] is k.gpu_operator.dcgm_exporter
        assert {r["name"]: r["version"] for r in releases}["gpu-operator"] == k.gpu_operator.version
        reg = f.sovereignty.registries[0] if f.sovereignty.air_gapped else None
        repos = [x for x in _walk(v) if x[0].endswith("repository")]
        if reg:
            assert repos and all(val.startswith(reg + "/") for _, val in repos), repos
        else:
            assert repos == []  # the chart's defaults stand
    if not (k.enabled and k.network_operator and k.network_operator.enabled):
        assert net == [] and policy == []
        return
    (v,) = net
    assert v["nfd"]["enabled"] is (k.gpu_operator is None)  # one NFD, the GPU Operator's
    assert v["sriovNetworkOperator"]["enabled"] is k.network_operator.sriov
    (p,) = policy
    spec = p["spec"]
    if k.network_operator.rdma_shared_device:
        rdma = spec["rdmaSharedDevicePlugin"]
        import json

        cfg = json.loads(rdma["config"])["configList"][0]
        assert cfg["resourceName"] == "rdma_shared_device_a" and cfg["selectors"]["vendors"] == ["15b3"]
        assert set(spec["secondaryNetwork"]) == {"multus", "cniPlugins"}
    for comp in [spec[x] for x in spec if x != "secondaryNetwork"] + list(spec.get("secondaryNetwork", {}).values()):
        assert {"image", "repository", "version"} <= set(comp), comp


def _walk(node, path=""):
    if isinstance(node, dict):
        for key, val in node.items():
            yield from _walk(val, f"{path}.{key}" if path else key)
    elif isinstance(node, list):
        for i, val in enumerate(node):
            yield from _walk(val, f"{path}[{i}]")
    else:
        yield path, node


def _deployment_docs(out: Path, name: str) -> list[dict]:
    return [d for d in inference_docs(out) if d["metadata"]["name"] == name]


def _main_containers(doc: dict) -> list[dict]:
    if doc["kind"] == "Deployment":
        return doc["spec"]["template"]["spec"]["containers"]
    if doc["kind"] == "LeaderWorkerSet":
        return doc["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["containers"]
    return [svc["extraPodSpec"]["mainContainer"] for svc in doc["spec"]["services"].values()
            if svc["componentType"] == "worker"]


@pytest.mark.parametrize("source", SOURCES, ids=IDS)
def test_inference_deployments(source, rendered):
    c, out = rendered(source)
    f = c.factory
    fits = {i.name: i for i in c.site.inference}
    text = "".join(p.read_text() for p in sorted((out / "kubernetes").rglob("*.yaml")))
    assert not re.search(r"huggingface|hf\.co|HF_TOKEN", text)
    for inf in f.inference:
        docs = _deployment_docs(out, inf.name)
        if inf.platform != "kubernetes" or not f.kubernetes.enabled:
            assert docs == []
            continue
        kinds = sorted(d["kind"] for d in docs)
        per_replica = inf.tensor_parallel * inf.pipeline_parallel
        single = per_replica <= fits[inf.name].gpus_per_node
        if inf.engine == "dynamo":
            assert kinds == ["DynamoGraphDeployment"]
        else:
            assert kinds == sorted(["Service", "Deployment" if single else "LeaderWorkerSet"])
        image = inf.image or None
        for main in _main_containers(next(d for d in docs if d["kind"] != "Service")):
            args = main["args"]
            assert args[args.index("--tensor-parallel-size") + 1] == str(inf.tensor_parallel)
            assert args[args.index("--pipeline-parallel-size") + 1] == str(inf.pipeline_parallel)
            assert args[args.index("--max-model-len") + 1] == str(inf.max_context)
            assert args[args.index("--gpu-memory-utilization") + 1] == str(inf.gpu_memory_utilization)
            if inf.precision == "fp8":
                assert args[args.index("--quantization") + 1] == "fp8"
            if inf.kv_cache_dtype == "fp8":
                assert args[args.index("--kv-cache-dtype") + 1] == "fp8"
            if image:
                assert main["image"] == image
            elif f.sovereignty.air_gapped:
                assert main["image"].startswith(f.sovereignty.registries[0] + "/")
        workload = next(d for d in docs if d["kind"] != "Service")
        if workload["kind"] == "Deployment":
            assert workload["spec"]["replicas"] == inf.replicas
            (main,) = workload["spec"]["template"]["spec"]["containers"]
            assert main["resources"]["limits"]["nvidia.com/gpu"] == str(per_replica)
            assert main["readinessProbe"]["httpGet"]["path"] == "/v1/models"
            assert main["livenessProbe"]["httpGet"]["path"] == "/health"
            assert main["startupProbe"]["httpGet"]["path"] == "/health"


def test_dynamo_graph_deployment_on_nvl72(rendered):
    c, out = rendered(ROOT / "blueprints" / "gb300-nvl72-neocloud" / "factory.yaml")
    (dgd,) = _deployment_docs(out, "llama-405b-long")
    services = dgd["spec"]["services"]
    assert set(services) == {"Frontend", "VllmPrefillWorker", "VllmDecodeWorker"}  # disaggregated, 2 replicas
    front = services["Frontend"]
    assert front["componentType"] == "frontend" and front["readinessProbe"]["httpGet"]["path"] == "/v1/models"
    for name in ("VllmPrefillWorker", "VllmDecodeWorker"):
        w = services[name]
        assert w["componentType"] == "worker" and w["replicas"] == 1
        assert w["multinode"] == {"nodeCount": 4} and w["resources"]["limits"]["gpu"] == "4"  # TP16 on 4 trays
        assert w["extraPodSpec"]["mainContainer"]["command"] == ["python3", "-m", "dynamo.vllm"]
    assert "--is-prefill-worker" in services["VllmPrefillWorker"]["extraPodSpec"]["mainContainer"]["args"]
    (lws, svc) = sorted(_deployment_docs(out, "llama-405b"), key=lambda d: d["kind"])
    assert lws["kind"] == "LeaderWorkerSet" and lws["spec"]["leaderWorkerTemplate"]["size"] == 2  # TP8 over 2 trays
    assert svc["spec"]["selector"]["factoryctl.io/role"] == "leader"


@pytest.mark.parametrize("source", [s for s, b in zip(SOURCES, IDS, strict=True) if "airgapped" in b or "pilot" in b
                                    or "reference" in b], ids=lambda p: p.parent.name)
def test_air_gapped_sites_pull_only_from_their_registry(source, rendered):
    c, out = rendered(source)
    f = c.factory
    assert f.sovereignty.air_gapped
    reg = f.sovereignty.registries[0]
    for p in sorted((out / "kubernetes").rglob("*.yaml")):
        for n, line in enumerate(p.read_text().splitlines(), 1):
            if not line.lstrip().startswith("#"):
                assert external_reference(f, line) is None, f"{p.name}:{n}: {line}"
    for d in manifests(out):
        key = ".repository" if d["kind"] == "NicClusterPolicy" else ".image"  # there `image` is a name
        for path, val in _walk(d):
            if path.endswith(key):
                assert str(val).startswith(reg + "/"), (path, val)


# --- engines, model sources, hostile text -----------------------------------------------


def _variants_doc() -> dict:
    doc = reference_doc()  # the pilot: 4x 8 H100, air-gapped, registry.fra1.example.internal
    doc["nodes"][1]["gpu_split"] = {"slurm": 0, "kubernetes": 8}  # every GPU to Kubernetes here
    base = {"model": "meta-llama/Llama-3.1-8B-Instruct", "platform": "kubernetes", "max_context": 8192}
    store = "s3://models.fra1.example.internal"
    doc["inference"] = [
        {**base, "name": "v-pp", "engine": "vllm", "tensor_parallel": 4, "pipeline_parallel": 2,
         "model_source": "pvc://models/llama-3.1-8b", "kv_cache_dtype": "fp8", "precision": "fp8"},
        {**base, "name": "sg", "engine": "sglang", "tensor_parallel": 2, "model_source": "nfs://10.20.0.210/export/models/8b"},
        {**base, "name": "tg", "engine": "tgi", "tensor_parallel": 2, "model_source": "/lustre/models/8b", "precision": "fp16"},
        {**base, "name": "ni", "engine": "nim", "tensor_parallel": 1, "model_source": f"{store}/8b"},
        {**base, "name": "dy", "engine": "dynamo", "tensor_parallel": 1, "model_source": f"{store}/8b"},
        {**base, "name": "v-multi", "engine": "vllm", "tensor_parallel": 16, "model_source": f"{store}/8b"},
        {**base, "name": "sg-multi", "engine": "sglang", "tensor_parallel": 16, "model_source": f"{store}/8b"},
        {**base, "name": "ni-multi", "engine": "nim", "tensor_parallel": 8, "pipeline_parallel": 2, "model_source": f"{store}/8b"},
        {**base, "name": "tg-multi", "engine": "tgi", "tensor_parallel": 16, "model_source": f"{store}/8b"},
        {**base, "name": "gcs", "engine": "vllm", "model_source": "gs://models-fra1/llama-3.1-8b"},
    ]
    doc["kubernetes"]["tenants"] = [{"name": "research", "gpu_quota": 16, "cpu_quota": 256}]
    return doc


def test_engines_layouts_and_model_sources(tmp_path):
    out = tmp_path / "build"
    c = render_to(write_doc(_variants_doc(), tmp_path / "factory.yaml"), out)
    docs = manifests(out)
    assert set(validate_all(docs, schema_version(c.factory.kubernetes.version))) == {"DynamoGraphDeployment", "LeaderWorkerSet", "NicClusterPolicy", "MPIJob", "Installation"}
    by = {(d["kind"], d["metadata"]["name"]) for d in inference_docs(out)}
    assert ("Deployment", "v-pp") in by and ("LeaderWorkerSet", "v-multi") in by
    assert ("LeaderWorkerSet", "sg-multi") in by and ("LeaderWorkerSet", "ni-multi") in by
    assert not any(name == "tg-multi" for _, name in by)  # TGI shards within one node only
    assert "not rendered: TGI shards within one node" in (out / "kubernetes/inference/tg-multi/manifests.yaml").read_text()

    def pod(name):
        d = next(x for x in inference_docs(out) if x["metadata"]["name"] == name
                 and x["kind"] in ("Deployment", "LeaderWorkerSet"))
        if d["kind"] == "Deployment":
            return d["spec"]["template"]["spec"]
        return d["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]

    vp = pod("v-pp")
    assert vp["volumes"][0]["persistentVolumeClaim"] == {"claimName": "models", "readOnly": True}
    assert vp["containers"][0]["volumeMounts"][0]["subPath"] == "llama-3.1-8b"
    assert vp["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "8"
    sg = pod("sg")["containers"][0]
    assert sg["command"] == ["python3", "-m", "sglang.launch_server"] and sg["args"][sg["args"].index("--tp-size") + 1] == "2"
    assert pod("sg")["volumes"][0]["nfs"] == {"server": "10.20.0.210", "path": "/export/models/8b", "readOnly": True}
    tg = pod("tg")
    assert tg["volumes"][0]["hostPath"] == {"path": "/lustre/models/8b", "type": "Directory"}
    assert tg["containers"][0]["args"][tg["containers"][0]["args"].index("--num-shard") + 1] == "2"
    ni = pod("ni")["containers"][0]
    assert ni["command"] == ["nim-serve"] and {"name": "NIM_MODEL_PATH", "value": "/models/ni"} in ni["env"]
    assert ni["livenessProbe"]["httpGet"]["path"] == "/v1/health/live"
    assert ni["readinessProbe"]["httpGet"]["path"] == "/v1/models"
    assert ni["image"] == "registry.fra1.example.internal/nim/nvidia/llm-nim:2.0.9"
    sgm = pod("sg-multi")["containers"][0]
    assert sgm["args"][sgm["args"].index("--node-rank") + 1] == "$(LWS_WORKER_INDEX)"  # expanded by Kubernetes
    other = pod("gcs")["initContainers"][0]  # only S3 is copied; any other scheme stops the pod
    assert other["command"][:2] == ["/bin/sh", "-c"] and "exit 1" in other["command"][2]
    ns = {d["metadata"]["name"]: d for d in documents(out)["kubernetes/namespaces.yaml"] if d["kind"] == "Namespace"}
    assert "pod-security.kubernetes.io/enforce" not in ns["inference"]["metadata"]["labels"]  # a hostPath source
    hub = _variants_doc()
    hub["inference"] = [{**hub["inference"][0], "model_source": "hf://meta-llama/Llama-3.1-8B-Instruct"}]
    with pytest.raises(RenderError, match="huggingface.co"):  # an air-gapped site never reaches a hub
        render_to(write_doc(hub, tmp_path / "hub.yaml"), tmp_path / "hub")


HOSTILE = "x$(touch /tmp/pwned)`id`'\"\n{{ 7*7 }}{% raw %}; rm -rf /"


def test_hostile_text_is_inert(tmp_path):
    doc = reference_doc()
    doc["metadata"]["description"] = HOSTILE
    inf = doc["inference"][0]
    # model is typed (a model id) and refused with shell text; a URL may still hold $( ) & ;
    inf["model_source"] = "s3://models.fra1.example.internal/bucket/x$(touch/tmp/pwned)$(HOME)&;"
    out = tmp_path / "build"
    c = render_to(write_doc(doc, tmp_path / "factory.yaml"), out)
    docs = manifests(out)
    validate_all(docs, schema_version(c.factory.kubernetes.version))
    text = "".join(p.read_text() for p in (out / "kubernetes").rglob("*.yaml"))
    assert "49" not in text  # nothing was evaluated as a template
    (dep,) = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["namespace"] == "inference"]
    assert dep["metadata"]["annotations"]["factoryctl.io/model-source"] == inf["model_source"]
    spec = dep["spec"]["template"]["spec"]
    for container in spec["initContainers"] + spec["containers"]:
        for s in container.get("command", []) + container.get("args", []):
            assert k8s_expand(s)[1] == [], s  # no $(VAR) reference reaches the kubelet
    assert spec["initContainers"][0]["command"] == ["aws"]  # an argv, never a shell string
    hostile_model = reference_doc()
    hostile_model["inference"][0]["model"] = HOSTILE
    assert check(write_doc(hostile_model, tmp_path / "model.yaml")).site is None
    # names are refused by the model before anything renders
    bad = reference_doc()
    bad["inference"][0]["name"] = "chat$(id)"
    assert check(write_doc(bad, tmp_path / "bad.yaml")).site is None


def test_render_is_deterministic(tmp_path, rendered):
    for source in (ROOT / "blueprints" / "gb300-nvl72-neocloud" / "factory.yaml",
                   ROOT / "examples" / "reference" / "factory.yaml"):
        again = tmp_path / source.parent.name
        render_to(source, again)
        first = rendered(source)[1]
        for p in sorted((first / "kubernetes").rglob("*")):
            if p.is_file():
                rel = p.relative_to(first)
                assert p.read_bytes() == (again / rel).read_bytes(), rel
    # another process with another hash seed (set and dict order must not leak into output)
    source = ROOT / "blueprints" / "gb300-nvl72-neocloud" / "factory.yaml"
    other = tmp_path / "other-process"
    env = {**os.environ, "PYTHONHASHSEED": "4242"}
    r = subprocess.run([str(Path(sys.executable).parent / "factoryctl"), "render", str(source), "--out", str(other)],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    first = rendered(source)[1]
    for sub in ("kubernetes", "slurm"):
        for p in sorted((first / sub).rglob("*")):
            if p.is_file():
                assert p.read_bytes() == (other / p.relative_to(first)).read_bytes(), p


def test_gpu_split_device_plugin_advertises_only_kubernetes_share(tmp_path, monkeypatch):
    """The reference gives Kubernetes GPUs 4-7 of each gpu node (gpu_split 4/4): one device
    plugin DaemonSet on exactly those nodes sees only those devices; without a split, none."""
    out = tmp_path / "build"
    c = render_to(write_doc(reference_doc(), tmp_path / "factory.yaml"), out)
    path = out / "kubernetes" / "gpu-operator" / "device-plugin-split.yaml"
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert not list(validate_all(docs, schema_version(c.factory.kubernetes.version)))
    (ds,) = docs
    spec = ds["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in spec["containers"][0]["env"]}
    assert env["NVIDIA_VISIBLE_DEVICES"] == "4,5,6,7" and spec["runtimeClassName"] == "nvidia"
    hosts = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"][0]["matchExpressions"][0]["values"]
    assert hosts == ["gpu01", "gpu02", "gpu03", "gpu04"]
    assert spec["containers"][0]["image"].startswith("registry.fra1.example.internal/")  # air-gapped mirror
    gv = yaml.safe_load((out / "ansible" / "inventory" / "group_vars" / "all.yml").read_text())
    assert gv["gpu_operator_split_groups"] == ["gpu"]  # the role labels them off the operator's plugin
    doc = reference_doc()
    doc["nodes"][1]["gpu_split"] = {"slurm": 8, "kubernetes": 0}
    render_to(write_doc(doc, tmp_path / "b.yaml"), tmp_path / "b")
    assert not [d for d in yaml.safe_load_all(
        (tmp_path / "b" / "kubernetes" / "gpu-operator" / "device-plugin-split.yaml").read_text()) if d]


# --- tenancy -----------------------------------------------------------------------------


def _tenancy_doc(queueing: str = "kueue") -> dict:
    doc = reference_doc()
    doc["kubernetes"]["queueing"] = queueing
    doc["kubernetes"]["network_operator"] = {"enabled": True, "rdma_shared_device": True}
    doc["tenants"] = [
        {"name": "team-a", "gpu_quota": 16, "cpu_quota": 128, "memory_gb": 1024, "deployments": ["chat"],
         "members": {"groups": ["team-a-admins"], "users": ["alice"]}},
        {"name": "team-b", "gpu_quota": {"H100-SXM-80GB": 8}},
    ]
    return doc


def test_tenancy_manifests_validate_and_confine(tmp_path):
    out = tmp_path / "build"
    c = render_to(write_doc(_tenancy_doc(), tmp_path / "factory.yaml"), out)
    files = documents(out)
    ns = files["kubernetes/namespaces.yaml"]
    kueue = files["kubernetes/kueue/queues.yaml"]
    assert set(validate_all(ns + kueue, schema_version(c.factory.kubernetes.version))) == {
        "ClusterQueue", "LocalQueue", "ResourceFlavor"}
    a = {(d["kind"], d["metadata"]["name"]): d for d in ns if d["metadata"].get("namespace") == "team-a"}
    assert a[("ResourceQuota", "gpu-quota")]["spec"]["hard"] == {
        "requests.nvidia.com/gpu": "16", "requests.cpu": "128", "requests.memory": "1024Gi",
        "requests.rdma/rdma_shared_device_a": "16"}
    deny = a[("NetworkPolicy", "default-deny")]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    allow = a[("NetworkPolicy", "allow-essentials")]["spec"]
    dns = [e for e in allow["egress"] if e.get("ports")]
    assert dns and dns[0]["to"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "kube-system"}
    assert {"protocol": "UDP", "port": 53} in dns[0]["ports"]
    assert any(f.get("namespaceSelector", {}).get("matchLabels") == {"kubernetes.io/metadata.name": "monitoring"}
               for rule in allow["ingress"] for f in rule["from"])
    rb = a[("RoleBinding", "tenant-edit")]
    assert rb["roleRef"]["name"] == "edit"
    assert {(s["kind"], s["name"]) for s in rb["subjects"]} == {("Group", "team-a-admins"), ("User", "alice")}
    # team-b has no members: no RoleBinding; its typed quota is its total
    b = {(d["kind"], d["metadata"]["name"]): d for d in ns if d["metadata"].get("namespace") == "team-b"}
    assert ("RoleBinding", "tenant-edit") not in b
    assert b[("ResourceQuota", "gpu-quota")]["spec"]["hard"]["requests.nvidia.com/gpu"] == "8"
    # Kueue: one flavor (one GPU type: no node labels), a ClusterQueue and LocalQueue per tenant
    kinds = [(d["kind"], d["metadata"]["name"]) for d in kueue]
    assert kinds == [("ResourceFlavor", "h100"), ("ClusterQueue", "team-a"), ("LocalQueue", "default"),
                     ("ClusterQueue", "team-b"), ("LocalQueue", "default")]
    cq = kueue[1]["spec"]
    assert cq["namespaceSelector"] == {"matchLabels": {"factoryctl.io/tenant": "team-a"}}
    res = {r["name"]: r["nominalQuota"] for r in cq["resourceGroups"][0]["flavors"][0]["resources"]}
    assert res == {"cpu": "128", "memory": "1024Gi", "nvidia.com/gpu": "16"}
    assert set(cq["resourceGroups"][0]["coveredResources"]) == set(res)
    assert kueue[2]["metadata"]["namespace"] == "team-a" and kueue[2]["spec"] == {"clusterQueue": "team-a"}


def test_no_kueue_without_queueing(tmp_path):
    out = tmp_path / "build"
    render_to(write_doc(_tenancy_doc("none"), tmp_path / "factory.yaml"), out)
    assert documents(out)["kubernetes/kueue/queues.yaml"] == []
