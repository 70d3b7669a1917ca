"""The enhancer: a learned upscaler that paints a frame at `scale` times its side.

    x (N, 3, H, W) in [-1, 1]
      -> base = bicubic(x, scale)                                   (N, 3, sH, sW)
      -> unshuffle(x, 2) (N, 12, H/2, W/2) -> conv -> residual blocks -> conv
      -> pixel shuffle (2 * scale): the detail (N, 3, sH, sW)       -> base + detail

The network only adds what resizing cannot: the detail on top of a bicubic picture (so an
untrained one already resizes, and training moves it towards painted strokes). It works at
half the input's side (pixel unshuffle, as real-time upscalers do): at 256 -> 512 with 32
channels and 2 blocks it costs ~1.8 GFLOPs per frame, about a fifth of what the same layers
would cost at full side. 3x3 convolutions and pixel shuffle only (no transposed convolutions:
no checkerboard).

`PatchCritic` is the optional adversarial term's discriminator (pixels, 70x70-ish patches,
pix2pix's PatchGAN in spirit).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from passersby.config import EnhancerConfig

UNSHUFFLE = 2
CUBIC_A = -0.75  # PyTorch's bicubic (Keys' cubic convolution with a = -0.75)


def _cubic(d: float) -> float:
    d = abs(d)
    if d <= 1:
        return (CUBIC_A + 2) * d ** 3 - (CUBIC_A + 3) * d ** 2 + 1
    if d < 2:
        return CUBIC_A * (d ** 3 - 5 * d ** 2 + 8 * d - 4)
    return 0.0


def bicubic_taps(scale: int) -> torch.Tensor:
    """(scale, 5) weights: output phase p of `scale` reads input pixels i-2 .. i+2 (align_corners
    False: phase p sits at input coordinate i + (p + 0.5) / scale - 0.5).

    Example:
        >>> bicubic_taps(2).sum(1)
        tensor([1., 1.])
    """
    taps = torch.zeros(scale, 5)
    for p in range(scale):
        c = (p + 0.5) / scale - 0.5
        for j in range(5):
            taps[p, j] = _cubic((j - 2) - c)
    return taps


class Bicubic(nn.Module):
    """Bicubic upscaling as a fixed grouped 5x5 convolution + pixel shuffle: the same numbers as
    F.interpolate(mode="bicubic", align_corners=False) (border pixels repeated, as PyTorch
    clamps), but one cheap convolution for a fast runtime (OpenVINO's own cubic resize costs
    ~19 ms at 256 -> 512 on one core; this ~1 ms). tests/model/test_enhancer.py compares them.

    Example:
        >>> x = torch.rand(1, 3, 8, 8)
        >>> ref = F.interpolate(x, scale_factor=2.0, mode="bicubic", align_corners=False)
        >>> bool(torch.allclose(Bicubic(2)(x), ref, atol=1e-5))
        True
    """

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale
        t = bicubic_taps(scale)  # (s, 5)
        k = torch.einsum("pi,qj->pqij", t, t).reshape(scale * scale, 1, 5, 5)  # phase (row p, col q)
        self.register_buffer("kernel", k.repeat(3, 1, 1, 1), persistent=False)  # (3 s^2, 1, 5, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), self.kernel, groups=3)  # (N, 3 s^2, H, W)
        return F.pixel_shuffle(y, self.scale)


class Block(nn.Module):
    """x + conv(relu(conv(x))), both 3x3, no normalisation (a frame never depends on a batch)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.a = nn.Conv2d(c, c, 3, 1, 1)
        self.b = nn.Conv2d(c, c, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.b(F.relu(self.a(x)))


class Enhancer(nn.Module):
    """picture (N, 3, H, W) in [-1, 1], H and W even -> (N, 3, scale H, scale W), not clamped.

    Example:
        >>> e = Enhancer(EnhancerConfig(resolution=64, channels=8, blocks=1))
        >>> e(torch.zeros(1, 3, 32, 32)).shape
        torch.Size([1, 3, 64, 64])
    """

    def __init__(self, cfg: EnhancerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c, up = cfg.channels, UNSHUFFLE * cfg.scale
        self.head = nn.Conv2d(3 * UNSHUFFLE ** 2, c, 3, 1, 1)
        self.body = nn.Sequential(*[Block(c) for _ in range(cfg.blocks)])
        self.tail = nn.Conv2d(c, 3 * up * up, 3, 1, 1)
        self.base = Bicubic(cfg.scale)
        nn.init.zeros_(self.tail.weight)  # starts as plain bicubic resizing
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[-1] % UNSHUFFLE or x.shape[-2] % UNSHUFFLE:
            raise ValueError(f"pictures must be (N, 3, H, W) with even sides, got {tuple(x.shape)}")
        base = self.base(x)  # (N, 3, sH, sW): bicubic
        f = F.relu(self.head(F.pixel_unshuffle(x, UNSHUFFLE)))  # (N, c, H/2, W/2)
        f = self.body(f)
        return base + F.pixel_shuffle(self.tail(f), UNSHUFFLE * self.cfg.scale)


class PatchCritic(nn.Module):
    """pixels (N, 3, S, S) in [-1, 1] -> (N, 1, S/8, S/8) logits, one per overlapping patch.

    Example:
        >>> PatchCritic(EnhancerConfig(resolution=64, ndf=8))(torch.zeros(2, 3, 64, 64)).shape
        torch.Size([2, 1, 8, 8])
    """

    def __init__(self, cfg: EnhancerConfig) -> None:
        super().__init__()
        w = cfg.ndf
        layers: list[nn.Module] = []
        for cin, cout in ((3, w), (w, 2 * w), (2 * w, 4 * w)):
            layers += [nn.utils.spectral_norm(nn.Conv2d(cin, cout, 4, 2, 1)), nn.LeakyReLU(0.2)]
        layers.append(nn.utils.spectral_norm(nn.Conv2d(4 * w, 1, 3, 1, 1)))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def enhancer_flops(cfg: EnhancerConfig, side: int) -> float:
    """Multiply-adds x 2 of one (side x side) -> (scale side)^2 frame (convolutions only).

    Example:
        >>> round(enhancer_flops(EnhancerConfig(), 256) / 1e9, 2)
        1.77
    """
    g = (side // UNSHUFFLE) ** 2
    c, up = cfg.channels, UNSHUFFLE * cfg.scale
    macs = g * 9 * (3 * UNSHUFFLE ** 2 * c + 2 * cfg.blocks * c * c + c * 3 * up * up)
    return 2.0 * macs
