"""Fixtures for the data-preparation tests.

The odd and broken files are generated here, at test time, from the committed portrait
fixtures, so the repository holds no binary junk and each case says how it was made.
"""

from __future__ import annotations

import io
import shutil
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

PORTRAITS = Path(__file__).resolve().parents[1] / "fixtures" / "portraits"


def portrait_files() -> list[Path]:
    return sorted(PORTRAITS.glob("*.jpg"))


def load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height 1-bit pixels but holds almost no data.

    Opening it costs nothing; decoding it would allocate width * height bytes: the shape of a
    decompression bomb, built without the memory a real one takes.
    """

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def exif_rotated_jpeg(rgb: np.ndarray, orientation: int = 6) -> bytes:
    """JPEG whose stored pixels are `rgb`, tagged to be displayed rotated."""
    im = Image.fromarray(rgb)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=95, exif=exif.tobytes())
    return buf.getvalue()


@dataclass
class OddSource:
    """A generated SRC folder and what prepare should make of it."""

    root: Path
    broken: dict[str, str]  # relative path -> expected start of the skip reason
    written: list[str]  # relative paths that must end up in the dataset
    ignored: list[str]  # non-image files


@pytest.fixture
def odd_source(tmp_path: Path) -> OddSource:
    """A SRC folder with every awkward kind of file prepare has to cope with."""
    root = tmp_path / "odd"
    (root / "sub" / "deeper").mkdir(parents=True)
    p = [load_rgb(f) for f in portrait_files()]

    def save(rel: str, im: Image.Image, fmt: str, **kw: object) -> None:
        im.save(root / rel, fmt, **kw)

    save("cmyk.jpg", Image.fromarray(p[0]).convert("CMYK"), "JPEG", quality=90)
    gray16 = np.asarray(Image.fromarray(p[1]).convert("L")).astype(np.uint16) * 257
    save("gray16.png", Image.fromarray(gray16), "PNG")
    pal = Image.fromarray(p[2]).quantize(64)
    pal_px = np.asarray(pal).copy()
    pal_px[:, :20] = 63  # a transparent strip on the left
    pal = Image.fromarray(pal_px, mode="P")
    pal.putpalette(Image.fromarray(p[2]).quantize(64).getpalette())
    save("palette.png", pal, "PNG", transparency=63)
    alpha = np.full(p[3].shape[:2], 255, np.uint8)
    alpha[:, :40] = 0
    save("rgba.png", Image.fromarray(np.dstack([p[3], alpha])), "PNG")
    save("gray.tif", Image.fromarray(p[4]).convert("L"), "TIFF")
    save("photo.webp", Image.fromarray(p[5]), "WEBP", quality=90)
    (root / "rotated.jpg").write_bytes(exif_rotated_jpeg(p[6][:100, :]))  # 128 wide, 100 tall
    frames = [Image.fromarray(p[7]), Image.fromarray(255 - p[7])]
    frames[0].save(root / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    save("bitmap.bmp", Image.fromarray(p[8]), "BMP")
    save("sub/deeper/nested.png", Image.fromarray(p[9]), "PNG")
    shutil.copy(portrait_files()[10], root / "k-original.jpg")
    shutil.copy(portrait_files()[10], root / "k-zcopy.jpg")  # sorts after: the one dropped
    shutil.copy(portrait_files()[11], root / "m-original.jpg")
    brighter = np.clip(p[11].astype(np.float32) * 1.06 + 4, 0, 255).astype(np.uint8)
    save("m-zbrighter.jpg", Image.fromarray(brighter), "JPEG", quality=80)

    (root / "zero.jpg").write_bytes(b"")
    whole = io.BytesIO()
    Image.fromarray(p[0]).resize((256, 256)).save(whole, "JPEG", quality=95)
    (root / "truncated.jpg").write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])
    (root / "text.jpg").write_text("this is not a picture\n")
    (root / "bomb-ours.png").write_bytes(png_header_only(9000, 9000))  # 81 Mpx: over our 64
    (root / "bomb-pillow.png").write_bytes(png_header_only(30000, 30000))  # over Pillow's own
    save("tiny.png", Image.fromarray(p[0]).resize((20, 20)), "PNG")
    (root / "notes.txt").write_text("not an image, not an image extension\n")
    (root / ".hidden.jpg").write_bytes(b"macOS resource fork junk")

    return OddSource(
        root=root,
        broken={
            "zero.jpg": "empty file",
            "truncated.jpg": "truncated file",
            "text.jpg": "not an image",
            "bomb-ours.png": "decompression bomb",
            "bomb-pillow.png": "decompression bomb",
            "tiny.png": "too small",
            "k-zcopy.jpg": "exact duplicate of k-original.jpg",
            "m-zbrighter.jpg": "near duplicate of m-original.jpg",
        },
        written=[
            "anim.gif",
            "bitmap.bmp",
            "cmyk.jpg",
            "gray.tif",
            "gray16.png",
            "k-original.jpg",
            "m-original.jpg",
            "palette.png",
            "photo.webp",
            "rgba.png",
            "rotated.jpg",
            "sub/deeper/nested.png",
        ],
        ignored=["notes.txt"],
    )


@pytest.fixture
def portraits_src(tmp_path: Path) -> Path:
    """A copy of the committed portrait fixtures (images only) to prepare from."""
    src = tmp_path / "portraits"
    src.mkdir()
    for f in portrait_files():
        shutil.copy(f, src / f.name)
    return src
