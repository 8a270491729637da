"""`verify --quarantine` on a real lab site (root): munge stopped on node02 makes verify drain
it in Slurm with the reason, a job submitted meanwhile runs on node01, and once munge runs
again verify resumes node02; a node an operator drained stays drained whatever verify finds.
The rendered HealthCheckProgram is installed on the compute nodes and judges them there.
One plan + apply for the module, torn down with destroy even on failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.lab.conftest import write_lab_site

pytestmark = [pytest.mark.lab, pytest.mark.xdist_group("lab")]

NAME, SUBNET, BRIDGE = "labquar", "10.197.5.0/24", "fctquar5"
BIN = Path(sys.executable).parent
HC = "/etc/slurm/factoryctl-healthcheck.sh"


def fctl(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    # Terraform's local-exec calls `factoryctl lab up` by name: the venv's bin goes first.
    env = os.environ | {"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "COLUMNS": "200"}
    return subprocess.run([str(BIN / "factoryctl"), *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=env)


def on(site: Path, host: str, command: str) -> subprocess.CompletedProcess:
    """One shell command line on a lab host (`lab ssh` quotes each word for the remote shell)."""
    return fctl("lab", "ssh", "--file", str(site), host, "--", "sh", "-c", command, timeout=120)


@pytest.fixture(scope="module")
def site(lab_image, tmp_path_factory):
    from factoryctl.engines.lab import Lab

    path = write_lab_site(tmp_path_factory.mktemp("quarantine"), NAME, SUBNET, BRIDGE)
    try:
        r = fctl("plan", str(path))
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
        r = fctl("apply", str(path), "--auto-approve", "--plain", timeout=900)
        assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
        yield path
    finally:
        r = fctl("destroy", str(path), "--auto-approve")
        lab = Lab(path.parent / ".factory" / NAME / "lab", bridge=BRIDGE)
        if r.returncode != 0 or lab.status():
            lab.down()


def verify(site: Path) -> dict:
    r = fctl("verify", str(site), "--quarantine", "--format", "json")
    assert r.returncode in (0, 1), r.stderr[-3000:]
    return json.loads(r.stdout)


def node_state(site: Path, node: str) -> tuple[str, str]:
    r = on(site, "head01", f"sinfo -h -N -n {node} -o '%T|%E' | head -n 1")
    assert r.returncode == 0, r.stderr
    state, _, reason = r.stdout.strip().partition("|")
    return state, reason


def actions(doc: dict) -> dict[str, tuple[str, str]]:
    return {a["node"]: (a["action"], a["reason"]) for a in doc.get("quarantine") or []}


def test_the_health_check_program_is_installed_and_passes_on_a_healthy_node(site):
    conf = on(site, "node01", "grep ^HealthCheck /etc/slurm/slurm.conf")
    assert conf.stdout.split() == [f"HealthCheckProgram={HC}", "HealthCheckInterval=300",
                                   "HealthCheckNodeState=ANY,CYCLE"], conf.stdout
    r = on(site, "node01", f"test -x {HC} && {HC}; echo rc=$?")
    assert r.stdout.strip().endswith("rc=0"), r.stdout + r.stderr


def test_a_broken_node_is_drained_avoided_and_resumed(site):
    stop = on(site, "node02", "/etc/init.d/munge stop")
    assert stop.returncode == 0, stop.stderr
    try:
        doc = verify(site)
        assert doc["result"] == "failed"
        bad = {(c["host"], c["check"]) for c in doc["checks"] if c["status"] == "failed"}
        assert ("node02", "service:munge") in bad
        assert actions(doc) == {"node02": ("drained", "factoryctl: service:munge")}, doc.get("quarantine")
        state, reason = node_state(site, "node02")
        assert state.startswith("drain") and reason == "factoryctl: service:munge", (state, reason)
        # the HealthCheckProgram sees the same on the node itself
        hc = on(site, "node02", f"{HC}; echo rc=$?")
        assert "service:munge: munged not running" in hc.stderr + hc.stdout and "rc=1" in hc.stdout
        # Slurm places new work on the other node only
        for _ in range(3):
            job = on(site, "head01", "srun -p batch -N 1 -n 1 -t 1 hostname")
            assert job.returncode == 0 and job.stdout.strip() == "node01", job.stdout + job.stderr
        # still broken: kept drained, not drained twice
        assert actions(verify(site)) == {"node02": ("kept", "factoryctl: service:munge")}
    finally:
        start = on(site, "node02", "/etc/init.d/munge start")
        assert start.returncode == 0, start.stderr
    doc = verify(site)
    assert actions(doc) == {"node02": ("resumed", "factoryctl: service:munge")}, doc.get("quarantine")
    assert not node_state(site, "node02")[0].startswith(("drain", "down"))
    record = json.loads((site.parent / ".factory" / NAME / "quarantine.json").read_text())
    assert record["slurm"] == {}


def test_a_node_an_operator_drained_stays_drained(site):
    why = "RMA 4711 operator"
    r = on(site, "head01", f"scontrol update nodename=node01 state=drain reason='{why}'")
    assert r.returncode == 0, r.stderr
    try:
        assert on(site, "node01", "/etc/init.d/munge stop").returncode == 0
        try:
            doc = verify(site)
            assert actions(doc)["node01"][0] == "left", doc.get("quarantine")
            assert node_state(site, "node01") == ("drained", why)
        finally:
            assert on(site, "node01", "/etc/init.d/munge start").returncode == 0
        doc = verify(site)
        assert "node01" not in actions(doc)  # healthy, but not factoryctl's to resume
        assert node_state(site, "node01") == ("drained", why)
    finally:
        on(site, "head01", "scontrol update nodename=node01 state=resume")
