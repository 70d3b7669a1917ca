"""`passersby gallery`: browse, keep, compare, export the captured faces; capture past ones.

The web page (passersby/web/gallery.py, same stack and rules as the kiosk: loopback, a token
for every write) talks to a `GalleryBackend`, built here from the installation's home and
models:

- captures: <home>/captures (app/captures.py), marks in <home>/captures/gallery.sqlite;
- contact sheet: a PDF of the kept (or starred) captures, pages of thumbnails with ids and
  notes, written to <home>/prints and sent to the browser;
- export: chosen captures printed at print quality (app/print_cli.make_print) into
  <home>/exports/<time>/;
- recently shown: the ledger's latest anchors, each rendered from its anchor (the face the
  screen showed at that anchor); capturing one re-renders it at the best quality there is.
"""

from __future__ import annotations

import io
import math
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import numpy as np
import typer
from PIL import Image, ImageDraw

from passersby.app.captures import Capture, describe_segment, list_captures, load_capture, save_capture, segment_of
from passersby.app.gallery_store import GalleryMarks
from passersby.app.print_cli import PrintJob, make_print
from passersby.app.cli_common import CONFIG, HOME, HOST, PORT

THUMB = 256


def _png(image: np.ndarray, side: int | None = None, fmt: str = "PNG") -> bytes:
    im = Image.fromarray(image)
    if side and im.width > side:
        im = im.resize((side, side), Image.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, fmt, **({"quality": 88} if fmt == "JPEG" else {}))
    return buf.getvalue()


class GalleryBackend:
    """What the gallery page can ask for (web/gallery.py calls these from worker threads).

    Args:
        home: the installation's home.
        rerenderer: app/rerender.Rerenderer for anchors (recent faces) and best re-renders, or
            None (then "recently shown" is off).
        enhancer: the enhancer file for prints, or None.
        ledger: the ledger (stream/ledger.LedgerSpec, or an SQLite file) for "recently shown", or None.

    Example:
        >>> backend = GalleryBackend(home, rerenderer, enhancer, home / "ledger.sqlite")  # a running installation's home  # doctest: +SKIP
    """

    def __init__(self, home: Path, rerenderer=None, enhancer: Path | None = None, ledger=None) -> None:
        from passersby.stream.ledger import as_spec

        self.home, self.rr, self.enhancer = Path(home), rerenderer, enhancer
        self.ledger = None if ledger is None else as_spec(ledger)
        self.marks = GalleryMarks(self.home / "captures" / "gallery.sqlite")
        self._render_lock = threading.Lock()  # the models are used by one thread at a time

    def close(self) -> None:
        self.marks.close()

    # ---- captures

    def items(self) -> list[dict[str, Any]]:
        """Every capture, newest first, with its marks."""
        marks = self.marks.all()
        out = []
        for cap in reversed(list_captures(self.home)):
            r = cap.record
            # Both anchors and t; read from the key for captures made before the record kept them.
            seg = r.get("anchors") or segment_of(r["key"])
            out.append({"id": cap.id, "screen": r.get("screen"), "captured_at": r.get("captured_at"),
                        "quality": r.get("quality"), "anchor_id": r.get("anchor_id"), "anchors": seg,
                        "where": describe_segment(seg), "size": r.get("size"),
                        "matches_shown": r.get("matches_shown"), "source": r["key"].get("source"),
                        **marks.get(cap.id, {"status": "", "star": False, "note": ""})})
        return out

    def _capture(self, capture_id: str) -> Capture:
        if "/" in capture_id or capture_id.startswith("."):
            raise KeyError(capture_id)
        try:
            return load_capture(capture_id, self.home)
        except ValueError:
            raise KeyError(capture_id) from None

    def image(self, capture_id: str, thumb: bool) -> tuple[bytes, str]:
        """(bytes, content type): a JPEG thumbnail, or the full PNG. KeyError: no such capture."""
        cap = self._capture(capture_id)
        if thumb:
            return _png(cap.image(), THUMB, "JPEG"), "image/jpeg"
        return cap.path.read_bytes(), "image/png"

    def mark(self, capture_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        self._capture(capture_id)
        unknown = set(changes) - {"status", "star", "note"}
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)}; marks are status, star, note")
        return {"id": capture_id, **self.marks.set(capture_id, **changes)}

    # ---- contact sheet and export

    def contact_sheet(self, which: str = "keep") -> tuple[bytes, Path]:
        """A PDF of the kept ("keep") or starred ("star") captures: (its bytes, where it was saved)."""
        from passersby.outputs.print_files import write_pdf_pages

        chosen = [it for it in self.items() if (it["star"] if which == "star" else it["status"] == "keep")]
        if not chosen:
            raise ValueError(f"no {'starred' if which == 'star' else 'kept'} captures yet")
        pages = contact_pages([(self._capture(it["id"]), it) for it in reversed(chosen)])
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        path = write_pdf_pages(pages, self.home / "prints" / f"contact-sheet-{which}-{stamp}.pdf", "A4", 150,
                               f"passersby: {len(chosen)} {'starred' if which == 'star' else 'kept'} faces")
        return path.read_bytes(), path

    def export(self, ids: list[str], job: PrintJob) -> list[dict[str, Any]]:
        """Print-quality files of the chosen captures in <home>/exports/<time>/."""
        caps = [self._capture(i) for i in ids]
        folder = self.home / "exports" / datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        out = []
        for cap in caps:
            raster, pdf, method, size = make_print(cap, job, folder / f"{cap.id}-{job.size}", self.enhancer)
            out.append({"id": cap.id, "raster": str(raster), "pdf": str(pdf), "upscaled_with": method, "pixels": list(size)})
        return out

    # ---- recently shown (from the ledger)

    def recent(self, n: int = 48) -> list[dict[str, Any]]:
        if self.ledger is None or self.rr is None or not self.ledger.exists():
            return []
        with self.ledger.open_existing() as led:
            rows = led.latest(n)
        for r in rows:
            r["shown_at"] = datetime.fromtimestamp(r["shown_at"], timezone.utc).isoformat(timespec="seconds")
        return rows

    def _anchor_key(self, ledger_id: int) -> dict[str, Any]:
        row = next((r for r in self.recent(10_000) if r["id"] == ledger_id), None)
        if row is None:
            raise KeyError(ledger_id)
        return {"source": "anchor", "model": row["model_hash"], "ledger_ids": [ledger_id],
                "screen": row["channel"].rsplit("/", 1)[-1],  # an edition's channels are console/screen
                "frame": 0}

    def recent_image(self, ledger_id: int) -> tuple[bytes, str]:
        key = self._anchor_key(ledger_id)
        with self._render_lock:
            image = self.rr.shown(key)
        return _png(image, THUMB, "JPEG"), "image/jpeg"

    def capture_recent(self, ledger_id: int) -> dict[str, Any]:
        """Capture a face shown earlier, re-rendered from its anchor at the best quality."""
        key = self._anchor_key(ledger_id)
        with self._render_lock:
            best, quality = self.rr.best(key)
        cap = save_capture(self.home, key["screen"], best, key, quality=quality, matches_shown=None,
                           after_the_fact=True)
        return {"id": cap.id, "quality": quality}


def contact_pages(items: list[tuple[Capture, dict[str, Any]]], cols: int = 4, rows: int = 5) -> list[Image.Image]:
    """A4 pages at 150 dpi (1240 x 1754): a grid of faces, each with its id, star and note."""
    from passersby.outputs.printing import PAPER, _font, page_pixels

    w, h = page_pixels("A4", 150)
    margin, per = 70, cols * rows
    cell_w = (w - 2 * margin) // cols
    cell_h = (h - 2 * margin - 60) // rows
    side = min(cell_w - 16, cell_h - 70)
    pages = []
    for p in range(math.ceil(len(items) / per)):
        page = Image.new("RGB", (w, h), PAPER)
        draw = ImageDraw.Draw(page)
        draw.text((margin, margin - 40), f"passersby · contact sheet · page {p + 1}", font=_font(22), fill=(40, 34, 30))
        for i, (cap, it) in enumerate(items[p * per:(p + 1) * per]):
            x, y = margin + (i % cols) * cell_w, margin + 20 + (i // cols) * cell_h
            page.paste(Image.fromarray(cap.image()).resize((side, side), Image.LANCZOS), (x, y))
            star = "★ " if it.get("star") else ""
            draw.text((x, y + side + 6), f"{star}{cap.id}", font=_font(13), fill=(40, 34, 30))
            if it.get("note"):
                draw.text((x, y + side + 26), it["note"][:40], font=_font(13, italic=True), fill=(90, 80, 70))
        pages.append(page)
    return pages


def print_job(options: dict[str, Any]) -> PrintJob:
    """The gallery's export options as a PrintJob (ValueError names a bad one)."""
    allowed = {"size", "dpi", "frame", "label", "signature", "fmt"}
    unknown = set(options) - allowed
    if unknown:
        raise ValueError(f"unknown export options {sorted(unknown)}; give {sorted(allowed)}")
    try:
        return PrintJob(**options)
    except TypeError as e:
        raise ValueError(str(e)) from None


def build_backend(settings, home: Path) -> GalleryBackend:
    """The gallery's backend with the installation's generator and enhancer (no engine runs)."""
    from passersby.app.chain import enhancer_path
    from passersby.app.rerender import Rerenderer
    from passersby.home import ledger_spec
    from passersby.model.load import load_enhancer, load_generator
    from passersby.runtime import make_renderer

    g, info = load_generator(settings.model.path or None)
    m = settings.model
    path = enhancer_path(settings.enhancer.path, settings.enhancer.mode)
    upscale, models = None, {"generator": info.hash}
    if path is not None:
        from passersby.runtime import make_upscaler

        net, einfo = load_enhancer(path)
        upscale, models["enhancer"] = make_upscaler(net, m.runtime, m.threads, info.config.resolution), einfo.hash
    ledger = ledger_spec(settings, home)

    def anchor_of(anchor_id: int) -> np.ndarray:
        with ledger.open_existing() as led:
            return led.anchor(anchor_id)

    label = -1 if info.config.n_classes else None  # the stored anchors already carry the screens' steering
    renderer = make_renderer(g, m.runtime, m.threads, label)
    from passersby.app.directions import installation_directions

    directions = installation_directions(settings, info)  # a capture steered by sliders re-renders steered
    rr = Rerenderer(models, lambda screen: renderer, anchor_of, None, upscale,
                    directions=None if directions is None else directions.steps())
    return GalleryBackend(home, rr, path, ledger)


def gallery_command(
    port: Optional[int] = PORT, host: Optional[str] = HOST,
    token: Optional[str] = typer.Option(None, "--token", help="Write token (default: random, printed)."),
    config: Optional[Path] = CONFIG, home: Optional[Path] = HOME,
) -> None:
    """The gallery of captured faces: keep, reject, star, note, compare, contact sheet, export.

    Also lists the faces the stream showed recently (from the ledger) and captures one after
    the fact, re-rendered from its anchor.

    Examples:
        passersby gallery
        passersby gallery --home /srv/gallery --port 8770
    """
    import time

    from passersby.app.cli_common import fail as _fail, resolve_settings as _settings
    from passersby.checkpoint import CheckpointError
    from passersby.home import resolve_home
    from passersby.web.gallery import GalleryServer

    settings = _settings(config, home, web__host=host, web__token=token)
    home_dir = resolve_home(home or (Path(settings.stream.home) if settings.stream.home else None))
    try:
        backend = build_backend(settings, home_dir)
        server = GalleryServer(backend, host=settings.web.host, port=port if port is not None else 8767,
                               token=settings.web.token or None, make_job=print_job).start()
    except (CheckpointError, ValueError, OSError) as e:
        _fail(e)
    typer.echo(f"gallery of {home_dir / 'captures'}: {server.url}")
    typer.echo(f"  with the token (keep, star, notes, export): {server.control_url}")
    typer.echo("  Ctrl-C stops.")
    try:
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        backend.close()
