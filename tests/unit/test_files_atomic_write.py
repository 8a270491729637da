"""factoryctl.files.atomic_write is the one writer of whole files; the lab's state, keys and
ssh config, the Terraform CLI configuration and the HTML report all go through it."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from factoryctl import files
from factoryctl.engines import terraform
from factoryctl.engines.lab import keys, state
from factoryctl.engines.lab.state import LabState
from factoryctl.files import WorkspaceError, atomic_write


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_writes_text_or_bytes_with_the_mode_and_leaves_no_scratch(tmp_path):
    p = atomic_write(tmp_path / "a" / "b.txt", "héllo\n")
    assert p.read_text(encoding="utf-8") == "héllo\n" and _mode(p) == 0o644
    atomic_write(p, b"\x00\x01", mode=0o600)
    assert p.read_bytes() == b"\x00\x01" and _mode(p) == 0o600
    assert sorted(x.name for x in p.parent.iterdir()) == ["b.txt"]


def test_a_failed_write_keeps_the_old_content_and_no_scratch(tmp_path, monkeypatch):
    p = atomic_write(tmp_path / "f", "old")

    def boom(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(p, "new")
    assert p.read_text() == "old"
    assert [x.name for x in tmp_path.iterdir()] == ["f"]


def test_a_linked_folder_inside_a_workspace_is_refused_outside_one_it_is_not(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ws = tmp_path / "site" / ".factory" / "s1"
    ws.mkdir(parents=True)
    (ws / "runs").symlink_to(elsewhere)
    with pytest.raises(WorkspaceError, match="runs is a symbolic link"):
        atomic_write(ws / "runs" / "x.json", "{}")
    assert list(elsewhere.iterdir()) == []
    (tmp_path / "plain").symlink_to(elsewhere)  # not a workspace: links are the user's business
    atomic_write(tmp_path / "plain" / "x", "y")
    assert (elsewhere / "x").read_text() == "y"


def test_the_workspace_reexports_the_one_writer():
    from factoryctl import workspace

    assert workspace.atomic_write is atomic_write and workspace.WorkspaceError is WorkspaceError


def test_lab_state_is_written_private(tmp_path):
    path = tmp_path / "lab" / "state.json"
    state.save(path, LabState(bridge="fclab0", subnet="10.99.0.0/24"))
    assert _mode(path) == 0o600 and state.load(path).bridge == "fclab0"
    assert [x.name for x in path.parent.iterdir()] == ["state.json"]


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen not installed")
def test_lab_keys_land_whole_private_0600_public_beside_it(tmp_path):
    key = keys.ensure_key(tmp_path / "keys" / "id_ed25519", "factoryctl-test")
    pub = key.with_name("id_ed25519.pub")
    assert _mode(key) == 0o600 and _mode(pub) == 0o644
    assert keys.public_key(key).startswith("ssh-ed25519 ") and keys.public_key(key).endswith("factoryctl-test")
    assert b"PRIVATE KEY" in key.read_bytes()
    assert sorted(x.name for x in key.parent.iterdir()) == ["id_ed25519", "id_ed25519.pub"]  # no scratch
    before = key.read_bytes()
    keys.ensure_key(key, "factoryctl-test")  # both exist: kept
    assert key.read_bytes() == before


def test_terraform_cli_config_is_rewritten_only_when_it_changes(tmp_path):
    path = terraform.write_cli_config(tmp_path / "terraform.rc")
    assert "disable_checkpoint" in path.read_text() and _mode(path) == 0o644
    first = path.stat().st_mtime_ns
    os.utime(path, ns=(first - 10**9, first - 10**9))
    terraform.write_cli_config(path)
    assert path.stat().st_mtime_ns == first - 10**9  # same text: not rewritten
    assert [x.name for x in tmp_path.iterdir()] == ["terraform.rc"]
