"""One picture -> its aligned faces: the per-file work of `prepare`, run in worker processes.

`process_picture` reads and hashes the file, decodes it, measures its media (greyscale,
woodblock), finds every face, skips faces under `min_face` pixels, aligns the rest
(`align.py`), matches them to per-face labels from a CSV, and encodes each as PNG. Everything
it returns is small and picklable, so it crosses process boundaries cheaply.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from passersby.data.align import align_face, face_quad, landmarks
from passersby.data.faces import Box, crop_and_resize, find_faces, square_crop_box
from passersby.data.images import BadImage, decode_image
from passersby.data.labels import FaceBox, match_face_label
from passersby.data.media import MediaFlags, colour_stats, woodblock_score
from passersby.data.phash import fine_hash, phash

MEDIA_MARGIN = 1.4  # woodblock statistics are measured on the face box squared and x1.4


@dataclass(frozen=True)
class PictureOptions:
    """Settings of one `prepare` run that the workers need."""

    size: int
    min_face: int
    min_side: int
    max_pixels: int
    centre_crop_fallback: bool
    colour_only: bool
    detector: str
    classify: bool
    background: tuple[int, int, int]
    zoom: float = 1.0  # > 1 frames faces tighter than FFHQ (align.face_quad)


@dataclass
class FaceOutcome:
    """One face of a picture: written to the dataset unless `reason` says why not."""

    index: int  # order among the picture's detections, largest face first
    box: Box  # detector box, source pixels
    reason: str | None = None
    png: bytes = b""
    phash: int = 0
    fine: int = 0  # 256-bit fine_hash, to confirm pHash matches between aligned faces
    crop: Box = (0, 0, 0, 0)  # integer bounding box of `quad` (may reach outside the picture)
    quad: list[list[float]] = field(default_factory=list)  # TL, BL, BR, TR corners
    filled: float = 0.0
    woodblock_score: float | None = None
    label: str | None = None  # from a per-face box in the labels CSV
    label_source: str | None = None
    gender: str | None = None  # from the classifier, where asked


@dataclass
class PictureOutcome:
    """What `process_picture` made of one file; `reason` set: the whole picture is skipped."""

    source: str
    sha256: str = ""
    reason: str | None = None
    width: int = 0
    height: int = 0
    colour: MediaFlags = MediaFlags(0.0)  # saturation, chroma spread, luma of the picture
    detector: str = "none"
    faces: list[FaceOutcome] = field(default_factory=list)
    centre_crop: FaceOutcome | None = None  # the fallback crop of a picture without faces


@dataclass(frozen=True)
class PictureJob:
    """One file to process: its path, its name in the dataset, what to ask of it."""

    path: str
    source: str
    face_labels: tuple[tuple[FaceBox, str | None], ...] = ()
    want_gender: bool = False


def process_picture(job: PictureJob, opts: PictureOptions) -> PictureOutcome:
    """Read, hash, decode, flag, detect, align and encode one picture.

    Args:
        job: the file and the per-face labels known for it.
        opts: the run's settings.

    Returns:
        The outcome; never raises for a bad file (the reason is in `reason`).

    Example:
        >>> opts = PictureOptions(64, 64, 64, 10**8, False, False, "hog", False, (255,) * 3)
        >>> process_picture(PictureJob("/nonexistent.jpg", "x.jpg"), opts).reason
        'cannot read file: No such file or directory'
    """
    out = PictureOutcome(source=job.source)
    try:
        data = Path(job.path).read_bytes()
    except OSError as e:
        out.reason = f"cannot read file: {e.strerror or e}"
        return out
    out.sha256 = hashlib.sha256(data).hexdigest()
    try:
        rgb = decode_image(data, max_pixels=opts.max_pixels, background=opts.background)
    except BadImage as e:
        out.reason = e.reason
        return out
    out.height, out.width = rgb.shape[:2]
    out.colour = colour_stats(rgb)
    if opts.colour_only and out.colour.greyscale:
        c = out.colour
        out.reason = (
            f"greyscale print or drawing (saturation {c.saturation:.3f}, "
            f"chroma spread {c.spread:.1f}, luma {c.luma:.0f})"
        )
        return out
    boxes, out.detector = find_faces(rgb, opts.detector)
    out.faces = [_face(rgb, i, box, job, opts) for i, box in enumerate(boxes)]
    if not boxes:
        _no_face(rgb, out, opts)
    return out


def _no_face(rgb: np.ndarray, out: PictureOutcome, opts: PictureOptions) -> None:
    """Skip the picture, or centre-crop it with --centre-crop-fallback."""
    if not opts.centre_crop_fallback:
        out.reason = "no face found"
        return
    h, w = rgb.shape[:2]
    crop = square_crop_box(h, w, None)
    if crop[2] - crop[0] < opts.min_side:
        out.reason = f"too small: the crop is {crop[2] - crop[0]} px, under {opts.min_side} px"
        return
    square = crop_and_resize(rgb, crop, opts.size)
    x0, y0, x1, y1 = crop
    quad = [[x0, y0], [x0, y1], [x1, y1], [x1, y0]]
    out.centre_crop = FaceOutcome(-1, crop, crop=crop, quad=quad, png=encode_png(square))
    out.centre_crop.phash, out.centre_crop.fine = phash(square), fine_hash(square)


def _face(
    rgb: np.ndarray, index: int, box: Box, job: PictureJob, opts: PictureOptions
) -> FaceOutcome:
    """Align one detected face, or say why it is left out."""
    face = FaceOutcome(index, box)
    side = ((box[2] - box[0]) + (box[3] - box[1])) / 2
    if side < opts.min_face:
        face.reason = f"face too small: {side:.0f} px, under --min-face {opts.min_face} px"
        return face
    h, w = rgb.shape[:2]
    media_crop = crop_and_resize(rgb, square_crop_box(h, w, box, MEDIA_MARGIN), 256)
    face.woodblock_score = woodblock_score(media_crop)
    if opts.colour_only and MediaFlags(1.0, face.woodblock_score).woodblock:
        face.reason = f"woodblock print (score {face.woodblock_score:.3f})"
        return face
    quad = face_quad(landmarks(rgb, box), zoom=opts.zoom)
    aligned = align_face(rgb, quad, opts.size)
    face.quad = [[round(float(v), 2) for v in corner] for corner in quad]
    lo, hi = np.floor(quad.min(axis=0)), np.ceil(quad.max(axis=0))
    face.crop = (int(lo[0]), int(lo[1]), int(hi[0]), int(hi[1]))
    face.filled = aligned.filled
    face.png, face.phash = encode_png(aligned.image), phash(aligned.image)
    face.fine = fine_hash(aligned.image)
    match = match_face_label(box, job.face_labels)
    if match is not None and match[1] is not None:
        face.label, face.label_source = match[1], "box"
    if job.want_gender and face.label is None:
        from passersby.data.labels import shared_classifier

        face.gender = shared_classifier().classify(rgb, box)[0]
    return face


def encode_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of an RGB image, fast compression (paintings barely compress).

    Example:
        >>> encode_png(np.zeros((2, 2, 3), np.uint8))[:4]
        b'\\x89PNG'
    """
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", compress_level=1)  # level 6: 3x slower, 1% less
    return buf.getvalue()
