"""Which hosts a no-op apply may leave alone: probe coverage read from a run's events, the
per-host decision against the baseline, and the conditions under which apply asks at all.
The probe itself runs for real here (as in test_drift.py), through a local stand-in for SSH."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from factoryctl.ops.hoststate import baseline, coverage, insync
from factoryctl.workspace import Workspace

ROLES = Path(__file__).resolve().parents[3] / "templates" / "ansible" / "project" / "roles"


class LocalRemote:
    """The probe's argv run here instead of over SSH; hosts named in `down` do not answer."""

    def __init__(self, down=()):
        self.down = set(down)
        self.asked: list[str] = []

    def run(self, host, command, timeout=60, input=None):
        self.asked.append(host)
        if host in self.down:
            return subprocess.CompletedProcess(command, 255, "", "ssh: connect to host: Connection refused")
        return subprocess.run([sys.executable, "-c", *command[2:]], capture_output=True, text=True, timeout=timeout)


def _tasks(tmp: Path) -> Path:
    f = tmp / "roles" / "r" / "tasks" / "main.yml"
    f.parent.mkdir(parents=True)
    f.write_text("""\
# generated header
- name: Read something
  ansible.builtin.command: {argv: [cat, /etc/os-release]}
  changed_when: false

- name: Change something
  ansible.builtin.command: {argv: [touch, /etc/x]}

- name: A block
  block:
    - name: Hidden copy that names its file
      ansible.builtin.copy: {content: secret, dest: /etc/k}
      no_log: true
      vars:
        r_probe: ["file:/etc/k"]
    - name: Hidden copy that names nothing
      ansible.builtin.copy: {content: secret, dest: /etc/j}
      no_log: true
""")
    return f


def _data(host, action, res, task_path="", task="t", role="r"):
    return {"host": host, "task": task, "role": role, "task_action": f"ansible.builtin.{action}", "res": res,
            "task_path": task_path}


def test_each_kind_of_task_is_probed_read_only_declared_or_a_gap(tmp_path):
    f = _tasks(tmp_path)
    hidden = {"censored": "the output has been hidden"}
    assert coverage.classify(_data("h", "copy", {"dest": "/etc/a"})) == ([], None)
    assert coverage.classify(_data("h", "stat", {"stat": {}})) == ([], None)
    assert coverage.classify(_data("h", "slurp", hidden)) == ([], None)  # reads only, even hidden
    assert coverage.classify(_data("h", "command", {"rc": 0}, f"{f}:2")) == ([], None)
    keys, gap = coverage.classify(_data("h", "command", {"rc": 0}, f"{f}:6", task="Change something"))
    assert keys == [] and "Change something" in gap and "cannot see" in gap
    assert coverage.classify(_data("h", "copy", hidden, f"{f}:11")) == (["file:/etc/k"], None)
    keys, gap = coverage.classify(_data("h", "copy", hidden, f"{f}:16"))
    assert keys == [] and "no_log" in gap
    keys, gap = coverage.classify(_data("h", "service", {"name": "x", "invocation": {"module_args": {"enabled": True}}}))
    assert "names nothing" in gap  # a service task that only enables: nothing the probe reads
    keys, gap = coverage.classify(_data("h", "community.general.modprobe", {"name": "nvidia"}))
    assert gap and "cannot see" in gap


def test_gaps_per_host_from_events_and_handlers_do_not_count(tmp_path):
    f = _tasks(tmp_path)
    ev = tmp_path / "job_events"
    ev.mkdir()
    events = [
        ("runner_on_ok", _data("n1", "copy", {"dest": "/etc/a"})),
        ("runner_on_ok", _data("n1", "copy", {"censored": "x"}, f"{f}:11")),
        ("runner_on_ok", _data("n2", "command", {"rc": 0}, f"{f}:6", task="Change something")),
        ("runner_on_ok", _data("n1", "command", {"rc": 0}, "/p/roles/r/handlers/main.yml:3")),
        ("runner_on_skipped", _data("n3", "command", {}, f"{f}:6")),
    ]
    for n, (kind, data) in enumerate(events):
        (ev / f"{n}-e.json").write_text(json.dumps({"counter": n, "event": kind, "event_data": data}))
    declared, gaps = coverage.from_events(ev)
    assert declared == {"n1": {"file:/etc/k"}, "n2": set()}
    assert gaps["n1"] == [] and len(gaps["n2"]) == 1 and "n3" not in gaps


def test_every_state_changing_command_or_hidden_task_in_the_shipped_roles_is_accounted_for():
    """The roles a site gets: each command/shell task is read-only (changed_when: false) or
    names its resources for the probe, and so is every no_log task that writes."""
    unaccounted = []
    for path in sorted(ROLES.glob("*/tasks/*.yml")):
        for line, task in coverage._tasks_in(str(path)).items():
            module = next((k for k in task if k.startswith("ansible.builtin.")), "")
            short = module.rsplit(".", 1)[-1]
            writes = short in coverage.COMMAND_MODULES or (task.get("no_log") and short in ("copy", "template"))
            if writes and task.get("changed_when") is not False and coverage.declared(task) is None:
                unaccounted.append(f"{path.relative_to(ROLES)}:{line} {task.get('name')}")
    # Kubernetes, storage and driver tasks run commands that change state: hosts running them
    # are never skipped (see insync.py); the lab's roles must have none.
    lab_roles = ("common/", "slurm/tasks/munge", "slurm/tasks/install", "slurm/tasks/config", "hardware_facts/")
    assert [u for u in unaccounted if u.startswith(lab_roles)] == []


def _baseline(ws: Workspace, hosts: dict[str, dict]) -> None:
    ws.root.mkdir(parents=True, exist_ok=True)
    (ws.root / "drift-baseline.json").write_text(json.dumps({"schema": baseline.SCHEMA, "hosts": hosts}))


def test_hosts_skip_only_when_fully_probed_and_unmoved(tmp_path):
    ws = Workspace(tmp_path / "ws")
    conf = tmp_path / "slurm.conf"
    conf.write_text("ClusterName=lab\n")
    keys = [f"file:{conf}"]
    now = next(iter(insync.probe.ask(LocalRemote(), {"x": keys}).values())).state
    _baseline(ws, {
        "same": {"resources": keys, "state": now, "gaps": [], "run": "r1"},
        "gappy": {"resources": keys, "state": now, "gaps": ["r: 'Change something' (command)"], "run": "r1"},
        "old": {"resources": keys, "state": now, "run": "r0"},
        "down": {"resources": keys, "state": now, "gaps": [], "run": "r1"},
    })
    remote = LocalRemote(down={"down"})
    d = insync.decide(ws, remote, ["same", "gappy", "old", "down", "new"])
    assert d.skip == {"same": 1}
    assert set(d.run) == {"gappy", "old", "down", "new"}
    assert "cannot see" in d.run["gappy"] and "Change something" in d.run["gappy"]
    assert d.run["new"] == "no baseline from a successful run"
    assert d.run["down"].startswith("unreachable")
    assert sorted(remote.asked) == ["down", "same"]  # hosts that cannot skip are not probed

    conf.write_text("ClusterName=lab\n# edited by hand\n")
    d = insync.decide(ws, LocalRemote(), ["same"])
    assert d.skip == {} and d.run["same"].startswith(f"file:{conf} moved since the last apply")


def test_a_failed_run_forgets_the_baselines_of_the_hosts_it_touched(tmp_path):
    ws = Workspace(tmp_path / "ws")
    _baseline(ws, {h: {"resources": [], "state": {}, "gaps": [], "run": "r1"} for h in ("a", "b", "c")})
    baseline.forget(ws, ["a", "c", "zz"])
    assert list(baseline.load(ws)) == ["b"]


def test_apply_probes_only_when_nothing_moved_since_the_last_full_apply(tmp_path):
    from factoryctl.ops.apply import Apply, ApplyOptions
    from factoryctl.render import render
    from factoryctl.session import check
    from factoryctl.ui import RecordingUI
    from tests.helpers import reference_doc, write_doc

    path = write_doc(reference_doc(), tmp_path / "factory.yaml")
    c = check(path)
    ws = Workspace(tmp_path / ".factory" / c.factory.metadata.name)
    render(c.site, ws.build)
    quiet = RecordingUI()

    def why(**opts) -> str | None:
        return Apply(c, ws, ApplyOptions(**opts), quiet).why_not_probe()

    assert why() == "no earlier apply recorded"
    manifest = json.loads((ws.build / "manifest.json").read_text())["files"]
    a = Apply(c, ws, ApplyOptions(), quiet)
    ws.record_applied(a.summary["factory_hash"], manifest)
    assert why() is None
    assert why(converge=True) == "--converge"
    assert why(limit="node01") == why(tags="slurm") == why(only="ansible") == "a partial run (--only/--limit/--tags)"

    a.summary["phases"]["terraform"] = {"add": 1, "change": 0, "destroy": 0}
    assert a.why_not_probe() == "Terraform changed resources"
    a.summary["phases"]["terraform"] = {"add": 0, "change": 0, "destroy": 0}
    a.restarted = ["node02"]
    assert a.why_not_probe() == "lab host(s) restarted"

    ws.record_applied(a.summary["factory_hash"], {**manifest, "ansible/project/site.yml": "0" * 64})
    assert why() == "the rendered artifacts changed since the last apply"
    ws.record_applied("another-factory-hash", manifest)
    assert why() == "factory.yaml changed since the last apply"
