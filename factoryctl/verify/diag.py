"""`verify --diag 1|2|3|4`: NVIDIA DCGM diagnostics (`dcgmi diag -r N -j`) on every GPU node at
once, judged with the health package (health/dcgmi.py's `-j` parser, health/judge.py).

Where Slurm runs the GPU nodes, one job step covers them all from the submit host (a login
host, else the controller): ``srun -N<n> -w <nodes> --ntasks-per-node=1 --exclusive``, each task
writing its node's JSON to a file of its own on that node (srun merges the tasks' stdout into
one stream, which cannot be split back per node reliably); each file is then read back from its
node over the host-check connection. Elsewhere each node runs `dcgmi diag` over that connection,
all nodes in parallel. A node without dcgmi (the lab) is skipped with the reason, never an error.

Each result is a CheckResult ``dcgm-diag:<test>`` of the node (GPU and value in its detail),
so failing tests fail verify and feed `--quarantine` like any other failing check.
"""

from __future__ import annotations

import shlex
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..health import HealthInputError, consistency, judge, load_thresholds, parse_text
from .results import CheckResult


@dataclass(frozen=True)
class Level:
    level: int
    name: str
    documented: str  # the run time NVIDIA documents for the level
    timeout_s: int  # what verify waits for one node: the documented time with headroom


# NVIDIA DCGM User Guide, "Diagnostics" > "Run Levels" (docs.nvidia.com/datacenter/dcgm/latest/
# user-guide/dcgm-diagnostics.html): r1 quick, seconds (deployment checks); r2 medium, ~2 minutes;
# r3 long, ~30 minutes; r4 extended, 1-2 hours. Timeouts: the documented upper figure x ~2-3.
LEVELS: dict[int, Level] = {
    1: Level(1, "quick", "seconds", 120),
    2: Level(2, "medium", "~2 minutes", 600),
    3: Level(3, "long", "~30 minutes", 3600),
    4: Level(4, "extended", "1-2 hours", 3 * 3600),
}
ABSENT = "dcgmi absent here"
WAIT_S = 300  # how long the srun step waits for the nodes to be free
DIAG_DIR = "/tmp/factoryctl-diag"  # on each node: <run>/<host>.json, .err, .rc, .skip


def gpu_nodes(site) -> list[str]:
    return [h.name for h in site.hosts if h.gpus]


def node_script(level: int, folder: str) -> str:
    """What each node runs: dcgmi diag into its own files, named by the node's short hostname;
    a node without dcgmi leaves a .skip file with the reason."""
    lv = LEVELS[level]
    return (f"d={shlex.quote(folder)}; h=$(hostname -s); mkdir -p \"$d\"; rm -f \"$d/$h\".*; "
            f"if ! command -v dcgmi >/dev/null 2>&1; then echo {shlex.quote(ABSENT)} > \"$d/$h.skip\"; exit 0; fi; "
            f"timeout {lv.timeout_s} dcgmi diag -r {level} -j > \"$d/$h.json\" 2> \"$d/$h.err\"; "
            "echo $? > \"$d/$h.rc\"; exit 0")


def srun_command(nodes: list[str], level: int, folder: str, partition: str | None = None) -> str:
    """One job step, one task per node, each node to itself (--exclusive: no job beside the
    diagnostic, which loads every GPU; srun(1)), in a partition holding those nodes."""
    minutes = -(-LEVELS[level].timeout_s // 60) + 1
    part = f"-p {shlex.quote(partition)} " if partition else ""
    # --immediate: give up when the nodes are not free within WAIT_S (busy with users' jobs)
    # instead of waiting unbounded (srun(1) -I); --time bounds the step once it runs.
    return (f"srun {part}-N{len(nodes)} -w {shlex.quote(','.join(nodes))} --ntasks-per-node=1 --exclusive "
            f"--immediate={WAIT_S} "
            f"--time={minutes} --job-name=factoryctl-diag bash -c {shlex.quote(node_script(level, folder))}")


READ_BACK = "d={d}; h=$(hostname -s); if [ -f \"$d/$h.skip\" ]; then echo SKIP; cat \"$d/$h.skip\"; " \
            "elif [ -f \"$d/$h.rc\" ]; then echo RC $(cat \"$d/$h.rc\"); cat \"$d/$h.json\"; " \
            "else echo MISSING; fi"


def judge_node(host: str, level: int, text: str, rc: int, err: str, thresholds,
               sources: list | None = None) -> list[CheckResult]:
    """The node's diag JSON as results; a run that gave no judgeable JSON is one error naming why."""
    name = f"{host}: dcgmi diag -r {level} -j"
    if rc == 124:
        return [CheckResult(host, "dcgm-diag", "error", f"dcgmi diag -r {level} stopped after "
                            f"{LEVELS[level].timeout_s} s (documented: {LEVELS[level].documented})", host)]
    try:
        parsed = parse_text(text, name, host)
    except HealthInputError as e:
        why = " ".join((err or "").split())[:200]
        return [CheckResult(host, "dcgm-diag", "error",
                            f"dcgmi diag exited {rc}: {e}" + (f"; stderr: {why}" if why else ""), host)]
    if parsed.format != "dcgmi-diag-json":
        return [CheckResult(host, "dcgm-diag", "error", f"{name} gave {parsed.format} output, not JSON", host)]
    if sources is not None:
        sources.append(parsed)
    out = []
    for f in judge(parsed, thresholds):
        status = {"pass": "passed", "warn": "passed", "fail": "failed"}[f.status]
        detail = f"{f.device}: {f.value} (expected {f.expected})" + (f"; {f.detail}" if f.detail else "")
        if f.status == "warn":
            detail = "warning: " + detail
        out.append(CheckResult(host, f.check.replace("dcgm-diag ", "dcgm-diag:"), status, detail, host))
    return _merged(out)


def _merged(results: list[CheckResult]) -> list[CheckResult]:
    """One result per (host, test): a test reported per GPU keeps the worst status, with the
    details of the GPUs that have it."""
    rank = {"error": 0, "failed": 1, "passed": 2, "skipped": 3}
    groups: dict[str, list[CheckResult]] = {}
    for r in results:
        groups.setdefault(r.check, []).append(r)
    out = []
    for check, rs in groups.items():
        worst = min(rs, key=lambda r: rank[r.status])
        details = "; ".join(r.detail for r in rs if r.status == worst.status and r.detail)
        out.append(CheckResult(worst.host, check, worst.status, details[:600], worst.on))
    return out


def _read_back(run, host: str, level: int, folder: str, thresholds, sources: list) -> list[CheckResult]:
    out = run(host, READ_BACK.format(d=shlex.quote(folder)))
    if out.error or out.rc != 0:
        return [CheckResult(host, "dcgm-diag", "error",
                            f"reading the diag result back failed: {out.error or out.stderr.strip()[:200]}", host)]
    first, _, rest = out.stdout.partition("\n")
    if first == "SKIP":
        return [CheckResult(host, "dcgm-diag", "skipped", rest.strip() or ABSENT, host)]
    if first.startswith("RC "):
        rc = int(first.split()[1]) if first.split()[1:] and first.split()[1].isdigit() else 1
        return judge_node(host, level, rest, rc, "", thresholds, sources)
    return [CheckResult(host, "dcgm-diag", "error", f"no diag result on {host} ({folder}): the step did not run there",
                        host)]


def run_over_ssh(run, nodes: list[str], level: int, folder: str, thresholds, sources: list) -> list[CheckResult]:
    def one(host: str) -> list[CheckResult]:
        out = run(host, node_script(level, folder))
        if out.error:
            return [CheckResult(host, "dcgm-diag", "error", f"unreachable: {out.error}", host)]
        return _read_back(run, host, level, folder, thresholds, sources)

    with ThreadPoolExecutor(max_workers=min(32, max(1, len(nodes)))) as pool:
        return [r for rs in pool.map(one, nodes) for r in rs]


def partitions(site, nodes: list[str]) -> dict[str | None, list[str]]:
    """The nodes by the first declared partition holding each (srun -w refuses nodes outside
    the partition it runs in); a node in none goes to the default partition (None)."""
    first: dict[str, str] = {}
    for p in getattr(site.factory.slurm, "partitions", []) or []:
        groups = [p.nodes] if isinstance(p.nodes, str) else list(p.nodes)
        for g in groups:
            for n in site.groups[g].hostnames if g in site.groups else []:
                first.setdefault(n, p.name)
    out: dict[str | None, list[str]] = {}
    for n in nodes:
        out.setdefault(first.get(n), []).append(n)
    return out


def run_through_slurm(run, submit: str, by_partition: dict[str | None, list[str]], level: int, folder: str,
                      thresholds, sources: list) -> tuple[list[CheckResult], list[str]]:
    """One srun step per partition, the steps at once; then every node's file read back."""
    def step(item):
        partition, members = item
        return partition, run(submit, srun_command(members, level, folder, partition))

    problems = []
    with ThreadPoolExecutor(max_workers=max(1, len(by_partition))) as pool:
        for partition, out in pool.map(step, by_partition.items()):
            if out.error or out.rc != 0:
                problems.append(f"dcgm diag: srun{f' -p {partition}' if partition else ''} on {submit} exited "
                                f"{out.rc}: {out.error or (out.stderr or out.stdout).strip()[-300:]}")
    nodes = [n for members in by_partition.values() for n in members]
    with ThreadPoolExecutor(max_workers=min(32, max(1, len(nodes)))) as pool:
        results = [r for rs in pool.map(lambda h: _read_back(run, h, level, folder, thresholds, sources), nodes) for r in rs]
    return results, problems


def submit_host(site) -> str | None:
    return next((h.name for h in site.hosts if "login" in h.roles), None) or next(
        (h.name for h in site.hosts if "slurm-controller" in h.roles), None)


def run_diag(site, run, level: int, run_id: str, overrides: dict | None = None,
             limit: list[str] | None = None, say=lambda _m: None,
             base: str = DIAG_DIR, scheduler: bool = True) -> tuple[list[CheckResult], list[str]]:
    """Every GPU node's diag at `level`: (results, problems of the run itself)."""
    if level not in LEVELS:
        raise ValueError(f"dcgmi diag level {level}: use 1, 2, 3 or 4")
    thresholds = load_thresholds(overrides)
    nodes = [n for n in gpu_nodes(site) if not limit or n in limit]
    compute = [h.name for h in site.hosts if not h.gpus and {"slurm-compute", "kube-worker"} & set(h.roles)
               and (not limit or h.name in limit)]
    results: list[CheckResult] = [CheckResult(n, "dcgm-diag", "skipped", "no GPU declared on this node: "
                                              "nothing for dcgmi diag to test", n) for n in compute]
    if not nodes:
        return results, []
    folder = f"{base}/{run_id}"
    lv = LEVELS[level]
    slurm_nodes = ({h.name for h in site.hosts if "slurm-compute" in h.roles}
                   if scheduler and site.factory.slurm.enabled else set())
    submit = submit_host(site) if slurm_nodes else None
    via_slurm = [n for n in nodes if n in slurm_nodes] if submit else []
    rest = [n for n in nodes if n not in via_slurm]
    problems: list[str] = []
    sources: list = []  # each node's parsed diag, for the consistency across nodes
    if via_slurm:
        say(f"dcgm diag -r {level} ({lv.name}, documented {lv.documented}) on {len(via_slurm)} node(s) through srun")
        r, p = run_through_slurm(run, submit, partitions(site, via_slurm), level, folder, thresholds, sources)
        results += r
        problems += p
    if rest:
        say(f"dcgm diag -r {level} ({lv.name}, documented {lv.documented}) on {len(rest)} node(s) over SSH")
        results += run_over_ssh(run, rest, level, folder, thresholds, sources)
    # the odd node out in the driver the diagnostics detected: a warning, not a failure
    for f in consistency(sources):
        where = f.host or "all GPU nodes"
        results.append(CheckResult(where, f.check, "passed", f"warning: {f.value} where {f.expected} expected: {f.detail}",
                                   f.host or "(site)"))
    return results, problems
