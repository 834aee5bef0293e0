#!/usr/bin/env python3
"""Install the Debian packages some tests drive, by group: `python3 tools/setup_apt.py GROUP...`.

- browser: Debian's `chromium` and `chromium-driver`, the headless browser of the `serve` page test;
- container: `buildah`, `podman` and `debootstrap`, which `make image-test` (tests/build/test_image.py) builds
  and runs the CUDA container with, from a locally bootstrapped base.

Run by `make setup` (steps `browser` and `container-tools`). Missing packages are apt-get installed when
running as root (as CI does on a fresh machine); otherwise it names the command to run and exits 0, and
the tests that need them skip with that reason. Standard library only, like tools/build_caffe.py, whose
Debian package check it reuses.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_caffe import missing_apt_packages  # noqa: E402

GROUPS = {
    "browser": (("chromium", "chromium-driver"), "the page test's headless browser"),  # /usr/bin/chromedriver
    "container": (("buildah", "podman", "debootstrap"), "make image-test's container tools"),
}


def ensure(group: str) -> int:
    packages, what = GROUPS[group]
    missing = missing_apt_packages(packages)
    if not missing:
        print(f"[{group}] {' and '.join(packages)}: present")
        return 0
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        print(f"[{group}] note: {' '.join(missing)} not installed and this is not root with apt-get; the tests "
              f"that need {what} will be skipped (install with: sudo apt-get install -y {' '.join(missing)})")
        return 0
    print(f"[{group}] installing {' '.join(missing)} with apt-get ({what})", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]):
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            tail = (r.stderr.strip().splitlines() or ["(no output)"])[-1]
            print(f"setup_apt: error: '{' '.join(cmd[:2])}' failed ({tail}); install by hand: apt-get install "
                  + " ".join(missing), file=sys.stderr)
            return 2
    return 0


def main(argv=None) -> int:
    groups = sys.argv[1:] if argv is None else argv
    unknown = [g for g in groups if g not in GROUPS]
    if unknown or not groups:
        print(f"setup_apt: error: {' '.join(unknown) or 'no group'}: name one or more of {', '.join(GROUPS)}",
              file=sys.stderr)
        return 2
    for g in groups:
        rc = ensure(g)
        if rc:
            return rc
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
