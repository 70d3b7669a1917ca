"""`passersby train` command (registered in passersby.cli)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from passersby.config import ModelConfig, TrainConfig


def train_command(
    data: Path = typer.Argument(..., help="Dataset folder made by `passersby prepare`."),
    out: Path = typer.Option(..., "--out", help="Run folder: checkpoints, samples, curves, model."),
    steps: int = typer.Option(20000, help="Total optimisation steps (a resumed run counts earlier steps)."),
    resolution: int = typer.Option(256, help="Image side: 64, 128 or 256 (must match the dataset)."),
    ngf: int = typer.Option(16, help="Generator width (FastGAN uses 64; 16 renders in real time on a CPU)."),
    ndf: int = typer.Option(32, help="Discriminator width."),
    z_dim: int = typer.Option(128, help="Latent size."),
    batch_size: int = typer.Option(8, help="Images per step (per process under torchrun)."),
    lr: float = typer.Option(2e-4, help="Adam learning rate."),
    augment: str = typer.Option("color,translation,cutout", help="DiffAugment policy."),
    seed: int = typer.Option(0, help="Seeds every random stream of the run."),
    sample_every: int = typer.Option(500, help="Write a sample grid every N steps."),
    checkpoint_every: int = typer.Option(1000, help="Write a checkpoint every N steps."),
    metric_every: int = typer.Option(2000, help="Compute KID/FD (EfficientNet-Lite0) every N steps."),
    metric_samples: int = typer.Option(500, help="Generated images per metric evaluation."),
    no_metrics: bool = typer.Option(False, "--no-metrics", help="Skip KID/FD/memorisation checks."),
    conditional: bool = typer.Option(
        False, "--conditional/--unconditional",
        help="Condition on the dataset's feminine/masculine labels. Off by default: on the portraits, "
        "with labels on 3/4 of the images, conditioning collapsed to one face per class "
        "(docs/default-model/conditional-collapse.png); use `passersby direction` instead."),
    resume: bool = typer.Option(False, "--resume", help="Continue the newest checkpoint in --out exactly."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    max_minutes: float = typer.Option(0, help="Stop (with a checkpoint) after this many minutes; 0 = no limit."),
) -> None:
    """Train a FastGAN-style portrait GAN on a prepared dataset.

    Examples:
        passersby train data/portraits --out runs/mine --steps 20000
        passersby train data/portraits --out runs/mine --steps 40000 --resume
        torchrun --nproc_per_node 2 -m passersby.cli train data/portraits --out runs/ddp
    """
    from passersby.checkpoint import CheckpointError
    from passersby.train.data import DatasetError
    from passersby.train.run import train

    try:
        model = ModelConfig(resolution=resolution, z_dim=z_dim, ngf=ngf, ndf=ndf)
        cfg = TrainConfig(batch_size=batch_size, lr=lr, augment=augment, seed=seed, sample_every=sample_every,
                          checkpoint_every=checkpoint_every, metric_every=metric_every,
                          metric_samples=metric_samples, model=model)
        row = train(data, out, cfg, steps, resume_run=resume, device=device,
                    max_minutes=max_minutes or None, evaluate_metrics=not no_metrics, conditional=conditional)
    except (DatasetError, CheckpointError, ValueError) as e:
        typer.secho(f"error: {e}", fg="red", err=True)
        raise typer.Exit(1)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one summary line, not one per process
        typer.echo(f"done at step {row.get('step')}: model {out / 'model.safetensors'}, samples {out / 'samples'}")
