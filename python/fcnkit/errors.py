"""One error type for everything a user can fix, and the CLI wrapper that keeps every command's promise:

- bad input or a missing prerequisite (`UserError`) and operating-system refusals (a read-only or full
  disk, a path that is a file where a folder is needed: `OSError`) are one line `prog: error: ...` on
  stderr and exit status 2, never a traceback;
- Ctrl-C (SIGINT) and SIGTERM (what `docker stop` and most supervisors send) both interrupt the command
  the same way: partial outputs are removed by the code that was writing them, one line says so, and the
  exit status is 128 + the signal number (130, 143).
"""

from __future__ import annotations

import errno
import functools
import os
import re
import signal
import sys


class UserError(Exception):
    """Bad input or a missing prerequisite: printed as one line, exit status 2.

    `exit_now`: after the line, leave with os._exit (no interpreter teardown), for errors after which a native
    library's destructors would crash (Caffe nets whose blobs went NaN corrupt the heap on the way out)."""

    exit_now = False


class Interrupted(KeyboardInterrupt):
    """SIGTERM, delivered as a KeyboardInterrupt so every `except KeyboardInterrupt` / `finally` cleans up."""

    signum = signal.SIGTERM


_HINTS = {
    errno.ENOSPC: "free some space or write elsewhere",
    errno.EDQUOT: "free some space or write elsewhere",
    errno.EROFS: "the filesystem is read-only; write elsewhere",
    errno.EACCES: "check the permissions or write elsewhere",
    errno.EPERM: "check the permissions or write elsewhere",
    errno.ENOTDIR: "a path component is a file, not a folder; choose another path",
    errno.EISDIR: "it is a folder; give a file name",
    errno.ENOENT: "check the path",
    errno.EEXIST: "remove it or choose another path",
    errno.ENOTEMPTY: "remove it or choose another path",
}


def silent(*_args, **_kwargs) -> None:
    """The log of a process that does not speak: a torchrun rank other than 0 (rank 0 speaks for the job)."""
def os_error_from(exc: Exception, path) -> OSError | None:
    """The OSError a native writer reported as text ("... (os error 28)": safetensors' Rust I/O errors), with
    `path`, or None when the text names none."""
    m = re.search(r"os error (\d+)", str(exc))
    if m is None:
        return None
    code = int(m.group(1))
    return OSError(code, os.strerror(code), str(path))


def os_error_line(exc: OSError) -> str:
    """`FILE: reason; what to do` for an OSError, in the words of the operating system."""
    where = exc.filename if exc.filename is not None else ""
    if exc.filename2 is not None:
        where = f"{where} -> {exc.filename2}"
    reason = exc.strerror or str(exc)
    hint = _HINTS.get(exc.errno)
    return (f"{where}: " if where else "") + reason + (f"; {hint}" if hint else "")


def _raise_interrupted(signum, frame):
    raise Interrupted()


def cli_entry(prog: str):
    """Decorate a `main(argv) -> int` so UserError/OSError become `prog: error: ...` and exit status 2, and
    Ctrl-C or SIGTERM become `prog: interrupted` and exit 130/143 (after the command's own cleanup)."""

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(argv=None) -> int:
            try:
                old = signal.signal(signal.SIGTERM, _raise_interrupted)
            except ValueError:  # not the main thread (e.g. called from a server worker): leave it alone
                old = None
            try:
                return fn(argv) or 0
            except UserError as exc:
                print(f"{prog}: error: {exc}", file=sys.stderr)
                if exc.exit_now:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(2)
                return 2
            except OSError as exc:
                print(f"{prog}: error: {os_error_line(exc)}", file=sys.stderr)
                return 2
            except KeyboardInterrupt as exc:
                signum = getattr(exc, "signum", signal.SIGINT)
                name = "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C"
                detail = str(exc) or "nothing half-written was left behind"
                print(f"{prog}: interrupted ({name}); {detail}", file=sys.stderr)
                return 128 + int(signum)
            finally:
                if old is not None:
                    signal.signal(signal.SIGTERM, old)

        return wrapper

    return deco

