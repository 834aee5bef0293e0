"""Outputs that are either complete or absent: written under a temporary name in the same directory,
flushed to disk, then renamed into place (a rename within one filesystem is atomic).

A kill (even SIGKILL), a full disk or an exception therefore never leaves a truncated file under a final
name; at worst a hidden `.NAME.tmp-PID` remains, which `remove_stale` deletes on a later run once its
process is gone. Files get the permissions the umask gives (as `open` would), not mkstemp's 0600.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from fcnkit.errors import UserError, os_error_line


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def tmp_name(path: Path) -> Path:
    """The hidden temporary sibling this process uses for `path`."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def remove_stale(parent: Path, prefix: str) -> None:
    """Delete `parent/PREFIX<pid>` leftovers of runs whose process no longer exists."""
    if not parent.is_dir():
        return
    for p in parent.iterdir():
        if p.name.startswith(prefix):
            tail = p.name[len(prefix):]
            if tail.isdigit() and int(tail) != os.getpid() and not _pid_alive(int(tail)):
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)


def fsync_path(path: Path) -> None:
    """Flush a file's (or a directory's) contents to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write to (by any means); on success it is flushed and
    renamed to `path`, on any exception (Ctrl-C included) it is removed."""
    path = Path(path)
    tmp = tmp_name(path)
    tmp.unlink(missing_ok=True)
    try:
        yield tmp
        if not tmp.is_file():
            raise FileNotFoundError(f"{path}: nothing was written")
        umask_mode(tmp)
        fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def replace_path(src: Path, dst: Path) -> None:
    """Move `src` onto `dst`, replacing an existing `dst` (file or folder) only at the very end."""
    if dst.exists() or dst.is_symlink():
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        dst.rename(old)
        try:
            src.rename(dst)
        except BaseException:
            old.rename(dst)
            raise
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)
    else:
        src.rename(dst)


def umask_mode(path: Path) -> None:
    """Give a path the mode `open`/`mkdir` would have given it (mkdtemp and some writers use 0600/0700)."""
    os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~_umask())


def ensure_writable(path: str | os.PathLike, *, folder: bool = False, flag: str = "") -> Path:
    """Check, before any work is done, that an output can be written: a file's folder (or the folder
    itself, created if missing) exists and accepts a file. Raises UserError naming the path and the flag."""
    path = Path(path)
    what = f"{flag} {path}" if flag else str(path)
    if folder:
        if path.exists() and not path.is_dir():
            raise UserError(f"{what}: exists and is not a folder; choose another path")
        target = path
    else:
        if path.is_dir():
            raise UserError(f"{what}: is a folder; give a file name")
        target = path.parent
    try:
        target.mkdir(parents=True, exist_ok=True)
        probe = target / f".write-test-{os.getpid()}"
        with open(probe, "wb") as fh:
            fh.write(b"x")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"{what}: cannot be written ({os_error_line(exc)})") from None
    return path
