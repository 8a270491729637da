"""Apply timings on lab sites of 3 and 16 hosts (root, network namespaces), in one run:

- first apply: `factoryctl plan` + `factoryctl apply --auto-approve` (hosts created by
  Terraform, then site.yml; the lab host image must already be cached, see `lab up`);
- no-op re-apply: `factoryctl apply --auto-approve` again. Nothing moved, so every host is
  probed (one SSH command each) and, found as the first apply left it, skips site.yml;
- no-op --converge: `factoryctl apply --auto-approve --converge`: site.yml runs on every
  host anyway (Ansible changed=0), with factoryctl's Ansible settings (ControlPersist,
  pipelining, fact cache, forks = hosts, Mitogen's linear strategy);
- plain ansible-playbook: the same rendered site.yml and inventory on the same converged
  hosts with Ansible's settings left alone except what reaching lab hosts needs: no
  pipelining, no ControlMaster, no fact caching, forks 5, linear strategy.

    python benchmarks/apply_scale.py [--hosts 3 16] [--keep]

Each site gets its own name, subnet and bridge, and is destroyed afterwards (also on error).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
FACTORYCTL = [str(Path(sys.executable).parent / "factoryctl")]

PLAIN_CFG = """\
[defaults]
roles_path = {roles}
host_key_checking = true
retry_files_enabled = false
interpreter_python = /usr/bin/python3
[ssh_connection]
pipelining = false
ssh_args =
"""


def site(tmp: Path, hosts: int) -> Path:
    doc = yaml.safe_load((ROOT / "examples" / "lab.yaml").read_text())
    n = hosts
    doc["metadata"]["name"] = f"bench{n}"
    doc.pop("inference", None)  # the Slurm site: serving is benchmarks/serve_lab.py's
    doc["site"].pop("mirrors", None)
    subnet = f"10.79.{n}.0/24"
    doc["site"]["lab"] = {"subnet": subnet, "bridge": f"fbench{n}"}
    doc["fabric"]["management"] = {"cidr": subnet, "gateway": f"10.79.{n}.1"}
    doc["nodes"][1]["count"] = hosts - 1
    path = tmp / f"bench{n}" / "factory.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def timed(argv: list[str], log: Path, timeout: float | None = None, **kw) -> tuple[float, int]:
    """Wall seconds and exit code; (timeout, -1) when it ran out of time."""
    t0 = time.perf_counter()
    with open(log, "a") as fh:
        fh.write(f"\n$ {' '.join(argv)}\n")
        fh.flush()
        try:
            rc = subprocess.run(argv, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                timeout=timeout, **kw).returncode
        except subprocess.TimeoutExpired:
            return float(timeout or 0), -1
    return time.perf_counter() - t0, rc


def plain_run(path: Path, log: Path, timeout: float) -> tuple[float, int]:
    ws = path.parent / ".factory" / path.parent.name
    project = ws / "build" / "ansible" / "project"
    home = Path(tempfile.mkdtemp(prefix="plain-", dir=path.parent))
    cfg = home / "ansible.cfg"
    cfg.write_text(PLAIN_CFG.format(roles=project / "roles"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_CONFIG=str(cfg), ANSIBLE_HOME=str(home), ANSIBLE_LOCAL_TEMP=str(home / "tmp"),
               ANSIBLE_NOCOLOR="1", PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}")
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(ws / "build" / "ansible" / "inventory"),
            "-i", str(ws / "inventory" / "connection.yml"), "site.yml"]
    return timed(argv, log, timeout=timeout, cwd=project, env=env)


def bench(tmp: Path, hosts: int, keep: bool, plain_timeout: float) -> dict:
    path = site(tmp, hosts)
    log = path.parent / "bench.log"
    row: dict = {"hosts": hosts, "log": str(log)}
    try:
        row["plan_s"], rc = timed([*FACTORYCTL, "plan", str(path)], log)
        assert rc == 0, f"plan failed (rc {rc}), see {log}"
        row["apply_s"], rc = timed([*FACTORYCTL, "apply", str(path), "--auto-approve", "--plain"], log)
        assert rc == 0, f"first apply failed (rc {rc}), see {log}"
        row["reapply_s"], rc = timed([*FACTORYCTL, "apply", str(path), "--auto-approve", "--plain"], log)
        assert rc == 0, f"re-apply failed (rc {rc}), see {log}"
        row["noop"] = "are as the last apply left them" in log.read_text().rsplit("$ ", 1)[-1]
        row["converge_s"], rc = timed([*FACTORYCTL, "apply", str(path), "--auto-approve", "--plain", "--converge"],
                                      log)
        assert rc == 0, f"re-apply --converge failed (rc {rc}), see {log}"
        row["noop"] = row["noop"] and "changed=0 on all" in log.read_text().rsplit("$ ", 1)[-1]
        row["plain_s"], rc = plain_run(path, log, plain_timeout)
        row["plain_cut"] = rc == -1  # stopped at the time limit: the plain run takes longer still
        assert rc in (0, -1), f"plain ansible-playbook failed (rc {rc}), see {log}"
    finally:
        if not keep:
            timed([*FACTORYCTL, "destroy", str(path), "--auto-approve"], log)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, nargs="+", default=[3, 16])
    ap.add_argument("--keep", action="store_true", help="leave the sites up")
    ap.add_argument("--dir", type=Path, default=None, help="work folder (default: a temporary one)")
    ap.add_argument("--plain-timeout", type=float, default=1800,
                    help="stop the plain playbook after this many seconds (reported as '>N')")
    args = ap.parse_args()
    tmp = args.dir or Path(tempfile.mkdtemp(prefix="apply-scale-"))
    print(f"{'hosts':>5} {'plan':>7} {'first apply':>12} {'no-op re-apply':>15} {'ratio':>6} "
          f"{'no-op --converge':>17} {'ratio':>6} {'plain playbook':>15}")
    for n in args.hosts:
        r = bench(tmp, n, args.keep, args.plain_timeout)
        lt = "<" if r["plain_cut"] else ""
        plain = (">" if r["plain_cut"] else "") + f"{r['plain_s']:.1f}s"
        print(f"{n:>5} {r['plan_s']:>6.1f}s {r['apply_s']:>11.1f}s {r['reapply_s']:>14.1f}s "
              f"{lt + format(r['reapply_s'] / r['plain_s'], '.2f'):>6} {r['converge_s']:>16.1f}s "
              f"{lt + format(r['converge_s'] / r['plain_s'], '.2f'):>6} {plain:>15}"
              + ("" if r["noop"] else "  (a re-apply ran or changed something!)"), flush=True)
    print(f"logs: {tmp}/bench*/bench.log; ratio = time / plain playbook (target <= 0.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
