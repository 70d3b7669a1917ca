"""FastGAN-style two-scale discriminator with a self-supervised reconstruction decoder.

With ~1,000 training images a discriminator memorises its data within minutes and its
gradients become useless. FastGAN's remedy, used here, is to make the discriminator also
reconstruct (a downscaled copy of) the real image from its own 8x8 features, which forces it to
keep features that describe the whole face rather than a shortcut. Conditional models add a
projection term (Miyato & Koyama 2018): the inner product of a class embedding with the pooled
features.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import spectral_norm

from passersby.config import ModelConfig

RECON_SIZE = 128  # side of the image the decoder reconstructs (or the resolution, if smaller)


def _sn_conv(cin: int, cout: int, k: int, s: int, p: int) -> nn.Module:
    return spectral_norm(nn.Conv2d(cin, cout, k, s, p, bias=False))


class DownBlock(nn.Module):
    """(N, Cin, H, W) -> (N, Cout, H/2, W/2): a strided conv path averaged with a pooled path."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            _sn_conv(cin, cout, 4, 2, 1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2),
            _sn_conv(cout, cout, 3, 1, 1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2),
        )
        self.direct = nn.Sequential(
            nn.AvgPool2d(2, 2), _sn_conv(cin, cout, 1, 1, 0), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.main(x) + self.direct(x)) / 2


def _down_path(cin: int, size: int, ndf: int) -> tuple[nn.Sequential, int]:
    """Stem conv (size -> size/2) then DownBlocks until 8x8; returns (path, channels at 8x8)."""
    c = min(ndf * 2, 512) if size >= 256 else ndf * 4
    layers: list[nn.Module] = [_sn_conv(cin, c, 4, 2, 1), nn.LeakyReLU(0.2)]
    s = size // 2
    while s > 8:
        cout = min(c * 2, ndf * 8)
        layers.append(DownBlock(c, cout))
        c, s = cout, s // 2
    return nn.Sequential(*layers), c


def _up(cin: int, cout: int) -> nn.Module:
    return nn.Sequential(
        nn.Upsample(scale_factor=2.0, mode="nearest"),
        _sn_conv(cin, cout * 2, 3, 1, 1), nn.BatchNorm2d(cout * 2), nn.GLU(dim=1),
    )


class Decoder(nn.Module):
    """(N, C, 8, 8) -> (N, 3, S, S) with S = min(RECON_SIZE, resolution)."""

    def __init__(self, cin: int, out_size: int, ndf: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c, s = cin, 8
        while s < out_size:
            cout = max(ndf // 2, c // 2)
            layers.append(_up(c, cout))
            c, s = cout, s * 2
        layers += [nn.Conv2d(c, 3, 3, 1, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Discriminator(nn.Module):
    """image (N, 3, R, R) [+ class (N,)] -> logits (N, 50), optionally the reconstruction.

    Example:
        >>> d = Discriminator(ModelConfig(resolution=64, ndf=8))
        >>> d(torch.randn(2, 3, 64, 64)).shape
        torch.Size([2, 50])
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        r = cfg.resolution
        self.big, c_big = _down_path(3, r, cfg.ndf)
        self.small, c_small = _down_path(3, r // 2, cfg.ndf)
        # 8x8 features -> 5x5 patch logits, one map per scale.
        self.head_big = nn.Sequential(
            _sn_conv(c_big, c_big // 2, 1, 1, 0), nn.BatchNorm2d(c_big // 2), nn.LeakyReLU(0.2),
            _sn_conv(c_big // 2, 1, 4, 1, 0),
        )
        self.head_small = _sn_conv(c_small, 1, 4, 1, 0)
        self.recon_size = min(RECON_SIZE, r)
        self.decoder = Decoder(c_big, self.recon_size, cfg.ndf)
        if cfg.n_classes:
            self.class_embed = spectral_norm(nn.Embedding(cfg.n_classes, c_big))

    def forward(
        self, x: torch.Tensor, label: torch.Tensor | None = None, reconstruct: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        f_big = self.big(x)  # (N, Cb, 8, 8)
        x_small = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)
        f_small = self.small(x_small)  # (N, Cs, 8, 8)
        logits = torch.cat(
            [self.head_big(f_big).flatten(1), self.head_small(f_small).flatten(1)], dim=1
        )  # (N, 50)
        if self.cfg.n_classes:
            if label is None:
                raise ValueError("this discriminator is conditional: pass class labels")
            # label -1 = unknown (an unlabelled real image): no projection term for it, so the
            # unconditional part still learns from every image.
            known = label >= 0
            pooled = f_big.mean(dim=(2, 3))  # (N, Cb)
            proj = (self.class_embed(label.clamp(min=0)) * pooled).sum(1, keepdim=True)
            logits = logits + proj * known[:, None].to(proj.dtype)
        if reconstruct:
            return logits, self.decoder(f_big)
        return logits
