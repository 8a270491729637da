"""Files in and out: read a file the user named, bounded; write a file atomically.

Reading: a regular file of at most `limit` bytes, or a clear refusal.

`/dev/zero` would be read until memory runs out and a FIFO would block forever, so the type and
size are checked before reading: stat first, then open with O_NONBLOCK (open(2): a FIFO opened for
reading blocks until a writer appears, unless O_NONBLOCK) and fstat the open descriptor again, in
case the path was swapped in between. The read itself stops at limit + 1 bytes, in case the file
grew after fstat.

Writing: atomic_write is the one writer of whole files (workspace records, reports, plans,
inventories, the lab's state, keys and host files): a temporary file beside the target, fsync,
chmod, rename, so readers see the old content or the new, never half of it. Inside a workspace
(below a `.factory` folder) no folder on the way may be a symbolic link.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import tempfile
import time
from pathlib import Path

from .errors import FactoryctlError


class ReadRefused(FactoryctlError, OSError):
    """The path and why it cannot be read; str() is the whole message. `reason` is one of
    missing, unreadable, not-regular, too-large (for a caller's hint). An OSError, so callers
    that already handle unreadable files handle these too."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason

    def __str__(self) -> str:
        return str(self.args[0])


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _refuse_size(name: str, size: int, limit: int) -> None:
    if size > limit:
        raise ReadRefused(f"cannot read {name}: too large: {size:,} bytes, the limit is {limit:,}", "too-large")


def read_bytes(path: str | Path, limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; ReadRefused otherwise (missing,
    unreadable, not a regular file, too large)."""
    name = str(path)
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise ReadRefused(f"cannot read {name}: it is {_kind(st.st_mode)}, not a regular file", "not-regular")
        _refuse_size(name, st.st_size, limit)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except ReadRefused:
        raise
    except FileNotFoundError as e:
        raise ReadRefused(f"cannot read {name}: {e.strerror}", "missing") from None
    except OSError as e:
        raise ReadRefused(f"cannot read {name}: {e.strerror}", "unreadable") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ReadRefused(f"cannot read {name}: it is {_kind(st.st_mode)}, not a regular file", "not-regular")
        _refuse_size(name, st.st_size, limit)
        # O_NONBLOCK has no effect on regular files (open(2)), so this reads to the end.
        with os.fdopen(fd, "rb", closefd=True) as fh:
            fd = -1
            data = fh.read(limit + 1)
    except ReadRefused:
        raise
    except OSError as e:
        raise ReadRefused(f"cannot read {name}: {e.strerror}", "unreadable") from None
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > limit:
        raise ReadRefused(f"cannot read {name}: too large: more than {limit:,} bytes (it grew while being read)", "too-large")
    return data


def read_text(path: str | Path, limit: int) -> str:
    """read_bytes decoded as UTF-8, undecodable bytes replaced (for logs and result files)."""
    return read_bytes(path, limit).decode("utf-8", errors="replace")


# --- writing -------------------------------------------------------------------------------
WORKSPACES = ".factory"  # the folder beside a factory file that holds its workspaces


class WorkspaceError(FactoryctlError):
    """The workspace cannot be used safely: a path in it is a link (or not what it should
    be), or it belongs to another factory file."""


def refuse_links(path: Path, below: Path) -> Path:
    """`path`, after checking that neither it nor a folder between `below` (not included) and
    it is a symbolic link; the part that does not exist yet is not checked (nothing to follow).
    Paths are compared as written, never resolved: resolving is what following a link means."""
    path, below = Path(os.path.abspath(path)), Path(os.path.abspath(below))
    p = below
    for part in path.relative_to(below).parts:
        p = p / part
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            break
        if stat.S_ISLNK(st.st_mode):
            raise WorkspaceError(f"{p} is a symbolic link; factoryctl does not read or write its workspace "
                                 f"through links: remove the link (and move what it pointed to there, if "
                                 f"that was a workspace of factoryctl's)")
    return path


def refuse_workspace_links(path: Path) -> None:
    """For a path inside a workspace (below a `.factory` folder): no link from `.factory` down."""
    parts = Path(os.path.abspath(path)).parts
    if WORKSPACES in parts:
        top = len(parts) - 1 - parts[::-1].index(WORKSPACES)
        refuse_links(Path(*parts), Path(*parts[:top]))


def atomic_write(path: Path, data: bytes | str, mode: int = 0o644) -> Path:
    """Write a file so that readers see the old content or the new, never half of it. Inside
    a workspace, a folder on the way that is a link is refused (the temporary file is made
    with O_EXCL and os.replace swaps a link itself, so only the folders could lead elsewhere)."""
    path = Path(path)
    refuse_workspace_links(path.parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def flock_within(fd, wait: float) -> bool:
    """Take an exclusive flock(2) on `fd` (a descriptor or a file object), retrying for up to
    `wait` seconds; False when another process still holds it. The kernel drops a flock when
    its holder dies, so a crashed command never leaves one behind (flock(2))."""
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
