"""Faults during apply, on real lab hosts (root): Ctrl-C while Terraform creates the hosts and
while Ansible runs (the command in flight finishes or is cancelled, state stays consistent,
the next apply resumes and finishes), and one host's sshd killed mid-run (that host is
reported unreachable, the others finish, exit 1; the next apply brings it back)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.lab.conftest import (
    FACTORYCTL,
    fctl,
    kill_sshd,
    site_traces,
    teardown_site,
    write_lab_site,
)

pytestmark = [pytest.mark.lab, pytest.mark.xdist_group("lab")]

NAME, SUBNET, BRIDGE = "labfault", "10.197.2.0/24", "fctfault2"
HOSTS = ["head01", "node01", "node02"]


@pytest.fixture(scope="module")
def site(lab_image, tmp_path_factory):
    path = write_lab_site(tmp_path_factory.mktemp("faults"), NAME, SUBNET, BRIDGE)
    try:
        yield path
    finally:
        teardown_site(path, NAME, BRIDGE)


def ws(site: Path) -> Path:
    return site.parent / ".factory" / NAME


class Apply:
    """`factoryctl apply` in the background, its output read line by line as it comes."""

    def __init__(self, site: Path, *args: str):
        self.proc = subprocess.Popen([FACTORYCTL, "apply", str(site), "--auto-approve", "--plain", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     text=True, bufsize=1, env=os.environ | {"PYTHONUNBUFFERED": "1"})
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for(self, text: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            assert self.proc.poll() is None, f"apply ended before {text!r}:\n" + "".join(self.lines[-40:])
            assert time.monotonic() < deadline, f"no {text!r} within {timeout} s:\n" + "".join(self.lines[-40:])
            time.sleep(0.05)

    def finish(self, timeout: float = 600) -> tuple[int, str]:
        rc = self.proc.wait(timeout=timeout)
        self.reader.join(10)
        return rc, "".join(self.lines)


def states(site: Path) -> dict[str, dict]:
    """Every unit's Terraform state: it must always parse (never half written)."""
    return {p.name: json.loads(p.read_text()) for p in (ws(site) / "state" / "lab").glob("*.tfstate")}


def test_ctrl_c_while_terraform_creates_hosts_then_apply_resumes(site):
    assert fctl("plan", str(site)).returncode == 0
    a = Apply(site)
    a.wait_for("Terraform: applying 2 of 2")  # the phase header: lab hosts are being created now
    time.sleep(0.5)
    a.proc.send_signal(signal.SIGINT)
    rc, out = a.finish(timeout=120)
    assert rc == 130, out[-3000:]
    assert "run factoryctl apply again to resume" in out
    assert not (ws(site) / "applied.json").exists()
    for name, doc in states(site).items():  # the stacks in flight finished: their hosts are recorded
        assert all(r["type"] == "terraform_data" for r in doc["resources"]), name
    rc, out = Apply(site).finish()
    assert rc == 0, out[-4000:]
    assert "Ansible:" in out and (ws(site) / "applied.json").is_file()


def test_ctrl_c_while_ansible_runs_then_apply_finishes(site):
    before = (ws(site) / "applied.json").read_text()
    a = Apply(site, "--converge")  # the hosts are in sync: only --converge runs site.yml now
    a.wait_for("TASK [slurm")
    a.proc.send_signal(signal.SIGINT)
    rc, out = a.finish(timeout=120)
    assert rc == 130, out[-3000:]
    assert (ws(site) / "applied.json").read_text() == before  # only a finished apply is recorded
    deadline = time.monotonic() + 15  # runner SIGKILLs the playbook's process group: let it die
    while True:
        left = subprocess.run(["pgrep", "-f", f"ansible-playbook.*{ws(site)}"], capture_output=True, text=True)
        if not left.stdout.strip() or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert left.stdout.strip() == "", "ansible-playbook still running after Ctrl-C"
    runs = sorted((ws(site) / "runs").iterdir())
    assert json.loads((runs[-1] / "apply.json").read_text())["status"] == "interrupted"
    # the stopped run's hosts lost their baselines: the next apply runs site.yml on all three
    rc, out = Apply(site).finish()
    assert rc == 0 and "changed=0 on all 3 host(s)" in out, out[-4000:]
    assert "runs site.yml: no baseline from a successful run" in out


def test_killed_sshd_makes_one_host_unreachable_and_the_next_apply_converges(site):
    a = Apply(site, "--converge")
    a.wait_for("TASK [common")
    assert kill_sshd(BRIDGE, "node02") > 0
    rc, out = a.finish()
    assert rc == 1, out[-4000:]
    assert "unreachable: node02" in out
    run = sorted((ws(site) / "runs").iterdir())[-1]
    hosts = json.loads((run / "apply.json").read_text())["phases"]["ansible"]["hosts"]
    assert hosts["node02"]["unreachable"] > 0
    for other in ("head01", "node01"):  # the others ran the whole playbook
        assert hosts[other]["unreachable"] == 0 and hosts[other]["failed"] == 0
        assert hosts[other]["ok"] > 30, hosts[other]

    rc, out = Apply(site).finish()
    assert rc == 0, out[-4000:]
    assert "restarted node02" in out
    deadline = time.monotonic() + 90  # node02's slurmd registers again within seconds
    while True:
        r = fctl("lab", "ssh", "--file", str(site), "head01", "--", "srun", "-N2", "hostname", timeout=120)
        if r.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert r.returncode == 0 and sorted(r.stdout.split()) == ["node01", "node02"], r.stderr


def test_destroy_after_faults_leaves_nothing(site):
    r = fctl("destroy", str(site), "--auto-approve", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert site_traces(site, NAME, BRIDGE, HOSTS) == {"netns": [], "links": [], "mounts": [], "processes": []}
