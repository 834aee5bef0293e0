"""Cut the object out of photos, file by file or folder by folder: the library behind `remove-bg`
(its flags and the resolution rule: fcnkit.cli.remove_bg).

Inputs are files, folders (optionally recursive; outputs mirror the sub-folders) or `-` (stdin). For each
image it writes `<stem>_mask<ext>` and/or `<stem>_cutout<ext>` (`Look`: format, background colour, crop),
or the one picture to stdout, and reports `apps.metadata.describe` per image. Predictions come from any
`fcnkit.inference.Predictor`, `batch_size` images at a time.

Every file is written under a temporary name in its folder, flushed and renamed (`fcnkit.io.atomic`): an
interrupted run (Ctrl-C, SIGTERM, SIGKILL, a full disk) never leaves a truncated file under a final name,
and `skip_existing` lets the next run carry on where it stopped. A file that cannot be read is reported in
one line and skipped; an output that cannot be written stops the run (`UserError`: every later write would
fail the same way).
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from fcnkit.apps.cutout import Look, encode, render, segment_many
from fcnkit.apps.metadata import describe
from fcnkit.errors import UserError
from fcnkit.io.atomic import remove_stale, write_bytes_atomic
from fcnkit.io.images import DEFAULT_MAX_PIXELS, IMAGE_EXTS, ImageReadError, read_image

DEFAULT_MAX_SIDE = 2048
STDIO = "-"
KINDS = {"both": ("mask", "cutout"), "mask": ("mask",), "cutout": ("cutout",)}
_STALE_TMP = re.compile(r"^(\..+\.tmp-)\d+$")  # fcnkit.io.atomic.tmp_name's pattern


@dataclass
class Item:
    """One input and where its outputs go (`subdir` below the output folder, `stem` made unique there)."""

    source: str  # a path, or "-" for stdin
    subdir: Path = Path()
    stem: str = ""

    def outputs(self, out_dir: Path | None, kinds, look: Look) -> dict[str, Path]:
        if out_dir is None:
            return {}
        return {k: out_dir / self.subdir / f"{self.stem}_{k}{look.extension}" for k in kinds}


@dataclass
class Tally:
    """What a run did so far (filled in as it goes, so an interrupted run can still say it)."""

    done: list[dict] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # an output existed (not written by this run): left alone
    seconds: float = 0.0


def expand_inputs(args: list[str], recursive: bool = False) -> list[Item]:
    """Files as given, folders as the image files in them (sorted; with `recursive` also below, keeping
    each file's sub-folder), `-` as stdin. Output stems are made unique per output sub-folder."""
    items: list[Item] = []
    for arg in args:
        p = Path(arg)
        if arg == STDIO:
            items.append(Item(STDIO, Path(), "stdin"))
        elif p.is_dir():
            found = p.rglob("*") if recursive else p.iterdir()
            files = sorted(q for q in found if q.is_file() and q.suffix.lower() in IMAGE_EXTS
                           and not q.name.startswith("."))
            items += [Item(str(q), q.parent.relative_to(p), q.stem) for q in files]
        else:
            items.append(Item(arg, Path(), p.stem))
    used: set[tuple[Path, str]] = set()
    for it in items:
        stem, k = it.stem, 2
        while (it.subdir, stem) in used:
            stem, k = f"{it.stem}_{k}", k + 1
        used.add((it.subdir, stem))
        it.stem = stem
    return items


def shard_of(item: Item) -> int:
    """A stable 64-bit number for an item's output name (its sub-folder and stem)."""
    return int.from_bytes(hashlib.sha256(str(item.subdir / item.stem).encode()).digest()[:8], "big")


def select_shard(items: list[Item], index: int, count: int) -> list[Item]:
    """The items of shard `index` (0-based) of `count`: each item falls in exactly one shard, chosen by a hash
    of its output name, so the split is the same on every run and machine and an item keeps its shard when
    files are added to the folder (N independent jobs: a SLURM array, a Kubernetes indexed job)."""
    return [it for it in items if shard_of(it) % count == index]


def probe_writable(folder: Path, what: str) -> None:
    """Prove that `folder` takes new files (create and delete one), before any work; else UserError."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".remove-bg-probe-"):
            pass
    except OSError as exc:
        raise UserError(f"{what}: cannot write into {folder} ({exc.strerror or exc}); choose a writable folder"
                        ) from None


def prepare_out_dir(out_dir: Path) -> None:
    """Create the output folder and prove it takes files, before any work is done; leftovers of killed runs go."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"-o {out_dir}: is a file, not a folder; name a folder (it is created if missing) or - "
                        "for stdout")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"-o {out_dir}: cannot write there ({exc.strerror or exc}); choose a writable folder"
                        ) from None
    probe_writable(out_dir, f"-o {out_dir}")
    for p in out_dir.iterdir():
        m = _STALE_TMP.match(p.name)
        if m:
            remove_stale(out_dir, m.group(1))


def read_input(source: str, max_pixels: int = DEFAULT_MAX_PIXELS, stdin=None):
    """Decode a file or, for "-", the bytes on stdin (via a temporary file that is removed at once)."""
    if source != STDIO:
        return read_image(source, max_pixels=max_pixels, order="bgr")
    data = (stdin or sys.stdin.buffer).read()
    with tempfile.NamedTemporaryFile(prefix="remove-bg-stdin-") as tmp:
        tmp.write(data)
        tmp.flush()
        return read_image(tmp.name, max_pixels=max_pixels, order="bgr")


def _write(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, data)
    except OSError as exc:
        raise UserError(f"cannot write {path} ({exc.strerror or exc}); nothing partial was left under that name"
                        ) from None


def _real(path: str | Path) -> str:
    return os.path.realpath(path)


def output_conflict(outs: dict[str, Path], inputs: set[str], written: set[str], overwrite: bool) -> str | None:
    """Why these outputs must not be written, or None: an output is an input of this run (never overwritten,
    even with --overwrite), or it exists and this run did not write it (needs `overwrite`)."""
    for path in outs.values():
        real = _real(path)
        if real in inputs:
            return f"its output {path} is an input of this run; choose another -o (inputs are never overwritten)"
        if not overwrite and real not in written and os.path.lexists(path):
            return f"{path} exists and this run did not write it; pass --overwrite to replace it"
    return None


def remove_bg(items: list[Item], out_dir: Path | None, predictor, *, look: Look | None = None, kinds=KINDS["both"],
              postprocess: str | None = None, batch_size: int = 1, skip_existing: bool = False,
              overwrite: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS, stdout=None,
              on_result: Callable[[dict], None] | None = None, tally: Tally | None = None, log=None) -> Tally:
    """Run every item; `out_dir` None writes no files (metadata only), STDIO writes the one picture to `stdout`.

    `on_result(record)` receives each image's metadata (with its input and output paths) as soon as it is
    written. Unreadable inputs are reported through `log` (default: stderr) and listed in `tally.failed`.
    No output ever replaces an input of the run (reported, listed in `tally.failed`); an output file that
    exists and was not written by this run is left alone unless `overwrite` (one line, `tally.kept`).
    """
    log = log or (lambda m: print(m, file=sys.stderr))
    look = look or Look()
    tally = tally or Tally()
    to_stdout = out_dir is not None and str(out_dir) == STDIO
    inputs = {_real(it.source) for it in items if it.source != STDIO}
    written: set[str] = set()
    t0 = time.perf_counter()
    bar = tqdm(total=len(items), desc="remove-bg", unit="img", disable=None if len(items) > 1 else True)
    try:
        for start in range(0, len(items), max(1, batch_size)):
            loaded = []
            for it in items[start:start + max(1, batch_size)]:
                outs = {} if to_stdout else it.outputs(out_dir, kinds, look)
                if skip_existing and outs and all(p.is_file() for p in outs.values()):
                    tally.skipped.append(it.source)
                    bar.update(1)
                    continue
                if skip_existing:  # resuming: write only the outputs still missing, never replace one
                    outs = {k: p for k, p in outs.items() if not p.is_file()}
                conflict = output_conflict(outs, inputs, written, overwrite)
                if conflict is not None:
                    bar.clear()
                    log(f"remove-bg: skipping {it.source}: {conflict}")
                    (tally.failed if "input of this run" in conflict else tally.kept).append(it.source)
                    bar.update(1)
                    continue
                try:
                    loaded.append((it, outs, read_input(it.source, max_pixels)))
                except (ImageReadError, OSError) as exc:
                    reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
                    bar.clear()
                    log(f"remove-bg: skipping {it.source}: {reason}")
                    tally.failed.append(it.source)
                    bar.update(1)
            if not loaded:
                continue
            results = segment_many(predictor, [im for _, _, im in loaded], postprocess)
            for (it, outs, img), (mask, logit) in zip(loaded, results, strict=True):
                record = {"input": it.source, **describe(mask, logit, model=predictor.label,
                                                         backend=predictor.name, postprocess=postprocess)}
                if to_stdout:
                    (stdout or sys.stdout.buffer).write(encode(render(img, mask, look), look.fmt))
                for kind, path in outs.items():
                    _write(path, encode(render(img, mask, Look(kind, look.bgcolor, look.fmt, look.crop,
                                                               look.margin)), look.fmt))
                    written.add(_real(path))
                    record[kind] = str(path)
                tally.done.append(record)
                if on_result:
                    on_result(record)
                bar.update(1)
    finally:
        bar.close()
        tally.seconds = time.perf_counter() - t0
    return tally


def stdout_is_terminal() -> bool:
    try:
        return os.isatty(sys.stdout.fileno())
    except (OSError, ValueError):  # pytest's captured stdout has no descriptor
        return False
