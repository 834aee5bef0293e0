"""`fcnkit COMMAND ...`: one entrypoint (also the container's) dispatching to the project's commands."""

from __future__ import annotations

import importlib
import sys

# command -> module whose `main(argv)` runs it.
COMMANDS = {
    "solve": "fcnkit.solve",
    "prep": "fcnkit.prep.cli",
    "convert": "fcnkit.convert.cli",
    "evaluate": "fcnkit.evaluate",
    "remove-bg": "fcnkit.remove_bg",
    "plot-training": "fcnkit.plot_training",
    "demo": "fcnkit.demo",
}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: fcnkit COMMAND [ARGS...]\n\ncommands: " + ", ".join(COMMANDS))
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        print(f"fcnkit: error: unknown command {cmd!r}; choose one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    return importlib.import_module(COMMANDS[cmd]).main(rest)


if __name__ == "__main__":
    sys.exit(main())
