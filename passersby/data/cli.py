"""`passersby prepare`: the command-line face of `passersby.data.prepare`.

Registered by passersby/cli.py as ``app.command("prepare")(prepare_command)``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from passersby.data.phash import DEFAULT_THRESHOLD

DEFAULT_MIN_FACE = 64  # kept equal to prepare.DEFAULT_MIN_FACE (a test checks); importing
# prepare here would load numpy and PIL for every `passersby --help`


def prepare_command(
    paths: list[Path] = typer.Argument(
        ...,
        metavar="SRC... DST",
        help="One or more folders of pictures (searched recursively), then the output "
        "dataset folder (must not exist or be empty). Several sources make one dataset.",
    ),
    size: int = typer.Option(256, "--size", help="Side of the square output images, in pixels."),
    labels: Optional[list[Path]] = typer.Option(
        None,
        "--labels",
        help="CSV with columns file,label (feminine/masculine, female/male, f/m), "
        "file,title (gendered words of the title are used), or file,faces,genders "
        "(per-face boxes x0,y0,x1,y1;... with labels female/not-female;..., matched to the "
        "faces found). Repeat for several CSVs.",
    ),
    min_face: int = typer.Option(
        DEFAULT_MIN_FACE,
        "--min-face",
        help="Skip faces whose detected box is smaller than this many pixels of the source "
        "(listed in the report).",
    ),
    centre_crop_fallback: bool = typer.Option(
        False,
        "--centre-crop-fallback",
        help="Centre-crop pictures in which no face is found instead of skipping them "
        "(for folders that are already face crops).",
    ),
    colour_only: bool = typer.Option(
        False,
        "--colour-only",
        help="Drop greyscale prints/drawings and woodblock prints (always flagged in the "
        "manifest and the report).",
    ),
    zoom: float = typer.Option(
        1.0,
        "--zoom",
        help="Frame faces tighter (> 1) or looser (< 1) than FFHQ's crop (whole head with some "
        "hair); 1.3 keeps tight face crops mostly inside their picture.",
    ),
    detector: str = typer.Option(
        "auto",
        "--detector",
        help="Face detector: auto (dlib HOG, then the MMOD CNN where HOG finds nothing), "
        "hog, or cnn (slow).",
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
        help="Label faces that have no label otherwise with a gender classifier.",
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an existing dataset at DST (atomically, at the end)."
    ),
    workers: int = typer.Option(
        1,
        "--workers",
        help="Processes working in parallel (the result is the same for any number).",
    ),
    split: str = typer.Option(
        "all",
        "--split",
        help="all pictures; train: all but the fixed held-out paintings; held-out: only those "
        "(chosen by a hash of the file name, the same on every machine: the faces that blind "
        "tests and held-out metrics use never enter a training set).",
    ),
    held_out_share: float = typer.Option(
        0.1, "--held-out-share", help="Share of paintings in the held-out split."
    ),
    max_filled: float = typer.Option(
        1.0,
        "--max-filled",
        help="Skip faces whose crop reaches beyond the picture by more than this share (filled "
        "with a blurred reflection; a generator learns the blur), e.g. 0.15.",
    ),
) -> None:
    """Prepare folders of portraits as a training dataset: aligned faces, deduplicated, labelled.

    Finds every face in every picture, aligns it by its landmarks (eyes and mouth at fixed
    places), and writes DST/images/*.png, DST/manifest.json, a report of every skipped picture
    and face, and DST/contact-sheet.jpg.

    Examples:
        passersby prepare ~/portraits data/portraits --size 256 --labels titles.csv

        passersby prepare met/ wikiart/ data/both --labels met.csv --labels titles.csv --colour-only

        passersby prepare met/ wikiart/ data/train --split train --max-filled 0.15 --zoom 1.3

        passersby prepare met/ data/held-out --split held-out --zoom 1.3 --colour-only
    """
    from rich.console import Console

    from passersby.data.labels import LabelError
    from passersby.data.prepare import PrepareError, prepare

    err = Console(stderr=True)
    if len(paths) < 2:
        err.print(
            "[red]error:[/red] give at least one SRC folder and the DST folder", highlight=False
        )
        raise typer.Exit(2)
    *srcs, dst = paths
    try:
        report = prepare(
            srcs,
            dst,
            size=size,
            labels=labels or None,
            min_face=min_face,
            centre_crop_fallback=centre_crop_fallback,
            colour_only=colour_only,
            zoom=zoom,
            detector=detector,
            near_dup_threshold=near_dup_threshold,
            classify_unlabelled=classify_unlabelled,
            progress=True,
            overwrite=overwrite,
            workers=workers,
            split=split,
            held_out_share=held_out_share,
            max_filled=max_filled,
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
            f"[red]error:[/red] no usable images in {', '.join(map(str, srcs))}; "
            f"see {report.report_path}",
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
        ("pictures found", r.found),
        ("written", r.written),
        ("aligned faces", r.faces_found),
        ("centre-cropped", r.centre_cropped),
        ("exact duplicates", r.exact_duplicates),
        ("near duplicates", r.near_duplicates),
    ):
        table.add_row(name, str(value))
    for reason, n in r.skipped_by_reason.items():
        if "duplicate" not in reason:
            table.add_row(f"skipped: {reason}", str(n))
    for s in r.sources:
        counts = f"{s.pictures} / {s.faces_found} / {s.faces_kept}"
        table.add_row(f"{s.name}: pictures / faces found / kept", counts)
    for label, n in sorted(r.labels.items()):
        table.add_row(f"label {label}", str(n))
    table.add_row("seconds", f"{r.seconds:.1f}")
    console = Console()
    console.print(table)
    console.print(f"dataset: {r.dst}", highlight=False, soft_wrap=True)
    console.print(f"report: {os.fspath(r.report_path)}", highlight=False, soft_wrap=True)
    if r.contact_sheet:
        console.print(f"contact sheet: {r.contact_sheet}", highlight=False, soft_wrap=True)


def hires_command(
    prepared: Path = typer.Argument(..., help="A dataset made by `passersby prepare` (its faces and their sources)."),
    out: Path = typer.Argument(..., help="Output folder: OUT/train and OUT/held-out (must not exist or be empty)."),
    sources: list[Path] = typer.Option(..., "--from", help="The source folders given to prepare. Repeat for several."),
    size: int = typer.Option(192, help="Side of the native squares, in source pixels (faces smaller are skipped)."),
    held_out: float = typer.Option(0.1, help="Share of source pictures kept out of training (for the verdict)."),
) -> None:
    """Cut native-resolution face squares (never resized) for the enhancer, the learned upscaler.

    Examples:
        passersby hires data/tight data/hires --from ~/met-portraits --from ~/portraits-256
        passersby train data/hires/train --kind enhancer --out runs/enhancer --max-minutes 60
    """
    from rich.console import Console

    from passersby.data.hires import native_face_squares
    from passersby.data.manifest import DatasetError

    err = Console(stderr=True)
    try:
        if not 16 <= size <= 4096:
            raise DatasetError(f"--size must be between 16 and 4096 pixels, got {size}")
        if not 0.0 <= held_out < 1.0:
            raise DatasetError(f"--held-out must be in [0, 1), got {held_out}")
        report = native_face_squares(prepared, list(sources), out, size=size, held_out=held_out)
    except (DatasetError, OSError) as e:
        err.print(f"[red]error:[/red] {e}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    Console().print(f"{out}: {report.line()}", highlight=False, soft_wrap=True)
