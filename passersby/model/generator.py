"""FastGAN-style generator (Liu et al. 2021, "Towards Faster and Stabilized GAN Training").

Skip-layer excitation (SLE) lets coarse feature maps gate the channels of fine ones, which is
what lets this small network learn from ~1,000 images. Written from the paper; the widths are
scaled by `ngf` so the default (ngf=16, 256²) costs 1.2 GFLOPs a frame and runs in real time
on a laptop CPU.

The generator is batch-independent at inference: BatchNorm runs on running statistics in
`eval()` mode, which `recalibrate_batchnorm` re-estimates for the EMA weights (a stream renders
one frame at a time, so batch statistics are not an option).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from passersby.config import ModelConfig
from passersby.model.restorer import Restorer

# Channel multiplier of ngf at each spatial size (FastGAN's nfc table).
WIDTHS = {4: 8, 8: 8, 16: 4, 32: 2, 64: 2, 128: 1, 256: 0.5}


def _ch(cfg: ModelConfig, size: int) -> int:
    return max(8, int(WIDTHS[size] * cfg.ngf))


class GLU(nn.Module):
    """Gated linear unit over channels: (N, 2C, H, W) -> (N, C, H, W)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * torch.sigmoid(b)


class UpBlock(nn.Module):
    """Nearest 2x upsample, conv3x3, BN, GLU: (N, Cin, H, W) -> (N, Cout, 2H, 2W).

    `double` adds FastGAN's second conv ("UpBlockComp"). FastGAN's per-pixel noise injection is
    left out on purpose: a frame must be a pure function of (weights, z, class) so that a stream
    can be re-rendered and does not shimmer between frames.
    """

    def __init__(self, cin: int, cout: int, double: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Upsample(scale_factor=2.0, mode="nearest"),
            nn.Conv2d(cin, cout * 2, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout * 2),
            GLU(),
        ]
        if double:
            layers += [nn.Conv2d(cout, cout * 2, 3, 1, 1, bias=False), nn.BatchNorm2d(cout * 2), GLU()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SLE(nn.Module):
    """Skip-layer excitation: channel gates from a 4x4-pooled coarse map scale a fine map.

    small: (N, Cs, h, w), big: (N, Cb, H, W) -> (N, Cb, H, W)
    """

    def __init__(self, c_small: int, c_big: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.AdaptiveAvgPool2d(4),
            nn.Conv2d(c_small, c_big, 4, 1, 0, bias=False),
            nn.SiLU(),
            nn.Conv2d(c_big, c_big, 1, 1, 0, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, small: torch.Tensor, big: torch.Tensor) -> torch.Tensor:
        return big * self.net(small)


class Generator(nn.Module):
    """z (N, z_dim) [+ class (N,)] -> image (N, 3, R, R) in [-1, 1].

    Example:
        >>> g = Generator(ModelConfig(resolution=64, ngf=8)).eval()
        >>> g(torch.randn(2, 128)).shape
        torch.Size([2, 3, 64, 64])
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        in_dim = cfg.z_dim
        if cfg.n_classes:
            # Class embedding concatenated to z: simple, and a stream can blend classes by
            # interpolating embeddings if it ever wants to.
            self.class_embed = nn.Embedding(cfg.n_classes, cfg.z_dim)
            in_dim = cfg.z_dim * 2
        c4 = _ch(cfg, 4)
        self.init = nn.Sequential(
            nn.ConvTranspose2d(in_dim, c4 * 2, 4, 1, 0, bias=False),
            nn.BatchNorm2d(c4 * 2),
            GLU(),
        )
        sizes = [8, 16, 32, 64, 128, 256]
        sizes = [s for s in sizes if s <= cfg.resolution]
        # Blocks at even positions carry a second conv, as in FastGAN.
        self.ups = nn.ModuleDict()
        prev = c4
        for i, s in enumerate(sizes):
            self.ups[str(s)] = UpBlock(prev, _ch(cfg, s), double=(i % 2 == 0))
            prev = _ch(cfg, s)
        # SLE pairs (coarse -> fine), shifted with resolution so the smallest model still has one.
        self.sle_pairs = [(4, 64), (8, 128), (16, 256)]
        self.sle_pairs = [(a, b) for a, b in self.sle_pairs if b <= cfg.resolution]
        if cfg.resolution == 64:
            self.sle_pairs = [(4, 32), (8, 64)]
        self.sles = nn.ModuleDict({f"{a}_{b}": SLE(_ch(cfg, a), _ch(cfg, b)) for a, b in self.sle_pairs})
        self.to_rgb = nn.Conv2d(prev, 3, 3, 1, 1)
        # The optional last stage (model/restorer.py): trained after the GAN, on pairs that carry
        # this generator's own tells; None in every model trained before it existed.
        self.restorer = Restorer(cfg.restorer) if cfg.restorer is not None else None

    def embed(self, z: torch.Tensor, label: torch.Tensor | None) -> torch.Tensor:
        """(N, z_dim) [+ (N,) int64] -> the 4x4 network input (N, z_dim[*2], 1, 1).

        Label -1 is "no class": the mean of the class embeddings, a face between the classes
        (what an unlabelled screen of a conditional model shows).
        """
        if self.cfg.n_classes:
            if label is None:
                raise ValueError("this generator is conditional: pass a class label per latent")
            vec = self.class_embed(label.clamp(min=0))  # (N, z_dim)
            neutral = (label < 0)[:, None]
            if bool(neutral.any()):
                vec = torch.where(neutral, self.class_embed.weight.mean(0, keepdim=True), vec)
            z = torch.cat([z, vec], dim=1)
        return z[:, :, None, None]

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        feats = {4: self.init(self.embed(z, label))}
        x = feats[4]
        for s_str, block in self.ups.items():
            s = int(s_str)
            x = block(x)
            for a, b in self.sle_pairs:
                if b == s:
                    x = self.sles[f"{a}_{b}"](feats[a], x)
            feats[s] = x
        image = torch.tanh(self.to_rgb(x))  # (N, 3, R, R)
        return self.restorer(image) if self.restorer is not None else image


@torch.no_grad()
def recalibrate_batchnorm(
    g: Generator, n_batches: int, batch_size: int, gen: torch.Generator, device: torch.device
) -> None:
    """Re-estimate BatchNorm running statistics of `g` (e.g. the EMA copy) on fresh latents.

    EMA weights never ran forward during training, so the running statistics they inherited
    belong to other weights; re-estimating them (as SWA does) keeps eval-mode outputs right.
    Uses a cumulative average (momentum=None) over `n_batches` batches.
    """
    bns = [m for m in g.modules() if isinstance(m, nn.BatchNorm2d)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    was_training = g.training
    g.train()
    for _ in range(n_batches):
        z = torch.randn(batch_size, g.cfg.z_dim, generator=gen).to(device)
        label = None
        if g.cfg.n_classes:
            label = torch.randint(0, g.cfg.n_classes, (batch_size,), generator=gen).to(device)
        g(z, label)
    for m, mom in zip(bns, saved):
        m.momentum = mom
    g.train(was_training)
