"""The benchmark stage through Kubernetes: kubernetes/bench/ manifests (rendered, validated)
and verify/kube_bench.py run against a fake `kubectl` on PATH that records its argv and
replays a real nccl-tests log. No cluster is needed; none is faked inside factoryctl."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from factoryctl.bench import kube_stage as kube_bench
from factoryctl.bench import slurm_stage as bench
from factoryctl.render import render
from tests.helpers import check_doc, reference_doc
from tests.unit.bench.nccl_logs import node_log, pair_log

ROOT = Path(__file__).resolve().parents[3]
FIXTURE = ROOT / "tests" / "fixtures" / "nccl" / "h100-1n-all_reduce-nvidia-i290.log"


def _factory(tmp_path: Path, *, slurm: bool = False, **nccl):
    doc = reference_doc()  # the pilot: 4 nodes x 8 H100 as slurm-compute + kube-worker, air-gapped
    doc["slurm"]["enabled"] = slurm
    if not slurm:
        doc["slurm"].pop("partitions", None)
    if nccl:
        doc["verify"]["benchmarks"]["nccl"] = {**doc["verify"]["benchmarks"]["nccl"], **nccl}
    c = check_doc(doc, tmp_path)
    assert c.site is not None, [f.message for f in c.findings]
    return c


def _bench_files(c, tmp_path: Path) -> dict[str, list[dict]]:
    out = tmp_path / "build"
    render(c.site, out)
    return {name: [d for d in yaml.safe_load_all((out / "kubernetes" / "bench" / name).read_text()) if d]
            for name in ("nccl-tests.yaml", "fallback-job.yaml")}


def _pods(mpijob: dict) -> list[dict]:
    meta = {"name": mpijob["metadata"]["name"], "namespace": mpijob["metadata"]["namespace"]}
    return [{"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec["template"]["spec"]}
            for spec in mpijob["spec"]["mpiReplicaSpecs"].values()]


# --- rendering ------------------------------------------------------------------------------


def test_fallback_job_validates_and_ranks_from_the_completion_index(tmp_path):
    c = _factory(tmp_path)
    docs = _bench_files(c, tmp_path)["fallback-job.yaml"]
    assert [d["kind"] for d in docs] == ["Namespace", "Service", "Job"]
    for d in docs:
        kubernetes_validate.validate(d, "1.31", strict=True)
    ns, svc, job = docs
    assert svc["spec"]["clusterIP"] == "None"
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"] == 4
    pod = spec["template"]["spec"]
    assert pod["subdomain"] == svc["metadata"]["name"]
    (ctr,) = pod["containers"]
    assert ctr["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert ctr["resources"]["limits"]["rdma/rdma_shared_device_a"] == "1"  # the pilot's shared RDMA plugin
    args = ctr["args"]
    assert args[args.index("--node-rank") + 1] == "$(JOB_COMPLETION_INDEX)"
    assert args[args.index("--master-addr") + 1].startswith(f"{job['metadata']['name']}-0.")
    assert ["-m", "factoryctl.bench.fallback_worker", "--mode", "gpu"] == args[args.index("-m"):args.index("-m") + 4]
    reg = c.factory.sovereignty.registries[0]
    assert ctr["image"].startswith(reg + "/")  # air-gapped: the site's registry only


def test_fallback_job_passes_the_benchmark_settings(tmp_path):
    # the old Job passed --min-bytes 1M whatever verify.benchmarks.nccl said, and no GEMM size
    c = _factory(tmp_path, min_bytes="64M", max_bytes="2G", step_factor=4)
    (ctr,) = _bench_files(c, tmp_path)["fallback-job.yaml"][2]["spec"]["template"]["spec"]["containers"]
    args = ctr["args"]
    opts = dict(zip(args[args.index("--mode"):][::2], args[args.index("--mode"):][1::2], strict=True))
    assert opts["--min-bytes"] == "64M" and opts["--max-bytes"] == "2G" and opts["--step-factor"] == "4"
    assert opts["--gemm-size"] == "8192" and opts["--dtypes"] == "bf16"
    assert opts["--tests"] == "gemm,hbm,host,all_reduce"


def test_mpijob_structure_follows_the_model(tmp_path):
    c = _factory(tmp_path, collectives=["all_reduce", "alltoall"], min_bytes="1M", max_bytes="2G", step_factor=4)
    docs = _bench_files(c, tmp_path)["nccl-tests.yaml"]
    assert docs[0]["kind"] == "Namespace"
    jobs = docs[1:]
    assert [j["metadata"]["name"] for j in jobs] == ["nccl-tests-all-reduce", "nccl-tests-alltoall"]
    for j, coll in zip(jobs, ["all_reduce", "alltoall"], strict=True):
        assert j["apiVersion"] == "kubeflow.org/v2beta1" and j["kind"] == "MPIJob"
        spec = j["spec"]
        assert spec["slotsPerWorker"] == 8
        worker = spec["mpiReplicaSpecs"]["Worker"]
        assert spec["mpiReplicaSpecs"]["Launcher"]["replicas"] == 1
        assert worker["replicas"] == 4  # the GPU kube-worker nodes
        (w,) = worker["template"]["spec"]["containers"]
        assert w["resources"]["limits"]["nvidia.com/gpu"] == "8"
        (launcher,) = spec["mpiReplicaSpecs"]["Launcher"]["template"]["spec"]["containers"]
        cmd = launcher["command"]
        assert cmd[0] == "mpirun" and cmd[cmd.index("-np") + 1] == "32"
        assert any(a.endswith(f"/{coll}_perf") for a in cmd)
        assert cmd[cmd.index("-b") + 1] == "1M" and cmd[cmd.index("-e") + 1] == "2G"
        assert cmd[cmd.index("-f") + 1] == "4" and cmd[cmd.index("-g") + 1] == "1"
        for pod in _pods(j):  # the pod templates the custom resource carries are valid Pods
            kubernetes_validate.validate(pod, "1.31", strict=True)


def test_no_gpu_kube_workers_renders_comments_only(tmp_path):
    doc = reference_doc()
    doc["kubernetes"]["enabled"] = False
    doc["kubernetes"].pop("gpu_operator", None)
    doc["kubernetes"].pop("network_operator", None)
    doc["kubernetes"].pop("tenants", None)
    c = check_doc(doc, tmp_path)
    if c.site is None:
        pytest.skip("reference without kubernetes does not validate: " + "; ".join(f.message for f in c.findings))
    assert _bench_files(c, tmp_path) == {"nccl-tests.yaml": [], "fallback-job.yaml": []}


# --- the runner against a fake kubectl ------------------------------------------------------

FAKE = r'''#!{python}
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_KUBECTL_LOG"], "a") as fh:
    fh.write(json.dumps(args) + "\n")
if args[0] == "apply":
    path = args[args.index("-f") + 1]
    with open(os.environ["FAKE_KUBECTL_LOG"] + ".applied", "a") as fh:
        fh.write(open(path).read() + "\n")
rc = int(os.environ.get("FAKE_RC_" + args[0].upper(), "0"))
if args[0] == "get" and os.environ.get("FAKE_NO_MPI_OPERATOR"):
    rc = 1
    sys.stderr.write('Error from server (NotFound): customresourcedefinitions "mpijobs.kubeflow.org" not found\n')
if args[0] == "version" and rc:
    sys.stderr.write("The connection to the server 10.0.0.1:6443 was refused\n")
if args[0] == "wait" and rc:
    sys.stderr.write("error: timed out waiting for the condition on mpijobs/nccl-tests-all-reduce\n")
if args[0] == "logs":
    per_job = os.path.join(os.environ.get("FAKE_LOGS_DIR", "/nonexistent"), args[3].replace("/", "_"))
    sys.stdout.write(open(per_job if os.path.exists(per_job) else os.environ["FAKE_LOGS"]).read())
sys.exit(rc)
'''


@pytest.fixture
def fake_kubectl(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "kubectl"
    exe.write_text(FAKE.format(python=sys.executable))
    exe.chmod(0o755)
    log = tmp_path / "kubectl.argv"
    monkeypatch.delenv("FACTORYCTL_KUBECTL", raising=False)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_KUBECTL_LOG", str(log))
    monkeypatch.setenv("FAKE_LOGS", str(FIXTURE))

    def calls() -> list[list[str]]:
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    return calls


def test_h100_nccl_tests_through_an_mpijob_pass(tmp_path, fake_kubectl):
    c = _factory(tmp_path, collectives=["all_reduce"])
    res = bench.run_stage(c.factory, c.site, run=None, nodes=1, timeout=120)  # slurm off -> Kubernetes
    assert res.scheduler == "kubernetes" and res.path == "nccl-tests", res
    assert res.errors == [] and res.skipped == ""
    assert res.verdict == "pass", res.measurements
    assert res.nccl and res.nccl[0]["rows"]
    verbs = [a[0] for a in fake_kubectl()]
    assert verbs == ["version", "get", "apply", "wait", "logs", "delete"]
    calls = {a[0]: a for a in fake_kubectl()}
    assert "--for=condition=Succeeded" in calls["wait"] and "--timeout=120s" in calls["wait"]
    assert "mpijob/nccl-tests-all-reduce" in calls["wait"]
    assert "job/nccl-tests-all-reduce-launcher" in calls["logs"]
    assert "mpijob/nccl-tests-all-reduce" in calls["delete"]
    applied = json.loads((tmp_path / "kubectl.argv.applied").read_text())
    job = applied["items"][1]
    assert job["kind"] == "MPIJob" and job["spec"]["mpiReplicaSpecs"]["Worker"]["replicas"] == 1


def test_scheduler_kubernetes_can_be_asked_with_slurm_on(tmp_path, fake_kubectl):
    c = _factory(tmp_path, slurm=True, collectives=["all_reduce"])
    res = bench.run_stage(c.factory, c.site, run=None, nodes=1, scheduler="kubernetes")
    assert res.scheduler == "kubernetes" and res.verdict == "pass"


def test_failing_job_fails_clearly_and_is_deleted(tmp_path, fake_kubectl, monkeypatch):
    monkeypatch.setenv("FAKE_RC_WAIT", "1")
    monkeypatch.setenv("FAKE_LOGS", os.devnull)
    c = _factory(tmp_path, collectives=["all_reduce"])
    res = kube_bench.run_stage(c.factory, c.site, nodes=1, timeout=30)
    assert res.verdict == "fail" and res.failed
    assert any("did not reach Succeeded within 30s" in e and "timed out waiting" in e for e in res.errors), res.errors
    assert [a[0] for a in fake_kubectl()][-1] == "delete"


def test_without_the_mpi_operator_the_builtin_job_runs(tmp_path, fake_kubectl, monkeypatch):
    monkeypatch.setenv("FAKE_NO_MPI_OPERATOR", "1")
    monkeypatch.setenv("FAKE_LOGS", os.devnull)  # no worker JSON: an error, not a traceback
    c = _factory(tmp_path)
    res = kube_bench.run_stage(c.factory, c.site, nodes=2, timeout=30)
    assert res.path == "built-in (gpu)" and res.verdict == "fail"
    assert any("the worker gave no result" in e for e in res.errors)
    applied = json.loads((tmp_path / "kubectl.argv.applied").read_text())
    kinds = [d["kind"] for d in applied["items"]]
    assert kinds == ["Namespace", "ConfigMap", "Service", "Job"]
    cm = applied["items"][1]
    assert "def dist_env" in cm["data"]["fallback-worker.py"]
    job = applied["items"][3]
    assert job["spec"]["completions"] == 2
    keys = {i["key"] for i in job["spec"]["template"]["spec"]["volumes"][0]["configMap"]["items"]}
    assert keys == set(cm["data"])
    logs = next(a for a in fake_kubectl() if a[0] == "logs")
    assert any("job-completion-index=0" in a for a in logs)


def test_no_kubectl_skips_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.delenv("FACTORYCTL_KUBECTL", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no kubectl here
    c = _factory(tmp_path)
    res = bench.run_stage(c.factory, c.site, run=None)
    assert res.verdict == "skip" and not res.failed
    assert res.skipped.startswith("skipped: kubectl not found")


def test_unreachable_cluster_skips_with_the_reason(tmp_path, fake_kubectl, monkeypatch):
    monkeypatch.setenv("FAKE_RC_VERSION", "1")
    c = _factory(tmp_path)
    res = kube_bench.run_stage(c.factory, c.site)
    assert res.skipped.startswith("skipped: no Kubernetes cluster reachable") and "refused" in res.skipped
    assert [a[0] for a in fake_kubectl()] == ["version"]


def test_factoryctl_kubectl_names_the_binary(tmp_path, monkeypatch):
    monkeypatch.setenv("FACTORYCTL_KUBECTL", str(tmp_path / "missing"))
    out = kube_bench.kubectl(["version"])
    assert out.rc == 127 and "FACTORYCTL_KUBECTL" in out.stderr


def test_localisation_through_mpijobs_names_the_slow_node(tmp_path, fake_kubectl, monkeypatch):
    # each node alone, then the ring of pairs, as MPIJobs with NCCL_DEBUG=INFO; gpu02's logs
    # (alone and in its pairs) are the real ones slowed to 80 %
    logs = tmp_path / "logs"
    logs.mkdir()
    hosts = ["gpu01", "gpu02", "gpu03", "gpu04"]
    for a in hosts:
        (logs / f"job_localise-node-{a}-launcher").write_text(node_log(a, 0.8 if a == "gpu02" else 1.0))
        for b in hosts:
            f = 0.8 if "gpu02" in (a, b) else 1.0
            (logs / f"job_localise-pair-{a}-{b}-launcher").write_text(pair_log(a, b, f))
    monkeypatch.setenv("FAKE_LOGS_DIR", str(logs))
    c = _factory(tmp_path, collectives=["all_reduce"])
    res = kube_bench.run_stage(c.factory, c.site, timeout=60)
    assert list(res.localisation["suspects"]) == ["gpu02"], res.localisation
    assert [m["scope"] for m in res.measurements if m["name"] == "localise.node"] == ["node gpu02"]
    applied = [json.loads(line) for line in (tmp_path / "kubectl.argv.applied").read_text().splitlines()
               if line.strip()]
    rounds = [[d for d in doc["items"] if d["kind"] == "MPIJob"] for doc in applied[1:]]
    assert [len(r) for r in rounds] == [4, 2, 2]  # all nodes at once, then two rounds of pairs
    node3 = rounds[0][2]
    assert node3["metadata"]["name"] == "localise-node-gpu03"
    assert node3["metadata"]["annotations"] == {"factoryctl.io/localise": "node=gpu03"}
    cmd = node3["spec"]["mpiReplicaSpecs"]["Launcher"]["template"]["spec"]["containers"][0]["command"]
    assert "NCCL_DEBUG=INFO" in cmd and cmd[cmd.index("-b") + 1] == cmd[cmd.index("-e") + 1] == "8G"
    assert node3["spec"]["mpiReplicaSpecs"]["Worker"]["replicas"] == 1
    for r in rounds:
        for d in r:
            kubernetes_validate.validate(_pods(d)[0], "1.31", strict=True)
    deleted = [a[3] for a in fake_kubectl() if a[0] == "delete"]
    assert "mpijob/localise-node-gpu02" in deleted and "mpijob/localise-pair-gpu04-gpu01" in deleted
