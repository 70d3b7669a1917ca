"""The training loop: hinge-loss GAN with DiffAugment, a reconstructing discriminator and EMA.

Layout of a run folder (RUN):
    RUN/checkpoints/step-00001000.safetensors   resumable state, last K kept
    RUN/best.safetensors                        resumable state with the best KID so far
    RUN/model.safetensors                       inference generator (EMA) of the latest step
    RUN/best-model.safetensors                  inference generator of the best step
    RUN/samples/step-00001000.png, latest.png   grids of fixed latents
    RUN/curves.png, RUN/log.jsonl               losses and metrics
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from passersby.checkpoint import CheckpointError, load_train_state, save_model, save_train_state
from passersby.config import ModelConfig, TrainConfig
from passersby.model.augment import diff_augment, parse_policy
from passersby.model.discriminator import Discriminator
from passersby.model.generator import Generator, recalibrate_batchnorm
from passersby.train import dist
from passersby.data.training_set import TrainingSet
from passersby.pictures import grid_image, save_png, to_uint8
from passersby.train.state import RNG_NAMES, Rngs, TrainState, pack, unpack

GRID_N = 16
CALIB_SEED = 1234  # BN recalibration draws from its own fixed stream: never disturbs the run's


@dataclass
class StepStats:
    loss_d: float
    loss_g: float
    loss_recon: float


def build_state(cfg: TrainConfig, device: torch.device, rank: int = 0) -> TrainState:
    """Fresh networks (seeded init), Adam optimisers and RNG streams for a run."""
    torch.manual_seed(cfg.seed)  # weight init and spectral-norm vectors: same on every rank
    G, D = Generator(cfg.model).to(device), make_discriminator(cfg.model).to(device)
    return state_for(G, D, cfg, rank)


def state_for(G: torch.nn.Module, D: torch.nn.Module, cfg: TrainConfig, rank: int = 0) -> TrainState:
    """A run's state around freshly built networks: EMA copy of G, Adam optimisers, RNG streams."""
    G_ema = copy.deepcopy(G).eval()
    for p in G_ema.parameters():
        p.requires_grad_(False)
    betas = (cfg.beta1, cfg.beta2)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=betas)
    # Only trainable parameters: the projected discriminator's random mixing stays fixed.
    opt_d = torch.optim.Adam([p for p in D.parameters() if p.requires_grad], lr=cfg.lr, betas=betas)
    ts = TrainState(G, D, G_ema, opt_g, opt_d, Rngs.seeded(cfg.seed, rank))
    if cfg.parts_weight > 0:
        from passersby.model.components import ComponentDiscriminator

        ts.P = ComponentDiscriminator(width=cfg.model.ndf * 2).to(next(D.parameters()).device)
        ts.opt_p = torch.optim.Adam([p for p in ts.P.parameters() if p.requires_grad], lr=cfg.lr, betas=betas)
    return ts


def make_discriminator(cfg: ModelConfig) -> torch.nn.Module:
    """The discriminator the config names: FastGAN's (pixels) or the projected one (features)."""
    if cfg.discriminator == "projected":
        from passersby.model.projected import ProjectedDiscriminator

        return ProjectedDiscriminator(cfg)
    return Discriminator(cfg)


def bf16_available(device: torch.device) -> bool:
    """bfloat16 autocast pays off on CUDA and on CPUs with native bf16 dot products (avx512_bf16/AMX)."""
    if device.type == "cuda":
        return True
    return device.type == "cpu" and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def _autocast(device: torch.device, enabled: bool):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled and bf16_available(device))


def train_step(ts: TrainState, data: TrainingSet, cfg: TrainConfig, device: torch.device,
               info: dist.DistInfo) -> StepStats:
    """One discriminator update and one generator update on a fresh batch."""
    policy = parse_policy(cfg.augment)
    real, label, fake_label = data.batch(cfg.batch_size, ts.rngs.data, device)
    if not cfg.model.n_classes:
        label = fake_label = None
    half = cfg.batch_size // 2
    if cfg.ms_weight > 0 and fake_label is not None:
        # Mode seeking compares pairs (i, i + half) of the SAME class: only z differs in a pair.
        fake_label = torch.cat([fake_label[:half], fake_label[:half], fake_label[2 * half:]])
    z = torch.randn(cfg.batch_size, cfg.model.z_dim, generator=ts.rngs.z).to(device)
    amp = cfg.amp
    with _autocast(device, amp):
        fake = ts.G(z, fake_label)
    # --- discriminator: hinge on real/fake (+ FastGAN's L1 reconstruction of the augmented real)
    with _autocast(device, amp):
        real_aug = diff_augment(real, policy, ts.rngs.aug)
        if cfg.model.discriminator == "projected":
            logits_real, loss_recon = ts.D(real_aug, label), torch.zeros(())
        else:
            logits_real, recon = ts.D(real_aug, label, reconstruct=True)
            target = F.interpolate(real_aug, size=recon.shape[-1], mode="area")
            loss_recon = F.l1_loss(recon.float(), target.float())
        logits_fake = ts.D(diff_augment(fake.detach(), policy, ts.rngs.aug), fake_label)
        loss_d = F.relu(1 - logits_real.float()).mean() + F.relu(1 + logits_fake.float()).mean()
    loss_parts = parts_d_loss(ts, real_aug, fake, policy, amp, device) if ts.P is not None else None
    ts.opt_d.zero_grad(set_to_none=True)
    total_d = loss_d + cfg.recon_weight * loss_recon
    if loss_parts is not None:
        ts.opt_p.zero_grad(set_to_none=True)
        total_d = total_d + cfg.parts_weight * loss_parts
    total_d.backward()
    dist.average_gradients(ts.D, info)
    ts.opt_d.step()
    if loss_parts is not None:
        dist.average_gradients(ts.P, info)
        ts.opt_p.step()
    # --- generator: fool the discriminator through the same augmentation
    on_features = cfg.ms_weight > 0 and half > 0 and cfg.ms_space == "features"
    with _autocast(device, amp):
        out = ts.D(diff_augment(fake, policy, ts.rngs.aug), fake_label, **({"return_features": True} if on_features else {}))
        logits, pooled = out if on_features else (out, None)
        loss_g = -logits.float().mean()
    loss_total = loss_g
    if cfg.ms_weight > 0 and half > 0:
        seen = pooled.float() if on_features else fake.float()  # (N, C) or (N, 3, R, R)
        loss_total = loss_g + cfg.ms_weight * mode_seeking_loss(seen, z, half)
    if ts.P is not None:
        with _autocast(device, amp):
            parts = ts.P(diff_augment(fake, policy, ts.rngs.aug))
            loss_total = loss_total - cfg.parts_weight * sum(v.float().mean() for v in parts.values())
    if cfg.cov_weight > 0:
        from passersby.train.coverage import coverage_loss

        with _autocast(device, amp):
            loss_total = loss_total + cfg.cov_weight * coverage_loss(ts, data, cfg, device, _real_feats(data, device))
    ts.opt_g.zero_grad(set_to_none=True)
    loss_total.backward()
    dist.average_gradients(ts.G, info)
    ts.opt_g.step()
    update_ema(ts.G_ema, ts.G, cfg.ema_decay)
    ts.step += 1
    return StepStats(loss_d.item(), loss_g.item(), loss_recon.item())


def parts_d_loss(ts: TrainState, real_aug: torch.Tensor, fake: torch.Tensor, policy, amp: bool,
                 device: torch.device) -> torch.Tensor:
    """Hinge loss of the component discriminators (eyes, mouth) on real and generated faces.

    The real faces are the whole discriminator's augmented batch (translation moves the parts
    as much as DiffAugment moves them in the fakes: the crops stay comparable).
    """
    with _autocast(device, amp):
        real = ts.P(real_aug)
        fake_parts = ts.P(diff_augment(fake.detach(), policy, ts.rngs.aug))
        return sum(F.relu(1 - real[k].float()).mean() + F.relu(1 + fake_parts[k].float()).mean() for k in real)


def _real_feats(data: TrainingSet, device: torch.device) -> torch.Tensor:
    """The coverage term's features of every training face, computed once per run (not saved:
    a pure function of the data)."""
    cached = getattr(data, "_cov_feats", None)
    if cached is None:
        from passersby.train.coverage import real_features

        cached = real_features(data.images, device)
        data._cov_feats = cached
    return cached


def mode_seeking_loss(fake: torch.Tensor, z: torch.Tensor, half: int) -> torch.Tensor:
    """MSGAN's term: 1 / (mean L1 picture distance / mean L1 latent distance) over pairs (i, i+half).

    A generator that ignores z (every latent of a class gives one face: the collapse this
    project's conditional models fell into) gets a large loss; fake (N, 3, R, R) pictures or (N, C)
    features of them, z (N, z_dim).
    """
    d_img = (fake[:half] - fake[half : 2 * half]).abs().flatten(1).mean(dim=1)  # (half,)
    d_z = (z[:half] - z[half : 2 * half]).abs().mean(dim=1)  # (half,)
    return 1.0 / ((d_img / d_z).mean() + 1e-5)


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model, parameters only (BN stats: recalibrated)."""
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm, 1.0 - decay)


def fixed_latents(cfg: ModelConfig, n: int = GRID_N) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The grid's latents: the same for every step of every run with this config."""
    g = torch.Generator().manual_seed(2024)
    z = torch.randn(n, cfg.z_dim, generator=g)
    label = torch.arange(n) % cfg.n_classes if cfg.n_classes else None
    return z, label


@torch.no_grad()
def ema_for_inference(ts: TrainState, device: torch.device) -> Generator:
    """A copy of the EMA generator with BatchNorm statistics re-estimated, in eval mode."""
    g = copy.deepcopy(ts.G_ema)
    # 512 latents on a GPU; 64 on a CPU, where each forward pass is expensive.
    n_batches, bs = (16, 32) if device.type == "cuda" else (4, 16)
    recalibrate_batchnorm(g, n_batches, bs, gen=torch.Generator().manual_seed(CALIB_SEED), device=device)
    return g.eval()


@torch.no_grad()
def write_samples(g: Generator, run: Path, step: int, device: torch.device) -> None:
    z, label = fixed_latents(g.cfg)
    imgs = g(z.to(device), None if label is None else label.to(device))
    grid = grid_image(to_uint8(imgs), ncol=8 if g.cfg.n_classes else None)
    save_png(run / "samples" / f"step-{step:08d}.png", grid)
    save_png(run / "samples" / "latest.png", grid)


def make_sampler(g: Generator, device: torch.device, seed: int) -> Callable[[int], torch.Tensor]:
    """n -> (n, 3, R, R) images from fresh latents (classes balanced), batches of 50."""
    gen = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def sample(n: int) -> torch.Tensor:
        out = []
        for i in range(0, n, 50):
            b = min(50, n - i)
            z = torch.randn(b, g.cfg.z_dim, generator=gen).to(device)
            lab = (torch.arange(i, i + b) % g.cfg.n_classes).to(device) if g.cfg.n_classes else None
            out.append(g(z, lab).float())
        return torch.cat(out)

    return sample


def evaluate(g: Generator, data: TrainingSet, cfg: TrainConfig, device: torch.device) -> dict:
    """KID/FD in EfficientNet-Lite0 feature space + memorisation check (see passersby.metrics)."""
    from passersby.metrics.evaluate import evaluate_generator

    real = data.images.float().div(127.5).sub(1.0)
    return evaluate_generator(make_sampler(g, device, seed=cfg.seed + 17), real, n=cfg.metric_samples,
                              rng_seed=cfg.seed, data_key=data.data_hash)


def checkpoint_meta(ts: TrainState, cfg: TrainConfig, data: TrainingSet, info: dist.DistInfo, extra: dict) -> dict:
    return {"train_config": cfg.to_dict(), "data_hash": data.data_hash, "data_root": str(data.root),
            "class_names": list(data.class_names), "world_size": info.world, **extra}


def save_checkpoint(ts: TrainState, cfg: TrainConfig, data: TrainingSet, run: Path, info: dist.DistInfo,
                    g: Generator, is_best: bool, extra: dict,
                    rank_rngs: list[dict[str, torch.Tensor]] | None = None) -> None:
    """Write resumable state (rotating the last K), and the inference model `g` (EMA, BN recalibrated).

    `rank_rngs`: every process's RNG states (index = rank) under DDP, where each process draws
    its own batches; rank 0's are `pack`'s "rng.*", the others are stored as "rng_rank{r}.*".
    """
    tensors, meta = pack(ts)
    for r, states in enumerate(rank_rngs or []):
        if r > 0:
            for name, st in states.items():
                tensors[f"rng_rank{r}.{name}"] = st
    meta.update(checkpoint_meta(ts, cfg, data, info, extra))
    ckdir = run / "checkpoints"
    save_train_state(ckdir / f"step-{ts.step:08d}.safetensors", tensors, meta)
    for old in sorted(ckdir.glob("step-*.safetensors"))[: -cfg.keep_last]:
        old.unlink()
    model_meta = {"step": ts.step, "data_hash": data.data_hash, "metrics": ts.history[-1] if ts.history else {},
                  "train_config": cfg.to_dict(), **extra}
    save_model(run / "model.safetensors", g, cfg.model, model_meta)
    if is_best:
        save_train_state(run / "best.safetensors", tensors, meta)
        save_model(run / "best-model.safetensors", g, cfg.model, model_meta)


def latest_checkpoint(run: Path) -> Path | None:
    cks = sorted((run / "checkpoints").glob("step-*.safetensors"))
    return cks[-1] if cks else None


def _same_model(saved: dict | None, model: Any) -> bool:
    """Whether a checkpoint's stored model config is `model` (a ModelConfig, or the enhancer's or
    painter's config, which share this resume); a field added to the config after the checkpoint
    was written (e.g. ModelConfig.restorer) reads as the class's stored-file fallback
    (`from_dict`), so an older run folder still resumes."""
    if not isinstance(saved, dict):
        return False
    if saved == model.to_dict():
        return True
    from_dict = getattr(type(model), "from_dict", None)
    try:
        return from_dict is not None and from_dict(saved) == model
    except (KeyError, TypeError, ValueError):
        return False


def resume(ts: TrainState, cfg: TrainConfig, data: TrainingSet, run: Path, rank: int = 0) -> None:
    """Restore the newest checkpoint of `run` into `ts`, refusing an incompatible one.

    `rank`: this process's rank under DDP; it continues its own random streams when the
    checkpoint has them (same number of processes), else starts fresh ones of its own.
    """
    path = latest_checkpoint(run)
    if path is None:
        raise CheckpointError(f"{run}: nothing to resume (no checkpoints/step-*.safetensors) — drop --resume to start fresh")
    tensors, meta = load_train_state(path)
    saved = meta.get("train_config", {}).get("model")
    if not _same_model(saved, cfg.model):
        raise CheckpointError(f"{path}: was trained with model config {saved}, this run asks for {cfg.model.to_dict()} — use the same options or a new --out")
    if meta.get("data_hash") != data.data_hash:
        raise CheckpointError(f"{path}: was trained on other data (hash {meta.get('data_hash')} ≠ {data.data_hash}) — resume with the same DATA")
    try:
        unpack(ts, tensors, meta)
    except (KeyError, RuntimeError, ValueError) as e:
        raise CheckpointError(f"{path}: incompatible training state ({str(e).splitlines()[0]})") from e
    if rank > 0:
        keys = [f"rng_rank{rank}.{name}" for name in RNG_NAMES]
        if all(k in tensors for k in keys):
            for name, k in zip(RNG_NAMES, keys):
                getattr(ts.rngs, name).set_state(tensors[k])
        else:  # saved by fewer processes: streams of its own, never a copy of rank 0's
            ts.rngs = Rngs.seeded(cfg.seed + ts.step, rank)
