"""The patch CNN: exactly the seed's net, dense application equal to cutting every patch out, refinement of
a rectangle on a real image, and `fcnkit refine` (image and dataset modes, bad input)."""

from __future__ import annotations

import subprocess

import cv2
import numpy as np
import pytest
import torch
from conftest import VENV_BIN, make_blob_images
from fcnkit.data.boxes import box_label_map, box_of
from fcnkit.evaluation.metrics import foreground_jaccard
from fcnkit.models.patchcnn import DensePatchCNN, PatchNet


def test_the_seeds_net():
    net = PatchNet()
    convs = [getattr(net, f"conv{i}") for i in range(1, 7)]
    assert [c.out_channels for c in convs] == [32, 64, 128, 128, 128, 1]
    assert (convs[0].kernel_size, convs[0].stride, convs[0].padding) == ((5, 5), (1, 1), (2, 2))
    assert all((c.kernel_size, c.stride, c.padding) == ((3, 3), (2, 2), (1, 1)) for c in convs[1:])
    assert convs[-1].bias is None and all(getattr(net, f"bn{i}").num_features == c.out_channels
                                          for i, c in zip(range(1, 6), convs, strict=False))
    assert tuple(net(torch.randn(4, 3, 32, 32)).shape) == (4, 1, 1, 1)


@pytest.mark.parametrize("step", [1, 4, 8])
def test_dense_scores_are_the_classifier_on_each_cut_out_patch(step):
    torch.manual_seed(0)
    m = DensePatchCNN(step=step).eval()
    x = torch.randn(1, 3, 23, 30)
    grid = m.grid(x)
    xp = torch.nn.functional.pad(x, (16, 16 + step, 16, 16 + step), mode="replicate")
    for i, j in ((0, 0), (1, 2), (grid.shape[2] - 1, grid.shape[3] - 1)):
        patch = xp[:, :, i * step:i * step + 32, j * step:j * step + 32]
        assert torch.allclose(grid[0, 0, i, j], m.patch_logits(patch)[0], atol=1e-5)
    full = m(x)
    assert full.shape[-2:] == (23, 30)
    assert torch.allclose(full[0, 0, ::step, ::step], grid[0, 0, :full[0, 0, ::step].shape[0],
                                                             :full[0, 0, 0, ::step].shape[0]], atol=1e-5)


def blob_image(seed=1, size=64):
    images, labels = make_blob_images(1, size, seed)
    return np.ascontiguousarray(images[0].transpose(1, 2, 0)), labels[0, 0]


@pytest.mark.slow
def test_refining_a_box_beats_the_box_itself():
    from fcnkit.training.patches import refine_image

    bgr, label = blob_image()
    box = box_of(label)
    r = refine_image(bgr, box, steps=120, step=2, seed=0, batch=32)
    box_j = foreground_jaccard(label, box_label_map(label.shape, box))
    assert foreground_jaccard(label, r["mask"]) > box_j
    assert not (r["mask"] & (1 - box_label_map(label.shape, box))).any()  # clipped to the tag


@pytest.mark.slow
def test_tag_free_mode_finds_the_centred_object():
    from fcnkit.training.patches import refine_image

    bgr, label = blob_image(seed=2)
    r = refine_image(bgr, None, steps=120, step=2, largest=True, seed=0, batch=32)
    assert foreground_jaccard(label, r["mask"]) > 30


def run(*args):
    return subprocess.run([str(VENV_BIN / "fcnkit"), "refine", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def test_refine_cli_writes_mask_and_cutout(tmp_path):
    bgr, label = blob_image(seed=3)
    cv2.imwrite(str(tmp_path / "shoe.png"), bgr)
    x, y, w, h = box_of(label)
    r = run(tmp_path / "shoe.png", "--box", f"{x},{y},{w},{h}", "--steps", "5", "--batch", "16", "--out",
            tmp_path / "out")
    assert r.returncode == 0, r.stderr
    mask = cv2.imread(str(tmp_path / "out" / "shoe_mask.png"), cv2.IMREAD_GRAYSCALE)
    cut = cv2.imread(str(tmp_path / "out" / "shoe_cutout.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == label.shape and set(np.unique(mask)) <= {0, 255}
    assert cut.shape == (*label.shape, 4) and np.array_equal(cut[..., 3], mask)


@pytest.mark.parametrize(("args", "needle"), [
    (["--box", "1,2,3"], "give x,y,w,h"),
    (["--box", "60,60,20,20"], "lies outside the 64x64 image"),
])
def test_bad_box_is_one_line_and_writes_nothing(tmp_path, args, needle):
    cv2.imwrite(str(tmp_path / "a.png"), blob_image()[0])
    r = run(tmp_path / "a.png", *args, "--out", tmp_path / "out")
    assert r.returncode == 2 and needle in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_unreadable_image_and_foreign_checkpoint(tmp_path, blob_dataset):
    (tmp_path / "bad.png").write_bytes(b"not a png")
    r = run(tmp_path / "bad.png", "--box", "1,1,5,5", "--out", tmp_path / "out")
    assert r.returncode == 2 and "cannot read the image" in r.stderr
    from fcnkit.training.trainer import train

    ck = tmp_path / "ae.safetensors"
    train("tiny/extractnet-simple", blob_dataset / "white", out=ck, epochs=1, log=lambda *a: None, progress=False)
    cv2.imwrite(str(tmp_path / "a.png"), blob_image()[0])
    r = run(tmp_path / "a.png", "--box", "1,1,5,5", "--model", ck, "--out", tmp_path / "out")
    assert r.returncode == 2 and "not of the patch CNN" in r.stderr


def test_dataset_mode_scores_every_val_image(blob_dataset, tmp_path):
    r = run(blob_dataset / "white", "--dataset", "--steps", "5", "--batch", "16", "--limit", "2", "--out",
            tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert "2 images: Jaccard" in r.stdout and len(list((tmp_path / "out").glob("*_mask.png"))) == 2
