"""The restorer: a small image-to-image network after the generator that repaints its faces.

The generator's faces carry its own tells (pale pastel skin, soft melting features, a faint grid
texture). The restorer is trained on pairs that carry exactly those tells: real faces, and the
generator's reconstructions of them (each face inverted into the generator, the 16x16 layout kept;
train/restorer.py). So it learns what a conditional network learns fast on a CPU, to turn
"a face as this generator paints it" into "the painted face", and it runs as the generator's last
layer (model/generator.py), so every path that renders a face (walk, keyframes, re-render, print)
shows the restored one.

    x (N, 3, 256, 256) in [-1, 1]
      -> unshuffle 2 -> conv 3x3 -> a (N, width, 128, 128)
      -> conv 3x3 stride 2 -> residual blocks at 64x64 (N, deep, 64, 64)   (receptive field ~60 px)
      -> conv 1x1 -> pixel shuffle 2 -> + a (N, width, 128, 128)
      -> conv 3x3 -> pixel shuffle 2: the change (N, 3, 256, 256)          -> clamp(x + change)

With width 32, deep 48, 3 blocks it costs ~1.41 GFLOPs at 256 px (the generator: 1.20). The last
conv starts at zero, so an untrained restorer returns its input: attaching one changes nothing
until it is trained. Convolutions, ReLU and pixel (un)shuffle only: OpenVINO runs it fused with
the generator.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from passersby.config import RestorerConfig
from passersby.model.enhancer import Block  # x + conv(relu(conv(x))), the enhancer's own


class Restorer(nn.Module):
    """(N, 3, S, S) in [-1, 1] -> (N, 3, S, S) in [-1, 1], S a multiple of 4.

    Args:
        cfg: the architecture (config.RestorerConfig).

    Example:
        >>> r = Restorer(RestorerConfig())
        >>> x = torch.rand(1, 3, 64, 64) * 2 - 1
        >>> bool(torch.equal(r(x), x))  # untrained: the identity
        True
    """

    def __init__(self, cfg: RestorerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w, d = cfg.width, cfg.deep
        self.inp = nn.Conv2d(12, w, 3, 1, 1)
        self.down = nn.Conv2d(w, d, 3, 2, 1)
        self.blocks = nn.Sequential(*[Block(d) for _ in range(cfg.blocks)])
        self.up = nn.Conv2d(d, 4 * w, 1)
        self.out = nn.Conv2d(w, 12, 3, 1, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.inp(F.pixel_unshuffle(x, 2)))            # (N, w, S/2, S/2)
        h = self.blocks(F.relu(self.down(a)))                     # (N, d, S/4, S/4)
        a = F.relu(a + F.pixel_shuffle(self.up(h), 2))            # (N, w, S/2, S/2)
        return (x + F.pixel_shuffle(self.out(a), 2)).clamp(-1, 1)  # (N, 3, S, S)


def gflops(cfg: RestorerConfig, side: int = 256) -> float:
    """Multiply-adds x 2 of one restorer pass at `side` px, in GFLOPs.

    Example:
        >>> round(gflops(RestorerConfig()), 2)
        1.41
    """
    h, q = (side // 2) ** 2, (side // 4) ** 2
    w, d = cfg.width, cfg.deep
    macs = h * 12 * w * 9 + q * w * d * 9 + cfg.blocks * 2 * q * d * d * 9 + q * d * 4 * w + h * w * 12 * 9
    return 2 * macs / 1e9
