"""What the machine must offer before the lab touches anything, as one-line errors."""

from __future__ import annotations

import os
import shutil
import subprocess

from .errors import LabError

# tool -> Debian package that provides it
HOST_TOOLS = {
    "ip": "iproute2",
    "nsenter": "util-linux",
    "unshare": "util-linux",
    "mount": "mount",
    "ssh-keygen": "openssh-client",
}


def require_root(action: str) -> None:
    if os.geteuid() != 0:
        raise LabError(f"lab {action} needs root", "run it as root (e.g. with sudo)")


def require_tools(tools: dict[str, str] | None = None) -> None:
    missing = {t: p for t, p in (tools or HOST_TOOLS).items() if shutil.which(t) is None}
    if missing:
        pkgs = " ".join(sorted(set(missing.values())))
        raise LabError(f"{', '.join(sorted(missing))} missing", f"apt-get install {pkgs}")


def namespace_support() -> str | None:
    """None when this machine can run lab hosts, else why not (for skips and errors)."""
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("ip", "unshare", "nsenter"):
        if shutil.which(tool) is None:
            return f"{tool} missing (apt-get install {HOST_TOOLS[tool]})"
    probe = ["unshare", "--net", "--mount", "--uts", "--ipc", "--pid", "--fork", "true"]
    res = subprocess.run(probe, capture_output=True, text=True)
    if res.returncode != 0:
        return f"namespaces unavailable ({res.stderr.strip() or 'unshare failed'})"
    if subprocess.run(["ip", "netns", "list"], capture_output=True).returncode != 0:
        return "ip netns unavailable"
    return None
