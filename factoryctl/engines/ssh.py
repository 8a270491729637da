"""Running commands on a site's hosts over SSH, outside Ansible: the lab's ssh_config on a lab
site, else the connection inventory apply wrote (address, user, key, ssh options). Used by
the checks after `up` and by drift's host probe."""

from __future__ import annotations

import shlex
import subprocess

from ..workspace import Workspace
from .inventory import read_connection
from .lab import site as labsite


class Remote:
    """Runs commands on the site's hosts: the lab's ssh_config on a lab site, else the
    connection inventory apply wrote (address, user, key, ssh options)."""

    def __init__(self, checked, ws: Workspace):
        self.lab = labsite.lab_of(checked, ws) if labsite.is_lab(checked) else None
        self.hosts = read_connection(ws.connection_inventory) if self.lab is None else {}

    def argv(self, host: str, command: list[str]) -> list[str]:
        if self.lab is not None:
            return self.lab.ssh_argv(host, command)
        v = self.hosts.get(host) or {}
        argv = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
        if v.get("ansible_ssh_private_key_file"):
            argv += ["-i", v["ansible_ssh_private_key_file"]]
        argv += shlex.split(v.get("ansible_ssh_common_args", ""))
        user = v.get("ansible_user")
        dest = v.get("ansible_host", host)
        return [*argv, "--", f"{user}@{dest}" if user else dest, shlex.join(command)]

    def run(self, host: str, command: list[str], input: str | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(self.argv(host, command), capture_output=True, text=True, input=input,
                                  timeout=timeout, stdin=None if input is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(command, 124, "", f"timed out after {timeout:.0f} s")
