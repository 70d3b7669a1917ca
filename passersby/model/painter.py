"""The feedback loop's painter: markers (model/markers.py) -> a painted face, a small U-Net.

pix2pix's generator in spirit (an encoder-decoder with skip connections, trained with L1 and an
adversarial term), sized for real time on a 2-core CPU: at 256 x 256 it costs 1.46 GFLOPs per frame with ngf 16
(3.2 with ngf 24). Upsampling is nearest-neighbour + 3x3 convolution (no transposed
convolutions: no checkerboard, which the feedback loop would amplify frame after frame), and
normalisation is per picture (InstanceNorm), so a frame never depends on its batch.

Shapes at 256, depth 5, ngf 16: markers (N, 4, 256, 256) -> encoder 128 / 64 / 32 / 16 / 8 px
with 16 / 32 / 64 / 128 / 128 channels -> decoder back up, each level concatenating its skip ->
picture (N, 3, 256, 256) in [-1, 1].
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from passersby.config import PainterConfig

MARKER_CHANNELS = 4


def _widths(cfg: PainterConfig) -> list[int]:
    return [cfg.ngf * min(2 ** i, 8) for i in range(cfg.depth)]


class Down(nn.Module):
    """Halve the side: 4x4 stride-2 convolution, InstanceNorm (not on the first), LeakyReLU."""

    def __init__(self, cin: int, cout: int, norm: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 4, 2, 1, bias=not norm)
        self.norm = nn.InstanceNorm2d(cout, affine=True) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.norm(self.conv(x)), 0.2)


class Up(nn.Module):
    """Double the side: nearest upsampling, concatenate the skip, 3x3 convolution, norm, ReLU."""

    def __init__(self, cin: int, cskip: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin + cskip, cout, 3, 1, 1, bias=False)
        self.norm = nn.InstanceNorm2d(cout, affine=True)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        if skip is not None:
            x = torch.cat([x, skip], 1)
        return F.relu(self.norm(self.conv(x)))


class Painter(nn.Module):
    """markers (N, 4, R, R) in [-1, 1] -> picture (N, 3, R, R) in [-1, 1].

    Example:
        >>> p = Painter(PainterConfig(resolution=64, ngf=8, depth=3))
        >>> p(torch.zeros(2, 4, 64, 64)).shape
        torch.Size([2, 3, 64, 64])
    """

    def __init__(self, cfg: PainterConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w = _widths(cfg)
        self.down = nn.ModuleList(Down(cin, cout, norm=i > 0) for i, (cin, cout) in enumerate(zip([MARKER_CHANNELS] + w[:-1], w)))
        # Decoder level i: w[i] channels at side R / 2^(i+1) -> side R / 2^i, joined there by the
        # encoder's output of that side (w[i - 1] channels; none at full size).
        self.up = nn.ModuleList(Up(w[i], w[i - 1] if i else 0, w[i - 1] if i else w[0]) for i in range(cfg.depth))
        self.to_rgb = nn.Conv2d(w[0], 3, 3, 1, 1)

    def forward(self, markers: torch.Tensor) -> torch.Tensor:
        if markers.ndim != 4 or markers.shape[1] != MARKER_CHANNELS:
            raise ValueError(f"markers must be (N, {MARKER_CHANNELS}, H, W), got {tuple(markers.shape)}")
        skips, x = [], markers
        for d in self.down:
            x = d(x)
            skips.append(x)  # sides R/2, R/4, ..., R/2^depth
        for i in range(self.cfg.depth - 1, -1, -1):
            x = self.up[i](x, skips[i - 1] if i > 0 else None)
        return torch.tanh(self.to_rgb(x))


class LoopStep(nn.Module):
    """One step of the feedback loop as one graph (so a fast runtime can compile all of it):
    picture (1, 3, R, R) in [-1, 1] and drift field (1, R, R, 2) -> the painter's reading of the
    moved picture, (1, 3, R, R) in [-1, 1]. Reference: the same three calls in eager PyTorch.

    Example:
        >>> step = LoopStep(Painter(PainterConfig(resolution=64, ngf=8, depth=3)).eval())
        >>> step(torch.zeros(1, 3, 64, 64), torch.zeros(1, 64, 64, 2)).shape
        torch.Size([1, 3, 64, 64])
    """

    def __init__(self, painter: Painter) -> None:
        super().__init__()
        self.painter = painter

    def forward(self, image: torch.Tensor, field: torch.Tensor) -> torch.Tensor:
        from passersby.model.markers import read_markers, warp

        return self.painter(read_markers(warp(image, field)))
