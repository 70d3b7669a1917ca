"""Robust decoding of one image file to an RGB uint8 array.

Source folders hold whatever people had lying around: JPEGs from phones (rotated by an EXIF tag),
CMYK scans, 16-bit TIFFs, transparent PNGs, animated GIFs, half-copied files and files that are
not images at all. `decode_image` turns every one it can into the same thing, an ``(H, W, 3)``
uint8 RGB array, and raises a single exception, `BadImage`, with a short reason for the rest, so
the caller can log the reason and go on.

Pillow is imported inside the functions: importing this module has no side effects.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from pathlib import Path
from typing import Any

import numpy as np

# 64 Mpx is an 8000 x 8000 image: larger than any portrait scan worth training on at 256 px, and
# small enough that the float copies made while decoding fit in memory. Above it a file is far
# more likely to be a decompression bomb (a tiny file declaring a gigantic canvas) than a photo.
DEFAULT_MAX_PIXELS = 64_000_000

WHITE = (255, 255, 255)
MID_GREY = (128, 128, 128)

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif"}
)


class BadImage(Exception):
    """A file that cannot be used as an image; `reason` says why in a few words.

    Example:
        >>> str(BadImage("empty file (0 bytes)"))
        'empty file (0 bytes)'
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def decode_image(
    source: Path | str | bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    background: tuple[int, int, int] = WHITE,
) -> np.ndarray:
    """Decode one image file to an ``(H, W, 3)`` uint8 RGB array, upright.

    Handles JPEG, PNG, WebP, TIFF, BMP and GIF (first frame); grayscale, palette, CMYK and
    16-bit images; alpha (composited on `background`); EXIF orientation; embedded ICC profiles
    (converted to sRGB where Pillow's colour management can).

    Args:
        source: a path, or the file's bytes (prepare reads them once to hash them too).
        max_pixels: images declaring more pixels than this are rejected as decompression bombs.
        background: RGB colour that transparent pixels are composited on.

    Returns:
        The pixels, C-contiguous.

    Raises:
        BadImage: for any file that is empty, truncated, corrupt, not an image or too large.

    Example:
        >>> decode_image(Path("portrait.jpg")).shape  # a picture on disk  # doctest: +SKIP
        (600, 480, 3)
    """
    data = _read(source)
    img = _open(data, max_pixels)
    try:
        img = _upright(img)
        img = _to_srgb(img)
        return _to_rgb_array(img, background)
    except BadImage:
        raise
    except Exception as e:  # Pillow raises many types on odd files; all mean "cannot use it"
        raise BadImage(f"cannot convert to RGB: {_short(e)}") from e


def _read(source: Path | str | bytes) -> bytes:
    if isinstance(source, bytes):
        data = source
    else:
        try:
            if not stat.S_ISREG(os.stat(source).st_mode):  # a FIFO would block open() forever
                raise BadImage("not a plain file (FIFO, socket, device or folder)")
            data = Path(source).read_bytes()
        except OSError as e:
            raise BadImage(f"cannot read file: {e.strerror or _short(e)}") from e
    if not data:
        raise BadImage("empty file (0 bytes)")
    return data


def _open(data: bytes, max_pixels: int) -> Any:
    """Open and fully load the first frame, turning every failure into BadImage."""
    from PIL import Image, ImageFile, UnidentifiedImageError

    # Truncated files must fail here, not turn into half-grey training images. The flag is
    # global, so set it for the duration of the load only and put it back.
    saved_truncated = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its own limit and twice that; make the warning fatal.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > max_pixels:
                raise BadImage(
                    f"decompression bomb: {w}x{h} px is over the {max_pixels:,} px limit"
                )
            if w < 1 or h < 1:
                raise BadImage(f"invalid size {w}x{h}")
            img.load()
            return img
    except BadImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise BadImage(f"decompression bomb: {_short(e)}") from e
    except UnidentifiedImageError as e:
        kind = _sniff(data)
        if kind:
            raise BadImage(f"corrupt image: starts like a {kind} file but cannot be parsed") from e
        raise BadImage("not an image (unrecognised format)") from e
    except Exception as e:  # OSError, SyntaxError, EOFError, struct.error, ... from plugins
        msg = _short(e)
        if "truncated" in msg or isinstance(e, EOFError):
            raise BadImage(f"truncated file: {msg}") from e
        raise BadImage(f"corrupt image: {msg}") from e
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = saved_truncated


_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG", "PNG"),
    (b"GIF8", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


def _sniff(data: bytes) -> str | None:
    """The format a file's first bytes claim, to tell "broken JPEG" from "not an image"."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return next((kind for magic, kind in _MAGIC if data.startswith(magic)), None)


def _upright(img: Any) -> Any:
    """Apply the EXIF orientation tag, so phone photos are not trained on sideways."""
    from PIL import ImageOps

    try:
        return ImageOps.exif_transpose(img)
    except Exception:
        # A broken EXIF block is common and harmless for the pixels: keep them as stored.
        return img


def _to_srgb(img: Any) -> Any:
    """Convert through an embedded ICC profile to sRGB where possible.

    Why: CMYK JPEGs from print workflows and Adobe RGB photos look washed out or shifted when
    their numbers are read as sRGB. Without a profile (or with a broken one) the plain Pillow
    conversion is used instead.
    """
    icc = img.info.get("icc_profile")
    if not icc or img.mode not in ("RGB", "CMYK"):
        return img
    try:
        from PIL import ImageCms

        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        dst = ImageCms.createProfile("sRGB")
        out = ImageCms.profileToProfile(img, src, dst, outputMode="RGB")
        return out if out is not None else img
    except Exception:
        return img


def _to_rgb_array(img: Any, background: tuple[int, int, int]) -> np.ndarray:
    """Any Pillow mode -> (H, W, 3) uint8, compositing alpha on `background`."""
    from PIL import Image

    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        img = Image.fromarray(_sixteen_to_eight(np.asarray(img)))
    elif img.mode == "F":
        img = Image.fromarray(_float_to_eight(np.asarray(img)))
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
    if has_alpha:
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32)
        alpha = rgba[..., 3:4] / 255.0
        bg = np.asarray(background, dtype=np.float32)
        rgb = rgba[..., :3] * alpha + bg * (1.0 - alpha)
        return np.ascontiguousarray(np.clip(np.rint(rgb), 0, 255).astype(np.uint8))
    return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))


def _sixteen_to_eight(a: np.ndarray) -> np.ndarray:
    """Scale 16-bit samples (0..65535) to 8 bit by rounding, so 65535 -> 255 and 257 -> 1.

    Why not `>> 8`: that floors, darkening every value a little. Pillow's own convert("L")
    clips at 255 instead of scaling, which turns a 16-bit image nearly white.
    """
    a = np.clip(a.astype(np.float64), 0, 65535)
    return np.rint(a * (255.0 / 65535.0)).astype(np.uint8)


def _float_to_eight(a: np.ndarray) -> np.ndarray:
    """Float images are usually 0..1; anything larger is scaled by its own maximum."""
    a = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    top = float(a.max()) if a.size else 1.0
    scale = 1.0 if top <= 1.0 else 1.0 / top
    return np.rint(np.clip(a * scale, 0.0, 1.0) * 255.0).astype(np.uint8)


def _short(e: BaseException, limit: int = 100) -> str:
    """One line, at most `limit` characters, for the report."""
    msg = " ".join(str(e).split()) or type(e).__name__
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."
