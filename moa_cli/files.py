"""Files moa reads and writes itself: private directories, small regular files, atomic writes.

Reading: only a regular file is read, and only up to a size cap, so `MOA_CONFIG=/dev/zero` or a
FIFO is one clear error instead of a read that never ends. Writing: a temporary file in the same
directory, flushed to disk, then renamed over the target, so a full disk or a crash leaves the old
file (or none), never a truncated one. Every failure is one UsageError line naming the file.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from .errors import UsageError

SMALL_FILE_CAP = 1 << 20  # config, .env and key files are a few kilobytes; 1 MiB is plenty


def make_private_dir(path: Path) -> Path:
    """Create `path` (and its parents) if needed; the directory itself is created 0700 whatever
    the umask, since it holds transcripts and keys."""
    try:
        if not path.is_dir():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                path.mkdir(mode=0o700)
                os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask; this is not
            except FileExistsError:
                pass
    except FileExistsError:  # mkdir(exist_ok=True) says this when a file is in the way
        raise UsageError(f"cannot create the directory {path}: a file is in the way") from None
    except OSError as error:
        raise UsageError(f"cannot create the directory {path}: {_reason(error)}") from None
    return path


def read_small_file(path: Path, what: str, cap: int = SMALL_FILE_CAP) -> bytes:
    """The bytes of a regular file of at most `cap` bytes."""
    try:
        info = os.stat(path)  # stat never blocks, unlike opening a FIFO
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"{what} {path} is not a regular file")
        if info.st_size > cap:
            raise UsageError(f"{what} {path} is too large ({info.st_size} bytes; at most {cap})")
        # O_NONBLOCK: should the file be swapped for a FIFO after the check, open still returns.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(cap + 1)
    except OSError as error:
        raise UsageError(f"cannot read {what} {path}: {_reason(error)}") from None
    if len(data) > cap:
        raise UsageError(f"{what} {path} is too large (at most {cap} bytes)")
    return data


def write_atomic(path: Path, text: str, *, mode: int = 0o600, overwrite: bool = True) -> None:
    """Write `text` to `path` all at once. With `overwrite=False` an existing file is never
    replaced, not even by a race (the finished file is hard-linked into place)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.unlink(missing_ok=True)  # left by a crashed run that had our process id
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            os.fchmod(fd, mode)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            if overwrite:
                os.replace(tmp, path)
            else:
                _link_new(tmp, path)
        finally:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
    except _Exists:
        raise FileExistsError(errno.EEXIST, "file exists", str(path)) from None
    except OSError as error:
        raise UsageError(f"cannot write {path}: {_reason(error)}") from None


class _Exists(Exception):
    pass


def _link_new(tmp: Path, path: Path) -> None:
    """Put `tmp` at `path` only if nothing is there: a hard link fails rather than replace."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise _Exists from None
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        if path.exists():  # a file system without hard links: the next best check
            raise _Exists from None
        os.replace(tmp, path)


def _reason(error: OSError) -> str:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full"
    return error.strerror or str(error)
