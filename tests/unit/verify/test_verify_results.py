"""The verify result model and its writers: pytest's JSON lines read back, the run folder in
the shapes runs.py reads (and the report shows), JUnit XML, console and JSON output."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from rich.console import Console

from factoryctl.report.html import write_report
from factoryctl.report.runs import latest_run, read_run
from factoryctl.session import check
from factoryctl.verify import writers
from factoryctl.verify.results import (
    BenchResult,
    CheckResult,
    VerifyResult,
    read_pytest_results,
    write_run_folder,
)

ROOT = Path(__file__).resolve().parents[3]
EXPECTED = [{"host": "head01", "check": "hostname", "on": "head01"},
            {"host": "node02", "check": "service:slurmd", "on": "node02"},
            {"host": "node02", "check": "gpu-count", "on": "node02"},
            {"host": "node01", "check": "slurm-node", "on": "head01"}]


def _line(host, check, when, status, detail="", duration=0.1) -> str:
    return json.dumps({"nodeid": f"t::{host}::{check}", "when": when, "outcome": status, "host": host,
                       "check": check, "on": host, "status": status, "detail": detail, "duration": duration})


def test_pytest_lines_become_one_result_per_check(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text("\n".join([
        _line("head01", "hostname", "call", "passed", "head01"),
        _line("head01", "hostname", "teardown", "error", "ssh master died"),
        _line("node02", "service:slurmd", "call", "failed", "slurmd not running (no slurmd process)"),
        _line("node02", "gpu-count", "setup", "skipped", "no GPU declared"),
        "not json",
    ]) + "\n")
    res, problems = read_pytest_results(path, EXPECTED)
    got = {(r.host, r.check): (r.status, r.detail) for r in res}
    assert got[("head01", "hostname")] == ("error", "ssh master died")  # the worse phase wins
    assert got[("node02", "service:slurmd")] == ("failed", "slurmd not running (no slurmd process)")
    assert got[("node02", "gpu-count")] == ("skipped", "no GPU declared")
    assert got[("node01", "slurm-node")][0] == "error" and "pytest ended" in got[("node01", "slurm-node")][1]
    assert [(r.host, r.check) for r in res] == [(e["host"], e["check"]) for e in EXPECTED]
    assert problems == ["results.jsonl:5: not JSON"]


def _run(bench: BenchResult | None = None) -> VerifyResult:
    checks = [CheckResult("head01", "hostname", "passed", "head01", "head01", 0.2),
              CheckResult("node02", "service:slurmd", "failed", "slurmd not running <&> \x1b[0m", "node02", 0.1),
              CheckResult("node02", "gpu-count", "skipped", "no GPU declared", "node02"),
              CheckResult("node01", "slurm-node", "error", "ConnectionError: ssh: connect refused", "head01")]
    return VerifyResult("lab", "20260501T120000Z", "ssh", checks, bench, started="2026-05-01T12:00:00+00:00",
                     duration_s=3.5)


def _bench() -> BenchResult:
    rows = [{"size_bytes": 32768 * 4 ** i, "count": 4096 * 4 ** i, "time_us": 100.0 * 4 ** i,
             "algbw_gbps": 0.3, "busbw_gbps": 0.3} for i in range(4)]
    return BenchResult(path="built-in (cpu, tcp)", scheduler="slurm", hosts=["node01", "node02"],
                       commands=["srun -N 2 ..."],
                       nccl=[{"name": "built-in all_reduce (cpu, tcp)", "ranks": 2, "rows": rows}],
                       measurements=[{"name": "all_reduce.busbw", "value": 0.3, "unit": "GB/s", "expected": None,
                                      "fraction": None, "verdict": "skip", "reason": "not judged: CPU mode (tcp)"},
                                     {"name": "all_reduce.check", "value": 0.0, "unit": "wrong elements",
                                      "expected": None, "fraction": None, "verdict": "pass", "reason": "ok"}],
                       duration_s=6.0)


def test_run_folder_is_what_runs_py_reads(tmp_path: Path) -> None:
    folder = tmp_path / "runs" / "20260501T120000Z"
    paths = write_run_folder(_run(_bench()), folder)
    assert [p.name for p in paths] == ["verify.json", "bench.json"]
    run = read_run(folder)
    assert run.problems == []
    assert [(c.host, c.check, c.status) for c in run.checks] == [
        ("head01", "hostname", "passed"), ("node02", "service:slurmd", "failed"),
        ("node02", "gpu-count", "skipped"), ("node01", "slurm-node", "error")]
    assert len(run.nccl) == 1 and len(run.nccl[0]["rows"]) == 4
    assert {m["name"] for m in run.measurements} == {"all_reduce.busbw", "all_reduce.check"}
    doc = json.loads((folder / "verify.json").read_text())
    assert doc["result"] == "failed" and doc["summary"] == {"passed": 1, "failed": 1, "error": 1, "skipped": 1}


def test_report_shows_host_checks_and_the_benchmark_plot(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    write_run_folder(_run(_bench()), ws / "runs" / "20260501T120000Z")
    assert latest_run(ws).id == "20260501T120000Z"
    html = write_report(check(ROOT / "examples" / "lab.yaml"), tmp_path / "out", ws).read_text()
    verify = html[html.index('id="verify"'):]
    assert 'id="busbw"' in verify and "<svg" in verify[verify.index('id="busbw"'):][:200]
    assert "service:slurmd" in verify and "slurmd not running" in verify
    assert "all_reduce.busbw" in verify


def test_junit_is_well_formed_and_counts_add_up() -> None:
    text = writers.junit_xml(_run(_bench()))
    root = ET.fromstring(text.encode())
    assert root.tag == "testsuites"
    suites = list(root)
    assert [s.get("name") for s in suites] == ["host checks", "benchmark built-in (cpu, tcp)"]
    for s in suites:
        cases = s.findall("testcase")
        assert int(s.get("tests")) == len(cases)
        for key, tag in (("failures", "failure"), ("errors", "error"), ("skipped", "skipped")):
            assert int(s.get(key)) == sum(c.find(tag) is not None for c in cases)
        assert all(len([x for x in c if x.tag in ("failure", "error", "skipped")]) <= 1 for c in cases)
    for key in ("tests", "failures", "errors", "skipped"):
        assert int(root.get(key)) == sum(int(s.get(key)) for s in suites)
    failed = suites[0].find("testcase[@name='service:slurmd']")
    assert failed.get("classname") == "node02"
    assert failed.find("failure").get("message").startswith("slurmd not running <&> \ufffd[0m")
    assert suites[0].find("testcase[@name='slurm-node']/error") is not None
    assert suites[1].find("testcase[@name='all_reduce.busbw']/skipped") is not None


def test_junit_of_a_skipped_and_a_broken_benchmark() -> None:
    root = ET.fromstring(writers.junit_xml(_run(BenchResult(path="none", skipped="no scheduler"))))
    assert root[1].find("testcase/skipped").get("message") == "no scheduler"
    root = ET.fromstring(writers.junit_xml(_run(BenchResult(path="none", errors=["head01: srun not found"]))))
    assert root[1].get("errors") == "1"


def test_console_and_json() -> None:
    from factoryctl.cli.console import ConsoleUI

    con = Console(record=True, width=160, color_system=None)
    writers.show_text(_run(_bench()), ConsoleUI(con, con))
    out = con.export_text()
    assert "node02" in out and "service:slurmd" in out and "slurmd not running" in out
    assert "slurm-node (on head01)" in out
    assert "benchmark: built-in (cpu, tcp) through slurm on node01, node02" in out
    assert "FAILED: 1 passed, 1 failed, 1 errors, 1 skipped; benchmark: pass" in out
    doc = json.loads(writers.to_json(_run(_bench())))
    assert doc["result"] == "failed" and doc["bench"]["verdict"] == "pass"
    assert doc["checks"][1] == {"host": "node02", "check": "service:slurmd", "status": "failed",
                                "detail": "slurmd not running <&> \x1b[0m", "on": "node02", "duration_s": 0.1}


def test_passing_run_and_failing_benchmark() -> None:
    ok = VerifyResult("lab", "x", "ssh", [CheckResult("h", "c", "passed"), CheckResult("h", "d", "skipped")])
    assert not ok.failed
    bad = _bench()
    bad.measurements.append({"name": "nccl.all_reduce.busbw", "verdict": "fail", "reason": "60% of expected"})
    ok.bench = bad
    assert ok.failed and bad.verdict == "fail"
