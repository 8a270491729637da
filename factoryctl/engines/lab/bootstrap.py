"""Run a Debian bootstrapper into a directory: mmdebstrap (fast), else debootstrap.

The mirror comes from the machine's own apt sources when the machine runs the same
suite, so the lab fetches from wherever this machine is configured to (mirror, proxy,
snapshot); otherwise the bootstrapper's default applies.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

from .errors import LabError

_APT_SOURCES = [Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d")]


def machine_suite() -> str | None:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("VERSION_CODENAME="):
                return line.split("=", 1)[1].strip().strip('"') or None
    except OSError:
        pass
    return None


def machine_sources(suite: str) -> list[Path]:
    """The machine's apt source files that name suite, if the machine runs that suite."""
    if os.environ.get("FACTORYCTL_LAB_MIRROR"):
        return []
    if machine_suite() != suite:
        return []
    files: list[Path] = []
    for entry in _APT_SOURCES:
        if entry.is_file():
            files.append(entry)
        elif entry.is_dir():
            files += sorted(p for p in entry.iterdir() if p.suffix in (".list", ".sources"))
    return [f for f in files if suite in f.read_text(errors="replace")]


def _mirror_args(suite: str) -> list[str]:
    override = os.environ.get("FACTORYCTL_LAB_MIRROR")
    if override:
        return [override]
    return [str(p) for p in machine_sources(suite)]


def _apt_install(package: str) -> bool:
    if shutil.which("apt-get") is None:
        return False
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    res = subprocess.run(
        ["apt-get", "install", "-y", "-qq", package],
        env=env,
        capture_output=True,
        stdin=subprocess.DEVNULL,
    )
    if res.returncode != 0:  # stale package lists are the usual cause: refresh once
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
        res = subprocess.run(
            ["apt-get", "install", "-y", "-qq", package],
            env=env,
            capture_output=True,
            stdin=subprocess.DEVNULL,
        )
    return res.returncode == 0


def pick_builder() -> str:
    """mmdebstrap if present or installable, else debootstrap if present."""
    if shutil.which("mmdebstrap") or (_apt_install("mmdebstrap") and shutil.which("mmdebstrap")):
        return "mmdebstrap"
    if shutil.which("debootstrap"):
        return "debootstrap"
    raise LabError(
        "mmdebstrap missing and could not be installed",
        "apt-get install mmdebstrap (or debootstrap)",
    )


def _run(argv: list[str], log: Path, what: str) -> None:
    with open(log, "ab") as fh:
        fh.write(f"$ {shlex.join(argv)}\n".encode())
        fh.flush()
        res = subprocess.run(argv, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if res.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["?"]
        raise LabError(
            f"{what} failed (exit {res.returncode}: {tail[0]})",
            f"see {log}; the lab needs the Debian mirror reachable to build once",
        )


def _download_cmd(seed: list[str]) -> str:
    # Fetch into the rootfs' apt cache without installing: apt inside a host can then
    # install these offline, exercising the roles' real apt path.
    return "apt-get install -y -q --download-only --no-install-recommends " + " ".join(
        shlex.quote(p) for p in seed
    )


def mmdebstrap(suite: str, packages: list[str], seed: list[str], target: Path, log: Path) -> None:
    argv = [
        "mmdebstrap",
        "--mode=root",
        "--variant=minbase",
        "--format=directory",
        "--include=" + ",".join(packages),
        # Keep apt lists and cache: they are what makes offline apt work in hosts.
        "--skip=cleanup/apt",
        '--aptopt=APT::Install-Recommends "false"',
        # Drop the debs of what is already installed; keep only the seeded ones.
        '--customize-hook=chroot "$1" apt-get clean',
    ]
    if seed:
        argv.append(f'--customize-hook=chroot "$1" {_download_cmd(seed)}')
    argv += [suite, str(target), *_mirror_args(suite)]
    _run(argv, log, "mmdebstrap")


def debootstrap(suite: str, packages: list[str], seed: list[str], target: Path, log: Path) -> None:
    mirror = _mirror_args(suite)
    # debootstrap takes a single mirror URL; a sources file is for mmdebstrap only.
    url = [mirror[0]] if mirror and "://" in mirror[0] else []
    _run(
        [
            "debootstrap",
            "--variant=minbase",
            "--include=" + ",".join(packages),
            suite,
            str(target),
            *url,
        ],
        log,
        "debootstrap",
    )
    (target / "etc/apt/apt.conf.d").mkdir(parents=True, exist_ok=True)
    (target / "etc/apt/apt.conf.d/99factoryctl-norecommends").write_text(
        'APT::Install-Recommends "false";\n'
    )
    # debootstrap leaves no apt lists behind: fetch them, then the seed, inside the chroot.
    _run(["chroot", str(target), "apt-get", "update", "-q"], log, "apt-get update in rootfs")
    _run(["chroot", str(target), "apt-get", "clean"], log, "apt-get clean in rootfs")
    if seed:
        _run(
            ["chroot", str(target), "sh", "-c", _download_cmd(seed)],
            log,
            "seeding packages in rootfs",
        )


def build(
    builder: str, suite: str, packages: list[str], seed: list[str], target: Path, log: Path
) -> None:
    {"mmdebstrap": mmdebstrap, "debootstrap": debootstrap}[builder](
        suite, packages, seed, target, log
    )
