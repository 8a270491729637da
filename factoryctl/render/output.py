"""Which output folder a render may replace, and what of it is its own.

A render replaces only a tree it owns: one whose manifest.json it wrote (a `generator:
factoryctl ...` key and the list of its files). Into a folder that holds anything else it
refuses to write; in a tree of its own it replaces only the files its manifest lists, and
keeps what others left beside them (Terraform's `.terraform.lock.hcl`, a `.git/`, a README).
Like Terraform, which never deletes a file it did not create, this never removes a file that
no manifest of ours names.

Ownership is decided before anything is read: a foreign folder is never walked, and only
the files the manifest names are read back, each with a bound.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# read_owned is re-exported: callers read a render's own files through this module.
from ..files import flock_within
from ..manifest import MANIFEST, folders_of, owned_files, read_owned  # noqa: F401
from .errors import UnsafeOutput

# Names a render (and the workspace's other swaps) give their scratch trees beside the target.
SCRATCH = (".new-", ".old-")
LOCK_WAIT_S = 60.0

_FIX = "pass an empty or new folder, or one factoryctl rendered"


def claim(out: Path) -> set[str]:
    """What of `out` a render may replace: the files of its own earlier render; nothing for a
    folder that is new or empty. Raises UnsafeOutput for anything else."""
    out = Path(out)
    if out.is_symlink():
        raise UnsafeOutput(f"{out} is a symbolic link; render does not write through links: "
                           f"pass the folder it points to, or {_FIX}")
    if not out.exists():
        return set()
    if not out.is_dir():
        raise UnsafeOutput(f"{out} exists and is not a folder: {_FIX}")
    owned = owned_files(out)
    if owned is not None:
        return owned
    with os.scandir(out) as it:
        if next(it, None) is not None:
            raise UnsafeOutput(f"{out} is not empty and was not rendered by factoryctl (it has no "
                               f"{MANIFEST} of ours), so render will not replace it: {_FIX}")
    return set()


def carry_foreign(old: Path, new: Path, owned: set[str]) -> None:
    """Give the new tree every entry of the old one that is not ours, as hard links (the old
    names go with the old tree, the data stays): engines' dot-files, a README, a `.git/`.
    A folder of ours that the new render no longer has goes whole, with what engines left in
    it: a removed unit's folder must not linger as a stack of its own. Raises UnsafeOutput,
    before anything is swapped, when a file of someone else sits where the render writes."""
    dirs = folders_of(owned)

    def walk(src: Path, dst: Path, prefix: str) -> None:
        with os.scandir(src) as it:
            entries = list(it)
        for entry in entries:
            rel = prefix + entry.name
            if rel in owned:
                continue
            target = dst / entry.name
            is_dir = entry.is_dir(follow_symlinks=False)
            if os.path.lexists(target):
                if is_dir and target.is_dir() and not target.is_symlink():
                    walk(Path(entry.path), target, rel + "/")
                    continue
                raise UnsafeOutput(f"{old / rel} is not factoryctl's, and this render writes {rel}: "
                                   "move it away, or render into another folder")
            if is_dir and rel in dirs:
                continue  # a folder of ours the new render dropped
            _link(Path(entry.path), target)

    walk(Path(old), Path(new), "")


def _link(src: Path, dst: Path) -> None:
    if src.is_dir() and not src.is_symlink():
        dst.mkdir()
        for child in sorted(os.listdir(src)):
            _link(src / child, dst / child)
        shutil.copystat(src, dst)
        return
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:  # another file system under the tree, or links refused: copy instead
        if src.is_symlink():
            os.symlink(os.readlink(src), dst)
        else:
            shutil.copy2(src, dst)


def clean_leftovers(out: Path) -> list[Path]:
    """Remove the scratch trees of an earlier render of `out` that was killed mid-way
    (`.<name>.new-*`, `.<name>.old-*` beside it). Call only while holding output_lock:
    then no live render is writing them."""
    out = Path(out)
    removed = []
    prefixes = tuple(f".{out.name}{s}" for s in SCRATCH)
    if not out.parent.is_dir():
        return removed
    for entry in os.scandir(out.parent):
        if entry.name.startswith(prefixes):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
            removed.append(Path(entry.path))
    return removed


@contextmanager
def output_lock(parent: Path, wait: float = LOCK_WAIT_S) -> Iterator[None]:
    """Hold an exclusive flock(2) on the folder a render swaps its tree in: two renders into
    the same place take turns, and the one holding it knows any scratch tree there is dead.
    A lock on the folder itself leaves no file behind in a user's folder."""
    fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if not flock_within(fd, wait):
            raise UnsafeOutput(f"another render is writing into {parent}; try again when it has finished")
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def refuse_target(out: Path, factory_file: Path) -> None:
    """Refuse an --out that is a folder of the user's own: the factory file's folder or one
    above it, the current folder or one above it, or factoryctl's workspace (.factory/)."""
    real = Path(out).resolve()
    folder = Path(factory_file).resolve().parent
    for place, what in ((folder, f"the folder of {Path(factory_file).name}"),
                        (Path.cwd().resolve(), "the current folder")):
        if real == place or real in place.parents:
            raise UnsafeOutput(f"--out {out} is {what} or a folder above it; render replaces the "
                               f"whole output folder, so it needs one of its own: {_FIX} "
                               f"(e.g. --out {folder / 'build'})")
    workspace = folder / ".factory"
    if real == workspace or workspace in real.parents:
        raise UnsafeOutput(f"--out {out} is inside factoryctl's workspace {workspace}; leave out --out "
                           "to render into .factory/<name>/build, or pass a folder outside it")
