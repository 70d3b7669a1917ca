"""`passersby print CAPTURE`: a capture as a print-ready page (outputs/printing.py).

The face is brought to the print's size with the best upscaler the project has: the learned
enhancer (one 2x step, the step its verdict measured) when its file records that it beat
Lanczos on held-out faces on both PSNR and the feature distance, then Lanczos for the rest;
otherwise Lanczos alone. The command says which, and the files record it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

import numpy as np
import typer
from PIL import Image

from passersby.app.cli_common import CONFIG, HOME


def beats_lanczos(meta: dict[str, Any]) -> bool:
    """Whether an enhancer file's recorded verdict beats Lanczos on both measures.

    Example:
        >>> beats_lanczos({"metrics": {"psnr": 40.3, "psnr_lanczos": 39.1, "feature_distance": 0.13, "feature_distance_lanczos": 0.16}})
        True
    """
    m = meta.get("metrics") or {}
    try:
        return m["psnr"] > m["psnr_lanczos"] and m["feature_distance"] < m["feature_distance_lanczos"]
    except (KeyError, TypeError):
        return False


def lanczos(image: np.ndarray, side: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((side, side), Image.LANCZOS))


def upscale_for_print(image: np.ndarray, side: int, enhanced: bool, enhancer: Path | None) -> tuple[np.ndarray, str]:
    """(image at side x side, how it was upscaled).

    Args:
        image: (h, w, 3) uint8, square.
        side: the printed face's side in pixels.
        enhanced: the capture already went through the enhancer (its key's stages say so).
        enhancer: the enhancer file to consider, or None.
    """
    h = image.shape[0]
    if enhancer is not None and not enhanced and side >= 2 * h:
        from passersby.model.load import load_enhancer
        from passersby.runtime import make_upscaler

        net, info = load_enhancer(enhancer)
        if beats_lanczos(info.meta):
            up = make_upscaler(net, "torch")(image)
            return lanczos(up, side), (f"enhancer {info.hash} (2x, {h} -> {up.shape[0]} px; it beat Lanczos on held-out "
                                       f"faces), then Lanczos to {side} px")
        return lanczos(image, side), f"Lanczos {h} -> {side} px (enhancer {info.hash} did not beat Lanczos)"
    why = "the capture is already enhanced" if enhanced else "no enhancer" if enhancer is None else "less than 2x"
    return lanczos(image, side), f"Lanczos {h} -> {side} px ({why})"


def _title(record: dict[str, Any]) -> tuple[str, str]:
    """("Passerby, feminine screen", "1 December 2026") from a capture record."""
    when = datetime.fromisoformat(record.get("shown_at") or record["captured_at"])
    return f"Passerby, {record.get('screen', 'a')} screen", f"{when.day} {when:%B %Y}"


@dataclass(frozen=True)
class PrintJob:
    """What to print: paper, resolution, frame, label, signature, raster format."""

    size: str = "A4"
    dpi: int = 300
    frame: str = "gold"
    label: bool = False
    signature: bool = False
    fmt: str = "png"

    def __post_init__(self) -> None:
        from passersby.outputs.printing import FRAMES, page_pixels

        if self.fmt not in ("png", "tiff"):
            raise ValueError(f"--format: {self.fmt!r} is not png or tiff")
        if self.frame not in FRAMES:
            raise ValueError(f"--frame: {self.frame!r} is not one of {', '.join(FRAMES)}")
        page_pixels(self.size, self.dpi)  # checks --size and --dpi


def make_print(cap, job: PrintJob, stem: Path, enhancer: Path | None) -> tuple[Path, Path, str, tuple[int, int]]:
    """Print capture `cap` (app/captures.Capture): (raster file, PDF, how it was upscaled, page size px)."""
    from passersby.app.captures import segment_of
    from passersby.outputs.print_files import write_pdf, write_png, write_tiff
    from passersby.outputs.printing import Provenance, compose, face_side

    # Enhanced at capture (its best re-render), or on the screen already (the key's stages).
    enhanced = str(cap.record.get("quality", "")).startswith("enhancer") or any(
        "enhancer" in s for s in cap.record["key"].get("stages", []))
    face, method = upscale_for_print(cap.image(), face_side(job.size, job.dpi), enhanced, enhancer)
    title, date = _title(cap.record)
    key = cap.record["key"]
    model = key.get("model") or (key.get("models") or {}).get("generator", "unknown")
    # Both anchors and t (read from the key for captures made before the record kept them).
    seg = cap.record.get("anchors") or segment_of(key) or {"from": cap.record.get("anchor_id"), "to": None, "t": 0.0}
    prov = Provenance(title, date, model, seg["from"], method, {"capture": cap.id, "key": key},
                      to_anchor=seg["to"], t=seg["t"])
    page = compose(Image.fromarray(face), job.size, job.dpi, job.frame, prov if job.label else None, job.signature)
    write = write_png if job.fmt == "png" else write_tiff
    raster = write(page, Path(f"{stem}.{'png' if job.fmt == 'png' else 'tif'}"), job.dpi, prov)
    pdf = write_pdf(page, Path(f"{stem}.pdf"), job.size, job.dpi, prov)
    return raster, pdf, method, page.size


def print_command(
    capture: Optional[str] = typer.Argument(None, help="A capture's id (in <home>/captures; list them with "
                                            "`passersby gallery`)."),
    file: Optional[Path] = typer.Option(None, "--file", help="Print this capture file (.png or .json beside "
                                        "each other) instead of a capture id."),
    size: str = typer.Option("A4", "--size", help="Paper: A5, A4, A3, A2, A1 or letter (portrait)."),
    dpi: int = typer.Option(300, "--dpi", help="Dots per inch of the print."),
    frame: str = typer.Option("gold", "--frame", help="gold: a gilded frame drawn around the face; none."),
    label: bool = typer.Option(False, "--label", help="A museum label below: title, date, model, anchor."),
    signature: bool = typer.Option(False, "--signature", help="The GAN objective written in the face's lower right corner."),
    fmt: str = typer.Option("png", "--format", help="Raster file: png or tiff (a PDF is always written beside it)."),
    out: Optional[Path] = typer.Option(None, "--out", help="File stem (default: <home>/prints/<capture id>-<size>)."),
    config: Optional[Path] = CONFIG,
    home: Optional[Path] = HOME,
) -> None:
    """Print a captured face at an exact paper size: PNG/TIFF + PDF, sRGB, provenance embedded.

    Examples:
        passersby print 20261201-070500-feminine-42 --size A3 --frame gold --label --signature
        passersby print --file ~/captures/x.png --size A4 --dpi 300 --frame none --format tiff --out prints/x
    """
    from passersby.app.captures import load_capture
    from passersby.app.chain import enhancer_path
    from passersby.app.cli_common import fail as _fail, resolve_settings as _settings
    from passersby.checkpoint import CheckpointError
    from passersby.home import resolve_home

    try:
        job = PrintJob(size, dpi, frame, label, signature, fmt)
        settings = _settings(config, home)
        home_dir = resolve_home(home or (Path(settings.stream.home) if settings.stream.home else None))
        if (capture is None) == (file is None):
            raise ValueError("give a capture id or --file PATH (one of them)")
        # An id stays inside captures/; a file is only what --file names explicitly.
        cap = load_capture(capture if file is None else Path(file), home_dir)
        stem = out or home_dir / "prints" / f"{cap.id}-{size}"
        raster, pdf, method, pixels = make_print(cap, job, stem, enhancer_path(settings.enhancer.path, settings.enhancer.mode))
    except (ValueError, CheckpointError, OSError) as e:
        _fail(e)
    typer.echo(f"{size} at {dpi} dpi: {pixels[0]} x {pixels[1]} px; face upscaled with {method}")
    typer.echo(f"  {raster}\n  {pdf}")
