"""`factoryctl status` on a real lab site (root): before `up` it says the site was never
applied; after `up` every host is up and Slurm's partitions are listed; a host whose sshd
died is reported down and the exit code is 1. (Written alongside the unit tests; the lab
lane runs it: it needs root, namespaces and the Debian mirror.)"""

from __future__ import annotations

import json

import pytest

from tests.lab.conftest import fctl, kill_sshd, teardown_site, write_lab_site

pytestmark = [pytest.mark.lab, pytest.mark.xdist_group("lab")]

NAME, SUBNET, BRIDGE = "labstatus", "10.197.3.0/24", "fctstat3"


@pytest.fixture(scope="module")
def site(lab_image, tmp_path_factory):
    path = write_lab_site(tmp_path_factory.mktemp("status"), NAME, SUBNET, BRIDGE)
    try:
        yield path
    finally:
        teardown_site(path, NAME, BRIDGE)


def status(site) -> tuple[int, dict]:
    r = fctl("status", str(site), "--format", "json", timeout=120)
    assert r.stdout, r.stderr
    return r.returncode, json.loads(r.stdout)


def test_status_before_up_says_not_applied(site):
    r = fctl("status", str(site), timeout=60)
    assert r.returncode == 1 and f"not applied yet: run factoryctl up {site}" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not (site.parent / ".factory").exists()


def test_status_after_up_shows_hosts_up_and_partitions(site):
    r = fctl("up", str(site), "--auto-approve", "--plain", timeout=900)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    rc, doc = status(site)
    assert rc == 0 and doc["ok"], json.dumps(doc, indent=1)
    assert doc["schema"] == "factoryctl.status/v1"
    assert {h["name"]: h["up"] for h in doc["hosts"]} == {"head01": True, "node01": True, "node02": True}
    assert doc["slurm"]["controller"] == "head01" and doc["slurm"]["ok"]
    parts = {(p["name"], p["default"], p["available"]) for p in doc["slurm"]["partitions"]}
    assert parts == {("batch", True, "up"), ("debug", False, "up")}
    assert all(p["state"] == "idle" for p in doc["slurm"]["partitions"])
    assert doc["endpoints"] == [] and doc["prometheus"] is None
    text = fctl("status", str(site), timeout=120)
    assert text.returncode == 0 and "everything declared is up and ready" in text.stdout


def test_a_host_whose_sshd_died_is_down_and_exit_1(site):
    assert kill_sshd(BRIDGE, "node02") > 0
    rc, doc = status(site)
    assert rc == 1 and not doc["ok"]
    hosts = {h["name"]: h for h in doc["hosts"]}
    assert hosts["node02"]["up"] is False and hosts["node02"]["reason"] == "sshd does not answer"
    assert hosts["node01"]["up"] and hosts["head01"]["up"]
