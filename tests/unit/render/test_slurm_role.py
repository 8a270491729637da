"""The slurm role's tasks run by ansible-playbook on localhost against a rendered build:
the preflight reads the rendered slurm.conf/slurmdbd.conf into the facts the role uses, and
StateSaveLocation is created for SlurmUser even where root may not write (NFS root_squash)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.unit.render.test_render_ansible import BIN, ROOT, ansible_env, render_source

ROLE = ROOT / "templates" / "ansible" / "project" / "roles" / "slurm"


def _conf(path: Path) -> dict[str, str]:
    """Key=Value lines of a Slurm config file, read the way slurm.conf(5) defines them."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def _playbook(tmp_path: Path, tasks: list[dict], extra: dict, inventory: str) -> subprocess.CompletedProcess:
    (tmp_path / "pb.yml").write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    (tmp_path / "inventory.ini").write_text(inventory)
    (tmp_path / "vars.json").write_text(json.dumps({"ansible_python_interpreter": sys.executable, **extra}))
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(tmp_path / "inventory.ini"), "-e", f"@{tmp_path / 'vars.json'}",
         str(tmp_path / "pb.yml")],
        env={**ansible_env(tmp_path), "ANSIBLE_ROLES_PATH": str(tmp_path / "build" / "ansible" / "project" / "roles")},
        capture_output=True, text=True, timeout=300)


@pytest.mark.ansible
def test_preflight_facts_hold_the_rendered_values(tmp_path):
    """On ansible-core 2.19 the old dict(keys | zip(values)) with a '\\\\1' back-reference made
    every key the two characters backslash-one: _slurm_conf and _slurm_dbd_conf came out without
    SlurmUser, StateSaveLocation, DbdHost or StorageHost and the role fell back to defaults."""
    build = tmp_path / "build"
    render_source(ROOT / "examples" / "reference" / "factory.yaml", build)
    conf = _conf(build / "slurm" / "slurm.conf")
    dbd = _conf(build / "slurm" / "slurmdbd.conf")
    facts = tmp_path / "facts.json"
    r = _playbook(tmp_path, [
        {"ansible.builtin.include_role": {"name": "slurm", "tasks_from": "preflight"}},
        {"ansible.builtin.copy": {"dest": str(facts), "mode": "0600", "content": (
            "{{ {'conf': _slurm_conf, 'dbd': _slurm_dbd_conf, 'user': _slurm_user, 'dbd_host': _slurm_dbd_host,"
            " 'db_host': _slurm_db_host} | to_json }}")}},
    ], {"slurm_config_src": str(build / "slurm"), "ansible_os_family": "Debian", "ansible_service_mgr": "systemd"},
        "localhost ansible_connection=local\n[slurm_controller]\nlocalhost\n")
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    got = json.loads(facts.read_text())
    # the reference example: SlurmUser slurm, state on the shared /home, slurmdbd and its database on head01
    assert conf["StateSaveLocation"] == "/home/slurm/statesave" and dbd["DbdHost"] == "head01"
    for key in ("SlurmUser", "StateSaveLocation", "SlurmdSpoolDir", "SlurmctldPidFile"):
        assert got["conf"][key] == conf[key], key
    for key in ("DbdHost", "DbdBackupHost", "StorageHost", "StorageUser", "StorageLoc"):
        assert got["dbd"][key] == dbd[key], key
    assert got["user"] == conf["SlurmUser"] and got["dbd_host"] == dbd["DbdHost"]
    assert got["db_host"] == dbd["StorageHost"]
