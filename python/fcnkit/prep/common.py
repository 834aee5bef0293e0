"""Plumbing shared by the prep steps: staged output folders, a process pool with progress, manifests.

Every step writes into a hidden sibling (or child) folder named after its process id and renames it into
place only when complete, so Ctrl-C, an exception or a kill never leaves a half-written folder under the
name a later step reads. Leftovers of killed runs (whose pid is gone) are removed on the next run.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import multiprocessing as mp
import os
import shutil
import signal
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import cv2
from tqdm import tqdm

from fcnkit.errors import UserError
from fcnkit.io.atomic import remove_stale, replace_path

MANIFEST = "manifest.jsonl"  # per-item manifest of a pairs folder (masks, composite)


def default_workers() -> int:
    """Cores this process may use (affinity-aware)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def refuse_inside(out: Path, inputs: Iterable[str | os.PathLike], what: str) -> None:
    """An output folder is replaced as a whole: refuse when an input lives inside it (it would be deleted)."""
    out = Path(out).resolve()
    for p in inputs:
        rp = Path(p).resolve()
        if rp == out or out in rp.parents:
            raise UserError(
                f"{p}: this {what} is inside the output folder {out}, which is replaced when the step "
                "completes; choose an output folder elsewhere"
            )


def check_replaceable(final: Path, marker: str, force: bool, step: str) -> None:
    """Refuse to overwrite a non-empty folder that this step did not write (no `marker` file in it)."""
    if not final.exists():
        return
    if not final.is_dir():
        raise UserError(f"{final}: exists and is not a folder; choose another output path")
    if force or (final / marker).exists() or not any(final.iterdir()):
        return
    raise UserError(
        f"{final}: folder exists, is not empty and was not written by `prep {step}` "
        f"(no {marker}); choose a new output folder or pass --force to replace it"
    )


@contextlib.contextmanager
def staged_dir(final: str | os.PathLike, *, marker: str, force: bool, step: str) -> Iterator[Path]:
    """Yield a fresh hidden sibling of `final`; on success it replaces `final`, on any error it is deleted."""
    final = Path(final)
    check_replaceable(final, marker, force, step)
    final.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{final.name}.tmp-"
    remove_stale(final.parent, prefix)
    tmp = final.with_name(f"{prefix}{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_path(tmp, final)


# ----------------------------------------------------------------------------------------------- pool


def _worker_init(init: Callable | None, initargs: tuple) -> None:
    # Ctrl-C reaches the whole process group: only the parent handles it (and stops the workers).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the parent may map SIGTERM to KeyboardInterrupt

    cv2.setNumThreads(1)  # one process per core already; OpenCV's own threads would only compete
    if init is not None:
        init(*initargs)


def _run_chunk(fn: Callable, chunk: list) -> list:
    return [fn(t) for t in chunk]


def _context():
    """forkserver where available: workers fork from a clean server process, never from the caller.

    Forking the caller directly (plain "fork") deadlocks the children when the caller has already used
    OpenCV's (or BLAS's) thread pools, as a test suite or a notebook will have; spawn works everywhere.
    As with any spawn/forkserver pool, a calling *script* needs the `if __name__ == "__main__":` guard.
    """
    methods = mp.get_all_start_methods()
    if "forkserver" in methods:
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["fcnkit.prep.common", "numpy", "cv2", "PIL.Image"])
        return ctx
    return mp.get_context("spawn")


def parallel_map(
    fn: Callable,
    tasks: Sequence,
    *,
    workers: int | None,
    desc: str,
    quiet: bool = False,
    initializer: Callable | None = None,
    initargs: tuple = (),
    unit: str = "img",
) -> Iterator:
    """Yield fn(task) for each task, in order, over `workers` processes (inline when 1), with a tqdm bar.

    `fn` and `initializer` must be module-level functions and `initargs` picklable. At most a few chunks
    per worker are in flight, so results never pile up in memory. A worker that dies (killed, out of
    memory) raises instead of hanging; leaving the generator early (an error, Ctrl-C) stops the workers.
    """
    workers = default_workers() if workers is None else max(1, int(workers))
    n = len(tasks)
    workers = min(workers, max(1, n))
    bar = tqdm(total=n, desc=desc, unit=unit, disable=quiet, dynamic_ncols=True, leave=False)
    try:
        if workers == 1 or n < 8:
            if initializer is not None:
                initializer(*initargs)
            for t in tasks:
                yield fn(t)
                bar.update()
            return
        if getattr(mp.current_process(), "_inheriting", False):
            raise RuntimeError(
                "fcnkit.prep was called while a worker process was importing the calling script; put the "
                "call under `if __name__ == '__main__':` (or pass workers=1)"
            )
        cs = max(1, min(16, n // (workers * 8)))
        chunks = iter([list(tasks[i : i + cs]) for i in range(0, n, cs)])
        ex = ProcessPoolExecutor(
            workers, mp_context=_context(), initializer=_worker_init, initargs=(initializer, initargs)
        )
        clean = False
        try:
            pending = deque(ex.submit(_run_chunk, fn, c) for c in itertools.islice(chunks, workers * 3))
            while pending:
                try:
                    results = pending.popleft().result()
                except BrokenProcessPool:
                    raise RuntimeError(
                        f"{desc}: a worker process died: killed, out of memory, or it could not start because "
                        "the calling script lacks `if __name__ == '__main__':` around its fcnkit.prep call "
                        "(workers import that script); workers=1 runs in-process and shows the cause"
                    ) from None
                nxt = next(chunks, None)
                if nxt is not None:
                    pending.append(ex.submit(_run_chunk, fn, nxt))
                for r in results:
                    yield r
                    bar.update()
            clean = True
        finally:
            if clean:
                ex.shutdown(wait=True)
            else:
                ex.shutdown(wait=False, cancel_futures=True)
                for p in list((getattr(ex, "_processes", None) or {}).values()):
                    p.terminate()
    finally:
        bar.close()


# ------------------------------------------------------------------------------------- manifests, pairs


@dataclass(frozen=True)
class Pair:
    """An image file and its mask file (paths as given, resolved against the manifest's folder)."""

    image: str
    mask: str
    name: str


def relpath(path: str | os.PathLike, start: str | os.PathLike) -> str:
    """`path` relative to `start` when it is nearby (at most two levels up), so a dataset tree can be moved
    as a whole; an absolute path for files elsewhere (a user's photo folder, scikit-image's photos)."""
    path = os.path.abspath(path)
    rel = os.path.relpath(path, os.path.abspath(start))
    return path if rel.startswith(os.path.join(os.pardir, os.pardir, os.pardir)) else rel


def write_manifest(folder: Path, rows: Iterable[dict]) -> None:
    with open(folder / MANIFEST, "w") as f:
        for row in rows:
            f.write(json.dumps(row, sort_keys=True) + "\n")


def read_manifest(folder: str | os.PathLike) -> list[dict]:
    folder = Path(folder)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder")
    if not path.is_file():
        raise UserError(
            f"{folder}: no {MANIFEST}; give a folder written by `prep masks` or `prep composite`, "
            "or pass --images DIR --masks DIR"
        )
    rows = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise UserError(
                        f"{path}:{lineno}: not valid JSON ({exc.msg}); rebuild this folder "
                        "with the prep step that wrote it"
                    ) from exc
    return rows


def pairs_from_manifest(folder: str | os.PathLike) -> list[Pair]:
    """The usable (status ok) image/mask pairs listed in `folder/manifest.jsonl`."""
    folder = Path(folder)
    pairs = []
    for row in read_manifest(folder):
        if row.get("status") == "ok" and row.get("mask") and row.get("image"):
            pairs.append(
                Pair(
                    os.path.normpath(folder / row["image"]),
                    os.path.normpath(folder / row["mask"]),
                    row.get("name") or Path(row["image"]).stem,
                )
            )
    return pairs


def list_files(folder: str | os.PathLike) -> list[Path]:
    """Regular, non-hidden files under `folder`, recursively, in sorted order (hidden folders skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder")
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out.extend(Path(dirpath) / f for f in filenames if not f.startswith("."))
    return sorted(out, key=lambda p: p.relative_to(folder).as_posix())


def pairs_from_folders(images: str | os.PathLike, masks: str | os.PathLike) -> list[Pair]:
    """Pair IMAGES/a/b.jpg with MASKS/a/b.png (same relative path, any extension) for user-made masks."""
    images, masks = Path(images), Path(masks)
    by_stem: dict[str, Path] = {}
    for m in list_files(masks):
        by_stem.setdefault(m.relative_to(masks).with_suffix("").as_posix(), m)
    pairs = []
    for p in list_files(images):
        key = p.relative_to(images).with_suffix("").as_posix()
        if key in by_stem:
            pairs.append(Pair(str(p), str(by_stem[key]), key))
    if not pairs:
        raise UserError(
            f"{images}: no image has a mask of the same name in {masks} (IMAGES/x.jpg pairs with MASKS/x.png)"
        )
    return pairs


def summarize_skips(rows: Sequence[dict]) -> str:
    """'3 corrupt, 1 all-white' from manifest rows with a `code`."""
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.get("code", "skipped")] = counts.get(r.get("code", "skipped"), 0) + 1
    return ", ".join(f"{n} {code}" for code, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def first_reasons(rows: Sequence[dict], n: int = 5) -> str:
    shown = "; ".join(f"{r.get('source') or r.get('name')}: {r.get('reason')}" for r in rows[:n])
    return shown + (f"; ... and {len(rows) - n} more" if len(rows) > n else "")
