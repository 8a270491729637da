"""The verify stage (verify/hostchecks.py), the drift stage's result, the shared JUnit and SARIF
writers (findings/junit.py, findings/sarif.py) and the one benchmark record path
(bench/record.py): stages report to a RecordingUI and return typed results."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from factoryctl.bench import record
from factoryctl.drift import DriftOptions, DriftResult, run_drift
from factoryctl.errors import ExitCode
from factoryctl.findings import junit, sarif
from factoryctl.session import check
from factoryctl.ui import RecordingUI
from factoryctl.verify import hostchecks
from factoryctl.verify import run as hostcheck_runner
from factoryctl.verify.results import BenchResult, CheckResult, VerifyResult
from factoryctl.workspace import Workspace

ROOT = Path(__file__).resolve().parents[3]
LAB = ROOT / "examples" / "lab.yaml"


def _site(tmp_path: Path):
    f = tmp_path / "factory.yaml"
    f.write_text(LAB.read_text())
    c = check(f)
    return c, Workspace.beside(f, c.factory.metadata.name)


def test_run_host_checks_returns_a_result_that_knows_its_folder(tmp_path, monkeypatch):
    c, ws = _site(tmp_path)
    seen = {}

    def fake_run_checks(site, conn, folder, **kw):
        seen.update(kw)
        return hostcheck_runner.HostCheckRun([CheckResult("head01", "hostname", "passed", "ok")], [], 0, [])

    monkeypatch.setattr(hostcheck_runner, "run_checks", fake_run_checks)
    ui = RecordingUI()
    res = hostchecks.run_host_checks(c, ws, hostchecks.HostCheckOptions(connection="local", limit=["head01"]), ui)
    assert isinstance(res, VerifyResult) and res.exit_code == ExitCode.OK and res.bench is None
    assert seen["limit"] == ["head01"] and seen["timeout"] == 900
    assert res.folder is not None and res.folder.parent == ws.root / "runs" and res.run_id == res.folder.name
    assert json.loads((res.folder / "verify.json").read_text())["checks"][0]["check"] == "hostname"
    assert not (res.folder / "bench.json").exists()
    assert ui.messages("info") == ["host checks: lab over local"]


def test_bench_run_writes_only_bench_json(tmp_path, monkeypatch):
    c, ws = _site(tmp_path)
    monkeypatch.setattr(hostchecks, "run_bench_stage",
                        lambda *a: BenchResult(path="none", skipped="no scheduler"))
    monkeypatch.setattr(hostchecks, "run_serving_stage", lambda *a: None)  # tests/unit/verify/test_serving_stage.py
    res = hostchecks.run_bench(c, ws, hostchecks.HostCheckOptions(connection="local"), RecordingUI())
    assert res.host_checks is False and res.exit_code == ExitCode.OK
    assert (res.folder / "bench.json").is_file() and not (res.folder / "verify.json").exists()
    res.bench.errors.append("srun not found")
    assert res.exit_code == ExitCode.FAILED


def test_drift_with_nothing_applied_could_not_check(tmp_path):
    c, ws = _site(tmp_path)
    ui = RecordingUI()
    res = run_drift(c, ws, DriftOptions(), ui)
    assert isinstance(res, DriftResult) and res.exit_code == ExitCode.FAILED and res.status == "error"
    assert "nothing applied yet" in res.errors[0] and ui.events == []
    assert res.to_dict()["exit_code"] == 1


def test_junit_writer_counts_and_makes_text_xml_safe(tmp_path):
    rep = junit.Report("r\x01", [
        junit.Suite("s", [junit.Case("c", "ok", output="out\x00"), junit.Case("c", "bad", "failure", "m", "t", "d\x1b"),
                          junit.Case("c", "err", "error", "e", "error"), junit.Case("c", "skip", "skipped", "why")],
                    timestamp="2026", time="1.000")], time="2.000")
    root = ET.parse(junit.write(rep, tmp_path / "r.xml")).getroot()
    assert root.get("name") == "r\ufffd"
    assert [root.get(k) for k in ("tests", "failures", "errors", "skipped", "time")] == ["4", "1", "1", "1", "2.000"]
    s = root.find("testsuite")
    assert list(s.attrib) == ["name", "timestamp", "tests", "failures", "errors", "skipped", "time"]
    cases = {c.get("name"): c for c in s}
    assert cases["ok"].find("system-out").text == "out\ufffd"
    assert cases["bad"].find("failure").text == "d\ufffd" and cases["err"].find("error").text is None
    assert cases["skip"].find("skipped").get("message") == "why"
    plain = ET.fromstring(junit.to_xml(junit.Report("r", [junit.Suite("s")])))
    assert "tests" not in plain.attrib and list(plain.find("testsuite").attrib) == [
        "name", "tests", "failures", "errors", "skipped"]


def test_sarif_writer_indexes_rules_and_places_regions():
    doc = json.loads(sarif.to_json("t", [sarif.Rule("B", "b", "bee", "error"), sarif.Rule("A", "a", "ay", "note",
                                                                                         full="f", help_uri="u")],
                                   [sarif.Result("A", "note", "x", "f.yaml", "p", 3, None, "member"),
                                    sarif.Result("B", "error", "y", "f.yaml", "q")]))
    run = doc["runs"][0]
    assert [r["ruleIndex"] for r in run["results"]] == [1, 0]
    a, b = run["results"]
    assert a["locations"][0]["physicalLocation"]["region"] == {"startLine": 3, "startColumn": 1}
    assert a["locations"][0]["logicalLocations"] == [{"fullyQualifiedName": "p", "kind": "member"}]
    assert "region" not in b["locations"][0]["physicalLocation"]
    assert run["tool"]["driver"]["rules"][1]["helpUri"] == "u" and "helpUri" not in run["tool"]["driver"]["rules"][0]


def test_one_record_path_reads_the_worker_document():
    assert record.json_document('noise {"a": 1} tail') == {"a": 1}
    assert record.json_document("no json [1]") is None and record.json_document("{broken") is None
    res = BenchResult(path="built-in (cpu, tcp)")
    assert record.load_worker(res, {"schema": "nope"}, "src") is None and res.errors


def _fake_checks(monkeypatch, status: str = "passed"):
    monkeypatch.setattr(hostcheck_runner, "run_checks", lambda site, conn, folder, **kw: hostcheck_runner.HostCheckRun(
        [CheckResult("head01", "hostname", status, "detail")], [], 0, []))


def test_verify_command_opens_the_site_calls_the_stage_and_shows_it(tmp_path, monkeypatch, capsys):
    from factoryctl.cli import run

    c, ws = _site(tmp_path)
    _fake_checks(monkeypatch)
    junit_path = tmp_path / "verify.xml"
    assert run(["verify", c.path, "--connection", "local", "--format", "json", "--junit", str(junit_path)]) == 0
    cap = capsys.readouterr()
    doc = json.loads(cap.out)  # stdout is the document only: no progress in json mode
    assert doc["result"] == "passed" and doc["checks"][0]["host"] == "head01" and cap.err == ""
    assert ET.parse(junit_path).getroot().get("tests") == "1"
    _fake_checks(monkeypatch, "failed")
    assert run(["verify", c.path, "--connection", "local"]) == 1
    cap = capsys.readouterr()
    assert "host checks: lab over local" in cap.err and "results: " in cap.out and "FAILED" in cap.out


def test_bench_run_command_shows_the_benchmark_only(tmp_path, monkeypatch, capsys):
    from factoryctl.cli import run

    c, _ = _site(tmp_path)
    monkeypatch.setattr(hostchecks, "run_bench_stage",
                        lambda *a: BenchResult(path="none", errors=["head01: srun not found"]))
    assert run(["bench", "run", c.path, "--connection", "local", "--format", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["checks"] == [] and doc["bench"]["errors"] == ["head01: srun not found"]
