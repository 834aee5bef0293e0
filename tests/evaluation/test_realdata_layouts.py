"""The real-photo tasks read what `prep real` wrote, from a data set under its shared name or under the name
`prep fetch` gives it; a missing one is one line naming both names."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from fcnkit.apps.realdata import READERS, hold_out, prepare
from fcnkit.errors import UserError


def _write_pairs(base, n: int = 4) -> None:
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        (base / split / "images").mkdir(parents=True)
        (base / split / "masks").mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(str(base / split / "images" / f"p{i}.jpg"), rng.integers(0, 255, (20, 16, 3), np.uint8))
            m = np.zeros((20, 16), np.uint8)
            m[5:15, 4:12] = 255
            cv2.imwrite(str(base / split / "masks" / f"p{i}.png"), m)


@pytest.mark.parametrize("folder", ["portraits_shen", "portraits"])
def test_portraits_under_either_name(tmp_path, folder):
    _write_pairs(tmp_path / "root" / folder)
    work = prepare(tmp_path / "root", tmp_path / "work", ["portraits"], log=lambda *a: None)
    got = READERS["portraits"](work)
    assert [len(got["train"]) + len(got["val"]), len(got["test"])] == [4, 4] and got["val"]  # val: prep import's
    assert (work / "real.json").is_file() and (work / "portraits" / "test" / "masks").is_dir()
    assert int(got["test"][0].label.sum()) == 10 * 8 and set(np.unique(got["test"][0].label)) == {0, 1}


def test_missing_data_set_is_one_line_naming_both_names(tmp_path):
    (tmp_path / "root").mkdir()
    with pytest.raises(UserError, match="looked for portraits_shen, portraits"):
        prepare(tmp_path / "root", tmp_path / "work", ["portraits"], log=lambda *a: None)
    _write_pairs(tmp_path / "root" / "duts")  # another set is there: the portraits task still names its folders
    work = prepare(tmp_path / "root", tmp_path / "work", ["duts", "portraits"], log=lambda *a: None)
    with pytest.raises(UserError, match="no portraits_shen or portraits folder for the portraits task"):
        READERS["portraits"](work)


def test_held_out_photos_are_a_seeded_random_choice_not_the_name_sorted_tail():
    names = [f"n{i:03d}" for i in range(60)] + [f"sun_{i:02d}" for i in range(12)]  # DUTS-TR's order
    rest, held = hold_out(names, 12, seed=1)
    assert sorted(rest + held) == sorted(names) and len(held) == 12
    assert held != names[-12:] and any(n.startswith("n") for n in held)
    assert held == sorted(held) and hold_out(names, 12, seed=1) == (rest, held)
    assert hold_out(names, 12, seed=2)[1] != held
