"""`passersby directions`: find, list, rename a model's named latent directions; draw their sheet.

    passersby directions MODEL --out FILE      (the same as `passersby directions find ...`)
    passersby directions list FILE
    passersby directions rename FILE 3 "head turn"
    passersby directions sheet FILE --out sheet.jpg
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from typer.core import TyperGroup


class _FindByDefault(TyperGroup):
    """`passersby directions MODEL ...` runs `find`: a first word that is no subcommand is the model."""

    def parse_args(self, ctx, args):  # noqa: ANN001 - click's signature
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["find", *args]
        return super().parse_args(ctx, args)


directions_app = typer.Typer(cls=_FindByDefault, no_args_is_help=True, help="""The model's latent space as named sliders.

Examples:
    passersby directions default --out dirs.safetensors
    passersby directions runs/mine/best-model.safetensors --out mine-dirs.safetensors --k 12
    passersby directions list dirs.safetensors
    passersby directions rename dirs.safetensors 3 "head turn"
    passersby directions sheet dirs.safetensors --out dirs.jpg
""")


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(1)


@directions_app.command("find")
def find_command(
    model: str = typer.Argument(..., help="Generator .safetensors, or 'default' for the shipped one."),
    out: Path = typer.Option(..., "--out", help="The direction file to write (.safetensors)."),
    k: int = typer.Option(10, min=1, max=64, help="Principal directions to find."),
    n: int = typer.Option(2000, min=16, max=200_000, help="Latents sampled for the PCA."),
    seed: int = typer.Option(0, help="Seed of the sampled latents."),
    yaw_faces: int = typer.Option(400, min=0, max=100_000, help="Faces rendered to measure a head-turn direction "
                                  "(dlib landmarks, source 'yaw'); 0 = none."),
    face_seed: int = typer.Option(3, help="Seed of the face shown in every thumbnail strip."),
    sheet: Optional[Path] = typer.Option(None, help="The contact sheet (JPEG); default: FILE with .jpg."),
) -> None:
    """Find the main directions of a generator's latent space without labels (GANSpace: PCA of the
    8x8 block's activations, regressed back to z), add the model's masculine/feminine direction
    and a measured head turn (nose against eyes, dlib landmarks, regressed onto z), and write them with thumbnail strips (faces at -3 ... +3 std) to a direction file, plus a
    contact sheet. Rename the ones that mean something with `passersby directions rename`.

    Examples:
        passersby directions default --out dirs.safetensors
        passersby directions runs/mine/best-model.safetensors --out mine-dirs.safetensors --k 12 --n 4000
    """
    import numpy as np

    from passersby.app.directions import write_sheet
    from passersby.checkpoint import CheckpointError
    from passersby.model.directions import DirectionFileError
    from passersby.model.ganspace import find_directions, render_strips
    from passersby.model.load import load_direction, load_generator

    if k >= n:
        _fail(f"--k ({k}) must be smaller than --n ({n})")
    try:
        g, info = load_generator(None if model == "default" else model)
        g = g.float().eval()
        found = find_directions(g, info.hash, n=n, k=k, seed=seed, label=load_direction(info.meta),
                                model_file=info.path.name, yaw_faces=yaw_faces)
        base = np.random.default_rng(face_seed).standard_normal(info.config.z_dim)
        found = render_strips(g, found, base)
        found.save(out)
        sheet = sheet or out.with_suffix(".jpg")
        write_sheet(found, sheet)
    except (CheckpointError, DirectionFileError, OSError) as e:
        _fail(str(e))
    _print(found)
    typer.echo(f"wrote {out} and {sheet}")


@directions_app.command("list")
def list_command(file: Path = typer.Argument(..., help="A direction file.")) -> None:
    """The directions of a file: index, name, source, std, what was measured.

    Examples:
        passersby directions list dirs.safetensors
    """
    from passersby.model.directions import DirectionFileError, read_directions

    try:
        found = read_directions(file)
    except DirectionFileError as e:
        _fail(str(e))
    _print(found)


@directions_app.command("rename")
def rename_command(
    file: Path = typer.Argument(..., help="A direction file (rewritten atomically)."),
    which: str = typer.Argument(..., help="The direction: its index, name or source (pca-3, label)."),
    name: str = typer.Argument(..., help="Its new name, e.g. \"head turn\"."),
) -> None:
    """Give a direction a name (what the sliders, OSC, MIDI and `screens.offsets` call it).
    Frame keys name directions by source, so captures made before a rename still re-render.

    Examples:
        passersby directions rename dirs.safetensors 3 "head turn"
        passersby directions rename dirs.safetensors pca-0 light
    """
    from passersby.model.directions import DirectionFileError, rename_in_file

    try:
        found = rename_in_file(file, which, name)
    except DirectionFileError as e:
        _fail(str(e))
    _print(found)


@directions_app.command("sheet")
def sheet_command(
    file: Path = typer.Argument(..., help="A direction file."),
    out: Path = typer.Option(..., "--out", help="The contact sheet to write (JPEG)."),
) -> None:
    """Draw the contact sheet of a file with its current names (one row per direction, faces at
    -3 ... +3 std, from the strips stored in the file; no model needed).

    Examples:
        passersby directions sheet dirs.safetensors --out dirs.jpg
    """
    from passersby.app.directions import write_sheet
    from passersby.model.directions import DirectionFileError, read_directions

    try:
        size = write_sheet(read_directions(file), out)
    except (DirectionFileError, OSError) as e:
        _fail(str(e))
    typer.echo(f"wrote {out} ({size // 1024} KiB)")


def _print(found) -> None:  # noqa: ANN001 - a DirectionSet
    typer.echo(f"model {found.model} ({found.model_file or 'file name unknown'}): {len(found.directions)} directions")
    for i, d in enumerate(found.directions):
        extra = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in d.info.items())
        typer.echo(f"{i:3d}  {d.name:<20} {d.source:<8} std {d.std:.3f}  {extra}")
