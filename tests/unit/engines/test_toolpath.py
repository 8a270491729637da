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
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = BARE
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[3])
    p = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120,
                       cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["rc"] == 0 and out["stdout"].strip() == "reached" and not out.get("error"), out
