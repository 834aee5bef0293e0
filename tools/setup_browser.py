#!/usr/bin/env python3
"""Install the headless browser the page test drives: Debian's `chromium` and `chromium-driver`.

Run by `make setup` (step `browser`). Missing packages are apt-get installed when running as root (as CI
does on a fresh machine); otherwise it names the command to run and exits 0, and the browser test skips
with that reason. Standard library only, like tools/build_caffe.py, whose Debian package check it reuses.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_caffe import missing_apt_packages  # noqa: E402

PACKAGES = ("chromium", "chromium-driver")  # /usr/bin/chromium, /usr/bin/chromedriver


def main() -> int:
    missing = missing_apt_packages(PACKAGES)
    if not missing:
        print(f"[browser] {' and '.join(PACKAGES)}: present")
        return 0
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        print(f"[browser] note: {' '.join(missing)} not installed and this is not root with apt-get; the page test "
              f"will be skipped (install with: sudo apt-get install -y {' '.join(missing)})")
        return 0
    print(f"[browser] installing {' '.join(missing)} with apt-get (the page test's headless browser)", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]):
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            tail = (r.stderr.strip().splitlines() or ["(no output)"])[-1]
            print(f"setup_browser: error: '{' '.join(cmd[:2])}' failed ({tail}); install by hand: apt-get install "
                  + " ".join(missing), file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
