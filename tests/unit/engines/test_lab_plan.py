"""Fast checks (no root) for the lab's address plan, naming, state file and SSH files."""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from factoryctl.engines.lab import HostSpec, LabError, state
from factoryctl.engines.lab import addresses as address_plan
from factoryctl.engines.lab.host import hosts_file
from factoryctl.engines.lab.mounts import _unescape
from factoryctl.engines.lab.sshconf import control_dir, render_config, ssh_argv
from factoryctl.engines.lab.state import HostRecord, LabState

SUBNET = "10.199.0.0/24"


def specs(*names: str) -> list[HostSpec]:
    return [HostSpec(n) for n in names]


# -- addresses ----------------------------------------------------------------------------
def test_default_addresses_follow_the_index():
    got = address_plan.assign_addresses(specs("head01", "gpu01", "gpu02"), SUBNET)
    assert got == {"head01": "10.199.0.10", "gpu01": "10.199.0.11", "gpu02": "10.199.0.12"}


def test_bridge_takes_the_first_address():
    assert str(address_plan.bridge_interface(SUBNET)) == "10.199.0.1/24"
    assert str(address_plan.bridge_interface("172.20.8.0/22")) == "172.20.8.1/22"


def test_fixed_addresses_are_claimed_before_defaults():
    # b would default to .11, which a (listed first, no address) must not take from c.
    hosts = [HostSpec("a"), HostSpec("b"), HostSpec("c", address="10.199.0.10")]
    got = address_plan.assign_addresses(hosts, SUBNET)
    assert got == {"a": "10.199.0.11", "b": "10.199.0.12", "c": "10.199.0.10"}


def test_running_hosts_keep_their_address():
    got = address_plan.assign_addresses(specs("a", "c"), SUBNET, running={"c": "10.199.0.12"})
    assert got == {"a": "10.199.0.10", "c": "10.199.0.12"}
    # a new host whose default address is held by a running one moves up
    got = address_plan.assign_addresses(specs("new"), SUBNET, running={"old": "10.199.0.10"})
    assert got == {"new": "10.199.0.11"}


def test_changing_a_running_hosts_address_needs_a_down():
    with pytest.raises(LabError, match="run 'down' for a first"):
        address_plan.assign_addresses([HostSpec("a", "10.199.0.50")], SUBNET, {"a": "10.199.0.10"})


def test_address_clash_is_an_error():
    hosts = [HostSpec("a", "10.199.0.20"), HostSpec("b", "10.199.0.20")]
    with pytest.raises(LabError, match="held by a"):
        address_plan.assign_addresses(hosts, SUBNET)


@pytest.mark.parametrize(
    "address", ["10.199.1.5", "10.199.0.0", "10.199.0.255", "10.199.0.1", "not-an-ip"]
)
def test_unusable_addresses_are_rejected(address):
    with pytest.raises(LabError):
        address_plan.assign_addresses([HostSpec("a", address)], SUBNET)


def test_duplicate_names_are_rejected():
    with pytest.raises(LabError, match="listed twice: a"):
        address_plan.assign_addresses(specs("a", "b", "a"), SUBNET)


def test_small_subnet_runs_out_cleanly():
    net = "10.50.0.0/27"  # .10 .. .30 usable for hosts: 21
    assert len(address_plan.assign_addresses(specs(*[f"n{i}" for i in range(21)]), net)) == 21
    with pytest.raises(LabError, match="no free address left"):
        address_plan.assign_addresses(specs(*[f"n{i}" for i in range(22)]), net)


@pytest.mark.parametrize(
    "subnet", ["8.8.8.0/24", "10.0.0.0/29", "fd00::/64", "10.0.0.1/24", "garbage"]
)
def test_bad_subnets_are_rejected(subnet):
    with pytest.raises(LabError):
        address_plan.parse_subnet(subnet)


@given(
    st.lists(st.integers(min_value=0, max_value=200), max_size=40),
    st.sets(st.integers(min_value=2, max_value=254), max_size=20),
)
def test_plan_is_unique_in_subnet_and_deterministic(order, fixed):
    fixed_sorted = sorted(fixed)
    hosts = [HostSpec(f"f{i}", address=f"10.199.0.{a}") for i, a in enumerate(fixed_sorted)]
    hosts += [HostSpec(f"h{i}") for i in range(len(order))]
    try:
        got = address_plan.assign_addresses(hosts, SUBNET)
    except LabError:
        return  # fixed set covered .1 (the bridge) or the subnet is full: both refused
    assert len(set(got.values())) == len(hosts)
    net = ipaddress.ip_network(SUBNET)
    assert all(ipaddress.ip_address(a) in net for a in got.values())
    assert got == address_plan.assign_addresses(hosts, SUBNET)


# -- names --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["Head01", "1node", "node_1", "-x", "x-", "", "a" * 64])
def test_bad_host_names(name):
    with pytest.raises(LabError):
        address_plan.check_name(name)


@pytest.mark.parametrize("bridge", ["lab-br", "toolongbridgename", "0br", ""])
def test_bad_bridge_names(bridge):
    with pytest.raises(LabError):
        address_plan.check_bridge(bridge)


def test_kernel_names_are_short_stable_and_per_bridge():
    long = "a-very-long-host-name-that-goes-on-and-on"
    assert len(address_plan.veth_name("fclab0", long)) <= 15
    assert address_plan.veth_name("fclab0", "gpu01") == address_plan.veth_name("fclab0", "gpu01")
    assert address_plan.veth_name("fclab0", "gpu01") != address_plan.veth_name("fclab1", "gpu01")
    assert address_plan.netns_name("fclab0", "gpu01") == "fclab0-gpu01"


def test_fake_gpu_bounds():
    assert address_plan.check_fake_gpus(HostSpec("a", fake_gpus=8)) == 8
    with pytest.raises(LabError):
        address_plan.check_fake_gpus(HostSpec("a", fake_gpus=-1))


# -- state file ---------------------------------------------------------------------------
def record(name: str, address: str) -> HostRecord:
    return HostRecord(
        name=name,
        address=address,
        netns=f"fclab0-{name}",
        veth="v0",
        dir=f"/lab/hosts/{name}",
        rootfs="/cache/rootfs-x",
        fake_gpus=2,
        pid=100,
        init_pid=101,
    )


def test_state_round_trips(tmp_path):
    st = LabState(
        bridge="fclab0",
        subnet=SUBNET,
        hosts={"b": record("b", "10.199.0.11"), "a": record("a", "10.199.0.10")},
    )
    path = tmp_path / "lab.json"
    state.save(path, st)
    assert state.load(path) == st
    doc = json.loads(path.read_text())
    assert [h["name"] for h in doc["hosts"]] == ["a", "b"]  # sorted: stable diffs
    assert path.read_text() == st.to_json()


def test_state_save_is_atomic_and_leaves_no_temp_files(tmp_path, monkeypatch):
    path = tmp_path / "lab.json"
    state.save(path, LabState(bridge="fclab0", subnet=SUBNET))
    before = path.read_text()

    def crash(*_a, **_k):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        state.save(
            path, LabState(bridge="fclab0", subnet=SUBNET, hosts={"a": record("a", "10.199.0.10")})
        )
    assert path.read_text() == before  # the old record survives a failed write
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lab.json"]


def test_missing_state_is_none(tmp_path):
    assert state.load(tmp_path / "nope.json") is None


@pytest.mark.parametrize("text", ["{not json", '{"version": 99}', '{"version": 1}', "[]"])
def test_damaged_state_is_one_clear_error(tmp_path, text):
    path = tmp_path / "lab.json"
    path.write_text(text)
    with pytest.raises(LabError, match="damaged.*factoryctl lab down"):
        state.load(path)
    assert state.load_lenient(path) is None  # teardown falls back to discovery


def test_state_ignores_unknown_host_fields(tmp_path):
    path = tmp_path / "lab.json"
    doc = json.loads(
        LabState(bridge="b", subnet=SUBNET, hosts={"a": record("a", "10.199.0.10")}).to_json()
    )
    doc["hosts"][0]["added_later"] = True
    path.write_text(json.dumps(doc))
    assert state.load(path).hosts["a"].address == "10.199.0.10"


# -- files written for hosts and clients --------------------------------------------------
def test_hosts_file_lists_every_host():
    text = hosts_file({"gpu01": "10.199.0.11", "head01": "10.199.0.10"})
    assert "127.0.0.1\tlocalhost" in text
    assert "10.199.0.10\thead01" in text and "10.199.0.11\tgpu01" in text


def test_ssh_config_names_hosts_and_checks_host_keys(tmp_path):
    text = render_config(
        {"gpu01": "10.199.0.11"},
        tmp_path / "my keys" / "id_lab",
        tmp_path / "known_hosts",
        tmp_path / "cm",
    )
    assert "Host gpu01\n  HostName 10.199.0.11" in text
    assert f'IdentityFile "{tmp_path}/my keys/id_lab"' in text
    assert "StrictHostKeyChecking yes" in text and "BatchMode yes" in text


def test_control_dir_falls_back_when_the_socket_path_would_be_too_long(tmp_path):
    assert control_dir(Path("/lab")) == Path("/lab/cm")
    deep = Path("/" + "d" * 90)
    assert len(str(control_dir(deep))) < 60


def test_ssh_argv_keeps_argument_boundaries():
    argv = ssh_argv(Path("/lab/ssh_config"), "gpu01", ["echo", "a  b", "$HOME"])
    assert argv[:5] == ["ssh", "-F", "/lab/ssh_config", "--", "gpu01"]
    assert argv[5] == "echo 'a  b' '$HOME'"


def test_mountinfo_escapes_are_decoded():
    assert _unescape(r"/tmp/with\040space") == "/tmp/with space"


def test_lab_error_is_one_line():
    assert str(LabError("mmdebstrap missing", "apt-get install mmdebstrap")) == (
        "mmdebstrap missing: apt-get install mmdebstrap"
    )


# -- CLI parsing --------------------------------------------------------------------------
def test_cli_host_tokens():
    from factoryctl.cli.lab import parse_host

    assert parse_host("gpu01") == HostSpec("gpu01")
    assert parse_host("gpu01=10.199.0.20,gpus=4") == HostSpec("gpu01", "10.199.0.20", 4)
    assert parse_host("gpu02", default_gpus=2) == HostSpec("gpu02", fake_gpus=2)
    import typer

    with pytest.raises(typer.BadParameter):
        parse_host("gpu01,cpus=3")


def test_cli_status_of_an_empty_lab_needs_no_root(tmp_path):
    from typer.testing import CliRunner

    from factoryctl.cli.lab import app

    res = CliRunner().invoke(app, ["status", "--dir", str(tmp_path), "--format", "json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["hosts"] == []


def test_lab_block_replaces_only_itself_in_etc_hosts(tmp_path):
    from factoryctl.engines.lab.host import hosts_block, write_hosts
    from factoryctl.engines.lab.state import HostRecord

    rec = HostRecord("node01", "10.199.0.11", "ns", "veth", str(tmp_path), str(tmp_path))
    etc = tmp_path / "merged" / "etc"
    etc.mkdir(parents=True)
    two = {"head01": "10.199.0.10", "node01": "10.199.0.11"}
    (etc / "hosts").write_text("127.0.0.1\tlocalhost\n")
    write_hosts(rec, hosts_block(two))
    ansible_block = "# BEGIN factoryctl hosts\n10.199.0.10 head01 head01.lab\n# END factoryctl hosts\n"
    text = (etc / "hosts").read_text() + ansible_block  # what Ansible's blockinfile adds
    (etc / "hosts").write_text(text)
    before = (etc / "hosts").stat().st_mtime_ns
    write_hosts(rec, hosts_block(two))  # a lab host restarted, same addresses: nothing written
    assert (etc / "hosts").read_text() == text and (etc / "hosts").stat().st_mtime_ns == before
    write_hosts(rec, hosts_block({**two, "node02": "10.199.0.12"}))  # a host added: the block grows
    after = (etc / "hosts").read_text()
    assert "10.199.0.12\tnode02" in after and after.endswith(ansible_block) and after.count("BEGIN lab") == 1
    write_hosts(rec, hosts_block({"node01": "10.199.0.11"}))  # hosts removed: gone from the block
    assert "10.199.0.10\thead01" not in (etc / "hosts").read_text()
    assert (etc / "hosts").read_text().endswith(ansible_block)
