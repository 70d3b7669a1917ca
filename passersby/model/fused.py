"""The generator rewritten for inference: same function, about half the arithmetic.

`Generator` (model/generator.py) is the reference: it is what trains and what checkpoints
hold. `fuse(g)` returns a module that computes the same images (to float rounding, ~1e-5) and
is what the fast runtimes (runtime.py) compile:

- BatchNorm in eval mode is an affine map per channel: folded into the conv before it.
- "nearest 2x upsample, then conv3x3" equals ONE transposed conv (kernel 4, stride 2, pad 1)
  on the small map. Output pixel 2i+a of the upsampled conv reads small-map rows {i-1, i}
  (a = 0) or {i, i+1} (a = 1), with the 3x3 kernel rows summed where two of them land on the
  same small row; per axis the 4 taps of the transposed kernel are [w2, w1+w2, w0+w1, w0].
  Cost per output: 4 taps instead of 9 per axis pair, 16/36 of the MACs; the 256² upsampled
  map is never materialised. On the default model: 1.2 -> 0.68 GFLOPs per frame.
- GLU's two halves come from two convs instead of one conv and a channel split, and the 3-channel
  output conv is padded to 8 channels (AVX2 holds 8 floats): both layouts suit the CPU kernels
  better (measured: ~10 % faster in OpenVINO on a 2-core AVX2 CPU), same arithmetic.
- The output is (N, R, R, 3) in [0, 255] (NHWC, as displays want it); `to_uint8` rounds it.
- A conditional model's class is baked in (`label`): each screen compiles its own graph.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from passersby.model.generator import Generator, UpBlock

# Transposed-kernel tap t (0..3) along one axis sums these rows (or columns) of the 3x3 kernel.
_TAPS = ((2,), (1, 2), (0, 1), (0,))


def fold_bn(conv: nn.Module, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of conv followed by eval-mode BN; the conv's output channels are dim 0
    for Conv2d (Co, Ci, k, k) and dim 1 for ConvTranspose2d (Ci, Co, k, k)."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (Co,)
    shape = [1, -1, 1, 1] if isinstance(conv, nn.ConvTranspose2d) else [-1, 1, 1, 1]
    bias = bn.bias - bn.running_mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias * scale
    return (conv.weight * scale.view(shape)).detach(), bias.detach()


def upsample_conv_as_transposed(w: torch.Tensor) -> torch.Tensor:
    """conv3x3 weight (Co, Ci, 3, 3) on a nearest-2x-upsampled map -> ConvTranspose2d weight
    (Ci, Co, 4, 4) with stride 2, padding 1 on the small map (same result)."""
    k = w.new_zeros(w.shape[1], w.shape[0], 4, 4)
    for u, rows in enumerate(_TAPS):
        for v, cols in enumerate(_TAPS):
            k[:, :, u, v] = sum(w[:, :, r, c] for r in rows for c in cols).T
    return k


def _glu(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=1)
    return a * torch.sigmoid(b)


class GluConv(nn.Module):
    """GLU(conv(x)) as value_conv(x) * sigmoid(gate_conv(x)): the conv's output channels split
    into two convs. weight: Conv2d layout (Co, Ci, k, k), or (Ci, Co, 4, 4) when `transposed`."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, transposed: bool) -> None:
        super().__init__()
        co = bias.shape[0] // 2
        self.value, self.gate = (self._conv(weight, bias, transposed, sl) for sl in (slice(0, co), slice(co, None)))

    @staticmethod
    def _conv(weight: torch.Tensor, bias: torch.Tensor, transposed: bool, sl: slice) -> nn.Module:
        if transposed:
            w = weight[:, sl].clone()
            conv = nn.ConvTranspose2d(w.shape[0], w.shape[1], 4, 2, 1)
        else:
            w = weight[sl].clone()
            conv = nn.Conv2d(w.shape[1], w.shape[0], w.shape[2], 1, w.shape[2] // 2)
        conv.weight.data, conv.bias.data = w, bias[sl].clone()
        return conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.value(x) * torch.sigmoid(self.gate(x))


class FusedUp(nn.Module):
    """An UpBlock as GLU(transposed conv (+ folded BN)) [then GLU(conv3x3 (+ folded BN))]."""

    def __init__(self, block: UpBlock) -> None:
        super().__init__()
        layers = list(block.net)  # Upsample, Conv, BN, GLU [, Conv, BN, GLU]
        w, b = fold_bn(layers[1], layers[2])
        self.up = GluConv(upsample_conv_as_transposed(w), b, transposed=True)
        self.conv = None
        if len(layers) > 4:
            self.conv = GluConv(*fold_bn(layers[4], layers[5]), transposed=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        return x if self.conv is None else self.conv(x)


class PaddedRGB(nn.Module):
    """The output conv (Ci -> 3) computed as Ci -> 8 with zero filters, then cut to 3."""

    def __init__(self, conv: nn.Conv2d, width: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv2d(conv.in_channels, width, conv.kernel_size, 1, conv.padding)
        w = conv.weight.new_zeros(width, *conv.weight.shape[1:])
        b = conv.bias.new_zeros(width)
        w[: conv.out_channels], b[: conv.out_channels] = conv.weight.detach(), conv.bias.detach()
        self.conv.weight.data, self.conv.bias.data = w, b
        self.out = conv.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)[:, : self.out]


class FusedGenerator(nn.Module):
    """z (N, z_dim) float32 -> (N, R, R, 3) float32 in [0, 255]; see the module docstring."""

    def __init__(self, g: Generator, label: int | None = None) -> None:
        super().__init__()
        cfg = g.cfg
        if cfg.n_classes and label is None:
            raise ValueError("this generator is conditional: fuse it with a class label")
        if not cfg.n_classes and label is not None:
            raise ValueError("this generator is unconditional: it takes no class label")
        g = g.eval()
        init_conv, init_bn = g.init[0], g.init[1]
        w, b = fold_bn(init_conv, init_bn)  # (in_dim, 2 c4, 4, 4)
        # The 4x4 start on a 1x1 input is a matrix product: (N, in_dim) @ (in_dim, 2c4*16).
        self.init_weight = nn.Parameter(w.reshape(w.shape[0], -1), requires_grad=False)
        self.init_bias = nn.Parameter(b.repeat_interleave(16), requires_grad=False)
        self.c_init = w.shape[1]
        self.class_vec = None
        if label is not None:
            with torch.no_grad():
                vec = g.embed(torch.zeros(1, cfg.z_dim), torch.tensor([int(label)]))[:, cfg.z_dim:, 0, 0]  # (1, z_dim)
            self.class_vec = nn.Parameter(vec, requires_grad=False)
        self.ups = nn.ModuleDict({k: FusedUp(v) for k, v in g.ups.items()})
        self.sles = g.sles  # cheap (4x4 pooled): kept as they are
        self.sle_pairs = list(g.sle_pairs)
        self.to_rgb = PaddedRGB(g.to_rgb)
        self.restorer = g.restorer  # plain convolutions: run as they are

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.class_vec is not None:
            z = torch.cat([z, self.class_vec.expand(z.shape[0], -1)], dim=1)
        x = (z @ self.init_weight + self.init_bias).reshape(z.shape[0], self.c_init, 4, 4)
        feats = {4: _glu(x)}
        x = feats[4]
        for s_str, block in self.ups.items():
            s = int(s_str)
            x = block(x)
            for a, b in self.sle_pairs:
                if b == s:
                    x = self.sles[f"{a}_{b}"](feats[a], x)
            feats[s] = x
        rgb = torch.tanh(self.to_rgb(x))  # (N, 3, R, R)
        if self.restorer is not None:
            rgb = self.restorer(rgb)
        return ((rgb + 1.0) * 127.5).permute(0, 2, 3, 1)


def fuse(g: Generator, label: int | None = None) -> FusedGenerator:
    """The inference rewrite of `g` (eval mode, weights copied, gradients off).

    Example:
        >>> from passersby.config import ModelConfig
        >>> g = Generator(ModelConfig(resolution=64, ngf=8)).eval()
        >>> z = torch.randn(2, 128)
        >>> ref = ((g(z) + 1) * 127.5).permute(0, 2, 3, 1)
        >>> bool((fuse(g)(z) - ref).abs().max() < 1e-3)
        True
    """
    return FusedGenerator(g, label).eval()


def to_uint8(images: np.ndarray) -> np.ndarray:
    """(N, R, R, 3) float in [0, 255] -> uint8, rounded half up like pictures.to_uint8."""
    return np.clip(np.floor(images + 0.5), 0, 255).astype(np.uint8)
