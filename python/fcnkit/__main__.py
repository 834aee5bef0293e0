"""`python -m fcnkit COMMAND ...` = `fcnkit COMMAND ...`."""

import sys

from fcnkit.cli import main

sys.exit(main())
