"""Net surgery between stages: bilinear Deconvolution weights, VGG fc->conv transplant, copy by name.

All functions work on live pycaffe `Net` objects (their `params` are writable numpy views).
"""

from __future__ import annotations

import numpy as np

from fcnkit.errors import UserError


def bilinear_kernel(size: int) -> np.ndarray:
    """(size, size) bilinear interpolation kernel for upsampling by (size + 1) // 2."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = np.arange(size)
    k1 = 1 - np.abs(og - center) / factor
    return np.outer(k1, k1).astype(np.float32)


def deconv_layers(net) -> list[str]:
    """Names of the net's Deconvolution layers that carry weights."""
    return [name for name, layer in zip(net._layer_names, net.layers, strict=True)
            if layer.type == "Deconvolution" and name in net.params]


def interp(net, layers: list[str] | None = None) -> list[str]:
    """Set each Deconvolution (C_in, C_out/group, k, k) to channel-wise bilinear upsampling:
    input channel c feeds only output channel c; all cross-channel weights are zero."""
    layers = deconv_layers(net) if layers is None else layers
    for name in layers:
        w = net.params[name][0].data
        c_in, c_out, kh, kw = w.shape
        if kh != kw:
            raise UserError(f"layer {name}: bilinear init needs a square kernel, got {kh}x{kw}")
        groups = c_in // c_out if c_out else 0
        w[...] = 0
        k = bilinear_kernel(kh)
        if groups == c_in:  # one channel per group: (C, 1, k, k)
            w[:, 0] = k
        elif c_in == c_out:
            w[range(c_in), range(c_out)] = k
        else:
            raise UserError(f"layer {name}: bilinear init needs C_in == C_out or one channel per group, "
                            f"got weight shape {w.shape}")
        if len(net.params[name]) > 1:
            net.params[name][1].data[...] = 0
    return layers


def transplant(dst, src, *, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """Copy every parameter blob of `src` into the same-named layer of `dst`.

    Blobs of equal shape are copied as they are; blobs whose shapes differ but whose sizes agree are
    copied flat (VGG-16's InnerProduct fc6 4096x25088 -> convolutional fc6 4096x512x7x7). A layer in
    `src` that `dst` lacks is ignored (it is not part of the new net); differing sizes are an error.
    Returns {layer: "copied" | "reshaped"} for the layers written.
    """
    done: dict[str, str] = {}
    for name in src.params:
        if name in skip or name not in dst.params:
            continue
        s_blobs, d_blobs = src.params[name], dst.params[name]
        if len(s_blobs) != len(d_blobs):
            raise UserError(f"layer {name}: source has {len(s_blobs)} parameter blobs, target {len(d_blobs)}")
        how = "copied"
        for i, (s, d) in enumerate(zip(s_blobs, d_blobs, strict=True)):
            if s.data.shape == d.data.shape:
                d.data[...] = s.data
            elif s.data.size == d.data.size:
                d.data.flat[:] = s.data.flat
                how = "reshaped"
            else:
                raise UserError(f"layer {name} blob {i}: source shape {s.data.shape} does not fit target "
                                f"{d.data.shape}; rename the layer in the new net if it is meant to be new")
        done[name] = how
    return done
