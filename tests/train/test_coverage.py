"""The coverage term (IMLE) and the component discriminators' crops."""

from __future__ import annotations

import torch

from passersby.model.components import BOXES, ComponentDiscriminator, crop
from passersby.train.coverage import match, perceptual, search_features


class _Lookup(torch.nn.Module):
    """A 'generator' whose picture of z is one of a few fixed pictures, chosen by z's first
    coordinate (its normal CDF in equal bins: each picture as likely as the others)."""

    def __init__(self, pictures: torch.Tensor) -> None:
        super().__init__()
        self.pictures = pictures

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        n = len(self.pictures)
        return self.pictures[(torch.special.ndtr(z[:, 0]) * n).long().clamp(0, n - 1)]


def test_perceptual_is_zero_for_the_same_picture_and_grows_with_change():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(3, 3, 64, 64, generator=g) * 2 - 1
    same = perceptual(a, a)
    assert torch.allclose(same, torch.zeros(3), atol=1e-5)
    slightly = perceptual(a, (a + 0.05 * torch.randn(a.shape, generator=g)).clamp(-1, 1))
    other = perceptual(a, a.roll(1, 0))
    assert (slightly > 0).all() and (other > slightly).all()


def test_match_gives_every_real_face_its_nearest_pool_latent():
    g = torch.Generator().manual_seed(1)
    pictures = torch.rand(5, 3, 64, 64, generator=g) * 2 - 1
    G = _Lookup(pictures)
    real = pictures[[3, 0, 4]]
    gen = torch.Generator().manual_seed(2)
    # latents whose first coordinate picks each picture; the pool draws them from gen
    z = match(G, search_features(real), pool=64, z_dim=4, gen=gen, device=torch.device("cpu"))
    shown = G(z)
    # every real face was matched to a latent rendering that very picture (each of the 5 is
    # missing from 64 draws with probability 0.8^64 ~ 1e-6; the nearest is the identical one)
    assert torch.equal(shown, real)


def test_crops_hold_the_boxes_and_the_discriminator_judges_each():
    x = torch.zeros(2, 3, 256, 256)
    eyes = BOXES[0]
    y0, x0 = round(eyes.y0 * 256), round(eyes.x0 * 256)
    x[:, :, y0 + 4 : y0 + 8, x0 + 4 : x0 + 8] = 1.0  # a mark inside the eyes box only
    assert crop(x, eyes).amax() > 0.5 and crop(x, BOXES[1]).amax() == 0.0
    assert crop(x, eyes).shape == (2, 3, eyes.out_h, eyes.out_w)
    d = ComponentDiscriminator(width=8)
    out = d(x)
    assert set(out) == {"eyes", "mouth"} and all(v.shape[0] == 2 and v.shape[1] > 1 for v in out.values())
    assert not any(p.requires_grad for p in d.mix.parameters())
    assert all(p.requires_grad for p in d.heads.parameters())
