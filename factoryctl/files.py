"""Read a file the user named, bounded: a regular file of at most `limit` bytes, or a clear refusal.

`/dev/zero` would be read until memory runs out and a FIFO would block forever, so the type and
size are checked before reading: stat first, then open with O_NONBLOCK (open(2): a FIFO opened for
reading blocks until a writer appears, unless O_NONBLOCK) and fstat the open descriptor again, in
case the path was swapped in between. The read itself stops at limit + 1 bytes, in case the file
grew after fstat.
"""

from __future__ import annotations

import os
import stat
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
