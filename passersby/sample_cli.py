"""`passersby sample` command (registered in passersby.cli)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def sample_command(
    model: Optional[Path] = typer.Option(None, help="Model .safetensors; default: the shipped model."),
    n: int = typer.Option(16, min=1, max=4096, help="Number of faces."),
    seed: int = typer.Option(0, help="Latent seed: the same seed gives the same faces."),
    out: Optional[Path] = typer.Option(None, help="Grid PNG (default grid.png), or a folder with --singles (default faces/)."),
    singles: bool = typer.Option(False, "--singles", help="Write one PNG per face into the folder --out."),
    ncol: int = typer.Option(0, help="Grid columns (0 = square)."),
    label: Optional[str] = typer.Option(None, help="feminine or masculine (class, or the model's latent direction)."),
) -> None:
    """Generate faces as a grid (or single images).

    Examples:
        passersby sample --n 16 --seed 7 --out grid.png
        passersby sample --n 8 --label feminine --out women.png
        passersby sample --model runs/mine/model.safetensors --n 64 --out faces/ --singles
    """
    from passersby.checkpoint import CheckpointError
    from passersby.sample import sample, write_grid, write_singles

    out = out or Path("faces" if singles else "grid.png")
    try:
        images, info = sample(model, n, seed, class_name=label)
        if singles:
            paths = write_singles(images, out, seed)
            typer.echo(f"wrote {len(paths)} faces to {out}/ (model {info.hash}, seed {seed})")
        else:
            write_grid(images, out, ncol=ncol or None)
            typer.echo(f"wrote {out}: {n} faces (model {info.hash}, seed {seed})")
    except (CheckpointError, ValueError) as e:
        typer.secho(f"error: {e}", fg="red", err=True)
        raise typer.Exit(1)
