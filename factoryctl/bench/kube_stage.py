"""The benchmark stage through Kubernetes, for sites whose GPU nodes are kube workers.

nccl-tests as MPIJobs (one per collective) where the MPI Operator is installed
(`mpijobs.kubeflow.org` exists), else the built-in worker as an indexed Job. The manifests
are the ones rendered into kubernetes/bench/ (factoryctl/render/kube_bench.py builds both).
For each job: `kubectl apply -f`, `kubectl wait --for=condition=...` with a timeout, the
launcher's / rank 0's log (`kubectl logs`), parsed (nccl-tests text -> nccl_parse; the
worker's JSON -> fallback) and judged, then `kubectl delete`. Every call goes through
`kubectl()`: the binary from FACTORYCTL_KUBECTL or PATH, the kubeconfig from the environment
(KUBECONFIG or ~/.kube/config). No kubectl or no reachable cluster: the stage is skipped,
saying so; nothing is ever faked.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from ..render import kube_bench as kb
from ..ui import UI
from .record import json_document, load_worker, record_nccl, record_worker
from .results import BenchResult
from .slurm_stage import WORKER_FILES, Out

SCHEDULER = "kubernetes"


def kubectl_path() -> str | None:
    exe = os.environ.get("FACTORYCTL_KUBECTL")
    if exe:
        return exe if Path(exe).is_file() and os.access(exe, os.X_OK) else None
    return shutil.which("kubectl")


def kubectl(args: list[str], timeout: int = 60) -> Out:
    """Run kubectl with args (environment, and so KUBECONFIG, inherited). rc 127 when kubectl
    is absent, 124 when it ran past timeout."""
    exe = kubectl_path()
    if exe is None:
        return Out(127, "", "kubectl not found (set FACTORYCTL_KUBECTL or put kubectl on PATH)")
    try:
        p = subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return Out(124, "", f"kubectl {' '.join(args[:2])} timed out after {timeout}s")
    except OSError as exc:
        return Out(126, "", f"kubectl could not run: {exc}")
    return Out(p.returncode, p.stdout, p.stderr)


def _tail(o: Out, n: int = 300) -> str:
    return (o.stderr or o.stdout).strip()[-n:]


def reachable() -> str | None:
    """None when a cluster answers, else why the stage is skipped."""
    if kubectl_path() is None:
        return "skipped: kubectl not found (set FACTORYCTL_KUBECTL or put kubectl on PATH)"
    o = kubectl(["version", "-o", "json", "--request-timeout=15s"], timeout=30)
    if o.rc != 0:
        return f"skipped: no Kubernetes cluster reachable ({_tail(o, 200) or f'kubectl exit {o.rc}'})"
    return None


def _apply(docs: list[dict], res: BenchResult, what: str) -> bool:
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="factoryctl-bench-", delete=False) as fh:
        json.dump({"apiVersion": "v1", "kind": "List", "items": docs}, fh)
        path = fh.name
    try:
        res.commands.append(f"kubectl apply -f {what}")
        o = kubectl(["apply", "-f", path])
    finally:
        os.unlink(path)
    if o.rc != 0:
        res.errors.append(f"kubectl apply ({what}) failed (exit {o.rc}): {_tail(o)}")
    return o.rc == 0


def _wait(resource: str, condition: str, timeout: int, res: BenchResult) -> bool:
    args = ["wait", "-n", kb.BENCH_NS, f"--for=condition={condition}", f"--timeout={timeout}s", resource]
    res.commands.append("kubectl " + " ".join(args))
    o = kubectl(args, timeout=timeout + 30)
    if o.rc != 0:
        res.errors.append(f"{resource} did not reach {condition} within {timeout}s "
                          f"(failed or still running): {_tail(o)}")
    return o.rc == 0


def _logs(target: list[str], res: BenchResult) -> str:
    args = ["logs", "-n", kb.BENCH_NS, *target, "--tail=-1"]
    res.commands.append("kubectl " + " ".join(args))
    o = kubectl(args, timeout=120)
    if o.rc != 0:
        res.errors.append(f"kubectl logs {' '.join(target)} failed (exit {o.rc}): {_tail(o)}")
    return o.stdout


def _delete(resource: str, res: BenchResult) -> None:
    o = kubectl(["delete", "-n", kb.BENCH_NS, resource, "--ignore-not-found", "--wait=false"])
    if o.rc != 0:
        res.errors.append(f"kubectl delete {resource} failed (exit {o.rc}): {_tail(o)}")


def run_stage(factory, site, *, nodes: int | None = None, timeout: int = 900,
              ui: UI | None = None) -> BenchResult:
    """Run the benchmark as Kubernetes jobs and judge it."""
    from .expect import contexts

    say = ui.info if ui is not None else (lambda _m: None)
    t0 = time.monotonic()
    hosts, gpus = kb.gpu_workers(site)
    hosts = hosts[: nodes or len(hosts)]
    if not factory.kubernetes.enabled:
        return BenchResult(path="none", scheduler=SCHEDULER, skipped="kubernetes.enabled is false")
    if not hosts or not gpus:
        return BenchResult(path="none", scheduler=SCHEDULER,
                           skipped="no GPU nodes with the kube-worker role to benchmark")
    why = reachable()
    if why:
        return BenchResult(path="none", scheduler=SCHEDULER, hosts=hosts, skipped=why)
    ctxs, th = contexts(factory, site), factory.verify.thresholds
    crd = kubectl(["get", "crd", "mpijobs.kubeflow.org", "-o", "name"])
    if crd.rc == 0:
        res = _nccl_tests(site, hosts, gpus, nodes, timeout, ctxs, th, say)
    else:
        say("benchmark: no MPI Operator (mpijobs.kubeflow.org); running the built-in worker as a Job")
        res = _builtin(site, hosts, nodes, timeout, ctxs, th, say)
    res.duration_s = time.monotonic() - t0
    return res


def _nccl_tests(site, hosts, gpus, nodes, timeout, ctxs, th, say) -> BenchResult:
    from .nccl_parse import parse_text

    res = BenchResult(path="nccl-tests", scheduler=SCHEDULER, hosts=hosts)
    docs = kb.mpijobs(site, nodes)
    ns, jobs = docs[0], docs[1:]
    for job in jobs:
        name = job["metadata"]["name"]
        coll = job["metadata"]["labels"]["factoryctl.io/collective"]
        say(f"benchmark: {coll} on {len(hosts)} node(s) as MPIJob {name}")
        if not _apply([ns, job], res, f"kubernetes/bench/nccl-tests.yaml ({name})"):
            continue
        try:
            done = _wait(f"mpijob/{name}", "Succeeded", timeout, res)
            text = _logs([f"job/{name}-launcher"], res)
        finally:
            _delete(f"mpijob/{name}", res)
        parsed = parse_text(text, source=f"MPIJob {name} ({len(hosts)} nodes)")
        if not parsed.rows:
            if done:
                res.errors.append(f"{coll}_perf: the launcher's log has no nccl-tests results")
            continue
        record_nccl(res, parsed, ctxs, th, coll, gpus, len(hosts))
    if len(hosts) >= 2:
        _localise(site, hosts, gpus, timeout, ctxs, th, say, res)
    return res


def _localise(site, hosts, gpus, timeout, ctxs, th, say, res: BenchResult) -> None:
    """bench/localise.py's rounds as MPIJobs: a round's jobs applied at once, each waited for,
    its launcher's log read behind its marker, then deleted."""
    from . import localise as loc

    s = kb.site_settings(site)
    coll = "all_reduce" if "all_reduce" in s["collectives"] else s["collectives"][0]

    def go(jobs: list[loc.Job]) -> str:
        docs = kb.localise_mpijobs(site, jobs, coll)
        names = [d["metadata"]["name"] for d in docs]
        if not _apply([kb.namespace(site), *docs], res, f"localisation ({', '.join(names)})"):
            return ""
        text = ""
        try:
            for (kind, key, _), name in zip(jobs, names, strict=True):
                _wait(f"mpijob/{name}", "Succeeded", timeout, res)
                text += f"{loc.marker(kind, key)}\n{_logs([f'job/{name}-launcher'], res)}"
        finally:
            for name in names:
                _delete(f"mpijob/{name}", res)
        return text

    ms, summary = loc.run_rounds(hosts, go, ctxs, th, coll, gpus,
                                 f"localisation ({coll}, {s['max_bytes']})", say)
    res.measurements += [m.to_dict() for m in ms]
    res.localisation = summary | {"size": s["max_bytes"]}


def worker_configmap() -> dict:
    here = Path(__file__).resolve().parent.parent / "bench"
    data = {"factoryctl-init.py": "", "bench-init.py": ""}
    for f in WORKER_FILES:
        data[f.replace("_", "-")] = (here / f).read_text()
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": kb.WORKER_CONFIGMAP, "namespace": kb.BENCH_NS,
                         "labels": {"app.kubernetes.io/managed-by": "factoryctl"}},
            "data": data}


def _builtin(site, hosts, nodes, timeout, ctxs, th, say) -> BenchResult:
    res = BenchResult(path="built-in (gpu)", scheduler=SCHEDULER, hosts=hosts)
    ns, service, job = kb.fallback_docs(site, nodes)
    name = job["metadata"]["name"]
    say(f"benchmark: built-in gpu worker on {len(hosts)} node(s) as indexed Job {name}")
    if not _apply([ns, worker_configmap(), service, job], res, "kubernetes/bench/fallback-job.yaml"):
        return res
    try:
        _wait(f"job/{name}", "complete", timeout, res)
        text = _logs(["-l", f"batch.kubernetes.io/job-name={name},"
                      "batch.kubernetes.io/job-completion-index=0"], res)
    finally:
        _delete(f"job/{name}", res)
        _delete(f"service/{name}", res)
    doc = json_document(text)
    if doc is None:
        res.errors.append(f"the worker gave no result: {text.strip()[-300:] or 'empty log'}")
        return res
    result = load_worker(res, doc, f"Job {name} ({len(hosts)} nodes)")
    if result is not None:
        record_worker(res, result, ctxs, th)
    return res
