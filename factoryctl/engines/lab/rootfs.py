"""The cached host image: built once per package list, shared read-only by every lab.

A build goes to a temporary directory beside the cache and is renamed into place only
when complete, under a lock, so a crash or a concurrent build never leaves a half image
where a host could use it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from . import bootstrap
from .customize import SSHD_CONF, customize
from .errors import LabError
from .mounts import safe_rmtree

# Bump when customize() or the build recipe changes, so old caches are not reused.
RECIPE = 1
DEFAULT_CACHE = Path("/var/cache/factoryctl/lab")
MARKER = ".factoryctl-rootfs.json"

# Installed: what a host needs to boot and to be managed over SSH by Ansible.
BASE_PACKAGES = (
    "openssh-server",
    "python3",
    "python3-apt",
    "sudo",
    "iproute2",
    "iputils-ping",
    "procps",
    "ca-certificates",
)
# Downloaded only: what the roles install; apt inside a host installs them offline.
SEED_PACKAGES = (
    "munge",
    "slurm-wlm",
    "slurmctld",
    "slurmd",
    "slurm-client",
    "slurmdbd",
    "chrony",
    "nfs-common",
    "python3-venv",  # the inference role's engine virtual environments (engine_install)
    "mariadb-server",  # slurmdbd's database (slurm.accounting)
    "prometheus",  # the monitoring host's server
    "prometheus-node-exporter",
)


@dataclass(frozen=True)
class RootfsSpec:
    suite: str = "bookworm"
    packages: tuple[str, ...] = BASE_PACKAGES
    seed: tuple[str, ...] = field(default=SEED_PACKAGES)

    def digest(self) -> str:
        sources = "".join(
            p.read_text(errors="replace") for p in bootstrap.machine_sources(self.suite)
        )
        recipe = {
            "recipe": RECIPE,
            "suite": self.suite,
            "packages": sorted(self.packages),
            "seed": sorted(self.seed),
            "sshd": SSHD_CONF,
            "mirror": os.environ.get("FACTORYCTL_LAB_MIRROR", ""),
            "sources": sources,
        }
        return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def cache_dir() -> Path:
    return Path(os.environ.get("FACTORYCTL_LAB_CACHE", DEFAULT_CACHE))


@contextmanager
def locked(path: Path):
    """Hold an exclusive flock on path (created) for the block: one builder at a time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def cached(spec: RootfsSpec, cache: Path | None = None) -> Path | None:
    final = (cache or cache_dir()) / f"rootfs-{spec.digest()}"
    return final if (final / MARKER).is_file() else None


def _clear_leftovers(cache: Path) -> None:
    # Only called with the build lock held, so any .build-* dir is from a dead build.
    for stale in cache.glob(".build-*"):
        safe_rmtree(stale)


def ensure_rootfs(
    spec: RootfsSpec, cache: Path | None = None, log: Callable[[str], None] | None = None
) -> Path:
    """Path of a finished image for spec, building it first if the cache has none."""
    cache = cache or cache_dir()
    key = spec.digest()
    final = cache / f"rootfs-{key}"
    if (final / MARKER).is_file():
        return final
    with locked(cache / ".build.lock"):
        if (final / MARKER).is_file():  # another process built it while we waited
            return final
        _clear_leftovers(cache)
        if final.exists():  # no marker: not ours to trust
            safe_rmtree(final)
        builder = bootstrap.pick_builder()
        if log:
            log(f"building the lab host image with {builder} (once per package list)")
        tmp = cache / f".build-{key}-{os.getpid()}"
        buildlog = cache / f"build-{key}.log"
        buildlog.unlink(missing_ok=True)
        started = time.monotonic()
        try:
            bootstrap.build(
                builder, spec.suite, list(spec.packages), list(spec.seed), tmp, buildlog
            )
            customize(tmp)
            meta = {
                "builder": builder,
                "suite": spec.suite,
                "packages": sorted(spec.packages),
                "seed": sorted(spec.seed),
                "recipe": RECIPE,
                "build_seconds": round(time.monotonic() - started, 1),
            }
            (tmp / MARKER).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
            os.rename(tmp, final)
        except OSError as exc:
            safe_rmtree(tmp)
            raise LabError(f"building the host image failed ({exc})", f"see {buildlog}") from None
        except BaseException:  # LabError, Ctrl-C: never leave a half image behind
            safe_rmtree(tmp)
            raise
        if log:
            log(f"host image ready in {time.monotonic() - started:.0f} s: {final}")
        return final
