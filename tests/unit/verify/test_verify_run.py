"""Running the host checks: which checks a --hosts selection covers, the inventory testinfra
reads, and real pytest runs (serial and under xdist) on this machine with --connection local."""

from __future__ import annotations

import json
import socket
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from factoryctl.render.hostchecks import build
from factoryctl.session import check
from factoryctl.verify import run as hostchecks
from factoryctl.verify.plugin import select

ROOT = Path(__file__).resolve().parents[3]
LAB = ROOT / "examples" / "lab.yaml"


def test_select_by_hosts_spec() -> None:
    checks = build(check(LAB).site)["checks"]
    assert select(checks, ["ansible://all"], "") == checks
    node02 = select(checks, ["ansible://node02"], "")
    assert {c["host"] for c in node02} == {"node02"} and any(c["check"] == "slurm-node" for c in node02)
    local = select(checks, ["local://"], "head01")
    assert {c["on"] for c in local} == {"head01"}
    assert ("node01", "slurm-node") in {(c["host"], c["check"]) for c in local}  # sinfo runs on head01
    assert select(checks, ["local://"], "elsewhere") == []


def test_default_jobs() -> None:
    assert hostchecks.default_jobs(3) == 1
    assert 1 <= hostchecks.default_jobs(64) <= 8


def test_inventory_merges_the_connection_file(tmp_path: Path) -> None:
    site = check(LAB).site
    (tmp_path / "inventory").mkdir()
    (tmp_path / "inventory" / "connection.yml").write_text(json.dumps({"all": {"hosts": {
        "node01": {"ansible_host": "192.0.2.7", "ansible_user": "ops"}}}}))
    doc, ssh_config = hostchecks.inventory(site, tmp_path)
    hosts = doc["all"]["hosts"]
    assert hosts["node01"]["ansible_host"] == "192.0.2.7" and hosts["node01"]["ansible_user"] == "ops"
    assert hosts["head01"]["ansible_host"] == "10.77.0.11" and hosts["head01"]["factory_group"] == "head"
    assert doc["all"]["children"]["slurm_compute"] == {"hosts": {"node01": {}, "node02": {}}}
    assert ssh_config is None  # no lab running in this workspace


@pytest.mark.parametrize("jobs", [1, 2], ids=["serial", "xdist"])
def test_local_run_reports_every_check_of_this_host(tmp_path: Path, jobs: int) -> None:
    site = check(LAB).site
    folder = tmp_path / "hostchecks"
    conn = hostchecks.connect(site, tmp_path, folder, "local", local_name="head01")
    run = hostchecks.run_checks(site, conn, folder, jobs=jobs, timeout=300)
    assert run.problems == [], (folder / "pytest.log").read_text()
    got = {(r.host, r.check): r for r in run.results}
    assert set(got) == {(c["host"], c["check"]) for c in select(build(site)["checks"], ["local://"], "head01")}
    me = socket.gethostname().split(".")[0]
    if me != "head01":
        assert got[("head01", "hostname")].status == "failed"
        assert got[("head01", "hostname")].detail == f"hostname is {me!r}, expected 'head01'"
    assert (got[("head01", "gpu-count")].status, got[("head01", "gpu-count")].detail) == ("skipped", "no GPU declared")
    assert all(r.status in ("passed", "failed", "error", "skipped") for r in run.results)
    assert got[("node01", "slurm-node")].on == "head01"
    junit = ET.parse(folder / "pytest-junit.xml").getroot()
    assert sum(int(s.get("tests")) for s in junit.iter("testsuite")) == len(run.results)
    assert (folder / "checks.json").is_file() and not list(folder.rglob("__pycache__"))


def test_a_lab_site_that_is_not_up_is_refused_without_sending_anything(tmp_path: Path, capsys) -> None:
    import pytest

    from factoryctl.cli import run
    from factoryctl.ui import RecordingUI
    from factoryctl.verify.hostchecks import HostCheckOptions, SiteNotUp, run_bench, verify_site
    from factoryctl.workspace import Workspace

    site = tmp_path / "factory.yaml"
    site.write_text(LAB.read_text())
    c = check(site)
    ws = Workspace.beside(site, c.factory.metadata.name)
    assert "not up" in hostchecks.lab_not_up(c.site, tmp_path / ".factory" / "lab")
    for stage in (verify_site, run_bench):
        ui = RecordingUI()
        with pytest.raises(SiteNotUp, match="the lab of this site is not up"):
            stage(c, ws, HostCheckOptions(), ui)
        assert ui.events == []
    assert run(["verify", str(site)]) == 1
    assert "error: the lab of this site is not up" in capsys.readouterr().err
    assert not (tmp_path / ".factory" / "lab" / "runs").exists()


def test_ssh_options_keep_a_dead_host_from_hanging(tmp_path: Path) -> None:
    doc, _ = hostchecks.inventory(check(LAB).site, tmp_path)
    args = doc["all"]["vars"]["ansible_ssh_common_args"]
    assert "-o ConnectTimeout=10" in args and "-o BatchMode=yes" in args


def test_unreachable_hosts_are_named_once_and_not_retried() -> None:
    from types import SimpleNamespace

    from factoryctl.verify.plugin import _unreachable

    res = SimpleNamespace(rc=255, stderr="kex_exchange_identification: read: Connection reset\r\n"
                                         "Connection to 10.0.0.9 port 22 timed out\r\n")
    assert _unreachable(RuntimeError(res)) == "unreachable over SSH: Connection to 10.0.0.9 port 22 timed out"
    assert _unreachable(RuntimeError(SimpleNamespace(rc=1, stderr="x"))) is None
    assert _unreachable(ValueError("x")) is None
