"""Storage transports as the hosts get them: LNet before a Lustre o2ib mount, WEKA's net=,
VAST's multipath RDMA options, BeeGFS RDMA. The storage_client role runs under
ansible-playbook in check mode with --diff on this machine (nothing is written, nothing
mounted), fed the group_vars factoryctl renders for a blueprint."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from factoryctl.render import render
from factoryctl.render.ansible_vars import transport_options
from tests.helpers import ROOT, check_doc
from tests.unit.render.test_render_ansible import ansible_env
from tests.unit.rules.test_storage import _blueprint

BIN = Path(sys.executable).parent
ROLE = ROOT / "templates" / "ansible" / "project" / "roles" / "storage_client"


def _group_vars(doc: dict, tmp_path: Path) -> dict:
    tmp_path.mkdir(parents=True, exist_ok=True)
    c = check_doc(doc, tmp_path)
    assert c.site is not None and not [f for f in c.findings if f.severity.value == "error"], \
        [f.message for f in c.findings if f.severity.value == "error"]
    render(c.site, tmp_path / "build")
    return yaml.safe_load((tmp_path / "build" / "ansible" / "inventory" / "group_vars" / "all.yml").read_text())


def _role_diff(gv: dict, tmp_path: Path, group: str) -> str:
    """The storage_client role's --check --diff output for a host of `group` (no install)."""
    gv = {k: v for k, v in gv.items() if k.startswith("storage_client_")}
    gv.update(storage_client_mount_now=False, factory_group=group)
    (tmp_path / "gv.yml").write_text(yaml.safe_dump(gv))
    (tmp_path / "play.yml").write_text(yaml.safe_dump([{
        "hosts": "localhost", "connection": "local", "gather_facts": True,
        "vars_files": [str(tmp_path / "gv.yml")], "roles": [str(ROLE)]}]))
    r = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", "-e", f"ansible_python_interpreter={sys.executable}",
                        "--check", "--diff", "--skip-tags", "storage_client_install", str(tmp_path / "play.yml")],
                       env=ansible_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    return r.stdout


def _added(diff: str) -> list[str]:
    return [line[1:] for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]


def _fstab(diff: str, mount: str) -> list[str]:
    line = next(x for x in _added(diff) if re.match(rf"^\S+ {re.escape(mount)} ", x))
    return line.split()[3].split(",")


@pytest.mark.ansible
def test_superpod_lustre_gets_lnet_o2ib_before_it_mounts(tmp_path):
    diff = _role_diff(_group_vars(_blueprint("superpod-h100-1su"), tmp_path), tmp_path, "dgx")
    added = _added(diff)
    assert 'options lnet networks="o2ib0(ib8,ib9)"' in added
    assert "10.30.0.200@o2ib:10.30.0.201@o2ib:/hps /lustre lustre defaults,_netdev,flock 0 0" in added
    # LNet is written before any fstab line (and so before the mount)
    assert diff.index("options lnet networks=") < diff.index("/lustre lustre")


def test_lnet_networks_follow_the_nids(tmp_path):
    doc = _blueprint("superpod-h100-1su")
    doc["storage"][0]["servers"] = ["10.30.0.200@o2ib1", "10.30.0.201@o2ib1"]
    gv = _group_vars(doc, tmp_path)
    assert gv["storage_client_lnet_networks"] == [{"net": "o2ib1", "interfaces": ["ib8", "ib9"]}]
    gv = _group_vars(_blueprint("sovereign-eu-airgapped"), tmp_path / "sov")
    assert gv["storage_client_lnet_networks"] == [{"net": "tcp0", "interfaces": []}]  # LNet's default interface
    assert [m["rdma"] for m in gv["storage_client_mounts"]] == [False, False]


@pytest.mark.ansible
def test_weka_over_rdma_names_each_storage_interface(tmp_path):
    doc = _blueprint("enterprise-h100-32n")
    doc["fabric"]["storage"].update(type="roce", interfaces=["ens1f0np0", "ens2f0np0"])
    gv = _group_vars(doc, tmp_path)
    weka = gv["storage_client_mounts"][0]
    assert weka["rdma"] and weka["transport_options"] == ["net=ens1f0np0", "net=ens2f0np0"]
    opts = _fstab(_role_diff(gv, tmp_path, "gpu"), "/data")
    assert opts == ["defaults", "_netdev", "net=ens1f0np0", "net=ens2f0np0"]


@pytest.mark.ansible
def test_vast_over_rdma_uses_the_vast_client_multipath_options(tmp_path):
    doc = _blueprint("gb300-nvl72-neocloud")
    doc["fabric"]["storage"].update(type="roce", interfaces=["ens3f0np0", "ens3f1np1"])
    gv = _group_vars(doc, tmp_path)
    opts = _fstab(_role_diff(gv, tmp_path, "gpu"), "/models")
    # 2 x 400 Gb/s: 2 connections per 100 Gb/s over RDMA (VAST KB) = 16
    assert opts == ["defaults", "_netdev", "vers=3", "proto=rdma", "port=20049", "spread_reads", "spread_writes",
                    "nconnect=16", "remoteports=dns", "localports=ens3f0np0~ens3f1np1"]


def test_vast_over_tcp_keeps_the_kernel_client_options(tmp_path):
    gv = _group_vars(_blueprint("gb300-nvl72-neocloud"), tmp_path)
    vast = gv["storage_client_mounts"][0]
    assert not vast["rdma"] and vast["transport_options"] == []
    assert vast["options"] == []  # so the role's TCP defaults apply (nconnect=16, proto=tcp)


def test_vast_remoteports_from_declared_vips():
    t = {"interfaces": ["ib0"], "link_gbps": 400}
    s = {"type": "vast", "server": "172.25.1.1:/", "servers": ["172.25.1.1", "172.25.1.2"]}
    assert transport_options(s, True, t) == ["nconnect=8", "remoteports=172.25.1.1~172.25.1.2", "localports=ib0"]
    s = {"type": "vast", "server": "172.25.1.1:/", "servers": []}
    assert transport_options(s, True, t) == ["nconnect=8", "localports=ib0"]  # one VIP: no multipath
    assert transport_options(s, True, {"interfaces": ["ib0", "ib1", "ib2", "ib3"] * 4, "link_gbps": 800})[0] == "nconnect=64"


@pytest.mark.ansible
def test_beegfs_rdma_client_config(tmp_path):
    gv = _group_vars(_blueprint("hybrid-slurm-research"), tmp_path)
    beegfs = gv["storage_client_mounts"][0]
    assert beegfs["type"] == "beegfs" and beegfs["rdma"]
    assert gv["storage_client_interfaces"] == ["ib8", "ib9"]
    role = (ROLE / "tasks" / "transport.yml").read_text()
    assert "connUseRDMA" in role and "connRDMAInterfacesFile" in role
