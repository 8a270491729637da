"""apply / destroy without lab hosts (no root needed): the reference site (provider
`existing`) through the Terraform phase, stale-plan and confirmation refusals, the
connection inventory checks, Ctrl-C handling, and destroy emptying the state."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import yaml

from factoryctl.cli import run
from factoryctl.engines.ansible import control_dir
from factoryctl.engines.inventory import (
    Connection,
    reconcile,
    terraform_addresses,
    write_connection,
)
from factoryctl.errors import Interrupted
from factoryctl.ops.interrupts import in_thread
from factoryctl.ui import RecordingUI
from factoryctl.workspace import Workspace
from tests.helpers import reference_doc, write_doc


def _run(capsys, *args):
    rc = run(list(args))
    cap = capsys.readouterr()
    assert "Traceback" not in cap.out + cap.err
    return rc, cap.out, cap.err


@pytest.fixture()
def site(tmp_path) -> Path:
    return write_doc(reference_doc(), tmp_path / "factory.yaml")


def ws_of(site: Path) -> Workspace:
    return Workspace(site.parent / ".factory" / "fra1-pilot")


@pytest.mark.terraform
def test_apply_without_a_plan_or_with_a_stale_one_is_refused(capsys, site):
    rc, _, err = _run(capsys, "apply", str(site), "--auto-approve")
    assert rc == 1 and "no saved plan" in err and "run factoryctl plan" in err
    assert _run(capsys, "plan", str(site))[0] == 0
    doc = reference_doc()
    doc["metadata"]["description"] = "changed after the plan"
    write_doc(doc, site)
    rc, _, err = _run(capsys, "apply", str(site), "--auto-approve")
    assert rc == 1 and "different factory.yaml" in err and "run factoryctl plan" in err
    assert not ws_of(site).applied_path.exists()


@pytest.mark.terraform
def test_apply_refuses_an_edited_build(capsys, site):
    assert _run(capsys, "plan", str(site))[0] == 0
    (ws_of(site).build / "slurm" / "slurm.conf").write_text("# edited by hand\n")
    rc, _, err = _run(capsys, "apply", str(site), "--auto-approve", "--only", "terraform")
    assert rc == 1 and "run factoryctl plan" in err


@pytest.mark.terraform
def test_apply_without_a_terminal_needs_auto_approve(capsys, site, monkeypatch):
    assert _run(capsys, "plan", str(site))[0] == 0
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    rc, _, err = _run(capsys, "apply", str(site), "--only", "terraform")
    assert rc == 1 and "--auto-approve" in err
    assert not list(ws_of(site).state_dir.rglob("*.tfstate"))


def test_apply_refuses_a_site_with_errors(capsys, site):
    doc = reference_doc()
    doc["nodes"][0]["count"] = 0
    write_doc(doc, site)
    rc, _, err = _run(capsys, "apply", str(site), "--auto-approve")
    assert rc == 1 and "nothing applied" in err


@pytest.mark.terraform
def test_terraform_phase_applies_the_saved_plan_then_nothing_then_destroy_empties_state(capsys, site):
    assert _run(capsys, "plan", str(site))[0] == 0
    ws = ws_of(site)
    rc, out, err = _run(capsys, "apply", str(site), "--auto-approve", "--only", "terraform")
    assert rc == 0, out + err
    assert "7 to add" in out and "partial run" in out
    assert not list(ws.plans_dir.rglob("*.tfplan"))  # consumed
    states = {p.name: json.loads(p.read_text()) for p in (ws.state_dir / "existing").glob("*.tfstate")}
    assert sum(len(r["instances"]) for s in states.values() for r in s["resources"]) == 7
    assert not ws.applied_path.exists()  # --only: not a full apply
    runs = sorted(ws.runs_dir.iterdir())
    summary = json.loads((runs[-1] / "apply.json").read_text())
    assert summary["status"] == "succeeded" and summary["phases"]["terraform"]["add"] == 7

    rc, out, err = _run(capsys, "apply", str(site), "--auto-approve", "--only", "terraform")
    assert rc == 0 and "Terraform:  no changes" in out, out + err

    rc, out, err = _run(capsys, "destroy", str(site), "--auto-approve")
    assert rc == 0 and "7 resource(s) destroyed" in out, out + err
    for p in (ws.state_dir / "existing").glob("*.tfstate"):
        assert json.loads(p.read_text())["resources"] == []
    assert not ws.plans_dir.exists()
    rc, out, _ = _run(capsys, "destroy", str(site), "--auto-approve")
    assert rc == 0 and "nothing to destroy" in out


@pytest.mark.terraform
def test_destroy_without_a_terminal_needs_auto_approve(capsys, site, monkeypatch):
    assert _run(capsys, "plan", str(site))[0] == 0
    assert _run(capsys, "apply", str(site), "--auto-approve", "--only", "terraform")[0] == 0
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    rc, _, err = _run(capsys, "destroy", str(site))
    assert rc == 1 and "--auto-approve" in err


def test_reconcile_names_every_disagreement():
    rendered = {"a": "10.0.0.1", "b": "10.0.0.2", "c": "10.0.0.3"}
    created = terraform_addresses([{"hosts": {"a": {"address": "10.0.0.1"}, "b": {"address": "10.0.0.9"}}},
                                   {"hosts": {"d": {"address": "10.0.0.4"}}}])
    problems = reconcile(rendered, created)
    assert len(problems) == 3
    assert any(p.startswith("c:") and "no such host" in p for p in problems)
    assert any(p.startswith("d:") for p in problems)
    assert any(p.startswith("b:") and "10.0.0.9" in p for p in problems)
    assert reconcile(rendered, rendered) == []


def test_connection_inventory_is_yaml_ansible_reads(tmp_path):
    path = write_connection(tmp_path / "inv" / "connection.yml",
                            Connection({"n1": "10.0.0.1"}, {"ansible_user": "root", "ansible_ssh_common_args": "-o A=b"}))
    doc = yaml.safe_load(path.read_text())
    assert doc == {"all": {"hosts": {"n1": {"ansible_host": "10.0.0.1", "ansible_user": "root",
                                            "ansible_ssh_common_args": "-o A=b"}}}}
    assert path.stat().st_mode & 0o777 == 0o600


def test_control_sockets_fit_a_unix_socket_name(tmp_path):
    short = Workspace(Path("/tmp/w"))
    assert control_dir(short) == short.root / "cp"
    deep = Workspace(tmp_path / ("x" * 120))
    cp = control_dir(deep)
    assert len(str(cp / "255.255.255.255-root")) + 20 <= 107 and cp != deep.root / "cp"


def test_ctrl_c_lets_the_work_in_flight_finish_then_stops():
    cancel = threading.Event()
    finished = []

    def work():
        time.sleep(0.6)
        finished.append(True)
        if cancel.is_set():
            raise Interrupted()

    threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    ui = RecordingUI()
    with pytest.raises(Interrupted):
        in_thread(work, cancel, ui)
    assert finished == [True] and cancel.is_set()
    assert [m.split(":")[0] for m in ui.messages("warn")] == ["interrupted"]


def test_forget_facts_drops_only_the_named_hosts(tmp_path):
    from factoryctl.ops.apply import forget_facts

    ws = Workspace(tmp_path)
    ws.facts_dir.mkdir()
    for name in ("s1_node01", "s1_node02", "node03", "s1_head01"):
        (ws.facts_dir / name).write_text("{}")
    forget_facts(ws, ["node01", "node03"])
    assert sorted(p.name for p in ws.facts_dir.iterdir()) == ["s1_head01", "s1_node02"]


@pytest.mark.terraform
def test_kubernetes_phase_says_why_it_skipped_and_fails_the_apply(capsys, site, monkeypatch):
    """Kubernetes enabled but no cluster answers: skipped with the reason, never success."""
    import subprocess

    import factoryctl.verify.smoke as smoke

    calls = []

    def no_cluster(self, host, command, input=None, timeout=60):
        calls.append((host, command))
        return subprocess.CompletedProcess(command, 255, "", "ssh: connect to host: Connection refused")

    monkeypatch.setattr(smoke.Remote, "run", no_cluster)
    assert _run(capsys, "plan", str(site))[0] == 0
    assert _run(capsys, "apply", str(site), "--auto-approve", "--only", "terraform")[0] == 0
    rc, out, err = _run(capsys, "apply", str(site), "--auto-approve", "--only", "kubernetes")
    assert rc == 1, out + err
    assert "Kubernetes: skipped: no cluster reachable" in out and "Connection refused" in out
    assert "Kubernetes is enabled but was not applied" in err
    assert calls and calls[0][1][:1] == ["kubectl"]


def test_a_cancelled_run_leaves_no_process_behind_even_in_its_own_session():
    """Mitogen's connection processes call setsid, so killing the playbook's process group
    misses them: stop_leftovers finds a run's processes by the mark in their environment."""
    import subprocess
    import sys

    from factoryctl.engines.ansible import RUN_MARK, stop_leftovers

    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    marked = subprocess.Popen(sleeper, env=os.environ | {RUN_MARK: "run-1"}, start_new_session=True)
    other = subprocess.Popen(sleeper, env=os.environ | {RUN_MARK: "run-2"}, start_new_session=True)
    try:
        time.sleep(0.2)  # let exec finish, so /proc/<pid>/environ is the child's
        assert stop_leftovers("run-1") == [marked.pid]
        assert marked.wait(timeout=5) == -signal.SIGKILL
        assert other.poll() is None
    finally:
        for p in (marked, other):
            p.kill()
            p.wait()


def test_apply_and_destroy_stages_report_to_a_ui_and_return_results(capsys, site):
    from factoryctl.ops.apply import ApplyError, ApplyOptions, apply
    from factoryctl.ops.destroy import destroy
    from factoryctl.session import open_site

    assert _run(capsys, "plan", str(site))[0] == 0
    with open_site(site, "nothing applied", lock="apply") as s:
        refused = RecordingUI(answer=False)
        with pytest.raises(ApplyError, match="not confirmed"):
            apply(s.checked, s.workspace, ApplyOptions(only="terraform"), refused)
        assert refused.messages("confirm") == ["Apply these changes?"]
        assert not list(s.workspace.state_dir.rglob("*.tfstate"))
        ui = RecordingUI(answer=True)
        r = apply(s.checked, s.workspace, ApplyOptions(only="terraform"), ui)
    assert r.ok and r.phases == ["terraform"] and not r.full and r.applied is None and r.hosts == {}
    assert r.summary["phases"]["terraform"]["add"] == 7 and (r.run_dir / "apply.json").is_file()
    assert "Terraform: applying 2 of 2 unit stack(s)" in ui.messages("info")
    assert capsys.readouterr().out == ""  # the stage prints nothing itself

    with open_site(site, "nothing destroyed", lock="destroy") as s:
        ui = RecordingUI(answer=True)
        d = destroy(s.checked, s.workspace, False, None, ui)
        assert d.resources == 7 and sorted(d.stacks) == ["gpu-000", "head-000"] and not d.nothing
        assert ui.messages("confirm") == ["Destroy site fra1-pilot? This cannot be undone."]
        assert destroy(s.checked, s.workspace, False, None, RecordingUI()).nothing
