"""`passersby train` command (registered in passersby.cli)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from passersby.config import EnhancerConfig, ModelConfig, PainterConfig, TrainConfig


def train_command(
    data: Path = typer.Argument(..., help="Dataset folder made by `passersby prepare`."),
    out: Path = typer.Option(..., "--out", help="Run folder: checkpoints, samples, curves, model."),
    kind: str = typer.Option("gan", help="gan: the face generator; painter: the feedback loop's painter "
                             "(markers -> face; `passersby show --mode feedback`); enhancer: the learned "
                             "upscaler (data from `passersby hires`)."),
    recipe: Optional[str] = typer.Option(
        None, help="For --kind gan: projected (default): discriminator heads on frozen EfficientNet-Lite0 "
        "features, trains on a CPU; fastgan: the previous recipe, learned from pixels (~10x slower per image). "
        "For --kind painter / enhancer: painter / enhancer (their only ones)."),
    steps: int = typer.Option(20000, help="Total optimisation steps (a resumed run counts earlier steps)."),
    resolution: Optional[int] = typer.Option(None, help="Image side: 64, 128 or 256 (default 256; must match the "
                                             "dataset); for --kind enhancer, the dataset's."),
    ngf: Optional[int] = typer.Option(None, help="Generator width (recipe default 16: renders both screens at 30 fps on a 2-core CPU)."),
    ndf: Optional[int] = typer.Option(None, help="Discriminator width (recipe default 32)."),
    d_resolution: Optional[int] = typer.Option(None, help="Side at which the projected discriminator sees images (recipe default 192; 0 = resolution)."),
    z_dim: int = typer.Option(128, help="Latent size."),
    batch_size: Optional[int] = typer.Option(None, help="Images per step (per process under torchrun; recipe default 8)."),
    lr: Optional[float] = typer.Option(None, help="Adam learning rate (recipe default 2e-4)."),
    amp: Optional[bool] = typer.Option(None, "--amp/--no-amp", help="bfloat16 autocast on CUDA and on CPUs with native bf16 (recipe default)."),
    augment: Optional[str] = typer.Option(None, help="DiffAugment policy (recipe default color,translation,cutout)."),
    ms_space: Optional[str] = typer.Option(
        None, help="Where the mode-seeking term measures variety: pixels (recipe default) or features "
        "(the projected discriminator's pooled features)."),
    parts_weight: Optional[float] = typer.Option(
        None, help="Weight of the eye and mouth discriminators (crops of the aligned faces on frozen "
        "EfficientNet-Lite0 features; 0 = off, the recipe default)."),
    cov_weight: Optional[float] = typer.Option(
        None, help="Weight of the coverage term: each real face pulls its nearest generated face "
        "(IMLE; raises recall; 0 = off, the recipe default)."),
    cov_pool: Optional[int] = typer.Option(None, help="Coverage: latents rendered per nearest-face search (384)."),
    cov_every: Optional[int] = typer.Option(None, help="Coverage: steps between searches (100)."),
    cov_batch: Optional[int] = typer.Option(None, help="Coverage: training faces that pull their match each step (4)."),
    seed: int = typer.Option(0, help="Seeds every random stream of the run."),
    sample_every: int = typer.Option(500, help="Write a sample grid every N steps."),
    checkpoint_every: int = typer.Option(1000, help="Write a checkpoint every N steps."),
    metric_every: int = typer.Option(2000, help="Compute KID/FD (EfficientNet-Lite0) every N steps."),
    metric_samples: int = typer.Option(500, help="Generated images per metric evaluation."),
    no_metrics: bool = typer.Option(False, "--no-metrics", help="Skip KID/FD/memorisation checks."),
    # Kept although worse on the portraits: a conditional model is still shown and sampled (one
    # class per screen), and another dataset's labels may condition better.
    conditional: bool = typer.Option(
        False, "--conditional/--unconditional",
        help="Condition on the dataset's feminine/masculine labels (one generator, one class per screen). "
        "Off by default: on the portraits it collapsed to one face per class with the fastgan recipe "
        "(docs/previous-model/conditional-collapse.jpg) and, within 500 steps, with the projected one "
        "(the mode-seeking term restored variety in colour only); use `passersby direction` instead."),
    init: Optional[Path] = typer.Option(None, help="Start from this model file's weights (same kind and size; "
                                        "the discriminator starts fresh): fine-tuning, e.g. the shipped painter."),
    pool: Optional[int] = typer.Option(None, help="--kind painter: keep this many of the loop's own states between "
                                       "steps and learn to paint their faces back (0 = off; recipe default)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the newest checkpoint in --out exactly."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    max_minutes: float = typer.Option(0, help="Stop (with a checkpoint) after this many minutes; 0 = no limit."),
) -> None:
    """Train a portrait GAN on a prepared dataset (on a CPU: the projected recipe).

    Examples:
        passersby train data/portraits --out runs/mine --max-minutes 150
        passersby train data/portraits --out runs/mine --steps 40000 --resume
        passersby train data/portraits --out runs/old --recipe fastgan --steps 20000
        passersby train data/train --out runs/ft --init passersby/assets/default.safetensors --parts-weight 0.5 --cov-weight 1
        passersby train data/portraits --kind painter --out runs/painter --max-minutes 150
        passersby train data/portraits --kind painter --out runs/p2 --init runs/painter/model.safetensors --pool 32
        passersby train data/hires/train --kind enhancer --out runs/enhancer --max-minutes 60
        torchrun --nproc_per_node 2 -m passersby.cli train data/portraits --out runs/ddp
    """
    from passersby.checkpoint import CheckpointError
    from passersby.data.training_set import DatasetError
    from passersby.train.kinds import KINDS
    from passersby.train.recipes import recipe_defaults
    from passersby.train.run import train

    try:
        if kind not in KINDS:
            raise ValueError(f"--kind: unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
        own = {"painter": "painter", "enhancer": "enhancer"}  # kinds with their own recipe
        recipe = recipe or own.get(kind, "projected")
        if recipe in own.values() and recipe != kind or kind in own and recipe != own[kind]:
            raise ValueError(f"--recipe {recipe} does not train --kind {kind}; "
                             f"the {kind if kind in own else recipe} has its own recipe (leave --recipe out)")
        m_over, t_over = recipe_defaults(recipe)
        if pool is not None and kind != "painter":
            raise ValueError("--pool: only --kind painter keeps a pool of loop states")
        given_m = {"ngf": ngf, "ndf": ndf, "d_resolution": d_resolution, "pool": pool}
        given_t = {"batch_size": batch_size, "lr": lr, "amp": amp, "augment": augment, "ms_space": ms_space,
                   "parts_weight": parts_weight, "cov_weight": cov_weight, "cov_pool": cov_pool,
                   "cov_every": cov_every, "cov_batch": cov_batch}
        m_over.update({k: v for k, v in given_m.items() if v is not None})
        t_over.update({k: v for k, v in given_t.items() if v is not None})
        if kind == "enhancer":
            from passersby.data.manifest import load_manifest

            if ngf is not None:  # the enhancer's width
                m_over["channels"] = ngf
            model = EnhancerConfig(resolution=resolution or load_manifest(data, check_files=False).size,
                                   **{k: v for k, v in m_over.items() if k in ("channels", "blocks", "ndf")})
        elif kind == "painter":
            model = PainterConfig(resolution=resolution or 256, **m_over)
        else:
            model = ModelConfig(resolution=resolution or 256, z_dim=z_dim, **m_over)
        cfg = TrainConfig(seed=seed, sample_every=sample_every, checkpoint_every=checkpoint_every,
                          metric_every=metric_every, metric_samples=metric_samples, model=model, **t_over)
        row = train(data, out, cfg, steps, resume_run=resume, device=device,
                    max_minutes=max_minutes or None, evaluate_metrics=not no_metrics, conditional=conditional,
                    init=init)
    except (DatasetError, CheckpointError, ValueError) as e:
        typer.secho(f"error: {e}", fg="red", err=True)
        raise typer.Exit(1)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one summary line, not one per process
        typer.echo(f"done at step {row.get('step')}: model {out / 'model.safetensors'}, samples {out / 'samples'}")
