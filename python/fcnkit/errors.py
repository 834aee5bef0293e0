"""One error type for everything a user can fix, and the CLI wrapper that reports it in one line."""

from __future__ import annotations

import functools
import sys


class UserError(Exception):
    """Bad input or a missing prerequisite: printed as one line, exit status 2."""


def cli_entry(prog: str):
    """Decorate a `main(argv) -> int` so UserError becomes `prog: error: ...` and exit status 2."""

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(argv=None) -> int:
            try:
                return fn(argv) or 0
            except UserError as exc:
                print(f"{prog}: error: {exc}", file=sys.stderr)
                return 2

        return wrapper

    return deco
