"""End to end on real lab hosts: network namespaces, overlays, sshd. Needs root."""

from __future__ import annotations

import json
import os
import time

import pytest

from factoryctl.engines.lab import HostSpec
from factoryctl.engines.lab.rootfs import SEED_PACKAGES
from tests.lab.conftest import THREE, traces

pytestmark = [pytest.mark.lab, pytest.mark.xdist_group("lab")]

NAMES = [h.name for h in THREE]


def sh(lab, name: str, script: str, timeout: float = 60):
    res = lab.run(name, ["sh", "-c", script], timeout=timeout)
    assert res.returncode == 0, f"{name}: {script!r} -> {res.returncode}: {res.stderr}"
    return res.stdout


def test_up_returns_every_host_alive_with_its_address(lab3):
    infos = {i.name: i for i in lab3.status()}
    assert sorted(infos) == sorted(NAMES)
    assert all(i.alive and i.pid > 0 and i.ssh_port == 22 for i in infos.values())
    assert len({i.address for i in infos.values()}) == 3
    assert lab3.private_key.stat().st_mode & 0o777 == 0o600


def test_each_host_answers_ssh_with_its_own_name(lab3):
    for name in NAMES:
        assert sh(lab3, name, "hostname").strip() == name
        assert sh(lab3, name, "cat /etc/hostname").strip() == name


def test_each_host_sees_only_its_own_pid_namespace(lab3):
    machine_ns = os.readlink("/proc/self/ns/pid")
    seen = {}
    for name in NAMES:
        out = sh(lab3, name, "readlink /proc/self/ns/pid; cat /proc/1/comm; ps -e -o comm=")
        ns, init, *procs = out.split()
        assert init == "lab-init"
        assert len(procs) <= 8, procs  # lab-init, sshd (listener + session), sh, ps
        assert "python3" not in procs and procs.count("lab-init") == 1
        seen[name] = ns
    assert len(set(seen.values())) == 3 and machine_ns not in seen.values()


def test_each_host_has_its_own_overlay_root(lab3):
    sh(lab3, "gpu01", "echo mine > /root/only-on-gpu01")
    assert sh(lab3, "gpu01", "findmnt -n -o FSTYPE /").strip() == "overlay"
    assert sh(lab3, "gpu02", "test ! -e /root/only-on-gpu01 && echo absent").strip() == "absent"


def test_hosts_reach_each_other_by_name(lab3):
    for name in NAMES:
        others = " ".join(n for n in NAMES if n != name)
        sh(lab3, name, f"for h in {others}; do ping -c1 -W2 $h >/dev/null || exit 1; done")


def test_a_host_has_no_route_past_the_bridge(lab3):
    # Issue 14: a lab host reaches nothing but the bridge. `ip route get` is a route lookup
    # only (ip-route(8)): the kernel answers from its table and sends no packet.
    for name in NAMES:
        res = lab3.run(name, ["ip", "route", "get", "1.1.1.1"], timeout=30)
        assert res.returncode != 0 and "Network is unreachable" in res.stderr, (name, res.stdout, res.stderr)
        routes = sh(lab3, name, "ip -4 route show table main").splitlines()
        assert len(routes) == 1 and routes[0].startswith("10.198.") and " dev eth0 " in f" {routes[0]} ", routes


def test_fake_gpus_are_device_nodes_and_nothing_else(lab3):
    out = sh(lab3, "gpu01", "stat -c '%F %t:%T' /dev/nvidia0 /dev/nvidia1; ls /dev")
    assert out.splitlines()[:2] == ["character special file c3:0", "character special file c3:1"]
    assert "nvidia2" not in out
    assert sh(lab3, "head01", "ls /dev").count("nvidia") == 0
    assert sh(lab3, "gpu01", "command -v nvidia-smi || echo none").strip() == "none"


def test_seeded_packages_install_offline(lab3):
    # --no-download: apt may only use the debs the image carries, as in a host with no route.
    out = sh(
        lab3,
        "head01",
        "apt-get install -y -q --no-download munge slurmctld slurm-client >/dev/null"
        " && slurmctld -V && test -x /usr/sbin/munged && echo ok",
        timeout=180,
    )
    assert "slurm" in out and out.strip().endswith("ok")
    listed = sh(lab3, "gpu02", "ls /var/cache/apt/archives")
    assert all(p in listed for p in ("munge_", "slurmd_", "slurmctld_", "chrony_"))
    assert set(SEED_PACKAGES) >= {"munge", "slurmd", "slurmctld", "slurm-client"}


def test_cgroup_hierarchies_are_visible_for_slurmd(lab3):
    out = sh(lab3, "gpu01", "findmnt -rn -o FSTYPE -R /sys/fs/cgroup")
    assert {"cgroup", "cgroup2"} & set(out.split())


def test_up_again_is_a_no_op(lab3):
    before = {i.name: i.pid for i in lab3.status()}
    started = time.monotonic()
    again = lab3.up(THREE)
    assert time.monotonic() - started < 2
    assert {i.name: i.pid for i in again} == before


def test_status_sees_a_dead_sshd_and_up_brings_the_host_back(lab3):
    sh(lab3, "gpu02", "echo kept > /root/disk; kill $(cat /run/sshd.pid)")
    alive = {i.name: i.alive for i in lab3.status()}
    assert alive == {"head01": True, "gpu01": True, "gpu02": False}
    pids = {i.name: i.pid for i in lab3.status()}

    infos = {i.name: i for i in lab3.up(THREE)}
    assert all(i.alive for i in lab3.status())
    assert infos["gpu02"].pid != pids["gpu02"]  # restarted ...
    assert infos["head01"].pid == pids["head01"]  # ... alone
    assert sh(lab3, "gpu02", "cat /root/disk").strip() == "kept"  # like a reboot: disk stays


def test_down_of_some_hosts_then_all_leaves_nothing_behind(make_lab):
    lab = make_lab()
    names = ["alpha", "beta"]
    lab.up([HostSpec(n) for n in names])
    assert all(i.alive for i in lab.status())

    lab.down(["alpha"])
    assert [i.name for i in lab.status()] == ["beta"]
    assert "alpha" not in sh(lab, "beta", "cat /etc/hosts")
    assert traces(lab, ["alpha"], whole=False) == {
        "netns": [],
        "links": [],
        "mounts": [],
        "processes": [],
    }

    lab.down()
    assert traces(lab, names) == {"netns": [], "links": [], "mounts": [], "processes": []}
    assert not lab.state_path.exists()
    lab.down()  # again: nothing to do, no error


def test_down_cleans_up_after_a_lost_state_file(make_lab):
    lab = make_lab()
    names = ["n1", "n2", "n3"]
    lab.up([HostSpec(n, fake_gpus=1) for n in names])
    assert traces(lab, names)["netns"]
    lab.state_path.unlink()  # as after a crash or a wiped workspace

    lab.down()
    assert traces(lab, names) == {"netns": [], "links": [], "mounts": [], "processes": []}


def test_cli_round_trip(make_lab, capsys):
    from typer.testing import CliRunner

    from factoryctl.cli.lab import app

    lab = make_lab()
    common = ["--dir", str(lab.root), "--bridge", lab._bridge, "--subnet", lab._subnet]
    run = CliRunner().invoke
    res = run(app, ["up", *common, "--count", "2", "--prefix", "cn", "-q", "--format", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert [h["name"] for h in doc["hosts"]] == ["cn01", "cn02"]
    assert run(app, ["up", *common, "--count", "2", "--prefix", "cn", "-q"]).exit_code == 0
    assert run(app, ["status", "--dir", str(lab.root)]).exit_code == 0
    assert (
        run(app, ["ssh", "--dir", str(lab.root), "cn02", "--", "sh", "-c", "exit 3"]).exit_code == 3
    )
    from factoryctl.cli import run as cli_run

    assert cli_run(["lab", "ssh", "--dir", str(lab.root), "nosuch", "true"]) == 1  # cli.run reports LabError
    assert "no lab host named 'nosuch'" in capsys.readouterr().err
    assert run(app, ["down", "--dir", str(lab.root)]).exit_code == 0
    assert run(app, ["status", "--dir", str(lab.root)]).exit_code == 0
