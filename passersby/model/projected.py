"""A discriminator on frozen pretrained features (after Sauer et al. 2021, "Projected GANs Converge Faster").

Why: with ~1,500 paintings and a 2-core CPU, a discriminator learned from scratch spends most of
its compute learning what an eye is, and memorises the few images it has. Here the first layers
are EfficientNet-Lite0's ImageNet features (frozen, from a PyPI package): the discriminator only
learns small heads on top, and the generator gets gradients that already know about edges,
textures and parts. Two fixed random projections make the features harder to exploit:
- cross-channel mixing (CCM): a random 1x1 conv per scale;
- cross-scale mixing (CSM): a random top-down pathway (FPN-like) so every scale also carries
  coarser context.
Neither is trained (their weights are buffers-like, requires_grad False) — training them would
let the discriminator focus on a few features and bring back the overfitting.

Shapes for a 256² input (EfficientNet-Lite0 taps after blocks 2, 4, 10, 15):
    (N, 24, 64, 64), (N, 40, 32, 32), (N, 112, 16, 16), (N, 320, 8, 8)
-> CCM/CSM -> (N, C_s, H_s, W_s) with C_s = 64, 128, 256, 512
-> one head per scale, patch logits -> concatenated (N, L).

Conditional models add a projection term per head (Miyato & Koyama 2018): the inner product of
a class embedding with the head's pooled features, for real images whose label is known.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import spectral_norm

from passersby.config import ModelConfig

# Indices of EfficientNet-Lite0 blocks whose outputs are tapped (after the block), and the
# channel count there. Block 2: stride 4; 4: stride 8; 10: stride 16; 15: stride 32.
TAPS = (2, 4, 10, 15)
TAP_CHANNELS = (24, 40, 112, 320)
MIXED_CHANNELS = (64, 128, 256, 512)


def _trunk_maps(net: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """EfficientNet-Lite0's tapped maps (metrics/features.trunk_maps). x: (N, 3, H, W) in [-1, 1]."""
    from passersby.metrics.features import trunk_maps

    return trunk_maps(net, x, TAPS)


def fix_randomly(module: nn.Module, g: torch.Generator) -> None:
    """Kaiming-uniform weights, zero biases for every conv of `module`, drawn in module order from
    the explicit stream `g` (the same in every run), then frozen: fixed random projections."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            bound = (6.0 / (m.in_channels * m.kernel_size[0] * m.kernel_size[1])) ** 0.5
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 2 * bound - bound)
                m.bias.zero_()
    module.requires_grad_(False)


class RandomMixing(nn.Module):
    """Fixed random CCM (1x1 per scale) and CSM (top-down 1x1 + 3x3 merge) over the tapped maps."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.ccm = nn.ModuleList(nn.Conv2d(c, m, 1) for c, m in zip(TAP_CHANNELS, MIXED_CHANNELS))
        # CSM: the coarser mixed map is projected to the finer map's width, upsampled and added.
        self.lateral = nn.ModuleList(
            nn.Conv2d(MIXED_CHANNELS[i + 1], MIXED_CHANNELS[i], 1) for i in range(len(TAPS) - 1)
        )
        self.smooth = nn.ModuleList(nn.Conv2d(m, m, 3, 1, 1) for m in MIXED_CHANNELS)
        fix_randomly(self, g)

    def forward(self, maps: list[torch.Tensor]) -> list[torch.Tensor]:
        mixed = [ccm(x) for ccm, x in zip(self.ccm, maps)]
        out = [mixed[-1]]
        for i in range(len(mixed) - 2, -1, -1):  # coarse -> fine
            up = F.interpolate(self.lateral[i](out[0]), size=mixed[i].shape[-2:], mode="bilinear",
                               align_corners=False)
            out.insert(0, mixed[i] + up)
        return [s(x) for s, x in zip(self.smooth, out)]


class ScaleHead(nn.Module):
    """Trainable patch discriminator on one mixed map: (N, C, H, W) -> logits (N, P).

    Strided conv blocks halve the map until 8x8 (FastGAN/Projected GAN "DownBlock": conv 4x4 s2,
    BN, LeakyReLU), then a 4x4 conv gives 5x5 patch logits.
    """

    def __init__(self, cin: int, size: int, width: int, n_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = cin
        while size > 8:
            cout = min(width * 2, 512) if c < width else min(c * 2, 512)
            layers += [spectral_norm(nn.Conv2d(c, cout, 4, 2, 1, bias=False)), nn.BatchNorm2d(cout),
                       nn.LeakyReLU(0.2)]
            c, size = cout, size // 2
        self.body = nn.Sequential(*layers)
        # 4x4 patches; a map smaller than that (tiny test models) gets one logit per position.
        self.out = spectral_norm(nn.Conv2d(c, 1, min(4, size), 1, 0))
        self.embed = spectral_norm(nn.Embedding(n_classes, c)) if n_classes else None

    def forward(self, x: torch.Tensor, label: torch.Tensor | None) -> torch.Tensor:
        h = self.body(x)  # (N, C, 8, 8) (or smaller for small inputs)
        logits = self.out(h).flatten(1)  # (N, P)
        if self.embed is not None and label is not None:
            known = (label >= 0).to(h.dtype)[:, None]  # -1 = unlabelled real image: no term
            proj = (self.embed(label.clamp(min=0)) * h.mean(dim=(2, 3))).sum(1, keepdim=True)
            logits = logits + proj * known
        return logits


class ProjectedDiscriminator(nn.Module):
    """image (N, 3, R, R) [+ class (N,)] -> logits (N, L) from frozen EfficientNet-Lite0 features.

    The feature network is NOT a submodule: it is the frozen, packaged ImageNet model, shared
    (read-only) with the metrics, never trained and never saved in checkpoints.

    Args:
        cfg: the model's config; cfg.ndf sets the heads' width, cfg.d_resolution the side at
            which the feature network sees images (at most the generator's resolution; smaller
            is cheaper: 192 costs ~56 % of 256).

    Example:
        >>> d = ProjectedDiscriminator(ModelConfig(resolution=64, ndf=8, d_resolution=64))
        >>> d(torch.randn(2, 3, 64, 64)).shape[0]
        2
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        # Never above the generator's side: upsampling adds cost, not information.
        self.d_res = min(cfg.d_resolution or cfg.resolution, cfg.resolution)
        self.mixing = RandomMixing(seed=0)
        sizes = [self.d_res // s for s in (4, 8, 16, 32)]
        self.heads = nn.ModuleList(
            ScaleHead(m, max(s, 1), cfg.ndf, cfg.n_classes) for m, s in zip(MIXED_CHANNELS, sizes)
        )

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        from passersby.metrics.features import load_model

        if x.shape[-1] != self.d_res:
            x = F.interpolate(x, size=(self.d_res, self.d_res), mode="bilinear", align_corners=False,
                              antialias=True)
        net = load_model(x.device)
        maps = _trunk_maps(net, x.contiguous(memory_format=torch.channels_last))
        return self.mixing(maps)

    def forward(self, x: torch.Tensor, label: torch.Tensor | None = None,
                return_features: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """logits (N, L); with `return_features`, also the coarsest mixed map pooled, (N, C).

        The pooled map is what the feature-space mode-seeking term compares (train/loop.py): it
        comes from the same forward pass, so the term costs no extra EfficientNet evaluation.
        """
        if self.cfg.n_classes and label is None:
            raise ValueError("this discriminator is conditional: pass class labels")
        feats = self.features(x)
        logits = torch.cat([h(f, label) for h, f in zip(self.heads, feats)], dim=1)
        if return_features:
            return logits, feats[-1].mean(dim=(2, 3))
        return logits
