"""The benchmark stage, through the site's own scheduler (Slurm ``srun``).

Which benchmark runs, per the partition benchmarked (``--partition``, default the factory's
default partition):

* GPU nodes with nccl-tests installed (the cuda_nccl role builds them into
  /opt/nccl-tests/build): each collective of ``verify.benchmarks.nccl`` as one job step,
  ``srun -N<n> --ntasks-per-node=<gpus> --gpus-per-node=<gpus> <collective>_perf -b -e -f -g 1``,
  parsed by bench/nccl_parse.py and judged against the catalog and fabric expectations.
* GPU nodes without nccl-tests: the built-in worker (PyTorch on the nodes), one rank per GPU.
* CPU-only nodes (the lab): the built-in worker's standard-library CPU path (memory copy and
  an all_reduce sweep over TCP between the nodes), one rank per node. Its figures are real
  but there is no expectation for CPUs: the judge reports them as skipped, saying so.

The worker is copied onto the submit host and the nodes (a few KB, one tar through SSH) into
/var/tmp/factoryctl-bench/<digest>/, so nodes need only python3, not factoryctl. Commands run
on the submit host (the first login host, else the first Slurm controller) wrapped in
``timeout``, so a hung job step never hangs verify.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import shlex
import tarfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..render.kube_bench import WORKER_FILES
from ..ui import UI
from .record import json_document, load_worker, record_nccl, record_worker
from .results import BenchResult

NCCL_TESTS_DIR = "/opt/nccl-tests/build"  # cuda_nccl_tests_dir + /build (roles/cuda_nccl defaults)
STAGE_ROOT = "/var/tmp/factoryctl-bench"
# The lab's CPU run: small enough for 2 shared cores, large enough to see the curve bend.
CPU_ARGS = ["--tests", "hbm,all_reduce", "--hbm-bytes", "64M", "--min-bytes", "32K",
            "--max-bytes", "4M", "--warmup", "2", "--iters", "10"]


@dataclass
class Out:
    rc: int
    stdout: str
    stderr: str
    # Why the command could not be run at all (the exception, "Type: message"), as opposed to
    # the command's own failure: reported as itself, never read as an answer of the host.
    error: str = ""


Exec = Callable[[str, str], Out]  # (host, shell command) -> result


@dataclass
class Plan:
    """What the stage will run, decided from the model before anything is contacted."""

    submit: str
    partition: str
    nodes: list[str]
    gpus_per_node: int
    collectives: list[str]
    min_bytes: str
    max_bytes: str
    step_factor: int
    gemm_dtype: str
    gemm_size: int = 8192
    hbm: bool = True


def plan(factory, site, partition: str | None = None, nodes: int | None = None) -> Plan | str:
    """The Plan, or why the stage cannot run (a sentence)."""
    s = factory.slurm
    if not s.enabled:
        return "no scheduler to run through: slurm.enabled is false"
    submit = next((h.name for h in site.hosts if "login" in h.roles), None) or next(
        (h.name for h in site.hosts if "slurm-controller" in h.roles), None)
    if submit is None:
        return "no login host or Slurm controller to submit from"
    parts = {p.name: p for p in s.partitions}
    if partition and partition not in parts:
        return f"no partition {partition!r} in slurm.partitions ({', '.join(parts) or 'none'})"
    p = parts.get(partition) if partition else next((p for p in s.partitions if p.default), None) or (
        s.partitions[0] if s.partitions else None)
    if p is None:
        return "slurm.partitions is empty: nothing to benchmark"
    groups = [p.nodes] if isinstance(p.nodes, str) else list(p.nodes)
    members = [n for g in groups for n in site.groups[g].hostnames]
    gpus = min((site.groups[g].gpus_per_node for g in groups), default=0)
    chosen = members[: nodes or len(members)]
    if not chosen:
        return f"partition {p.name} has no nodes"
    b = factory.verify.benchmarks
    nccl = b.nccl
    return Plan(submit, p.name, chosen, gpus, list(nccl.collectives) if nccl else ["all_reduce"],
                str(nccl.min_bytes) if nccl else "8M", str(nccl.max_bytes) if nccl else "8G",
                nccl.step_factor if nccl else 2, b.gemm.dtype if b.gemm else "bf16",
                b.gemm.size if b.gemm else 8192, b.hbm)


def gpu_worker_args(p: Plan) -> list[str]:
    """The built-in worker's options on GPU nodes, from verify.benchmarks: the GEMM dtype and
    size, the all_reduce sweep (nccl.min_bytes..max_bytes by step_factor), and the memory copy
    only when benchmarks.hbm is true."""
    tests = ["gemm", *(["hbm"] if p.hbm else []), "host", "all_reduce"]
    return ["--tests", ",".join(tests), "--dtypes", p.gemm_dtype, "--gemm-size", str(p.gemm_size),
            "--min-bytes", p.min_bytes, "--max-bytes", p.max_bytes, "--step-factor", str(p.step_factor)]


def worker_tar() -> tuple[str, str]:
    """(digest, base64 of a tar.gz) of the worker as a tiny `factoryctl.bench` package."""
    here = Path(__file__).resolve().parent.parent / "bench"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
        add("factoryctl/__init__.py", b"")
        add("factoryctl/bench/__init__.py", b"")
        for f in WORKER_FILES:
            add(f"factoryctl/bench/{f}", (here / f).read_bytes())
    # gzip's header carries a time stamp (now, by default): mtime=0 keeps the digest, and so
    # the staging folder, the same from one call to the next
    data = gzip.compress(buf.getvalue(), mtime=0)
    return hashlib.sha256(data).hexdigest()[:12], base64.b64encode(data).decode()


def stage(run: Exec, hosts: list[str], root: str = STAGE_ROOT) -> tuple[str, list[str]]:
    """Copy the worker onto hosts under root; (the folder, errors)."""
    digest, b64 = worker_tar()
    folder = f"{root}/{digest}"
    cmd = (f"test -f {folder}/factoryctl/bench/cpu_worker.py || (mkdir -p {folder} && "
           f"printf %s {b64} | base64 -d | tar -xzf - -C {folder})")
    with ThreadPoolExecutor(max_workers=min(8, len(hosts)) or 1) as pool:
        outs = list(pool.map(lambda h: run(h, cmd), hosts))
    errors = [f"{h}: staging the worker failed (exit {o.rc}): {(o.stderr or o.stdout).strip()[:200]}"
              for h, o in zip(hosts, outs, strict=True) if o.rc != 0]
    return folder, errors


def _srun(p: Plan, per_node: int, gpus: bool, minutes: int) -> str:
    argv = ["srun", "-p", p.partition, "-N", str(len(p.nodes)), "-w", ",".join(p.nodes),
            f"--ntasks-per-node={per_node}", "--job-name=factoryctl-bench", "-t", str(minutes)]
    if gpus:
        argv.append(f"--gpus-per-node={per_node}")
    return shlex.join(argv)


def _srun_missing(which: Out) -> str:
    """Why `command -v srun` did not find srun. Only its own "not found" (exit 1 in bash, 127
    in dash: POSIX leaves it unspecified beyond non-zero) is read as a missing slurm-client;
    anything else (an exception before the command ran, ssh failing with 255) is shown as
    it is, so a broken connection is never reported as a missing package."""
    if which.error:
        return f"could not run `command -v srun`: {which.error}"
    if which.rc in (1, 127) and not which.stderr.strip():
        return "srun not found (slurm-client missing?)"
    why = (which.stderr or which.stdout).strip()[-300:] or "no output"
    return f"`command -v srun` exited {which.rc}: {why}"


def run_stage(factory, site, run: Exec, *, partition: str | None = None, nodes: int | None = None,
              timeout: int = 900, ui: UI | None = None,
              stage_root: str | None = None, scheduler: str | None = None) -> BenchResult:
    """Run the benchmark through Slurm and judge it. stage_root: where the worker is copied
    (default /var/tmp/factoryctl-bench on each host; a shared folder with --connection local).
    scheduler "kubernetes" (or Slurm off and Kubernetes on): bench/kube_stage.py instead."""
    from .expect import contexts

    if scheduler == "kubernetes" or (scheduler is None and not factory.slurm.enabled
                                     and factory.kubernetes.enabled):
        from . import kube_stage as kube_bench

        return kube_bench.run_stage(factory, site, nodes=nodes, timeout=timeout, ui=ui)

    say = ui.info if ui is not None else (lambda _m: None)
    t0 = time.monotonic()
    p = plan(factory, site, partition, nodes)
    if isinstance(p, str):
        return BenchResult(path="none", skipped=p)
    ctxs, th = contexts(factory, site), factory.verify.thresholds
    minutes = max(1, -(-timeout // 60))
    wrap = f"timeout --kill-after=10 {timeout}"
    which = run(p.submit, "command -v srun")
    if which.error or which.rc != 0:
        return BenchResult(path="none", scheduler="slurm", hosts=p.nodes, errors=[
            f"{p.submit}: {_srun_missing(which)}"], duration_s=time.monotonic() - t0)
    if p.gpus_per_node:
        probe = run(p.nodes[0], f"test -x {NCCL_TESTS_DIR}/all_reduce_perf")
        if probe.error:
            return BenchResult(path="none", scheduler="slurm", hosts=p.nodes, errors=[
                f"{p.nodes[0]}: could not look for nccl-tests: {probe.error}"], duration_s=time.monotonic() - t0)
        if probe.rc == 0:
            res = _nccl_tests(p, run, wrap, minutes, ctxs, th, say)
            res.duration_s = time.monotonic() - t0
            return res
    mode = "gpu" if p.gpus_per_node else "cpu"
    res = _builtin(p, run, wrap, minutes, mode, ctxs, th, say, stage_root or STAGE_ROOT)
    res.duration_s = time.monotonic() - t0
    return res


def _nccl_tests(p: Plan, run: Exec, wrap: str, minutes: int, ctxs, th, say) -> BenchResult:
    from .nccl_parse import parse_text

    res = BenchResult(path="nccl-tests", scheduler="slurm", hosts=p.nodes)
    for coll in p.collectives:
        binary = f"{NCCL_TESTS_DIR}/{coll}_perf"
        cmd = (f"cd /tmp && {wrap} {_srun(p, p.gpus_per_node, True, minutes)} {binary} "
               f"-b {shlex.quote(p.min_bytes)} -e {shlex.quote(p.max_bytes)} -f {p.step_factor} -g 1")
        say(f"benchmark: {coll} on {len(p.nodes)} node(s) of partition {p.partition} through srun")
        res.commands.append(cmd)
        out = run(p.submit, cmd)
        parsed = parse_text(out.stdout, source=f"srun {coll}_perf ({len(p.nodes)} nodes)")
        if out.rc != 0 and not parsed.rows:
            res.errors.append(f"{coll}_perf exited {out.rc}: {(out.stderr or out.stdout).strip()[-300:]}")
            continue
        record_nccl(res, parsed, ctxs, th, coll, p.gpus_per_node, len(p.nodes))
    if len(p.nodes) >= 2:
        localise_nodes(p, run, wrap, minutes, ctxs, th, say, res)
    return res


LOCALISE_ENV = "ALL,NCCL_DEBUG=INFO,NCCL_DEBUG_SUBSYS=INIT,NET"  # INFO names the NICs each rank uses


def localise_script(p: Plan, jobs: list[tuple[str, str, list[str]]], collective: str, wrap: str,
                    minutes: int) -> str:
    """A bash script for the submit host: one Slurm job per (kind, key, nodes) in `jobs`, all
    at once (each on its own nodes), each writing its own log; after `wait`, every log behind
    its localise.marker()."""
    from .localise import marker

    size = shlex.quote(p.max_bytes)
    binary = f"{NCCL_TESTS_DIR}/{collective}_perf"
    lines = ["set -u", 'dir=$(mktemp -d "${TMPDIR:-/tmp}/factoryctl-localise.XXXXXX") || exit 1',
             "trap 'rm -rf \"$dir\"' EXIT", "cd /tmp || exit 1"]
    for i, (_, _, nodes) in enumerate(jobs):
        argv = ["srun", "-p", p.partition, "-N", str(len(nodes)), "-w", ",".join(nodes),
                f"--ntasks-per-node={p.gpus_per_node}", f"--gpus-per-node={p.gpus_per_node}",
                "--job-name=factoryctl-localise", "-t", str(minutes), f"--export={LOCALISE_ENV}"]
        lines.append(f'{wrap} {shlex.join(argv)} {binary} -b {size} -e {size} -f 2 -g 1 '
                     f'> "$dir/{i}.log" 2>&1 &')
    lines.append("wait")
    for i, (kind, key, _) in enumerate(jobs):
        lines += [f"echo {shlex.quote(marker(kind, key))}", f'cat "$dir/{i}.log"']
    return "\n".join(lines) + "\n"


def localise_nodes(p: Plan, run: Exec, wrap: str, minutes: int, ctxs, th, say, res: BenchResult) -> None:
    """bench/localise.py's rounds through Slurm, each round one script on the submit host."""
    from . import localise as loc

    coll = "all_reduce" if "all_reduce" in p.collectives else p.collectives[0]

    def go(jobs: list[loc.Job]) -> str:
        cmd = f"bash -c {shlex.quote(localise_script(p, jobs, coll, wrap, minutes))}"
        res.commands.append(cmd)
        out = run(p.submit, cmd)
        if out.error:
            res.errors.append(f"{p.submit}: localisation could not run: {out.error}")
        return out.stdout

    ms, summary = loc.run_rounds(p.nodes, go, ctxs, th, coll, p.gpus_per_node,
                                 f"localisation ({coll}, {p.max_bytes})", say)
    res.measurements += [m.to_dict() for m in ms]
    res.localisation = summary | {"size": p.max_bytes}


def read_result(run: Exec, nodes: list[str], path: str) -> dict | None:
    """Rank 0's document from the node it ran on (the first node that has the file), removed
    once read."""
    for host in nodes:
        got = run(host, f"cat {shlex.quote(path)} 2>/dev/null && rm -f {shlex.quote(path)}")
        if got.rc == 0 and (doc := json_document(got.stdout)) is not None:
            return doc
    return None


def _builtin(p: Plan, run: Exec, wrap: str, minutes: int, mode: str, ctxs, th, say, root: str) -> BenchResult:
    res = BenchResult(path=f"built-in ({mode}{', tcp' if mode == 'cpu' else ''})", scheduler="slurm",
                      hosts=p.nodes)
    say(f"benchmark: staging the built-in worker on {p.submit} and {len(p.nodes)} node(s)")
    folder, errors = stage(run, sorted({p.submit, *p.nodes}), root)
    if errors:
        res.errors += errors
        return res
    per_node = p.gpus_per_node if mode == "gpu" else 1
    # Rank 0 writes its document to a file of its own on its node (srun merges every rank's
    # stdout, and NCCL prints its warnings there); the stage reads it back from that node.
    result_file = f"{folder}/result-{time.time_ns()}.json"
    args = [*(CPU_ARGS if mode == "cpu" else gpu_worker_args(p)), "--out", result_file]
    cmd = (f"cd {folder} && PYTHONPATH={folder} {wrap} {_srun(p, per_node, mode == 'gpu', minutes)} "
           f"python3 -m factoryctl.bench.fallback_worker --mode {mode} {shlex.join(args)}")
    res.commands.append(cmd)
    say(f"benchmark: built-in {mode} worker on {len(p.nodes)} node(s) of partition {p.partition} through srun")
    out = run(p.submit, cmd)
    doc = read_result(run, p.nodes, result_file)
    if doc is None:
        res.errors.append(f"the worker gave no result (exit {out.rc}; rank 0 wrote no {result_file} on "
                          f"{', '.join(p.nodes)}): {(out.stderr or out.stdout).strip()[-400:]}")
        return res
    result = load_worker(res, doc, f"srun fallback_worker --mode {mode} ({len(p.nodes)} nodes)")
    if result is None:
        return res
    if out.rc != 0:
        res.errors.append(f"srun exited {out.rc}: {out.stderr.strip()[-300:]}")
    record_worker(res, result, ctxs, th)
    return res
