"""Localisation (factoryctl/bench/localise.py): a slow node, a slow pair, a rail down, named by
host; the Slurm stage's rounds run for real in bash against a fake srun that prints real
nccl-tests logs (tests/fixtures/nccl), scaled for the node made slow."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from factoryctl import catalog
from factoryctl.bench import localise as loc
from factoryctl.bench import slurm_stage as bench
from factoryctl.bench.expect import Context
from factoryctl.bench.slurm_stage import Out
from factoryctl.cli import bench as cli_bench
from factoryctl.cli.bench import app
from factoryctl.model.verify import Thresholds
from factoryctl.session import check
from tests.helpers import reference_doc, write_doc
from tests.unit.bench.nccl_logs import node_log, pair_log

ROOT = Path(__file__).resolve().parents[3]
FIX = ROOT / "tests" / "fixtures" / "nccl"
PILOT = ROOT / "blueprints" / "enterprise-pilot-h100-4n" / "factory.yaml"
TH = Thresholds()
H100 = [Context(gpu=catalog.gpu("H100"), gpus_per_node=8, nodes=4, nic_ports=8, port_gbps=400,
                fabric="infiniband", group="gpu")]
# --- the recorded 2-node log ------------------------------------------------------------------


def test_the_synthetic_two_node_log_names_the_slow_node() -> None:
    # one node of a 2-node site 20 % slow (real log of nccl-tests#290, scaled; see SOURCES.md)
    text = (FIX / "h100-2n-localise-slow-node-synthetic.log").read_text()
    found = loc.judge_nodes(text, H100, TH, "all_reduce", 8, "fx.log")
    assert list(found.suspects) == ["node006"]
    by = {(m.name, m.scope.split()[1]): m for m in found.measurements}
    ok, slow = by[("nccl.all_reduce.busbw.node", "node005")], by[("nccl.all_reduce.busbw.node", "node006")]
    assert ok.verdict == "pass" and ok.value == 476.53
    assert slow.verdict == "fail" and slow.value == 381.22 and slow.expected == 476.0
    assert "node node006" in slow.reason and "at 4 GiB" in slow.reason
    out = by[("nccl.all_reduce.busbw.node.outlier", "node006")]
    assert out.verdict == "fail" and "20% below the median 476.5 of its 1 peers" in out.reason


def test_a_node_slow_against_its_peers_is_named_even_when_the_site_passes() -> None:
    # 4 fast nodes at 500 (above the expected 476) and one at 440: 92.4 % of expected does not
    # fail the absolute check (it warns), but it is 12 % below its peers and below expectation
    nodes = {f"gpu0{i}": 500 / 476.53 for i in range(1, 5)} | {"gpu05": 440 / 476.53}
    text = "".join(f"{loc.marker('node', h)}\n{node_log(h, f)}" for h, f in nodes.items())
    found = loc.judge_nodes(text, H100, TH, "all_reduce", 8)
    verdicts = {m.scope.split()[1]: m.verdict for m in found.measurements if m.name.endswith(".node")}
    assert verdicts == {"gpu01": "pass", "gpu02": "pass", "gpu03": "pass", "gpu04": "pass", "gpu05": "warn"}
    (out,) = [m for m in found.measurements if m.name.endswith(".outlier")]
    assert out.verdict == "fail" and out.scope.startswith("node gpu05") and list(found.suspects) == ["gpu05"]


# --- pairs, rails and bisection ---------------------------------------------------------------


def test_ring_pairs_and_rounds() -> None:
    assert loc.ring_pairs(["a"]) == [] and loc.ring_pairs(["a", "b"]) == [("a", "b")]
    pairs = loc.ring_pairs(["a", "b", "c", "d", "e"])
    assert pairs == [("a", "b"), ("b", "c"), ("c", "d"), ("d", "e"), ("e", "a")]
    rnds = loc.rounds(pairs)
    assert rnds == [[("a", "b"), ("c", "d")], [("b", "c"), ("d", "e")], [("e", "a")]]
    for rnd in rnds:  # a node runs one job at a time
        nodes = [n for p in rnd for n in p]
        assert len(nodes) == len(set(nodes))


def pairs_text(pairs: dict[tuple[str, str], float], rails: dict[str, int] | None = None) -> str:
    return "".join(f"{loc.marker('pair', f'{a},{b}')}\n{pair_log(a, b, f, rails)}" for (a, b), f in pairs.items())


NODES = ["gpu01", "gpu02", "gpu03", "gpu04"]


def test_a_node_slow_in_both_its_pairs_and_the_missing_rail_are_named() -> None:
    # gpu02 runs on 7 of its 8 rails: both of its pairs read 7/8 of the healthy 469
    ring = {p: (7 / 8 if "gpu02" in p else 1.0) for p in loc.ring_pairs(NODES)}
    found = loc.judge_pairs(pairs_text(ring, {"gpu02": 7}), NODES, H100, TH, "all_reduce", 8, 8)
    assert sorted(found.slow_pairs) == [("gpu01", "gpu02"), ("gpu02", "gpu03")]
    assert list(found.suspects) == ["gpu02"] and not found.bisect
    (rail,) = [m for m in found.measurements if m.name == "nccl.rails"]
    assert rail.verdict == "fail" and rail.scope == "host gpu02" and "missing mlx5_7:1" in rail.reason
    assert rail.value == 7 and rail.expected == 8


def test_a_slow_pair_alone_is_bisected_against_a_known_good_node() -> None:
    ring = {p: (0.7 if p == ("gpu01", "gpu02") else 1.0) for p in loc.ring_pairs(NODES)}
    found = loc.judge_pairs(pairs_text(ring), NODES, H100, TH, "all_reduce", 8)
    assert found.slow_pairs == [("gpu01", "gpu02")] and found.suspects == {}
    assert found.bisect == [("gpu01", "gpu03"), ("gpu02", "gpu03")]
    # gpu02 is slow beside the known-good gpu03, gpu01 is not
    text = pairs_text({("gpu01", "gpu03"): 1.0, ("gpu02", "gpu03"): 0.7})
    named = loc.judge_bisection(text, H100, TH, "all_reduce", 8)
    assert list(named.suspects) == ["gpu02"] and "known-good gpu03" in named.suspects["gpu02"]


def test_two_nodes_one_slow_pair_cannot_be_bisected_and_says_so() -> None:
    found = loc.judge_pairs(pairs_text({("gpu01", "gpu02"): 0.6}), ["gpu01", "gpu02"], H100, TH, "all_reduce", 8)
    assert set(found.suspects) == {"gpu01", "gpu02"} and "no node is known good" in found.suspects["gpu01"]


def test_a_run_that_gave_nothing_fails_named() -> None:
    text = f"{loc.marker('node', 'gpu01')}\n{node_log('gpu01')}{loc.marker('node', 'gpu02')}\nsrun: error: gpu02: down\n"
    found = loc.judge_nodes(text, H100, TH, "all_reduce", 8)
    (bad,) = [m for m in found.measurements if m.verdict == "fail"]
    assert bad.scope == "node gpu02" and "gave no result" in bad.reason and "gpu02" in found.suspects


# --- through the Slurm stage, in bash, with a fake srun ---------------------------------------


FAKE_SRUN = """#!/bin/bash
# srun stand-in: prints the log prepared for the hosts given with -w
while [ $# -gt 0 ]; do
  case "$1" in -w) hosts=$2; shift ;; esac
  shift
done
cat "{logs}/$hosts.log"
"""


def local_site(tmp_path: Path, slow: str = "", down: str = ""):
    """An Exec that runs the stage's commands in bash with a fake srun on PATH; each node's log
    is the real single-node one (80 % for `slow`), each pair's the real 2-node one (80 % with
    `slow` in it, 7/8 and 7 NICs with `down` in it)."""
    logs = tmp_path / "logs"
    logs.mkdir()
    for a in NODES:
        (logs / f"{a}.log").write_text(node_log(a, 0.8 if a == slow else 1.0))
        for b in NODES:
            if a != b:
                f = 0.8 if slow in (a, b) else 7 / 8 if down in (a, b) else 1.0
                (logs / f"{a},{b}.log").write_text(pair_log(a, b, f, {down: 7}))
    (logs / f"{','.join(NODES)}.log").write_text(pair_log(NODES[0], NODES[1]))
    fake = tmp_path / "bin" / "srun"
    fake.parent.mkdir()
    fake.write_text(FAKE_SRUN.format(logs=logs))
    fake.chmod(0o755)
    calls = []

    def run(host: str, command: str) -> Out:
        calls.append(command)
        if command.startswith("test -x /opt/nccl-tests"):
            return Out(0, "", "")
        r = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120,
                           env={"PATH": f"{fake.parent}:/usr/bin:/bin", "TMPDIR": str(tmp_path)})
        return Out(r.returncode, r.stdout, r.stderr)
    return run, calls


def stage(run):
    c = check(PILOT)
    return bench.run_stage(c.factory, c.site, run, timeout=120)


def test_stage_names_the_slow_node_while_the_site_passes(tmp_path: Path) -> None:
    run, calls = local_site(tmp_path, slow="gpu03")
    res = stage(run)
    whole = [m for m in res.measurements if m["name"] == "nccl.all_reduce.busbw"]
    assert whole and all(m["verdict"] == "pass" for m in whole)  # the site's average passes
    assert list(res.localisation["suspects"]) == ["gpu03"]
    named = [m for m in res.measurements if m["name"] == "localise.node"]
    assert [m["scope"] for m in named] == ["node gpu03"] and res.failed
    assert sorted(map(tuple, res.localisation["slow_pairs"])) == [("gpu02", "gpu03"), ("gpu03", "gpu04")]
    local = [c for c in calls if "factoryctl-localise" in c]
    assert len(local) == 3  # nodes at once, then the ring of pairs in two rounds
    assert "--export=ALL,NCCL_DEBUG=INFO,NCCL_DEBUG_SUBSYS=INIT,NET" in local[0]
    assert not list(tmp_path.glob("factoryctl-localise.*"))  # the script cleans up after itself


def test_stage_names_the_node_with_a_rail_down(tmp_path: Path) -> None:
    run, _ = local_site(tmp_path, down="gpu02")
    res = stage(run)
    assert list(res.localisation["suspects"]) == ["gpu02"]
    rails = [m for m in res.measurements if m["name"] == "nccl.rails"]
    assert [m["scope"] for m in rails] == ["host gpu02"] and "mlx5_7:1" in rails[0]["reason"]


def test_healthy_site_names_nobody(tmp_path: Path) -> None:
    run, _ = local_site(tmp_path)
    res = stage(run)
    assert res.localisation["suspects"] == {} and not res.failed, res.errors


def test_localisation_script_is_valid_bash(tmp_path: Path) -> None:
    c = check(PILOT)
    p = bench.plan(c.factory, c.site)
    script = bench.localise_script(p, [("node", n, [n]) for n in p.nodes], "all_reduce",
                                   "timeout --kill-after=10 900", 15)
    f = tmp_path / "localise.sh"
    f.write_text(script)
    r = subprocess.run(["bash", "-n", str(f)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert script.count(" &\n") == 4 and "\nwait\n" in script
    assert "srun -p gpu -N 1 -w gpu03 --ntasks-per-node=8 --gpus-per-node=8" in script
    assert "all_reduce_perf -b 8G -e 8G -f 2 -g 1" in script


@pytest.mark.parametrize("size", ["8G"])
def test_bench_result_carries_the_localisation(size, tmp_path: Path) -> None:
    run, _ = local_site(tmp_path, slow="gpu01")
    d = stage(run).to_dict()
    assert d["localisation"]["size"] == size and "gpu01" in d["localisation"]["suspects"]


# --- bench judge on a recorded localisation log -----------------------------------------------


def test_cli_judge_names_the_slow_node_of_the_recorded_log(tmp_path: Path) -> None:
    doc = reference_doc()
    doc["nodes"][1]["count"] = 2
    f = write_doc(doc, tmp_path / "factory.yaml")
    log = FIX / "h100-2n-localise-slow-node-synthetic.log"
    res = CliRunner().invoke(app, ["judge", "--format", "json", str(f), str(log)])
    assert res.exit_code == 1, res.output
    (r,) = json.loads(res.stdout)["results"]
    assert r["kind"] == "localisation" and r["verdict"] == "fail"
    named = [m for m in r["measurements"] if m["name"] == "localise.node"]
    assert [m["scope"] for m in named] == ["node node006"]
    text = CliRunner().invoke(app, ["judge", str(f), str(log)])
    assert "node006" in text.output and "Traceback" not in text.output


def test_run_local_counts_gpus_with_torch(monkeypatch) -> None:
    seen = {}

    def fake_run(argv, **kw):
        seen["argv"] = argv
        return subprocess.CompletedProcess(argv, 0, "4\n", "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    assert cli_bench._local_gpus() == 4
    assert "torch.cuda.device_count()" in seen["argv"][-1] and "nvidia-smi" not in seen["argv"]


def test_cli_judge_on_a_broken_localisation_log_fails_named_without_a_traceback(tmp_path: Path) -> None:
    f = write_doc(reference_doc(), tmp_path / "factory.yaml")
    bad = tmp_path / "bad.log"
    bad.write_bytes(b"==> factoryctl-bench node=gpu01 <==\ngarbage\n\x00\xff\n==> factoryctl-bench pair=gpu01,gpu02 <==\n")
    res = CliRunner().invoke(app, ["judge", "--format", "json", str(f), str(bad)])
    assert res.exit_code == 1 and "Traceback" not in res.output
    (r,) = json.loads(res.stdout)["results"]
    reasons = [m["reason"] for m in r["measurements"] if m["verdict"] == "fail"]
    assert "node gpu01: the run gave no result: no nccl-tests result rows found" in reasons
