"""`python -m fcnkit COMMAND ...` = `fcnkit COMMAND ...`."""

import os
import sys

# `python -m` puts the working directory first on sys.path: a file there named like a module the commands
# import later (onnx.py, json.py) would run in its place. The package itself is already imported.
if sys.path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]

from fcnkit.cli import main  # noqa: E402 - after the sys.path fix above

sys.exit(main())
