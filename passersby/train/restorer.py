"""Training the restorer (model/restorer.py) on pairs that carry the generator's own tells.

Pairs (train/restorer_pairs.py): each real training face and the generator's reconstruction of
it. Each step (batch B):

    paired   inp, real (B, 3, C, C): the same random C-px crop of both, flipped together
             -> out = R(inp); L1(out, real) + perceptual(out, real) (EfficientNet taps + L1 at 32 px)
    unpaired fake = R(crop of G(z)), z ~ N(0, I): what the screens will show (a pool of faces
             rendered once, so a step costs no generator pass)
             hinge loss of a patch critic: real crops vs R(inp) and R(G(z))

Crops (C = 128 of 256) make a step ~4x cheaper; the restorer is convolutional with a receptive
field of ~60 px, so it sees at 256 what it learnt on crops.

The paired terms teach what to change; the critic keeps faces the pairs never covered (the
random ones the screens show) from being left half-restored. The generator is untouched.

Example:
    >>> from passersby.config import ModelConfig, RestorerConfig
    >>> cfg = RestorerTrainConfig(batch=2)
    >>> cfg.perceptual_weight
    1.0
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from passersby.config import EnhancerConfig, RestorerConfig
from passersby.model.enhancer import PatchCritic
from passersby.model.restorer import Restorer


@dataclass(frozen=True)
class RestorerTrainConfig:
    """One restorer run.

    Args:
        restorer: the architecture.
        batch: pairs (and random faces) per step.
        lr: Adam learning rate of the restorer and the critic.
        perceptual_weight, l1_weight, adv_weight: the loss terms (module docstring).
        ema: decay of the restorer's moving average (what is saved).
        seed: RNG seed of batches and random faces.
    """

    restorer: RestorerConfig = RestorerConfig()
    batch: int = 8
    crop: int = 128
    lr: float = 1e-4
    l1_weight: float = 1.0
    perceptual_weight: float = 1.0
    adv_weight: float = 0.05
    ema: float = 0.995
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def to_float(x: np.ndarray) -> torch.Tensor:
    """(N, 3, S, S) uint8 -> float32 in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(x)).float().div(127.5).sub(1)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(N, 3, S, S) in [-1, 1] -> (N, S, S, 3) uint8."""
    return ((x.detach().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


class RestorerRun:
    """The restorer, its EMA copy, the critic, their optimisers and RNG: everything to resume.

    Args:
        faces: random faces of the generator it restores, (M, 3, S, S) uint8.
        recon, real: the pairs, (N, 3, S, S) uint8 each.
        cfg: the run's config.
    """

    def __init__(self, faces: np.ndarray, recon: np.ndarray, real: np.ndarray, cfg: RestorerTrainConfig) -> None:
        torch.manual_seed(cfg.seed)
        self.faces, self.recon, self.real, self.cfg = faces, recon, real, cfg
        self.R = Restorer(cfg.restorer)
        self.R_ema = copy.deepcopy(self.R).eval()
        self.D = PatchCritic(EnhancerConfig(ndf=32))
        self.opt_r = torch.optim.Adam(self.R.parameters(), lr=cfg.lr, betas=(0.5, 0.99))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr, betas=(0.5, 0.99))
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.step = 0

    def _crops(self, *arrays: np.ndarray) -> list[torch.Tensor]:
        """The same B random crops (and flips) of each (N, 3, S, S) uint8 array -> (B, 3, C, C)."""
        S = arrays[0].shape[-1]
        B, C = self.cfg.batch, min(self.cfg.crop, S)
        idx = torch.randint(0, len(arrays[0]), (B,), generator=self.gen).tolist()
        ys, xs = (torch.randint(0, S - C + 1, (B,), generator=self.gen).tolist() for _ in range(2))
        flip = (torch.rand(B, generator=self.gen) < 0.5).tolist()
        out = []
        for a in arrays:
            x = to_float(np.stack([a[i, :, y:y + C, x:x + C] for i, y, x in zip(idx, ys, xs)]))
            x[flip] = x[flip].flip(-1)
            out.append(x)
        return out

    def batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(inp, real, faces): B paired crops and B crops of random generated faces, (B, 3, C, C)."""
        inp, real = self._crops(self.recon, self.real)
        (faces,) = self._crops(self.faces)
        return inp, real, faces

    def train_step(self) -> dict[str, float]:
        """One critic update and one restorer update; the losses."""
        from passersby.train.coverage import perceptual
        from passersby.train.loop import update_ema

        c = self.cfg
        inp, real, faces = self.batch()                                   # (B, 3, C, C) each
        out, fake = self.R(inp), self.R(faces)
        both = torch.cat([out, fake])
        loss_d = F.relu(1 - self.D(real)).mean() + F.relu(1 + self.D(both.detach())).mean()
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()
        l1 = F.l1_loss(out, real)
        per = perceptual(out, real).mean()
        adv = -self.D(both).mean()
        loss = c.l1_weight * l1 + c.perceptual_weight * per + c.adv_weight * adv
        self.opt_r.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_r.step()
        update_ema(self.R_ema, self.R, c.ema)
        self.step += 1
        return {k: float(v.detach()) for k, v in (("d", loss_d), ("l1", l1), ("perceptual", per), ("adv", adv))}

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """(tensors, meta) for checkpoint.save_train_state."""
        t: dict[str, torch.Tensor] = {}
        for name, m in (("R", self.R), ("R_ema", self.R_ema), ("D", self.D)):
            t.update({f"{name}.{k}": v for k, v in m.state_dict().items()})
        for name, opt in (("opt_r", self.opt_r), ("opt_d", self.opt_d)):
            for i, s in opt.state_dict()["state"].items():
                t.update({f"{name}.{i}.{k}": torch.as_tensor(v) for k, v in s.items()})
        t["rng"] = self.gen.get_state()
        return t, {"step": self.step, "config": self.cfg.to_dict()}

    def load(self, t: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Restore what `state` wrote (exact resume)."""
        for name, m in (("R", self.R), ("R_ema", self.R_ema), ("D", self.D)):
            m.load_state_dict({k[len(name) + 1:]: v for k, v in t.items() if k.startswith(name + ".")})
        for name, opt in (("opt_r", self.opt_r), ("opt_d", self.opt_d)):
            sd = opt.state_dict()
            params = sd["param_groups"][0]["params"]
            sd["state"] = {i: {k: t[f"{name}.{i}.{k}"].clone() for k in ("step", "exp_avg", "exp_avg_sq")}
                           for i in params if f"{name}.{i}.step" in t}
            opt.load_state_dict(sd)
        self.gen.set_state(t["rng"])
        self.step = int(meta["step"])


def train(run: RestorerRun, folder: Path, minutes: float, checkpoint_minutes: float = 3.0,
          log: Callable[[str], None] = print) -> None:
    """Train for `minutes` of wall time, checkpointing to folder/state.safetensors (atomic) every
    `checkpoint_minutes` and at the end; resumes from it when it exists."""
    from passersby.checkpoint import load_train_state, save_train_state

    ckpt = folder / "state.safetensors"
    if ckpt.exists():
        run.load(*load_train_state(ckpt))
        log(f"resumed at step {run.step}")
    t0 = last = time.monotonic()
    while time.monotonic() - t0 < minutes * 60:
        losses = run.train_step()
        if run.step % 25 == 0:
            log(f"step {run.step} " + " ".join(f"{k} {v:.3f}" for k, v in losses.items()))
        if time.monotonic() - last > checkpoint_minutes * 60:
            save_train_state(ckpt, *run.state())
            last = time.monotonic()
    save_train_state(ckpt, *run.state())
