"""Drift timings on lab sites of 1 and 16 hosts (root, network namespaces), in one run:

- in sync: `factoryctl drift` right after apply (median of --repeat runs): render + compare,
  terraform plan of every unit stack, one SSH probe per host;
- one host edited: slurm.conf changed by hand on one compute host, so that host also goes
  through `ansible-playbook --check --diff` (exit 2 expected);
- optionally (--full) `factoryctl drift --full`: the check-mode playbook on every host.

    python benchmarks/drift_scale.py [--hosts 1 16] [--repeat 3] [--full] [--keep]

The 1-host site is one host holding every role of the lab example (controller, login and
compute); the N-host site is the lab example with N-1 compute hosts. Each site gets its own
name, subnet and bridge and is destroyed afterwards (also on error).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
FACTORYCTL = [str(Path(sys.executable).parent / "factoryctl")]


def site(tmp: Path, hosts: int) -> Path:
    doc = yaml.safe_load((ROOT / "examples" / "lab.yaml").read_text())
    name = f"drift{hosts}"
    subnet = f"10.81.{hosts}.0/24"
    doc["metadata"]["name"] = name
    doc.pop("inference", None)  # the Slurm site: serving is benchmarks/serve_lab.py's
    doc["site"].pop("mirrors", None)
    doc["site"]["lab"] = {"subnet": subnet, "bridge": f"fdrift{hosts}"}
    doc["fabric"]["management"] = {"cidr": subnet, "gateway": f"10.81.{hosts}.1"}
    if hosts == 1:
        doc["nodes"] = [dict(doc["nodes"][0], roles=["slurm-controller", "login", "slurm-compute"])]
        for p in doc["slurm"]["partitions"]:
            p["nodes"] = doc["nodes"][0]["group"]
    else:
        doc["nodes"][1]["count"] = hosts - 1
    path = tmp / name / "factory.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def timed(argv: list[str], log: Path) -> tuple[float, int, str]:
    t0 = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    with open(log, "a") as fh:
        fh.write(f"\n$ {' '.join(argv)}\n{r.stdout}{r.stderr}")
    return time.perf_counter() - t0, r.returncode, r.stdout


def bench(tmp: Path, hosts: int, repeat: int, full: bool, keep: bool) -> dict:
    path = site(tmp, hosts)
    log = path.parent / "bench.log"
    fctl = [*FACTORYCTL]
    row: dict = {"hosts": hosts}
    try:
        for step in (["plan", str(path)], ["apply", str(path), "--auto-approve", "--plain"]):
            s, rc, _ = timed([*fctl, *step], log)
            assert rc == 0, f"{step[0]} failed (rc {rc}), see {log}"
            row[f"{step[0]}_s"] = s
        runs = []
        for _ in range(repeat):
            s, rc, out = timed([*fctl, "drift", str(path), "--format", "json"], log)
            assert rc == 0, f"drift right after apply exited {rc}, see {log}"
            runs.append(s)
        row["in_sync_s"] = statistics.median(runs)
        row["in_sync_parts"] = json.loads(out)["seconds"]
        target = "head01" if hosts == 1 else "node01"
        edit = [*fctl, "lab", "ssh", "--file", str(path), target, "--", "sh", "-c",
                "echo '# edited by hand' >> /etc/slurm/slurm.conf"]
        assert subprocess.run(edit, capture_output=True).returncode == 0
        s, rc, out = timed([*fctl, "drift", str(path), "--format", "json"], log)
        assert rc == 2, f"drift after an edit exited {rc} (expected 2), see {log}"
        row["one_edited_s"] = s
        if full:
            s, rc, _ = timed([*fctl, "drift", str(path), "--full", "--format", "json"], log)
            assert rc == 2, f"drift --full exited {rc} (expected 2), see {log}"
            row["full_s"] = s
    finally:
        if not keep:
            timed([*fctl, "destroy", str(path), "--auto-approve"], log)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--repeat", type=int, default=3, help="in-sync drift runs per size (median shown)")
    ap.add_argument("--full", action="store_true", help="also time `drift --full` (check-mode playbook on all hosts)")
    ap.add_argument("--keep", action="store_true", help="leave the sites up")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="drift-scale-"))
    rows = []
    print(f"{'hosts':>5} {'apply':>8} {'drift in sync':>14} {'  render/tf/probe':>20} {'one host edited':>16}"
          + (f" {'drift --full':>13}" if args.full else ""))
    for n in args.hosts:
        r = bench(tmp, n, args.repeat, args.full, args.keep)
        rows.append(r)
        p = r["in_sync_parts"]
        parts = f"{p.get('render', 0):.1f}/{p.get('terraform', 0):.1f}/{p.get('probe', 0):.1f}s"
        print(f"{n:>5} {r['apply_s']:>7.1f}s {r['in_sync_s']:>13.2f}s {parts:>20} {r['one_edited_s']:>15.1f}s"
              + (f" {r['full_s']:>12.1f}s" if args.full else ""), flush=True)
    if len(rows) >= 2:
        small, big = rows[0], rows[-1]
        ratio = big["in_sync_s"] / small["in_sync_s"]
        print(f"drift in sync, {big['hosts']} vs {small['hosts']} host(s): {ratio:.2f}x "
              f"(target <= 2x): {'met' if ratio <= 2 else 'NOT met'}; one host edited: "
              f"{big['one_edited_s'] / small['one_edited_s']:.2f}x")
    print(f"logs: {tmp}/drift*/bench.log")
    return 0


if __name__ == "__main__":
    sys.exit(main())
