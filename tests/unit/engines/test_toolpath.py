"""Tools come from factoryctl's own environment whatever PATH holds (engines/toolpath.py): the
README runs `.venv/bin/factoryctl` without activating the venv, so its bin is not on PATH."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from factoryctl.engines import toolpath
from factoryctl.engines.terraform import base_env

BIN = str(Path(os.path.abspath(sys.executable)).parent)
BARE = "/usr/bin:/bin"  # a PATH without the venv, as in a fresh shell


def test_child_env_puts_our_bin_first_once() -> None:
    env = toolpath.child_env({"PATH": f"/usr/bin:{BIN}:/bin", "X": "1"})
    assert env["PATH"] == f"{BIN}:/usr/bin:/bin" and env["X"] == "1"
    assert toolpath.child_env({})["PATH"].split(os.pathsep)[0] == BIN


def test_tools_are_found_beside_the_interpreter_whatever_path_holds(monkeypatch) -> None:
    monkeypatch.setenv("PATH", BARE)
    for name in ("ansible-inventory", "ansible-playbook", "pytest"):
        assert toolpath.tool(name) == os.path.join(BIN, name)
    assert toolpath.which("sh") in ("/usr/bin/sh", "/bin/sh")  # system tools: PATH, as before


def test_a_missing_tool_names_where_it_looked_and_the_fix(monkeypatch) -> None:
    monkeypatch.setenv("PATH", BARE)
    with pytest.raises(toolpath.ToolMissing, match=r"no-such-tool-x not found in .* nor on PATH: install"):
        toolpath.tool("no-such-tool-x")


def test_terraform_commands_get_our_bin_first(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", f"/usr/bin:{BIN}")
    assert base_env(tmp_path / "rc")["PATH"].split(os.pathsep)[0] == BIN  # local-exec: `factoryctl lab up`


def _bare_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME", "FACTORYCTL_FILE")}
    env["PATH"] = BARE
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[3])
    return env


@pytest.mark.ansible
def test_verify_reaches_hosts_through_ansible_inventory_without_the_venv_on_path(tmp_path: Path) -> None:
    """The issue's defect: the benchmark stage asks testinfra (in factoryctl's own process) for
    an ansible:// host; testinfra shells out to `ansible-inventory`, which was looked up on
    the user's PATH. Run in a fresh interpreter with PATH lacking the venv, through verify's
    own connection and executor (a host with ansible_connection=local: no SSH needed)."""
    inv = tmp_path / "inventory.json"
    inv.write_text(json.dumps({"all": {"hosts": {"head01": {"ansible_connection": "local"}}}}))
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from factoryctl.verify.run import Connection, ansible_env\n"
        "from factoryctl.verify.hostchecks import executor\n"
        f"conn = Connection('ssh', inventory=Path({str(inv)!r}), env=ansible_env(Path({str(tmp_path)!r})))\n"
        "out = executor(conn)('head01', 'echo reached')\n"
        "print(json.dumps(out.__dict__))\n"
    )
    p = subprocess.run([sys.executable, "-c", script], env=_bare_env(), capture_output=True, text=True, timeout=120,
                       cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["rc"] == 0 and out["stdout"].strip() == "reached" and not out.get("error"), out


@pytest.mark.ansible
def test_the_cli_by_absolute_path_runs_verify_through_ansible_without_the_venv_on_path(tmp_path: Path) -> None:
    """`factoryctl verify` as the README runs it (the venv's interpreter by absolute path, PATH
    without its bin): the host checks reach every host through the Ansible inventory
    (ansible-inventory, pytest, testinfra) with no check ending in an error. The hosts are this
    machine (ansible_connection=local in the connection file apply would write), so checks
    fail on what it lacks, but none may fail to run."""
    from factoryctl.session import check

    site = tmp_path / "factory.yaml"
    site.write_text((Path(__file__).resolve().parents[3] / "examples" / "reference" / "factory.yaml").read_text())
    c = check(site)
    conn = tmp_path / ".factory" / c.factory.metadata.name / "inventory" / "connection.yml"
    conn.parent.mkdir(parents=True)
    conn.write_text(json.dumps({"all": {"hosts": {h.name: {"ansible_connection": "local"} for h in c.site.hosts}}}))
    p = subprocess.run([sys.executable, "-c", "from factoryctl.cli import main; main()", "verify", str(site),
                        "--format", "json"], env=_bare_env(), capture_output=True, text=True, timeout=300,
                       cwd=tmp_path)
    assert p.returncode in (0, 1), p.stderr
    doc = json.loads(p.stdout)
    errors = [(r["host"], r["check"], r["detail"]) for r in doc["checks"] if r["status"] == "error"]
    assert doc["checks"] and errors == [] and doc["problems"] == [], (errors[:3], doc["problems"], p.stderr[-500:])
