"""decode_image: every format and mode to RGB uint8, every failure to BadImage with a reason."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from passersby.data.images import MID_GREY, BadImage, decode_image

PORTRAIT = sorted((Path(__file__).resolve().parents[1] / "fixtures" / "portraits").glob("*.jpg"))[0]


def rgb_portrait() -> np.ndarray:
    with Image.open(PORTRAIT) as im:
        return np.asarray(im.convert("RGB"))


def encode(im: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def check_rgb(a: np.ndarray, h: int, w: int) -> None:
    assert a.dtype == np.uint8 and a.shape == (h, w, 3) and a.flags.c_contiguous


def test_jpeg_from_path_and_bytes_agree() -> None:
    a = decode_image(PORTRAIT)
    check_rgb(a, 128, 128)
    assert np.array_equal(a, decode_image(PORTRAIT.read_bytes()))


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF", "BMP"])
def test_lossless_formats_roundtrip(fmt: str) -> None:
    rgb = rgb_portrait()
    kw = {"lossless": True} if fmt == "WEBP" else {}
    out = decode_image(encode(Image.fromarray(rgb), fmt, **kw))
    assert np.array_equal(out, rgb)


def test_grayscale_becomes_three_equal_channels() -> None:
    gray = np.asarray(Image.fromarray(rgb_portrait()).convert("L"))
    out = decode_image(encode(Image.fromarray(gray), "TIFF"))
    check_rgb(out, 128, 128)
    assert np.array_equal(out[..., 0], gray) and np.array_equal(out[..., 2], gray)


def test_sixteen_bit_png_and_tiff_scale_to_eight_bit() -> None:
    v = np.arange(256, dtype=np.uint16).reshape(16, 16).repeat(4, 0).repeat(4, 1)
    for fmt in ("PNG", "TIFF"):
        out = decode_image(encode(Image.fromarray(v * 257), fmt))
        assert np.array_equal(out[..., 1], v.astype(np.uint8)), fmt  # 65535 -> 255, 257 -> 1


def test_sixteen_bit_rgb_png() -> None:
    import cv2

    rgb = rgb_portrait()
    ok, data = cv2.imencode(".png", (rgb[..., ::-1].astype(np.uint16) * 257))
    assert ok
    assert np.array_equal(decode_image(data.tobytes()), rgb)


def test_cmyk_jpeg_keeps_its_colours() -> None:
    rgb = rgb_portrait()
    out = decode_image(encode(Image.fromarray(rgb).convert("CMYK"), "JPEG", quality=95))
    check_rgb(out, 128, 128)
    assert np.abs(out.astype(int) - rgb).mean() < 8


def test_alpha_is_composited_on_the_background() -> None:
    rgba = np.dstack([rgb_portrait(), np.full((128, 128), 255, np.uint8)])
    rgba[:, :30, 3] = 0
    data = encode(Image.fromarray(rgba), "PNG")
    assert (decode_image(data)[:, :30] == 255).all()
    assert (decode_image(data, background=MID_GREY)[:, :30] == 128).all()
    assert np.array_equal(decode_image(data)[:, 30:], rgba[:, 30:, :3])


def test_palette_with_transparency() -> None:
    pal = Image.fromarray(rgb_portrait()).quantize(16)
    px = np.asarray(pal).copy()
    px[:10] = 15
    im = Image.fromarray(px, mode="P")
    im.putpalette(pal.getpalette())
    out = decode_image(encode(im, "PNG", transparency=15))
    assert (out[:10] == 255).all()


def test_gif_first_frame() -> None:
    red = Image.new("RGB", (40, 40), (255, 0, 0))
    blue = Image.new("RGB", (40, 40), (0, 0, 255))
    buf = io.BytesIO()
    red.save(buf, "GIF", save_all=True, append_images=[blue], duration=50)
    out = decode_image(buf.getvalue())
    assert tuple(out[20, 20]) == (255, 0, 0)


def test_exif_orientation_is_applied() -> None:
    stored = np.zeros((64, 96, 3), np.uint8)  # 96 wide, 64 tall
    stored[:, :16] = (255, 0, 0)  # red on the left ...
    stored[:, 16:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    out = decode_image(encode(Image.fromarray(stored), "JPEG", quality=95, exif=exif.tobytes()))
    check_rgb(out, 96, 64)  # ... displayed upright: 64 wide, 96 tall, red at the top
    assert out[:10, :, 0].mean() > 200 and out[-10:, :, 2].mean() > 200


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty file"),
        (b"hello, I am text\n", "not an image"),
        (b"\xff\xd8\xff\xe0" + b"\0" * 50, "corrupt image: starts like a JPEG"),
    ],
)
def test_bad_bytes(data: bytes, reason: str) -> None:
    with pytest.raises(BadImage) as e:
        decode_image(data)
    assert e.value.reason.startswith(reason)


def test_truncated_jpeg_is_rejected_and_the_pillow_flag_restored() -> None:
    data = encode(Image.fromarray(rgb_portrait()).resize((256, 256)), "JPEG", quality=95)
    ImageFile.LOAD_TRUNCATED_IMAGES = True  # someone else's setting must not hide truncation
    try:
        with pytest.raises(BadImage, match="truncated"):
            decode_image(data[: len(data) // 2])
        assert ImageFile.LOAD_TRUNCATED_IMAGES is True
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False


def test_decompression_bomb_limit_is_a_parameter() -> None:
    data = encode(Image.fromarray(rgb_portrait()), "PNG")
    with pytest.raises(BadImage, match=r"decompression bomb: 128x128 px"):
        decode_image(data, max_pixels=100 * 100)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BadImage, match="cannot read file"):
        decode_image(tmp_path / "nope.jpg")


def test_embedded_icc_profile_is_honoured() -> None:
    from PIL import ImageCms

    rgb = rgb_portrait()
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    assert np.array_equal(decode_image(encode(Image.fromarray(rgb), "PNG", icc_profile=srgb)), rgb)
    out = decode_image(encode(Image.fromarray(rgb), "PNG", icc_profile=b"not a profile"))
    assert np.array_equal(out, rgb)  # a broken profile falls back to the plain numbers
