"""Encoders with Model Zoo names: names and shapes as released, weights loaded by layer name through the
project's converter and checked against real Caffe, fetching with checksums and structural checks."""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess

import numpy as np
import pytest
import torch
from conftest import VENV_BIN
from fcnkit.errors import UserError
from fcnkit.models.encoders.releases import RELEASES, expected_shapes, fetch_release, load_pretrained
from fcnkit.models.encoders.resnet import ResNetEncoder
from fcnkit.models.encoders.vgg import VGGEncoder
from standins import resnet_netspec, vgg_netspec, write_standin


def test_model_zoo_layer_names_and_shapes():
    vgg19 = expected_shapes(RELEASES["vgg19"])
    assert vgg19["conv1_1"] == (64, 3, 3, 3) and vgg19["conv5_4"] == (512, 512, 3, 3) and len(vgg19) == 16
    r50 = expected_shapes(RELEASES["resnet50"])
    assert r50["conv1"] == (64, 3, 7, 7) and r50["bn_conv1"] == (64,) and r50["scale_conv1"] == (64,)
    assert r50["res2a_branch1"] == (256, 64) and r50["res4f_branch2c"] == (1024, 256)
    assert r50["res5c_branch2b"] == (512, 512, 3, 3) and "res5d_branch2a" not in r50
    r152 = expected_shapes(RELEASES["resnet152"])
    assert "res3b7_branch2a" in r152 and "res4b35_branch2c" in r152 and "res4b36_branch2a" not in r152
    assert len([k for k in r152 if k.startswith("res") and k.endswith("branch2a")]) == 50


def test_levels_and_strides():
    x = torch.randn(1, 3, 64, 64)
    assert [f.shape[-1] for f in VGGEncoder(19, 1 / 16)(x)] == [64, 32, 16, 8, 4]
    assert [f.shape[-1] for f in ResNetEncoder(50, 1 / 16)(x)] == [32, 16, 8, 4, 2]


@pytest.fixture(scope="module")
def resnet50_standin(caffe, tmp_path_factory):
    root = tmp_path_factory.mktemp("resnet50")
    rel = RELEASES["resnet50"]
    return write_standin(caffe, resnet_netspec(caffe, 50), root, rel.deploy_file, rel.model_file)


def test_resnet50_weights_load_by_name_and_match_caffe(resnet50_standin):
    deploy, model, net = resnet50_standin
    enc = ResNetEncoder(50).eval()
    info = load_pretrained(enc, "resnet50", deploy.parent)
    assert info["layers"] == len(enc.caffe_layers())
    x = np.random.default_rng(1).normal(0, 50, (1, 3, 64, 64)).astype(np.float32)
    net.blobs["data"].data[...] = x
    net.forward()
    with torch.no_grad():
        feats = enc(torch.from_numpy(x))
    for blob, f in (("conv1", feats[0]), ("res2c", feats[1]), ("res3d", feats[2]), ("res5c", feats[4])):
        ref = net.blobs[blob].data
        assert f.shape == ref.shape, blob
        assert np.abs(f.numpy() - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max()), blob


def test_vgg19_weights_load_by_name_and_match_caffe(caffe, tmp_path):
    rel = RELEASES["vgg19"]
    deploy, model, net = write_standin(caffe, vgg_netspec(caffe, 19), tmp_path, rel.deploy_file, rel.model_file)
    enc = VGGEncoder(19)
    load_pretrained(enc, rel, tmp_path)
    x = np.random.default_rng(2).normal(0, 50, (1, 3, 64, 64)).astype(np.float32)
    net.blobs["data"].data[...] = x
    net.forward()
    with torch.no_grad():
        out = enc(torch.from_numpy(x))[-1]
    ref = net.blobs["conv5_4"].data
    assert np.abs(out.numpy() - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())


def test_missing_weights_name_the_fetch_command(tmp_path):
    with pytest.raises(UserError, match=r"fcnkit fetch-weights resnet152"):
        load_pretrained(ResNetEncoder(152, 1 / 16), "resnet152", tmp_path)


def test_tiny_width_cannot_take_released_weights(resnet50_standin):
    with pytest.raises(UserError, match="only width 1 takes the released weights"):
        load_pretrained(ResNetEncoder(50, 1 / 8), "resnet50", resnet50_standin[0].parent)


@pytest.fixture
def served(http_dir, resnet50_standin):
    www, url = http_dir
    deploy, model, _ = resnet50_standin
    (www / "deploy.prototxt").symlink_to(deploy)
    (www / "good.caffemodel").symlink_to(model)
    (www / "truncated.caffemodel").write_bytes(model.read_bytes()[:3_000_000])
    return url, hashlib.sha256(model.read_bytes()).hexdigest()


def test_fetch_verifies_checksum_and_structure(served, tmp_path):
    url, digest = served
    rel = RELEASES["resnet50"]
    r = fetch_release(rel, tmp_path / "a", model_url=f"{url}/good.caffemodel", deploy_url=f"{url}/deploy.prototxt",
                      digest=digest, algo="sha256", quiet=True)
    assert r["pinned"] and r["sha256"] == digest
    # the release's own reference SHA-1 is the real file's: a stand-in fails it and is not kept
    with pytest.raises(UserError, match="checksum mismatch"):
        fetch_release(rel, tmp_path / "b", model_url=f"{url}/good.caffemodel", deploy_url=f"{url}/deploy.prototxt",
                      quiet=True)
    assert not (tmp_path / "b" / rel.model_file).exists()
    # a release without a reference digest pins the SHA-256 of the first verified download
    unpinned = dataclasses.replace(rel, digest=None, digest_algo="sha256")
    r = fetch_release(unpinned, tmp_path / "c", model_url=f"{url}/good.caffemodel",
                      deploy_url=f"{url}/deploy.prototxt", quiet=True)
    assert not r["pinned"] and (tmp_path / "c" / "SHA256SUMS").read_text().split()[0] == digest
    with pytest.raises(UserError, match="not a readable caffemodel"):
        fetch_release(unpinned, tmp_path / "d", model_url=f"{url}/truncated.caffemodel",
                      deploy_url=f"{url}/deploy.prototxt", quiet=True)
    assert not (tmp_path / "d" / rel.model_file).exists()


def test_fetch_refuses_another_networks_file(served, tmp_path, caffe):
    url, _ = served
    rel = RELEASES["vgg19"]
    r = subprocess.run([str(VENV_BIN / "fcnkit"), "fetch-weights", "vgg19", "--dest", str(tmp_path),
                        "--model-url", f"{url}/good.caffemodel", "--deploy-url", f"{url}/deploy.prototxt",
                        "--sha256", served[1], "--quiet"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "no layer conv1_1" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / rel.model_file).exists()
