"""The benchmark stage's Kubernetes manifests: kubernetes/bench/nccl-tests.yaml (one MPIJob per
collective of verify.benchmarks.nccl) and kubernetes/bench/fallback-job.yaml (the built-in
worker as an indexed Job). Built here as plain data for templates/kubernetes/bench/ and for
factoryctl/bench/kube_stage.py, which applies the same documents at run time.

Facts used (public docs):
* MPI Operator v2 (kubeflow.org/v2beta1 MPIJob): spec.slotsPerWorker, runPolicy
  (cleanPodPolicy, backoffLimit), launcherCreationPolicy WaitForWorkersReady,
  mpiReplicaSpecs Launcher/Worker; the launcher runs as a batch Job `<name>-launcher` and
  gets the hostfile through OMPI_MCA_orte_default_hostfile; workers only need sshd.
  The MPIJob reports `Succeeded` / `Failed` conditions.
* nccl-tests: one MPI rank per GPU, `<collective>_perf -b <min> -e <max> -f <factor> -g 1`
  (nccl-tests README.md); the binaries must be built with MPI=1.
* Indexed Jobs (batch/v1, completionMode Indexed): each pod gets JOB_COMPLETION_INDEX and the
  hostname `<job>-<index>`; with `subdomain` set to a headless Service selecting the Job's
  pods, `<job>-0.<service>` resolves to rank 0's pod (Kubernetes docs, "Job with pod-to-pod
  communication").
* RDMA shared device plugin: the resource `rdma/<resourceName>` (rdma_shared_device_a in
  the NicClusterPolicy rendered next to this), and IPC_LOCK for registered memory.
"""

from __future__ import annotations

import hashlib

from ..resolve import Site
from . import versions
from .kube import MANAGED, airgap_registry, literal, mirrored

BENCH_NS = "factoryctl-bench"
# Public default images (mirrored under the site's registry when air-gapped). The nccl-tests
# image carries Open MPI, sshd and nccl-tests built with MPI=1 under NCCL_TESTS_BIN; a site
# with its own image must keep that path or the MPIJob's command changes with it.
NCCL_TESTS_IMAGE = versions.image("nccl_tests_image")  # factoryctl/data/versions.yaml
NCCL_TESTS_BIN = "/opt/nccl_tests/build"
PYTORCH_IMAGE = versions.image("pytorch")  # NGC PyTorch: torch + NCCL for the worker
WORKER_CONFIGMAP = "factoryctl-bench-worker"  # the worker's source; created by verify at run time
WORKER_ROOT = "/opt/factoryctl"
# The built-in benchmark worker: its files under factoryctl/bench/, shipped to the hosts (a
# ConfigMap here, a tarball by the Slurm stage) and run there with python -m.
WORKER_FILES = ("fallback_worker.py", "cpu_worker.py")
FALLBACK_JOB = "factoryctl-bench"
MASTER_PORT = 29500
RDMA_RESOURCE = "rdma/rdma_shared_device_a"
DEADLINE_S = 1800


def mpijob_name(collective: str) -> str:
    return "nccl-tests-" + collective.replace("_", "-")


def gpu_workers(site: Site) -> tuple[list[str], int]:
    """(GPU kube-worker hostnames, GPUs per node: the smallest of them)."""
    hosts = [h for h in site.hosts if "kube-worker" in h.roles and h.gpus > 0]
    return [h.name for h in hosts], min((h.gpus for h in hosts), default=0)


def _rdma(site: Site) -> bool:
    k = site.factory.kubernetes
    net = k.network_operator
    return bool(net and net.enabled and net.rdma_shared_device)


def _labels(extra: dict | None = None) -> dict:
    return {**MANAGED, "app.kubernetes.io/part-of": "factoryctl-bench", **(extra or {})}


def _affinity(hosts: list[str]) -> dict:
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": hosts}]}]}}}


def _shm() -> tuple[dict, dict]:
    return ({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}},
            {"name": "dshm", "mountPath": "/dev/shm"})


def _gpu_resources(gpus: int, rdma: bool) -> dict:
    limits = {"nvidia.com/gpu": str(gpus)}
    if rdma:
        limits[RDMA_RESOURCE] = "1"
    return {"limits": limits}


def _namespace(rdma: bool) -> dict:
    # IPC_LOCK (RDMA) is outside Pod Security "baseline"
    level = "privileged" if rdma else "baseline"
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": BENCH_NS, "labels": {**MANAGED, "pod-security.kubernetes.io/enforce": level}}}


def namespace(site: Site) -> dict:
    """The benchmark namespace, as mpijobs() and fallback_docs() render it."""
    return _namespace(_rdma(site))


def site_settings(site: Site) -> dict:
    """verify.benchmarks as the benchmark manifests use it."""
    return _settings(site)


def _settings(site: Site) -> dict:
    b = site.factory.verify.benchmarks
    n = b.nccl
    return {"collectives": list(n.collectives) if n else ["all_reduce"],
            "min_bytes": str(n.min_bytes) if n else "8M", "max_bytes": str(n.max_bytes) if n else "8G",
            "step_factor": n.step_factor if n else 2, "dtype": b.gemm.dtype if b.gemm else "bf16",
            "gemm_size": b.gemm.size if b.gemm else 8192, "hbm": b.hbm}


def nccl_command(collective: str, nodes: int, gpus: int, s: dict, debug: str = "WARN") -> list[str]:
    """mpirun of <collective>_perf; debug INFO adds NCCL's INIT/NET lines (the NICs each rank
    uses, read by bench/localise.py)."""
    info = ["-x", "NCCL_DEBUG_SUBSYS=INIT,NET"] if debug == "INFO" else []
    return ["mpirun", "--allow-run-as-root", "-np", str(nodes * gpus), "-N", str(gpus),
            "--bind-to", "none", "-x", "LD_LIBRARY_PATH", "-x", f"NCCL_DEBUG={debug}", *info,
            f"{NCCL_TESTS_BIN}/{collective}_perf", "-b", literal(s["min_bytes"]),
            "-e", literal(s["max_bytes"]), "-f", str(s["step_factor"]), "-g", "1"]


def mpijobs(site: Site, nodes: int | None = None) -> list[dict]:
    hosts, gpus = gpu_workers(site)
    hosts = hosts[: nodes or len(hosts)]
    if not hosts or not gpus:
        return []
    s = _settings(site)
    docs = [_mpijob(site, mpijob_name(coll), coll, hosts, gpus, s) for coll in s["collectives"]]
    return [_namespace(_rdma(site)), *docs]


def localise_mpijobs(site: Site, jobs: list[tuple[str, str, list[str]]], collective: str) -> list[dict]:
    """One MPIJob per localisation job (bench/localise.py: a node alone or a pair of nodes), the
    collective at verify.benchmarks.nccl.max_bytes only, with NCCL_DEBUG=INFO; the job's
    section key in the annotation factoryctl.io/localise."""
    _, gpus = gpu_workers(site)
    s = _settings(site)
    s = s | {"min_bytes": s["max_bytes"]}
    out = []
    for kind, key, hosts in jobs:
        job = _mpijob(site, localise_name(kind, hosts), collective, hosts, gpus, s, debug="INFO")
        job["metadata"]["annotations"] = {"factoryctl.io/localise": f"{kind}={key}"}
        out.append(job)
    return out


def localise_name(kind: str, hosts: list[str]) -> str:
    """localise-node-gpu03, localise-pair-gpu01-gpu02; a digest where the hosts make it long
    (the MPI Operator adds -launcher and -worker-N to pod names, which stay DNS labels <= 63)."""
    name = f"localise-{kind}-{'-'.join(hosts)}"
    if len(name) <= 40:
        return name
    return f"localise-{kind}-{hashlib.sha256(','.join(hosts).encode()).hexdigest()[:12]}"


def _mpijob(site: Site, name: str, coll: str, hosts: list[str], gpus: int, s: dict,
            debug: str = "WARN") -> dict:
    rdma = _rdma(site)
    image = mirrored(NCCL_TESTS_IMAGE, airgap_registry(site))
    shm_vol, shm_mount = _shm()
    launcher = {"name": "launcher", "image": image,
                "command": nccl_command(coll, len(hosts), gpus, s, debug)}
    worker = {"name": "worker", "image": image, "command": ["/usr/sbin/sshd", "-De"],
              "resources": _gpu_resources(gpus, rdma), "volumeMounts": [shm_mount]}
    if rdma:
        worker["securityContext"] = {"capabilities": {"add": ["IPC_LOCK"]}}
    return {
        "apiVersion": "kubeflow.org/v2beta1", "kind": "MPIJob",
        "metadata": {"name": name, "namespace": BENCH_NS, "labels": _labels({"factoryctl.io/collective": coll})},
        "spec": {
            "slotsPerWorker": gpus,
            "launcherCreationPolicy": "WaitForWorkersReady",
            "runPolicy": {"cleanPodPolicy": "Running", "backoffLimit": 3,
                          "activeDeadlineSeconds": DEADLINE_S},
            "mpiReplicaSpecs": {
                "Launcher": {"replicas": 1, "template": {
                    "metadata": {"labels": _labels()},
                    "spec": {"restartPolicy": "OnFailure", "containers": [launcher]}}},
                "Worker": {"replicas": len(hosts), "template": {
                    "metadata": {"labels": _labels()},
                    "spec": {"containers": [worker], "volumes": [shm_vol],
                             "affinity": _affinity(hosts)}}},
            },
        },
    }


def fallback_docs(site: Site, nodes: int | None = None) -> list[dict]:
    """Namespace, headless Service and the indexed Job: one pod per GPU node; torchrun starts
    one rank per GPU with the node rank from the completion index (rank 0 = index 0)."""
    hosts, gpus = gpu_workers(site)
    hosts = hosts[: nodes or len(hosts)]
    if not hosts or not gpus:
        return []
    rdma = _rdma(site)
    s = _settings(site)
    n = len(hosts)
    shm_vol, shm_mount = _shm()
    selector = {"batch.kubernetes.io/job-name": FALLBACK_JOB}
    service = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": FALLBACK_JOB, "namespace": BENCH_NS, "labels": _labels()},
               "spec": {"clusterIP": "None", "publishNotReadyAddresses": True, "selector": selector,
                        "ports": [{"name": "rendezvous", "port": MASTER_PORT, "targetPort": MASTER_PORT}]}}
    args = ["--nnodes", str(n), "--nproc-per-node", str(gpus), "--node-rank", "$(JOB_COMPLETION_INDEX)",
            "--master-addr", f"{FALLBACK_JOB}-0.{FALLBACK_JOB}", "--master-port", str(MASTER_PORT),
            "-m", "factoryctl.bench.fallback_worker", "--mode", "gpu",
            "--tests", ",".join(["gemm", *(["hbm"] if s["hbm"] else []), "host", "all_reduce"]),
            "--dtypes", literal(s["dtype"]), "--gemm-size", str(s["gemm_size"]),
            "--min-bytes", literal(s["min_bytes"]), "--max-bytes", literal(s["max_bytes"]),
            "--step-factor", str(s["step_factor"])]
    container = {"name": "worker", "image": mirrored(PYTORCH_IMAGE, airgap_registry(site)),
                 "command": ["torchrun"], "args": args,
                 "env": [{"name": "PYTHONPATH", "value": WORKER_ROOT}],
                 "resources": _gpu_resources(gpus, rdma),
                 "volumeMounts": [{"name": "worker", "mountPath": WORKER_ROOT, "readOnly": True}, shm_mount]}
    if rdma:
        container["securityContext"] = {"capabilities": {"add": ["IPC_LOCK"]}}
    items = [{"key": k, "path": p} for k, p in worker_items()]
    job = {"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": FALLBACK_JOB, "namespace": BENCH_NS, "labels": _labels()},
           "spec": {
               "completionMode": "Indexed", "completions": n, "parallelism": n,
               "backoffLimit": 0, "activeDeadlineSeconds": DEADLINE_S,
               "template": {
                   "metadata": {"labels": _labels()},
                   "spec": {"subdomain": FALLBACK_JOB, "restartPolicy": "Never",
                            "containers": [container],
                            "volumes": [{"name": "worker", "configMap": {"name": WORKER_CONFIGMAP, "items": items}},
                                        shm_vol],
                            "affinity": {**_affinity(hosts), "podAntiAffinity": {
                                "requiredDuringSchedulingIgnoredDuringExecution": [
                                    {"labelSelector": {"matchLabels": selector},
                                     "topologyKey": "kubernetes.io/hostname"}]}}}},
           }}
    return [_namespace(rdma), service, job]


def worker_items() -> list[tuple[str, str]]:
    """(ConfigMap key, path under WORKER_ROOT) of the worker's package."""
    return [("factoryctl-init.py", "factoryctl/__init__.py"),
            ("bench-init.py", "factoryctl/bench/__init__.py"),
            *[(f.replace("_", "-"), f"factoryctl/bench/{f}") for f in WORKER_FILES]]


def build(site: Site) -> dict:
    """The `kube.bench` key of the render context."""
    hosts, gpus = gpu_workers(site)
    on = site.factory.kubernetes.enabled and bool(hosts) and gpus > 0
    return {"enabled": on, "namespace": BENCH_NS, "nodes": len(hosts), "gpus_per_node": gpus,
            "worker_configmap": WORKER_CONFIGMAP,
            "nccl_tests": mpijobs(site) if on else [], "fallback": fallback_docs(site) if on else []}
