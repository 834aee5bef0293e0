"""The box format of the patch CNN's weak supervision: (x, y, w, h) in pixels of a mask's foreground extent
(what `refine --box x,y,w,h` takes), and `boxes.json` ({name: [x, y, w, h] or null}) beside a photo folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from fcnkit.errors import UserError

BOXES_JSON = "boxes.json"


def box_of(label: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x, y, w, h) bounding box of the foreground (label 1), None if there is none."""
    ys, xs = np.nonzero(label == 1)
    if ys.size == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


def boxes_text(boxes: dict[str, tuple[int, int, int, int] | None]) -> str:
    return "{\n" + ",\n".join(f"{json.dumps(k)}: {json.dumps(list(v) if v else None)}"
                             for k, v in boxes.items()) + "\n}\n"


def read_boxes(folder: str | os.PathLike) -> dict[str, tuple[int, int, int, int] | None]:
    """{image stem: (x, y, w, h) or None} from FOLDER/boxes.json (written by `prep import`)."""
    path = Path(folder) / BOXES_JSON
    if not path.is_file():
        raise UserError(f"{folder}: no {BOXES_JSON}; write it with `prep import` (the box of each mask)")
    try:
        raw = json.loads(path.read_text())
        return {str(k): (tuple(int(x) for x in v) if v else None) for k, v in raw.items()}
    except (ValueError, TypeError, AttributeError) as exc:
        raise UserError(f"{path}: not a boxes file ({exc}); rebuild it with `prep import`") from None
