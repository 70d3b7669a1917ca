"""A print of one face: a page at an exact paper size, a gilt frame, a museum label, provenance.

Edmond de Belamy was printed on canvas, in a gilt frame, signed with the GAN objective in the
lower right corner. This module lays out such a page from a finished picture (it sees only
pixels and a provenance record; the application layer upscales the face first, passersby.app.
print_cli) and writes it as print-ready files:

    page   (W, H) = paper (mm) / 25.4 * dpi, rounded: A4 at 300 dpi is 2480 x 3508 px
    face   a square, FACE_SHARE of the page's width, centred in the upper part of the page
    frame  "gold": a carved, gilded moulding drawn around the face (lit from the top left)
    label  below: title, date, model, anchor; the signature (optional) on the face itself

Files: PNG (or TIFF) with the sRGB ICC profile and provenance as PNG text / TIFF tags, and a
PDF whose page is the paper's exact size in points, with the same profile (an ICC-based colour
space) and the provenance in its document information. Every file is written atomically.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageCms, ImageDraw, ImageFont

PAPER_MM = {"A5": (148.0, 210.0), "A4": (210.0, 297.0), "A3": (297.0, 420.0), "A2": (420.0, 594.0),
            "A1": (594.0, 841.0), "letter": (215.9, 279.4)}
FRAMES = ("gold", "none")
FACE_SHARE = 0.62  # of the page's width: the face's side
FRAME_SHARE = 0.13  # of the face's side: the moulding's width
SIGNATURE = "min_G max_D E_x[log(D(x))] + E_z[log(1 - D(G(z)))]"  # Belamy's, the GAN objective
PAPER = (250, 248, 243)  # a warm white


@dataclass(frozen=True)
class Provenance:
    """What a print says about its face (label, file metadata).

    `anchor_id` is the anchor the frame's segment starts from; a frame between two anchor faces
    also has `to_anchor` and `t` (0..1 along the way), and the label names both: naming only
    the first called a face in between by another face's name.

    Example:
        >>> Provenance("Passerby", "2026-12-01", "7712902bed20794e", 1234).label_lines()[2]
        'passersby · model 7712902bed20794e · anchor #1234'
        >>> Provenance("Passerby", "2026-12-01", "7712902bed20794e", 1234, to_anchor=1235, t=0.25).label_lines()[2]
        'passersby · model 7712902bed20794e · between anchors #1234 and #1235 (t 0.25)'
    """

    title: str
    date: str
    model_hash: str
    anchor_id: int | None
    upscaled_with: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. the frame key, the capture's path
    to_anchor: int | None = None
    t: float = 0.0

    def label_lines(self) -> list[str]:
        if self.anchor_id is None:
            anchor = ""
        elif self.to_anchor is None:
            anchor = f" · anchor #{self.anchor_id}"
        else:
            anchor = f" · between anchors #{self.anchor_id} and #{self.to_anchor} (t {self.t:.2f})"  # as the gallery says it
        return [self.title, self.date, f"passersby · model {self.model_hash}{anchor}"]

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "date": self.date, "model_hash": self.model_hash, "anchor_id": self.anchor_id,
                "to_anchor": self.to_anchor, "t": self.t, "upscaled_with": self.upscaled_with, **self.extra}


def page_pixels(paper: str, dpi: int) -> tuple[int, int]:
    """(width, height) in pixels of a portrait page.

    Example:
        >>> page_pixels("A4", 300)
        (2480, 3508)
    """
    if paper not in PAPER_MM:
        raise ValueError(f"--size: unknown paper {paper!r}; one of {', '.join(PAPER_MM)}")
    if not 72 <= dpi <= 1200:
        raise ValueError(f"--dpi: {dpi} is outside 72..1200")
    w, h = PAPER_MM[paper]
    return round(w / 25.4 * dpi), round(h / 25.4 * dpi)


def face_side(paper: str, dpi: int) -> int:
    """The side in pixels the face is printed at (what to upscale it to)."""
    return round(page_pixels(paper, dpi)[0] * FACE_SHARE)


def _font(size: int, italic: bool = False) -> ImageFont.ImageFont:
    """A serif at `size` px: DejaVu Serif where the system has it, else Pillow's own font."""
    for name in (["DejaVuSerif-Italic.ttf"] if italic else []) + ["DejaVuSerif.ttf", "LiberationSerif-Regular.ttf"]:
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size)


def _moulding(d: np.ndarray) -> np.ndarray:
    """Height of the frame's profile at depth d in [0, 1] (0: outer edge, 1: the face): an outer
    roll, a cove, a bead and a sight edge - what gives a carved frame its bands of light."""
    roll = 0.55 * np.sin(np.clip(d / 0.3, 0, 1) * math.pi) + 0.35 * (d < 0.3)
    cove = -0.25 * np.sin(np.clip((d - 0.3) / 0.4, 0, 1) * math.pi)
    bead = 0.3 * np.sin(np.clip((d - 0.72) / 0.16, 0, 1) * math.pi)
    return roll + cove + bead + 0.1 * (d > 0.9)


def gilt_frame(side: int, band: int, rng: np.random.Generator) -> np.ndarray:
    """(side + 2 band, same, 3) uint8: a gilded moulding around a `side` x `side` opening
    (left black; the face goes there). Drawn strip by strip (top, left, bottom, right; memory
    ~ band x side, not side^2): a pixel belongs to the strip of its nearest outer edge (which
    mitres the corners); that edge's inward direction and the profile's slope give its normal,
    the normal and a light from the top left its shade."""
    n = side + 2 * band
    out = np.zeros((n, n, 3), np.uint8)
    light = np.array([-0.55, -0.65, 0.52], np.float32)
    light /= np.linalg.norm(light)
    dark, gold = np.array([78, 52, 18], np.float32), np.array([222, 178, 88], np.float32)
    eps = 1.0 / band
    across = np.arange(band, dtype=np.float32)[:, None]  # depth into the strip, (band, 1)
    along = np.arange(n, dtype=np.float32)[None, :]  # position along it, (1, n)
    # The top strip, then the same in the picture turned by k quarter turns (np.rot90: the
    # right edge comes to the top, then the bottom, the left); inward = into the picture, (x, y).
    for k, inward in enumerate([(0.0, 1.0), (-1.0, 0.0), (0.0, -1.0), (1.0, 0.0)]):  # top, right, bottom, left
        mitre = (across <= along) & (across <= n - 1 - along)  # nearer this edge than the side ones
        d = np.clip(across / band, 0, 1) * np.ones_like(along)
        slope = (_moulding(d + eps) - _moulding(d - eps)) / (2 * eps) * 0.9
        normal = np.stack([-slope * inward[0], -slope * inward[1], np.ones_like(slope)], -1)
        normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
        shade = np.clip(normal @ light, 0, 1)
        grain = rng.normal(0, 0.04, shade.shape).astype(np.float32)  # worn gilding
        rgb = dark + (gold - dark) * np.clip(shade ** 1.6 + grain, 0, 1)[..., None] + 70 * (shade ** 24)[..., None]
        strip = np.where(mitre[..., None], np.clip(rgb, 0, 255).astype(np.uint8), 0)
        view = np.rot90(out, k)
        view[:band] = np.where(mitre[..., None], strip, view[:band])
    return out


def sign(face: Image.Image, text: str = SIGNATURE) -> Image.Image:
    """The face with `text` written small in its lower right corner, in dark paint."""
    face = face.copy()
    draw = ImageDraw.Draw(face)
    font = _font(max(8, face.width // 70), italic=True)
    box = draw.textbbox((0, 0), text, font=font)
    margin = face.width // 40
    pos = (face.width - margin - (box[2] - box[0]), face.height - margin - (box[3] - box[1]) - box[1])
    under = np.asarray(face.convert("L").crop((pos[0], pos[1], pos[0] + box[2], pos[1] + box[3]))).mean()
    draw.text(pos, text, font=font, fill=(46, 30, 20) if under > 110 else (214, 190, 150))  # dark paint, or light on dark
    return face


def compose(face: Image.Image, paper: str, dpi: int, frame: str = "gold", label: Provenance | None = None,
            signature: bool = False, seed: int = 0) -> Image.Image:
    """The page: `face` (already at face_side(paper, dpi), RGB) framed and labelled.

    Example:
        >>> page = compose(Image.new("RGB", (face_side("A5", 100),) * 2), "A5", 100, "none")
        >>> page.size
        (583, 827)
    """
    if frame not in FRAMES:
        raise ValueError(f"--frame: {frame!r} is not one of {', '.join(FRAMES)}")
    w, h = page_pixels(paper, dpi)
    side = face_side(paper, dpi)
    if face.size != (side, side):
        raise ValueError(f"the face must be {side} x {side} px for {paper} at {dpi} dpi, got {face.size}")
    page = Image.new("RGB", (w, h), PAPER)
    face = sign(face) if signature else face
    band = round(side * FRAME_SHARE) if frame == "gold" else 0
    block = side + 2 * band + (round(0.17 * h) if label is not None else 0)  # framed face + label
    left, top = (w - side) // 2, max(0, (h - block) // 2 - round(0.03 * h)) + band  # a little above centre
    if band:
        moulding = Image.fromarray(gilt_frame(side, band, np.random.default_rng(seed)))
        page.paste(moulding, (left - band, top - band))
    page.paste(face.convert("RGB"), (left, top))
    if label is not None:
        _write_label(page, label, top + side + band + round(0.05 * h))
    return page


def _write_label(page: Image.Image, label: Provenance, top: int) -> None:
    """The museum label: centred lines, the title larger."""
    draw = ImageDraw.Draw(page)
    y = top
    for i, line in enumerate(label.label_lines()):
        font = _font(max(8, page.width // (38 if i == 0 else 70)), italic=i == 0)
        box = draw.textbbox((0, 0), line, font=font)
        draw.text(((page.width - (box[2] - box[0])) // 2, y), line, font=font, fill=(40, 34, 30))
        y += round((box[3] - box[1]) * 1.7)


def srgb_profile() -> bytes:
    """The sRGB ICC profile (littleCMS's built-in), embedded in every file."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
