#!/usr/bin/env python3
"""Print the paper-fidelity table (paper claim -> file:field -> expected -> actual -> PASS/FAIL)."""

import sys

from fcnkit.fidelity import main

if __name__ == "__main__":
    sys.exit(main())
