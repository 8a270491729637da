"""The tools factoryctl starts come from factoryctl's own environment, whatever PATH holds.

factoryctl is installed into a virtual environment and run as `.venv/bin/factoryctl`
without activating it (the README's way), so the venv's bin folder is often not on PATH.
The Python tools it starts (ansible-playbook, ansible-inventory, which testinfra's Ansible
backend shells out to, pytest, ansible-galaxy) were installed beside this interpreter, and
a different copy found on PATH (a distribution's ansible) may not match the pinned one.
So every child process gets that folder first on its PATH (`child_env`), and a tool is
looked up there first (`tool`, `which`). System tools (ssh, ip, apt-get) are found on
PATH as before: the venv holds none of them.

The folder is the parent of `sys.executable` as given, not resolved: a venv's python is a
link to the base interpreter, and resolving it would leave the venv (PEP 405: the
environment is recognised by the pyvenv.cfg beside or above the executable as invoked).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from ..errors import EngineFailure


class ToolMissing(EngineFailure):
    """A tool factoryctl needs is neither beside its interpreter nor on PATH."""


def bindir() -> Path:
    """The folder of this interpreter: the venv's bin, where its console scripts live."""
    return Path(os.path.abspath(sys.executable)).parent


def child_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of `env` (default os.environ) with factoryctl's bin folder first on PATH, once."""
    out = dict(os.environ if env is None else env)
    first = str(bindir())
    rest = [p for p in out.get("PATH", os.defpath).split(os.pathsep) if p and p != first]
    out["PATH"] = os.pathsep.join([first, *rest])
    return out


def use_own_tools() -> None:
    """Put the bin folder first on this process's PATH: for libraries that start tools from
    inside this process with its environment (testinfra's Ansible backend runs
    `ansible-inventory` through the shell with os.environ; it takes no env argument)."""
    os.environ["PATH"] = child_env()["PATH"]


def which(name: str) -> str | None:
    """The executable `name`: beside this interpreter first, then on PATH; a path is taken as
    given when it is executable."""
    if os.sep in name:
        return name if os.path.isfile(name) and os.access(name, os.X_OK) else None
    return shutil.which(name, path=child_env()["PATH"])


def tool(name: str) -> str:
    """The absolute path of the tool `name` (ansible-playbook, pytest, ...), beside this
    interpreter first; ToolMissing saying where it looked and how to install it."""
    found = which(name)
    if found is None:
        raise ToolMissing(f"{name} not found in {bindir()} (beside {sys.executable}) nor on PATH: "
                          f"install factoryctl with its dependencies into that environment "
                          f"({bindir() / 'pip'} install factoryctl), or put {name} on PATH")
    return found
