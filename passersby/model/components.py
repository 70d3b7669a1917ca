"""Component discriminators: small heads on frozen features of the eyes and the mouth.

Why: the faces gave themselves away by their eyes (mismatched, bead-like, "blind") and their
mouths (a red smear off the axis). The whole-face discriminator sees the face at 192 px, where an
eye is ~15 px wide, and its heads judge 5x5 patches of the whole picture: an odd eye costs it
little. Faces are aligned (passersby.data.align: eyes and mouth at fixed places), so crops at
fixed boxes hold the eyes and the mouth of every real and generated face; a discriminator per crop
looks where the judge looks (the "facial component discriminators" of face-restoration GANs,
e.g. GFPGAN, here on frozen EfficientNet-Lite0 features as in model/projected.py so that it
learns fast on a CPU and does not memorise ~1,000 crops).

Shapes for a 256² input: eyes box (x 0.20-0.80, y 0.33-0.57) -> (N, 3, 64, 160); mouth box
(x 0.31-0.69, y 0.69-0.89) -> (N, 3, 64, 128); trunk taps 2, 4, 10 (strides 4, 8, 16), fixed
random 1x1 mixing, then per scale conv 3x3 -> LeakyReLU -> conv 3x3 -> patch logits.
Both eyes sit in one crop: whether they match is part of what it judges.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import spectral_norm

from passersby.model.projected import fix_randomly


@dataclass(frozen=True)
class Box:
    """A crop of an aligned face in shares of its side, and the size it is resampled to."""

    name: str
    x0: float
    y0: float
    x1: float
    y1: float
    out_h: int
    out_w: int


# Measured on the mean of the 754 aligned training faces (prepare --zoom 1.3): eye centres at
# y ~0.45, x ~0.35 / 0.65; mouth at y ~0.79, x 0.42-0.58 (docs/model-v3/component-boxes.jpg).
BOXES = (
    Box("eyes", 0.20, 0.33, 0.80, 0.57, 64, 160),
    Box("mouth", 0.31, 0.69, 0.69, 0.89, 64, 128),
)
TAPS = (2, 4, 10)
TAP_CHANNELS = (24, 40, 112)
MIXED = (48, 96, 192)


def crop(x: torch.Tensor, box: Box) -> torch.Tensor:
    """(N, 3, R, R) aligned faces -> (N, 3, box.out_h, box.out_w), resampled (antialiased)."""
    r = x.shape[-1]
    y0, y1 = round(box.y0 * r), round(box.y1 * r)
    x0, x1 = round(box.x0 * r), round(box.x1 * r)
    part = x[:, :, y0:y1, x0:x1]
    return F.interpolate(part, size=(box.out_h, box.out_w), mode="bilinear", align_corners=False,
                         antialias=True)


class PartHead(nn.Module):
    """Trainable patch head on one mixed map: (N, C, H, W) -> (N, H*W) logits."""

    def __init__(self, cin: int, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(spectral_norm(nn.Conv2d(cin, width, 3, 1, 1)), nn.LeakyReLU(0.2),
                                  spectral_norm(nn.Conv2d(width, 1, 3, 1, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).flatten(1)


class ComponentDiscriminator(nn.Module):
    """aligned faces (N, 3, R, R) -> {box name: patch logits (N, L_box)}.

    The feature network is the shared frozen EfficientNet-Lite0 (not a submodule, never saved);
    the fixed random mixing is seeded, so only the heads are trained and stored.

    Args:
        width: the heads' hidden channels.
        boxes: which crops to judge (default: eyes and mouth).

    Example:
        >>> d = ComponentDiscriminator(width=8)
        >>> {k: v.shape[0] for k, v in d(torch.zeros(2, 3, 256, 256)).items()}
        {'eyes': 2, 'mouth': 2}
    """

    def __init__(self, width: int = 64, boxes: tuple[Box, ...] = BOXES) -> None:
        super().__init__()
        self.boxes = boxes
        g = torch.Generator().manual_seed(1)
        self.mix = nn.ModuleList(nn.Conv2d(c, m, 1) for c, m in zip(TAP_CHANNELS, MIXED))
        fix_randomly(self.mix, g)
        self.heads = nn.ModuleDict({b.name: nn.ModuleList(PartHead(m, width) for m in MIXED) for b in boxes})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        from passersby.metrics.features import load_model, trunk_maps

        net = load_model(x.device)
        out = {}
        for box in self.boxes:
            part = crop(x, box).contiguous(memory_format=torch.channels_last)
            maps = [m(f) for m, f in zip(self.mix, trunk_maps(net, part, TAPS))]
            out[box.name] = torch.cat([h(f) for h, f in zip(self.heads[box.name], maps)], dim=1)
        return out
