"""The slurm role's tasks run by ansible-playbook on localhost against a rendered build:
the preflight reads the rendered slurm.conf/slurmdbd.conf into the facts the role uses, and
StateSaveLocation is created for SlurmUser even where root may not write (NFS root_squash)."""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
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


# What root_squash leaves of root on the export: uid 0 without the capabilities that let it write
# into folders it does not own or change their modes; setuid stays, so su to SlurmUser still
# works, and chown and read/search stay, which Ansible needs to hand its module files to an
# unprivileged become user over su.
SQUASHED = ["setpriv", "--bounding-set", "-dac_override,-fowner", "--"]
SLURM_USER = "daemon"  # a system user with a group of its name, as slurm's packages create it


def _state_block() -> dict:
    (block,) = [t for t in yaml.safe_load((ROLE / "tasks" / "configure.yml").read_text())
                if t["name"] == "Create StateSaveLocation for SlurmUser"]
    return block


def _state_run(tmp_path: Path, export: Path, squashed: bool) -> subprocess.CompletedProcess:
    (tmp_path / "pb.yml").write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": [_state_block()]}]))
    (tmp_path / "vars.json").write_text(json.dumps({
        # the system's python: SlurmUser may not reach the test's own interpreter (file needs only the stdlib)
        "ansible_python_interpreter": shutil.which("python3", path="/usr/bin:/bin") or sys.executable, "_slurm_user": SLURM_USER, "_slurm_is_controller": True,
        "_slurm_conf": {"StateSaveLocation": str(export / "statesave")}, "slurm_state_save_location": "/var/spool/slurmctld",
        "ansible_become_method": "ansible.builtin.su", "ansible_become_flags": "-s /bin/sh"}))
    cmd = [str(BIN / "ansible-playbook"), "-c", "local", "-i", "localhost,", "-e", f"@{tmp_path / 'vars.json'}",
           str(tmp_path / "pb.yml")]
    return subprocess.run((SQUASHED if squashed else []) + cmd, env={**ansible_env(tmp_path), "ANSIBLE_SYSTEM_TMPDIRS": str(export.parent / "tmp")},
                          capture_output=True, text=True, timeout=180)


@pytest.fixture
def export():
    """A folder SlurmUser owns, as an NFS export's folder for Slurm would be, on a path SlurmUser
    can reach; beside it the temporary folder Ansible hands its module files to SlurmUser in."""
    base = Path(tempfile.mkdtemp(prefix="factoryctl-export-", dir="/tmp"))
    base.chmod(0o755)
    (base / "export").mkdir()
    shutil.chown(base / "export", SLURM_USER, SLURM_USER)
    (base / "tmp").mkdir()
    (base / "tmp").chmod(0o1777)
    yield base / "export"
    shutil.rmtree(base)


def _needs_root_and_su():
    if os.geteuid() != 0 or not shutil.which("setpriv") or not shutil.which("su"):
        pytest.skip("needs root, setpriv and su (root_squash is simulated by dropping root's file capabilities)")


@pytest.mark.root
@pytest.mark.ansible
def test_state_save_location_is_created_by_slurm_user_under_root_squash(tmp_path, export):
    """The old role created StateSaveLocation as root only: with root squashed the play failed."""
    _needs_root_and_su()
    r = _state_run(tmp_path, export, squashed=True)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "rescued=1" in r.stdout  # root's attempt failed, SlurmUser's did it
    st = (export / "statesave").stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (pwd.getpwnam(SLURM_USER).pw_uid, 0o700)


@pytest.mark.root
@pytest.mark.ansible
def test_state_save_location_as_root_where_root_may_write(tmp_path, export):
    _needs_root_and_su()
    r = _state_run(tmp_path, export, squashed=False)
    assert r.returncode == 0 and "rescued=0" in r.stdout, r.stdout[-4000:]
    st = (export / "statesave").stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (pwd.getpwnam(SLURM_USER).pw_uid, grp.getgrnam(SLURM_USER).gr_gid, 0o700)


@pytest.mark.root
@pytest.mark.ansible
def test_state_save_location_nobody_can_create_names_path_and_fix(tmp_path, export):
    _needs_root_and_su()
    shutil.chown(export, "bin", "bin")  # another user: neither squashed root nor SlurmUser may write there
    r = _state_run(tmp_path, export, squashed=True)
    assert r.returncode != 0
    assert f"StateSaveLocation {export / 'statesave'}" in r.stdout and "mode 0700" in r.stdout, r.stdout[-3000:]
    assert not (export / "statesave").exists()


@pytest.mark.ansible
def test_database_password_reaches_mariadb_as_written(tmp_path):
    """The SQL the accounting tasks feed mysql, rendered by ansible-playbook: the password's
    backslash and quote come back unchanged under the session's NO_BACKSLASH_ESCAPES. The old
    replace('\\\\', '\\\\\\\\') left a lone backslash as it was on ansible-core 2.19, and MariaDB read
    `\\b` as a backspace: the database user's password differed from slurmdbd.conf's StoragePass."""
    import re

    password = "pa\\b'ss\\\\w{o}rd"
    (task,) = [t for t in yaml.safe_load((ROLE / "tasks" / "accounting.yml").read_text())
               if t["name"] == "Create the accounting database and its users"]
    sql = tmp_path / "in.sql"
    r = _playbook(tmp_path, [{"ansible.builtin.copy": {"dest": str(sql), "mode": "0600",
                                                       "content": task["ansible.builtin.command"]["stdin"]}}],
                  {"_slurm_db_name": "slurm_acct_db", "_slurm_db_user": "slurm", "_slurm_db_clients": ["localhost"],
                   "__slurm_db_users": {"stdout_lines": []}, "slurm_dbd_storage_password": password},
                  "localhost ansible_connection=local\n")
    assert r.returncode == 0, r.stdout[-3000:]
    text = sql.read_text()
    assert text.splitlines()[0] == ("SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), "
                                    "'NO_BACKSLASH_ESCAPES');")
    (literal,) = re.findall(r"IDENTIFIED BY '((?:[^']|'')*)';", text)
    assert literal.replace("''", "'") == password  # NO_BACKSLASH_ESCAPES: only '' is an escape
