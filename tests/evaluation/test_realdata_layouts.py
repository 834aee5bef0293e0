"""The real-photo readers take a data set under its shared name and under the name `prep fetch` gives it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from fcnkit.apps.realdata import hold_out, read_portraits
from fcnkit.errors import UserError


def _write_pairs(base, n: int = 2) -> None:
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
    got = read_portraits(tmp_path / "root", tmp_path / "work")
    assert [len(got["train"]), len(got["test"])] == [2, 2]
    assert int(got["test"][0].label.sum()) == 10 * 8 and set(np.unique(got["test"][0].label)) == {0, 1}


def test_missing_data_set_is_one_line_naming_both_names(tmp_path):
    (tmp_path / "root").mkdir()
    with pytest.raises(UserError, match="no portraits_shen or portraits folder"):
        read_portraits(tmp_path / "root", tmp_path / "work")


def test_held_out_photos_are_a_seeded_random_choice_not_the_name_sorted_tail():
    names = [f"n{i:03d}" for i in range(60)] + [f"sun_{i:02d}" for i in range(12)]  # DUTS-TR's order
    rest, held = hold_out(names, 12, seed=1)
    assert sorted(rest + held) == sorted(names) and len(held) == 12
    assert held != names[-12:] and any(n.startswith("n") for n in held)
    assert held == sorted(held) and hold_out(names, 12, seed=1) == (rest, held)
    assert hold_out(names, 12, seed=2)[1] != held
