"""`passersby prepare`: the command-line face of `passersby.data.prepare`.

Registered by passersby/cli.py as ``app.command("prepare")(prepare_command)``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from passersby.data.faces import DEFAULT_MARGIN
from passersby.data.phash import DEFAULT_THRESHOLD


def prepare_command(
    src: Path = typer.Argument(..., help="Folder of images (searched recursively)."),
    dst: Path = typer.Argument(..., help="Output dataset folder; must not exist or be empty."),
    size: int = typer.Option(256, "--size", help="Side of the square output images, in pixels."),
    labels: Optional[Path] = typer.Option(
        None,
        "--labels",
        help="CSV with columns file,label (feminine/masculine, female/male, f/m) "
        "or file,title (gendered words of the title are used).",
    ),
    require_face: bool = typer.Option(
        False,
        "--require-face",
        help="Skip images with no detected face instead of centre-cropping.",
    ),
    near_dup_threshold: int = typer.Option(
        DEFAULT_THRESHOLD,
        "--near-dup-threshold",
        help="Largest perceptual-hash distance (bits of 64) counted as a near duplicate; "
        "-1 drops exact duplicates only.",
    ),
    classify_unlabelled: bool = typer.Option(
        False,
        "--classify-unlabelled",
        help="Label images that have no label otherwise with a gender classifier (faces only).",
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an existing dataset at DST (atomically, at the end)."
    ),
    margin: float = typer.Option(
        DEFAULT_MARGIN,
        "--margin",
        help="Crop side as a multiple of the detected face box (1.4 frames like the reference "
        "portraits; 2.0 takes in the whole head).",
    ),
    workers: int = typer.Option(
        1,
        "--workers",
        help="Processes working in parallel (the result is the same for any number).",
    ),
) -> None:
    """Prepare a folder of portraits as a training dataset: face crops, deduplicated, labelled.

    Writes DST/images/*.png, DST/manifest.json and a report of every skipped file.

    Example:
        passersby prepare ~/portraits data/portraits --size 256 --labels titles.csv
    """
    from rich.console import Console

    from passersby.data.labels import LabelError
    from passersby.data.prepare import PrepareError, prepare

    err = Console(stderr=True)
    try:
        report = prepare(
            src,
            dst,
            size=size,
            labels=labels,
            require_face=require_face,
            near_dup_threshold=near_dup_threshold,
            classify_unlabelled=classify_unlabelled,
            progress=True,
            overwrite=overwrite,
            margin=margin,
            workers=workers,
        )
    except (PrepareError, LabelError) as e:
        err.print(f"[red]error:[/red] {e}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except OSError as e:
        err.print(
            f"[red]error:[/red] {e.filename or ''}: {e.strerror or e}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err.print(f"interrupted; {dst} was not changed")
        raise typer.Exit(130) from None
    _print_summary(report)
    if report.written == 0:
        err.print(
            f"[red]error:[/red] no usable images in {src}; see {report.report_path}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1)


def _print_summary(report: object) -> None:
    from rich.console import Console
    from rich.table import Table

    r = report  # a PrepareReport; typed loosely to keep the import inside the function
    table = Table(title="prepared dataset", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    for name, value in (
        ("found", r.found),
        ("written", r.written),
        ("faces found", r.faces_found),
        ("centre-cropped", r.centre_cropped),
        ("exact duplicates", r.exact_duplicates),
        ("near duplicates", r.near_duplicates),
    ):
        table.add_row(name, str(value))
    for reason, n in r.skipped_by_reason.items():
        if "duplicate" not in reason:
            table.add_row(f"skipped: {reason}", str(n))
    for label, n in sorted(r.labels.items()):
        table.add_row(f"label {label}", str(n))
    table.add_row("seconds", f"{r.seconds:.1f}")
    console = Console()
    console.print(table)
    console.print(f"dataset: {r.dst}", highlight=False, soft_wrap=True)
    console.print(f"report: {os.fspath(r.report_path)}", highlight=False, soft_wrap=True)
