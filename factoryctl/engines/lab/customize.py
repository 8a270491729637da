"""Turn a fresh Debian tree into a lab host image. Runs once, before the tree is cached;
the image must never change afterwards, because running hosts use it as their lower layer.
Per-host files (hostname, keys, /etc/hosts, the init) go into each host's overlay instead.
"""

from __future__ import annotations

import os
from pathlib import Path

SSHD_CONF = """\
# factoryctl lab: key-only root login; the host key is written per host at start.
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
PrintMotd no
PrintLastLog no
PidFile /run/sshd.pid
MaxStartups 64:30:128
"""

# Package postinsts must not start daemons in a host; the roles start what they need.
POLICY_RC_D = "#!/bin/sh\nexit 101\n"


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        path.unlink()
    path.write_text(text)
    os.chmod(path, mode)


def customize(root: Path) -> None:
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()  # never share host keys between hosts
    _write(root / "etc/ssh/sshd_config.d/factoryctl-lab.conf", SSHD_CONF)
    _write(root / "usr/sbin/policy-rc.d", POLICY_RC_D, 0o755)
    # Hosts have no DNS and no route out; names resolve through /etc/hosts only.
    _write(root / "etc/resolv.conf", "# factoryctl lab: names come from /etc/hosts\n")
    _write(root / "etc/hostname", "lab\n")
    (root / "etc/machine-id").write_text("")  # each host writes its own
    for d in ("proc", "sys", "dev", "run", "tmp", "root/.ssh"):
        (root / d).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "root/.ssh", 0o700)
