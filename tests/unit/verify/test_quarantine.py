"""verify --quarantine bookkeeping against a fake scontrol/sinfo and a fake kubectl: which nodes
are drained, which resumed, and that a node someone else drained is never touched."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from factoryctl.session import check
from factoryctl.verify import quarantine as q
from factoryctl.verify.probes import Skip, slurm_node
from factoryctl.verify.results import CheckResult
from factoryctl.workspace import Workspace

ROOT = Path(__file__).resolve().parents[3]


@dataclass
class Out:
    rc: int
    stdout: str = ""
    stderr: str = ""


class FakeSlurm:
    """sinfo -N -o '%N|%T|%E' and scontrol update state=drain|resume, as slurmctld answers them:
    a drained idle node shows `drained`, resume clears the reason."""

    def __init__(self, nodes: dict[str, tuple[str, str]]):
        self.nodes = dict(nodes)  # name -> (state, reason)
        self.calls: list[tuple[str, str]] = []
        self.fail_update = False

    def __call__(self, host: str, command: str) -> Out:
        self.calls.append((host, command))
        if command == q.SINFO_REASONS:
            rows = []
            for n, (state, why) in self.nodes.items():
                rows += [f"{n}|{state}|{why or 'none'}"] * 2  # one row per partition (batch, debug)
            return Out(0, "\n".join(rows) + "\n")
        argv = shlex.split(command)
        if argv[:2] == ["scontrol", "update"]:
            if self.fail_update:
                return Out(1, "", "slurm_update error: Invalid user id")
            kv = dict(a.split("=", 1) for a in argv[2:])
            node = kv["nodename"]
            if kv["state"] == "drain":
                self.nodes[node] = ("drained", kv["reason"])
            elif kv["state"] == "resume":
                self.nodes[node] = ("idle", "")
            return Out(0)
        return Out(127, "", f"unexpected command {command}")


def checks(bad: dict[str, list[str]], hosts=("head01", "node01", "node02")) -> list[CheckResult]:
    out = []
    for h in hosts:
        for c in ("service:munge", "disk-space", "time-sync"):
            out.append(CheckResult(h, c, "failed" if c in bad.get(h, []) else "passed", "detail", h))
        if h != "head01":  # a scheduler's view runs on the controller: never a reason to drain
            out.append(CheckResult(h, "slurm-node", "failed", "drained", "head01"))
    return out


@pytest.fixture
def site():
    return check(ROOT / "examples" / "lab.yaml").site


@pytest.fixture
def ws(tmp_path):
    w = Workspace(tmp_path / ".factory" / "lab", base=tmp_path)
    w.claim()
    return w


def record(ws) -> dict:
    return json.loads((ws.root / q.RECORD).read_text())


def test_a_failing_node_is_drained_with_its_checks_and_recorded(site, ws):
    slurm = FakeSlurm({"node01": ("idle", ""), "node02": ("idle", "")})
    acts = q.quarantine(site, ws, checks({"node02": ["service:munge", "disk-space"]}), slurm, "R1")
    assert [(a.node, a.action) for a in acts] == [("node02", "drained")]
    assert acts[0].commands == ["scontrol update nodename=node02 state=drain "
                                "reason='factoryctl: service:munge,disk-space'"]
    assert slurm.nodes["node02"] == ("drained", "factoryctl: service:munge,disk-space")
    assert slurm.nodes["node01"] == ("idle", "")
    assert all(h == "head01" for h, _ in slurm.calls)  # scontrol runs on the controller
    rec = record(ws)
    assert rec["schema"] == q.SCHEMA and rec["slurm"]["node02"]["checks"] == ["service:munge", "disk-space"]
    assert rec["slurm"]["node02"]["run"] == "R1"


def test_a_passing_verify_resumes_only_what_factoryctl_drained(site, ws):
    slurm = FakeSlurm({"node01": ("idle", ""), "node02": ("idle", "")})
    q.quarantine(site, ws, checks({"node02": ["service:munge"]}), slurm, "R1")
    # meanwhile an operator drains node01 for maintenance
    slurm.nodes["node01"] = ("drained", "swap DIMM B3 -- alice")
    acts = q.quarantine(site, ws, checks({}), slurm, "R2")
    assert [(a.node, a.action) for a in acts] == [("node02", "resumed")]
    assert acts[0].commands == ["scontrol update nodename=node02 state=resume"]
    assert slurm.nodes == {"node01": ("drained", "swap DIMM B3 -- alice"), "node02": ("idle", "")}
    assert record(ws)["slurm"] == {}


def test_a_node_an_operator_drained_is_left_even_when_its_checks_fail(site, ws):
    slurm = FakeSlurm({"node01": ("drained", "RMA ticket 4711"), "node02": ("down*", "Not responding")})
    acts = q.quarantine(site, ws, checks({"node01": ["time-sync"]}), slurm, "R1")
    assert [(a.node, a.action) for a in acts] == [("node01", "left")]
    assert "RMA ticket 4711" in acts[0].detail
    assert not [c for _, c in slurm.calls if c.startswith("scontrol")]
    assert record(ws)["slurm"] == {}


def test_a_node_whose_reason_was_taken_over_is_not_resumed(site, ws):
    slurm = FakeSlurm({"node01": ("idle", ""), "node02": ("idle", "")})
    q.quarantine(site, ws, checks({"node02": ["service:munge"]}), slurm, "R1")
    slurm.nodes["node02"] = ("drained", "keep out: firmware update")  # an operator re-drained it
    acts = q.quarantine(site, ws, checks({}), slurm, "R2")
    assert [(a.node, a.action) for a in acts] == [("node02", "left")]
    assert slurm.nodes["node02"] == ("drained", "keep out: firmware update")
    assert record(ws)["slurm"] == {}  # no longer ours


def test_a_factoryctl_reason_without_the_record_is_not_resumed(site, ws):
    # drained by factoryctl from another workspace (or the record was deleted): not ours to resume
    slurm = FakeSlurm({"node01": ("drained", "factoryctl: disk-space"), "node02": ("idle", "")})
    assert q.quarantine(site, ws, checks({}), slurm, "R1") == []
    assert slurm.nodes["node01"] == ("drained", "factoryctl: disk-space")


def test_a_still_failing_node_stays_drained_once(site, ws):
    slurm = FakeSlurm({"node01": ("idle", ""), "node02": ("idle", "")})
    q.quarantine(site, ws, checks({"node02": ["service:munge"]}), slurm, "R1")
    slurm.calls.clear()
    acts = q.quarantine(site, ws, checks({"node02": ["service:munge"]}), slurm, "R2")
    assert [(a.node, a.action) for a in acts] == [("node02", "kept")]
    assert [c for _, c in slurm.calls] == [q.SINFO_REASONS]
    assert record(ws)["slurm"]["node02"]["run"] == "R1"


def test_a_node_whose_checks_did_not_run_is_not_resumed(site, ws):
    slurm = FakeSlurm({"node01": ("idle", ""), "node02": ("idle", "")})
    q.quarantine(site, ws, checks({"node02": ["service:munge"]}), slurm, "R1")
    acts = q.quarantine(site, ws, checks({}, hosts=("head01", "node01")), slurm, "R2")  # --host elsewhere
    assert acts == [] and slurm.nodes["node02"][0] == "drained"


def test_more_than_half_the_nodes_failing_quarantines_none(site, ws):
    slurm = FakeSlurm({"node01": ("idle", ""), "node02": ("idle", "")})
    acts = q.quarantine(site, ws, checks({"node01": ["service:munge"], "node02": ["service:munge"]}), slurm, "R1")
    assert {(a.node, a.action) for a in acts} == {("node01", "refused"), ("node02", "refused")}
    assert "2 of 2 slurm nodes" in acts[0].detail and slurm.calls == []


def test_a_failing_scontrol_is_reported_and_not_recorded(site, ws):
    slurm = FakeSlurm({"node01": ("idle", ""), "node02": ("idle", "")})
    slurm.fail_update = True
    acts = q.quarantine(site, ws, checks({"node02": ["service:munge"]}), slurm, "R1")
    assert [(a.node, a.action) for a in acts] == [("node02", "failed")]
    assert "Invalid user id" in acts[0].detail and record(ws)["slurm"] == {}


def test_a_broken_record_stops_quarantine_naming_the_file(site, ws):
    (ws.root / q.RECORD).write_text("{not json")
    with pytest.raises(q.QuarantineError, match="quarantine.json: not a quarantine record"):
        q.quarantine(site, ws, checks({}), FakeSlurm({}), "R1")


def test_sinfo_reasons_parse_states_with_flags_and_reasons_with_bars():
    got = q.parse_sinfo_reasons("node01|drained*|factoryctl: mount:/data|x\nnode02|idle|none\n")
    assert got["node01"] == {"state": "drained", "raw": "drained*", "reason": "factoryctl: mount:/data|x"}
    assert got["node02"]["reason"] == "" and not q.is_out("idle") and q.is_out("draining") and q.is_out("down")


# --- Kubernetes: cordon + taint, and the release --------------------------------------------------


class FakeKube:
    def __init__(self, nodes: dict[str, dict]):
        self.nodes = nodes  # name -> {"unschedulable": bool, "taints": [...]}
        self.calls: list[str] = []

    def __call__(self, host: str, command: str) -> Out:
        self.calls.append(command)
        argv = shlex.split(command)[3:]  # after kubectl --kubeconfig FILE
        if argv[:2] == ["get", "node"]:
            n = self.nodes[argv[2]]
            return Out(0, json.dumps({"spec": {"unschedulable": n["unschedulable"], "taints": n["taints"]}}))
        node = self.nodes[argv[2] if argv[0] == "taint" else argv[1]]
        if argv[0] == "cordon":
            node["unschedulable"] = True
        elif argv[0] == "uncordon":
            node["unschedulable"] = False
        elif argv[0] == "taint" and argv[3].endswith("-"):
            node["taints"] = [t for t in node["taints"] if t["key"] != argv[3].split(":")[0]]
        elif argv[0] == "taint":
            key, _, rest = argv[3].partition("=")
            value, _, effect = rest.partition(":")
            node["taints"] = [t for t in node["taints"] if t["key"] != key] + [
                {"key": key, "value": value, "effect": effect}]
        return Out(0)


def test_kubernetes_cordons_and_taints_then_releases(ws):
    kube = FakeKube({"w1": {"unschedulable": False, "taints": []}, "w2": {"unschedulable": False, "taints": []},
                     "w3": {"unschedulable": False, "taints": []}})
    rec: dict = {}
    acts = q.kubernetes(kube, "cp1", ["w1", "w2", "w3"], {"w2": ["mount:/data"]}, {"w1", "w3"}, rec, "R1", "t")
    assert [(a.node, a.action) for a in acts] == [("w2", "drained")]
    assert acts[0].commands == [
        "kubectl --kubeconfig /etc/kubernetes/admin.conf cordon w2",
        "kubectl --kubeconfig /etc/kubernetes/admin.conf taint node w2 factoryctl.io/quarantine=mount-data:NoSchedule "
        "--overwrite"]
    assert kube.nodes["w2"] == {"unschedulable": True,
                                "taints": [{"key": q.TAINT_KEY, "value": "mount-data", "effect": "NoSchedule"}]}
    acts = q.kubernetes(kube, "cp1", ["w1", "w2", "w3"], {}, {"w1", "w2", "w3"}, rec, "R2", "t")
    assert [(a.node, a.action) for a in acts] == [("w2", "resumed")]
    assert kube.nodes["w2"] == {"unschedulable": False, "taints": []} and rec == {}


def test_kubernetes_leaves_a_node_cordoned_before_factoryctl_came(ws):
    kube = FakeKube({"w1": {"unschedulable": True, "taints": []}, "w2": {"unschedulable": False, "taints": []},
                     "w3": {"unschedulable": False, "taints": []}})
    rec: dict = {}
    q.kubernetes(kube, "cp1", ["w1", "w2", "w3"], {"w1": ["gpu-count"]}, set(), rec, "R1", "t")
    assert rec["w1"]["was_cordoned"] is True
    acts = q.kubernetes(kube, "cp1", ["w1", "w2", "w3"], {}, {"w1"}, rec, "R2", "t")
    assert acts[0].action == "resumed" and "left cordoned" in acts[0].detail
    assert kube.nodes["w1"] == {"unschedulable": True, "taints": []}
    assert not any(" uncordon " in c for c in kube.calls)


def test_taint_values_are_label_values():
    assert q.taint_value("mount:/data/scratch") == "mount-data-scratch"
    assert q.taint_value("service:munge") == "service-munge"
    assert len(q.taint_value("x" * 100)) == 63 and q.taint_value("::") == "failed"


# --- the scheduler's view of a quarantined node ---------------------------------------------------


class SinfoHost:
    def __init__(self, text: str):
        self.text = text

    def run(self, command: str) -> Out:
        return Out(0, "/usr/bin/sinfo\n") if command.startswith("command -v") else Out(0, self.text)


def test_slurm_node_check_skips_a_node_factoryctl_drained_and_fails_an_operators():
    text = ("batch*|up\n---\nnode01|batch|drained|factoryctl: service:munge\n"
            "node02|batch|drained|RMA 4711\nnode03|batch|drained|factoryctl-hc: xid\n")
    with pytest.raises(Skip, match="by factoryctl"):
        slurm_node(SinfoHost(text), {"partitions": ["batch"]}, "node01")
    from factoryctl.verify.probes import Fail
    with pytest.raises(Fail, match=r"state drained \(RMA 4711\)"):
        slurm_node(SinfoHost(text), {"partitions": ["batch"]}, "node02")
    # the HealthCheckProgram found something verify may not check (an Xid): the node is out, a failure
    with pytest.raises(Fail, match=r"state drained \(factoryctl-hc: xid\)"):
        slurm_node(SinfoHost(text), {"partitions": ["batch"]}, "node03")


def test_a_single_failing_node_is_quarantined_even_on_a_one_node_cluster():
    slurm = FakeSlurm({"node01": ("idle", "")})
    acts = q.slurm(slurm, "head01", ["node01"], {"node01": ["disk-space"]}, set(), {}, "R1", "t")
    assert [(a.node, a.action) for a in acts] == [("node01", "drained")]


# --- wired into verify: the run's record and problems ---------------------------------------------


def test_verify_quarantine_records_actions_and_reports_failures_as_problems(site, ws, monkeypatch):
    from factoryctl.session import check as check_file
    from factoryctl.ui import RecordingUI
    from factoryctl.verify import hostchecks
    from factoryctl.verify.results import VerifyResult

    slurm = FakeSlurm({"node01": ("idle", ""), "node02": ("idle", "")})
    monkeypatch.setattr(hostchecks, "executor", lambda conn: slurm)
    checked = check_file(ROOT / "examples" / "lab.yaml")
    res = VerifyResult("lab", "R1", "ssh", checks({"node02": ["service:munge"]}))
    hostchecks.run_quarantine(checked, ws, object(), res, RecordingUI())
    assert res.quarantine == [{"scheduler": "slurm", "node": "node02", "action": "drained",
                               "reason": "factoryctl: service:munge", "detail": "was idle",
                               "commands": [q.drain_command("node02", "factoryctl: service:munge")]}]
    assert res.to_dict()["quarantine"] == res.quarantine and res.problems == []
    assert not (ws.root / "lock").read_text().strip()  # the lock was held, and released
    slurm.fail_update = True
    res = VerifyResult("lab", "R2", "ssh", checks({}))
    hostchecks.run_quarantine(checked, ws, object(), res, RecordingUI())
    assert res.quarantine[0]["action"] == "failed"
    assert res.problems == ["quarantine of node02 (slurm) failed: scontrol on head01: slurm_update error: "
                            "Invalid user id"]


def test_verify_without_quarantine_writes_no_quarantine_key():
    from factoryctl.verify.results import VerifyResult

    assert "quarantine" not in VerifyResult("lab", "R1", "ssh").to_dict()


def test_a_broken_record_or_a_held_lock_is_a_problem_of_the_run_not_a_crash(site, ws, monkeypatch):
    import fcntl

    from factoryctl.session import check as check_file
    from factoryctl.ui import RecordingUI
    from factoryctl.verify import hostchecks
    from factoryctl.verify.results import VerifyResult

    slurm = FakeSlurm({"node01": ("idle", ""), "node02": ("idle", "")})
    monkeypatch.setattr(hostchecks, "executor", lambda conn: slurm)
    checked = check_file(ROOT / "examples" / "lab.yaml")
    (ws.root / q.RECORD).write_text("[]")
    res = VerifyResult("lab", "R1", "ssh", checks({"node02": ["service:munge"]}))
    hostchecks.run_quarantine(checked, ws, object(), res, RecordingUI())
    assert res.problems == [f"quarantine: nothing drained or resumed: {ws.root / q.RECORD}: not a "
                            f"{q.SCHEMA} record; move it away"]
    (ws.root / q.RECORD).unlink()
    with open(ws.root / "lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        monkeypatch.setattr(ws, "lock", lambda command, wait=5.0: type(ws).lock(ws, command, wait=0.1))
        res = VerifyResult("lab", "R2", "ssh", checks({"node02": ["service:munge"]}))
        hostchecks.run_quarantine(checked, ws, object(), res, RecordingUI())
    assert "is locked by" in res.problems[0] and slurm.calls == []
