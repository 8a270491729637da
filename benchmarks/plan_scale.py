"""How validate + inspect scale with the number of GPU nodes.

Prints one table row per size: load, model, resolve, rules, total wall time and the peak
resident memory of a fresh process. Target (issue: foundation): 2,048 nodes in under 3 s on
a 2-core machine, growing linearly.

    python benchmarks/plan_scale.py [--sizes 16,256,2048,16384] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
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
             "roles": ["slurm-compute", "kube-worker"],
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
                       "node_pod_prefix": 26, "service_cidr": "192.168.0.0/16"},
        "slurm": {"enabled": True, "cluster_name": "scale",
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="16,256,2048,16384")
    ap.add_argument("--repeat", type=int, default=3, help="runs per size; the median is shown")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"validate + inspect scaling (python {sys.version.split()[0]}, {os.cpu_count()} CPUs; median of {args.repeat})")
    head = f"{'GPU nodes':>9} {'GPUs':>7} {'file KB':>8} {'load s':>7} {'model s':>8} {'resolve s':>9} {'rules s':>8} {'json s':>7} {'total s':>8} {'us/node':>8} {'peak MB':>8}  errors"
    print(head)
    print("-" * len(head))
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            path = Path(tmp) / f"f{n}.yaml"
            path.write_text(yaml.safe_dump(factory(n), sort_keys=False))
            runs = sorted((measure(path) for _ in range(args.repeat)), key=lambda r: r["total"])
            r = runs[len(runs) // 2]
            print(f"{n:>9} {r['gpus']:>7} {path.stat().st_size / 1024:>8.0f} {r['load']:>7.3f} {r['model']:>8.3f} "
                  f"{r['resolve']:>9.3f} {r['rules']:>8.3f} {r['inspect_json']:>7.3f} {r['total']:>8.3f} "
                  f"{r['total'] / n * 1e6:>8.0f} {r['peak_mb']:>8.0f}  {','.join(sorted(set(r['errors']))) or '-'}")


if __name__ == "__main__":
    main()
