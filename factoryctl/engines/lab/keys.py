"""SSH keys: one client key pair per lab, one host key per lab host.

Host keys are made here, not inside the hosts, so the lab can write a known_hosts file
and ssh can check host keys for real instead of turning checking off.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ...files import atomic_write
from .errors import LabError


def _keygen(path: Path, comment: str) -> None:
    if shutil.which("ssh-keygen") is None:
        raise LabError("ssh-keygen missing", "apt-get install openssh-client")
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    scratch = Path(tempfile.mkdtemp(prefix=f".{path.name}.keygen-", dir=path.parent))  # 0700
    try:
        tmp = scratch / "key"
        res = subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(tmp)],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        if res.returncode != 0:
            raise LabError(f"ssh-keygen failed for {path} ({res.stderr.strip()})")
        # Public half first: a private key on disk always has its public key beside it.
        atomic_write(path.with_name(path.name + ".pub"), tmp.with_name("key.pub").read_bytes(), 0o644)
        atomic_write(path, tmp.read_bytes(), 0o600)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def ensure_key(path: Path, comment: str) -> Path:
    """Create an ed25519 key pair at path (0600) and path.pub unless both exist."""
    if not (path.exists() and path.with_name(path.name + ".pub").exists()):
        _keygen(path, comment)
    os.chmod(path, 0o600)
    return path


def public_key(path: Path) -> str:
    return path.with_name(path.name + ".pub").read_text().strip()
