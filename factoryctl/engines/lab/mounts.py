"""Mount table queries, overlay mounts, and a directory removal that never crosses a mount."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from .errors import LabError

_OCTAL = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    # /proc/self/mountinfo escapes space, tab, newline and backslash as octal (\040).
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def mount_points() -> list[str]:
    with open("/proc/self/mountinfo") as fh:
        return [_unescape(line.split()[4]) for line in fh if line.strip()]


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below path, deepest first (the order to unmount them in)."""
    base = str(path.resolve()) if path.exists() else str(path)
    found = {m for m in mount_points() if m == base or m.startswith(base.rstrip("/") + "/")}
    return sorted(found, key=lambda m: m.count("/"), reverse=True)


def is_mounted(path: Path) -> bool:
    return str(path) in set(mount_points())


def mount_overlay(lower: Path, upper: Path, work: Path, merged: Path) -> None:
    for d in (upper, work, merged):
        d.mkdir(parents=True, exist_ok=True)
    opts = f"lowerdir={lower},upperdir={upper},workdir={work}"
    res = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", opts, str(merged)],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        raise LabError(
            f"overlay mount on {merged} failed ({res.stderr.strip()})",
            "the lab needs overlayfs: modprobe overlay, or use a kernel with it",
        )


def unmount_all(path: Path) -> None:
    """Unmount everything at or below path; lazily when busy, so teardown always proceeds."""
    for mp in mounts_under(path):
        if subprocess.run(["umount", mp], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", mp], capture_output=True)
    left = mounts_under(path)
    if left:
        raise LabError(f"could not unmount {left[0]}", "stop what uses it, then run down again")


def safe_rmtree(path: Path) -> None:
    # A crashed build or host may leave /dev, /proc or an overlay mounted inside; rmtree
    # would then delete through them. Unmount first, and refuse if anything stays.
    if not path.exists():
        return
    unmount_all(path)
    shutil.rmtree(path)
