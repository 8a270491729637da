"""A lab site's whole life through the CLI, on real lab hosts (root): `up` creates three hosts
through Terraform, configures Slurm through Ansible and verifies it; the hosts carry exactly
the addresses resolve planned; sinfo and srun work; a second apply changes nothing and says
so; a stale or unconfirmed apply is refused; drift says in sync, then names a hand-edited
slurm.conf (with its diff) and a stopped slurmd, apply repairs both, and a host whose sshd
died makes drift exit 1, not 2; destroy leaves nothing behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from factoryctl.engines.lab import Lab
from tests.lab.conftest import fctl, kill_sshd, site_traces, teardown_site, write_lab_site

pytestmark = [pytest.mark.lab, pytest.mark.xdist_group("lab")]

NAME, SUBNET, BRIDGE = "labapply", "10.197.1.0/24", "fctapply1"
HOSTS = ["head01", "node01", "node02"]


@pytest.fixture(scope="module")
def site(lab_image, tmp_path_factory):
    path = write_lab_site(tmp_path_factory.mktemp("apply"), NAME, SUBNET, BRIDGE)
    try:
        yield path
    finally:
        teardown_site(path, NAME, BRIDGE)


def ws(site: Path) -> Path:
    return site.parent / ".factory" / NAME


def ssh(site: Path, host: str, *cmd: str):
    return fctl("lab", "ssh", "--file", str(site), host, "--", *cmd, timeout=120)


def test_up_creates_configures_and_verifies_the_site(site):
    r = fctl("up", str(site), "--auto-approve", "--plain", timeout=900)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "9 of 9 checks passed" in r.stdout
    for phase in ("1/3 plan", "2/3 apply", "3/3 verify"):
        assert phase in r.stdout
    applied = json.loads((ws(site) / "applied.json").read_text())
    plan = json.loads((ws(site) / "plans" / "plan.json").read_text())
    assert applied["factory_hash"] == plan["factory_hash"]
    assert applied["manifest"] == json.loads((ws(site) / "build" / "manifest.json").read_text())["files"]
    run = Path(ws(site) / "runs" / applied["run"])
    assert (run / "ansible" / "stdout").is_file() and any((run / "ansible" / "job_events").iterdir())
    assert sorted(p.name for p in (run / "terraform").glob("*.log")) == ["head-000.log", "node-000.log"]


def test_hosts_have_the_addresses_resolve_planned(site):
    inspect = json.loads(fctl("inspect", str(site), "--format", "json").stdout)
    planned = {h["name"]: h["address"] for h in inspect["hosts"]}
    assert Lab(ws(site) / "lab").hosts() == planned
    for name, address in planned.items():
        r = ssh(site, name, "ip", "-4", "-o", "addr", "show", "eth0")
        assert r.returncode == 0 and f" {address}/24 " in r.stdout, r.stdout + r.stderr


def test_sinfo_shows_the_declared_partitions_idle_and_srun_runs(site):
    r = ssh(site, "head01", "sinfo", "-h", "-N", "-o", "%P %N %t")
    rows = sorted(tuple(line.split()) for line in r.stdout.splitlines())
    assert rows == [("batch*", "node01", "idle"), ("batch*", "node02", "idle"),
                    ("debug", "node01", "idle"), ("debug", "node02", "idle")], r.stdout + r.stderr
    r = ssh(site, "head01", "srun", "-N2", "hostname")
    assert r.returncode == 0 and sorted(r.stdout.split()) == ["node01", "node02"], r.stderr


def _last_apply(site: Path) -> dict:
    last = json.loads((ws(site) / "applied.json").read_text())
    return json.loads((ws(site) / "runs" / last["run"] / "apply.json").read_text())


def test_second_apply_changes_nothing_and_says_so(site):
    # nothing moved since `up`: every host is probed and found as it was left; no site.yml
    r = fctl("apply", str(site), "--auto-approve", "--plain")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "Terraform:  no changes" in r.stdout
    assert "Ansible: no changes: all 3 host(s) are as the last apply left them" in r.stdout
    doc = _last_apply(site)
    assert doc["status"] == "succeeded" and doc["phases"]["ansible"]["changed"] == 0
    assert doc["phases"]["ansible"]["in_sync"] == HOSTS
    assert doc["phases"]["terraform"]["add"] == 0 and doc["phases"]["kubernetes"]["status"] == "skipped"
    # --converge runs the playbook everywhere anyway, and Ansible itself changes nothing
    r = fctl("apply", str(site), "--auto-approve", "--plain", "--converge")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "Ansible: no changes: changed=0 on all 3 host(s)" in r.stdout
    assert _last_apply(site)["phases"]["ansible"]["status"] == "successful"


def test_apply_refuses_without_confirmation_and_with_a_stale_plan(site):
    before = (ws(site) / "applied.json").read_text()
    r = fctl("apply", str(site))
    assert r.returncode == 1 and "--auto-approve" in r.stderr
    original = site.read_text()
    site.write_text(original.replace("Three local test hosts", "Three local lab hosts"))
    try:
        r = fctl("apply", str(site), "--auto-approve")
        assert r.returncode == 1 and "run factoryctl plan" in r.stderr, r.stderr
    finally:
        site.write_text(original)
    assert (ws(site) / "applied.json").read_text() == before


def drift(site: Path, *args: str):
    r = fctl("drift", str(site), "--format", "json", *args, timeout=600)
    try:
        doc = json.loads(r.stdout)
    except ValueError:
        raise AssertionError(f"drift printed no JSON (exit {r.returncode}): {r.stdout[-2000:]} {r.stderr[-2000:]}") from None
    assert doc["exit_code"] == r.returncode
    return r.returncode, doc


def test_drift_is_clean_right_after_apply(site):
    rc, doc = drift(site, "--junit", str(site.parent / "drift.xml"))
    assert rc == 0, json.dumps(doc, indent=1)[-3000:]
    assert doc["status"] == "in-sync" and not doc["artifacts"]["files"]
    assert {h: d["checked_by"] for h, d in doc["hosts"].items()} == {h: "probe" for h in HOSTS}
    assert 'failures="0"' in (site.parent / "drift.xml").read_text()


def test_drift_names_an_edited_file_with_its_diff_and_a_stopped_daemon(site):
    assert ssh(site, "node01", "sh", "-c", "echo '# edited by hand' >> /etc/slurm/slurm.conf").returncode == 0
    assert ssh(site, "node02", "/etc/init.d/slurmd", "stop").returncode == 0
    rc, doc = drift(site, "--sarif", str(site.parent / "drift.sarif"), "--verify")
    assert rc == 2, json.dumps(doc, indent=1)[-3000:]
    hosts = doc["hosts"]
    assert {h for h, d in hosts.items() if d["status"] == "drift"} == {"node01", "node02"}
    assert hosts["head01"]["status"] == "in-sync" and hosts["head01"]["checked_by"] == "probe"
    edited = [c for c in hosts["node01"]["changes"] if "/etc/slurm/slurm.conf" in c["what"]]
    assert edited and "-# edited by hand" in edited[0]["diff"], hosts["node01"]
    assert "service slurmd would be started" in [c["what"] for c in hosts["node02"]["changes"]], hosts["node02"]
    assert "service:slurmd" in [r["check"] for r in hosts["node02"]["runtime"]]  # --verify: runtime drift too
    assert hosts["node01"]["runtime"] == []
    assert any("--limit node01,node02" in f for f in doc["fix"])
    sarif = json.loads((site.parent / "drift.sarif").read_text())
    assert {r["ruleId"] for r in sarif["runs"][0]["results"]} == {"DRIFT003", "DRIFT004"}
    assert (ws(site) / "runs" / doc["run"] / "drift.json").is_file()


def test_apply_repairs_the_drift_and_drift_is_clean_again(site):
    assert fctl("plan", str(site)).returncode == 0
    r = fctl("apply", str(site), "--auto-approve", "--plain")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    # only the two drifted hosts run site.yml, each with its reason; head01 is left alone
    assert "node01: runs site.yml: file:/etc/slurm/slurm.conf moved since the last apply" in r.stdout, r.stdout
    assert "node02: runs site.yml: service:slurmd moved since the last apply (running -> stopped)" in r.stdout
    assert "1 host(s) as the last apply left them" in r.stdout
    phase = _last_apply(site)["phases"]["ansible"]
    assert phase["in_sync"] == ["head01"] and sorted(phase["hosts"]) == ["node01", "node02"]
    rc, doc = drift(site)
    assert rc == 0, json.dumps(doc, indent=1)[-3000:]
    r = ssh(site, "node01", "grep", "-c", "edited by hand", "/etc/slurm/slurm.conf")
    assert r.stdout.strip() == "0"


def test_an_unreachable_host_makes_drift_exit_1_not_2(site):
    assert kill_sshd(BRIDGE, "node02") > 0
    rc, doc = drift(site, "--junit", str(site.parent / "drift-down.xml"))
    assert rc == 1 and doc["status"] == "error", json.dumps(doc, indent=1)[-3000:]
    assert doc["hosts"]["node02"]["status"] == "error" and "unreachable" in doc["hosts"]["node02"]["error"]
    assert doc["hosts"]["node01"]["status"] == "in-sync"
    assert "<error" in (site.parent / "drift-down.xml").read_text()
    # apply brings the host back (its sshd restarted, disks kept); then drift is clean
    assert fctl("plan", str(site)).returncode == 0
    r = fctl("apply", str(site), "--auto-approve", "--plain", "--limit", "node02")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert drift(site)[0] == 0


def test_destroy_leaves_nothing(site):
    r = fctl("destroy", str(site), "--auto-approve", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert site_traces(site, NAME, BRIDGE, HOSTS) == {"netns": [], "links": [], "mounts": [], "processes": []}
    for state in (ws(site) / "state" / "lab").glob("*.tfstate"):
        assert json.loads(state.read_text())["resources"] == []
    assert not (ws(site) / "lab").exists() and not (ws(site) / "applied.json").exists()
    r = fctl("destroy", str(site), "--auto-approve")
    assert r.returncode == 0 and "nothing to destroy" in r.stdout
