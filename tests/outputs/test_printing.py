"""`passersby print`: exact paper sizes, the gilt frame, provenance read back from PNG / TIFF /
PDF, the PDF rendered back with pdftoppm, and which upscaler was used."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms
from typer.testing import CliRunner

from passersby.app.captures import load_capture, save_capture
from passersby.app.print_cli import beats_lanczos, upscale_for_print
from passersby.cli import app
from passersby.outputs.printing import FACE_SHARE, Provenance, compose, face_side, gilt_frame, page_pixels

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "portraits"


@pytest.fixture
def capture(tmp_path):
    """A capture of a real painted face (a fixture portrait at 128 px) in a fresh home."""
    path = sorted(FIXTURES.glob("*.jpg"))[0]
    face = np.asarray(Image.open(path).convert("RGB").resize((128, 128), Image.LANCZOS))
    key = {"frame": 42, "source": "latent-walk", "model": "7712902bed20794e", "ledger_ids": [17, 18]}
    return tmp_path / "home", save_capture(tmp_path / "home", "feminine", face, key, shown_at=1764572700.0)


def test_paper_sizes_are_exact_at_300_dpi():
    assert page_pixels("A4", 300) == (2480, 3508)
    assert page_pixels("A3", 300) == (3508, 4961)
    assert page_pixels("A2", 300) == (4961, 7016)
    with pytest.raises(ValueError, match="--size: unknown paper 'B7'"):
        page_pixels("B7", 300)
    with pytest.raises(ValueError, match="--dpi"):
        page_pixels("A4", 5)


def test_the_gilt_frame_is_lit_from_the_top_left_and_leaves_the_opening():
    f = gilt_frame(200, 40, np.random.default_rng(0)).astype(float)
    assert f.shape == (280, 280, 3)
    assert f[40:240, 40:240].max() == 0  # the face goes there
    lum = f.mean(-1)
    # The outer roll rises from the edge: it faces the light on the top and left sides, away
    # from it on the bottom and right.
    top, bottom = lum[1:5, 60:220].mean(), lum[-5:-1, 60:220].mean()
    left, right = lum[60:220, 1:5].mean(), lum[60:220, -5:-1].mean()
    assert top > bottom + 30 and left > right + 30, (top, bottom, left, right)
    assert (f[:40] > 0).all(-1).mean() > 0.99  # the moulding is painted everywhere, corners too


def test_compose_places_the_face_and_refuses_a_wrong_size():
    side = face_side("A5", 100)
    assert side == round(page_pixels("A5", 100)[0] * FACE_SHARE)
    face = Image.new("RGB", (side, side), (200, 30, 30))
    page = np.asarray(compose(face, "A5", 100, "none", Provenance("T", "1 December 2026", "abc", 3)))
    red = (page[..., 0] == 200) & (page[..., 1] == 30)
    assert red.sum() == side * side  # the face, whole, once
    with pytest.raises(ValueError, match="must be"):
        compose(Image.new("RGB", (10, 10)), "A5", 100)
    with pytest.raises(ValueError, match="--frame"):
        compose(face, "A5", 100, "silver")


@pytest.mark.parametrize("paper", ["A4", "A3", "A2"])
def test_print_writes_exact_pages_with_provenance_and_a_pdf_that_renders(capture, tmp_path, paper):
    home, cap = capture
    out = tmp_path / f"print-{paper}"
    fmt = "tiff" if paper == "A3" else "png"
    r = CliRunner().invoke(app, ["print", cap.id, "--size", paper, "--dpi", "300", "--frame", "gold", "--label",
                                 "--signature", "--format", fmt, "--out", str(out), "--home", str(home)])
    assert r.exit_code == 0, r.output
    assert "enhancer" in r.output and "then Lanczos" in r.output  # the shipped enhancer beat Lanczos: used once
    raster = out.with_suffix(".png" if fmt == "png" else ".tif")
    with Image.open(raster) as im:
        assert im.size == page_pixels(paper, 300)
        assert round(im.info["dpi"][0]) == 300
        profile = ImageCms.ImageCmsProfile(io.BytesIO(im.info["icc_profile"]))
        assert "sRGB" in ImageCms.getProfileDescription(profile)
        if fmt == "png":
            record = json.loads(im.text["passersby"])
            assert im.text["Title"] == "Passerby, feminine screen"
        else:
            record = json.loads(im.tag_v2[270])
            assert im.tag_v2[269] == "Passerby, feminine screen"
    assert record["model_hash"] == "7712902bed20794e" and record["anchor_id"] == 17
    assert record["capture"] == cap.id and "enhancer" in record["upscaled_with"]
    pdf = out.with_suffix(".pdf")
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    assert f"({paper})" in info and "Passerby, feminine screen" in info
    images = subprocess.run(["pdfimages", "-list", str(pdf)], capture_output=True, text=True, check=True).stdout
    assert images.splitlines()[2].split()[5] == "icc"  # the picture carries its sRGB profile
    subprocess.run(["pdftoppm", "-r", "20", "-png", "-singlefile", str(pdf), str(tmp_path / "pdf")], check=True)
    rendered = np.asarray(Image.open(tmp_path / "pdf.png").convert("RGB")).astype(float)
    small = np.asarray(Image.open(raster).convert("RGB").resize(rendered.shape[1::-1], Image.BILINEAR)).astype(float)
    assert np.abs(rendered - small).mean() < 6  # the PDF shows the same page
    assert not list(out.parent.glob(".*.tmp"))


def test_upscaler_choice_says_which(capture, tmp_path):
    from passersby.app.chain import default_enhancer_path

    _, cap = capture
    im = cap.image()
    up, how = upscale_for_print(im, 300, False, default_enhancer_path())
    assert up.shape == (300, 300, 3) and how.startswith("enhancer ") and "128 -> 256" in how
    assert "already enhanced" in upscale_for_print(im, 300, True, default_enhancer_path())[1]
    assert "no enhancer" in upscale_for_print(im, 300, False, None)[1]
    assert "less than 2x" in upscale_for_print(im, 200, False, default_enhancer_path())[1]
    assert not beats_lanczos({"metrics": {"psnr": 38.0, "psnr_lanczos": 39.0, "feature_distance": 0.1,
                                          "feature_distance_lanczos": 0.2}})
    assert not beats_lanczos({})


def test_print_errors_name_the_problem(capture, tmp_path):
    home, cap = capture
    r = CliRunner().invoke(app, ["print", "nope", "--home", str(home)])
    assert r.exit_code == 1 and "error: capture nope:" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(app, ["print", cap.id, "--size", "B7", "--home", str(home)])
    assert r.exit_code == 1 and "error: --size: unknown paper 'B7'" in r.output
    r = CliRunner().invoke(app, ["print", cap.id, "--format", "gif", "--home", str(home)])
    assert r.exit_code == 1 and "error: --format" in r.output
    cap.path.with_suffix(".json").write_text("{broken")
    r = CliRunner().invoke(app, ["print", cap.id, "--home", str(home)])
    assert r.exit_code == 1 and "unreadable capture record" in r.output


def test_print_takes_capture_ids_only_or_an_explicit_file(capture, tmp_path):
    """Issue 22: `passersby print ../../etc/passwd` looked for a capture outside captures/; a
    capture planted beside it was printed."""
    home, cap = capture
    for suffix in (".png", ".json"):  # a valid capture, but outside <home>/captures
        shutil.copy(cap.path.with_suffix(suffix), (home / "planted").with_suffix(suffix))
    for ref in ("../planted", "../../etc/passwd", str(home / "planted.png"), ".."):
        r = CliRunner().invoke(app, ["print", ref, "--home", str(home), "--out", str(tmp_path / "x")])
        assert r.exit_code == 1 and "is not a capture id" in r.output and "--file PATH" in r.output, (ref, r.output)
        assert r.output.count("\n") == 1 and "Traceback" not in r.output
    assert not list(tmp_path.glob("x.*"))
    r = CliRunner().invoke(app, ["print", "--file", str(home / "planted.png"), "--size", "A5", "--dpi", "100",
                                 "--home", str(home), "--out", str(tmp_path / "y")])
    assert r.exit_code == 0 and (tmp_path / "y.pdf").is_file(), r.output  # named explicitly: printed
    r = CliRunner().invoke(app, ["print", cap.id, "--file", str(cap.path), "--home", str(home)])
    assert r.exit_code == 1 and "one of them" in r.output
    r = CliRunner().invoke(app, ["print", "--home", str(home)])
    assert r.exit_code == 1 and "give a capture id or --file PATH" in r.output


def test_captures_round_trip_and_leftovers_are_cleaned(capture):
    from passersby.app.captures import clean_leftovers, list_captures

    home, cap = capture
    again = load_capture(cap.path, home)
    assert again.record == cap.record and again.image().shape == (128, 128, 3)
    folder = cap.path.parent
    (folder / ".x.png.123.tmp").write_bytes(b"half")
    orphan = folder / "20261201-000000-feminine-1.png"
    shutil.copy(cap.path, orphan)  # a picture whose record was never written (a crash between the two)
    gone = clean_leftovers(home)
    assert sorted(p.name for p in gone) == sorted([".x.png.123.tmp", orphan.name])
    assert [c.id for c in list_captures(home)] == [cap.id]


def test_a_capture_enhanced_at_capture_time_is_not_enhanced_again(tmp_path):
    """A feedback screen shows 256² frames; its capture is the enhancer's 512² re-render (the
    record's quality says so, the key's stages do not): print resizes it, no second 2x step."""
    path = sorted(FIXTURES.glob("*.jpg"))[0]
    face = np.asarray(Image.open(path).convert("RGB").resize((128, 128), Image.LANCZOS))
    cap = save_capture(tmp_path, "loop", face, {"frame": 3, "source": "feedback", "models": {"generator": "g1"}},
                       quality="enhancer e1", matches_shown=True)
    r = CliRunner().invoke(app, ["print", cap.id, "--size", "A5", "--dpi", "100", "--home", str(tmp_path),
                                 "--out", str(tmp_path / "p")])
    assert r.exit_code == 0 and "(the capture is already enhanced)" in r.output, r.output


def test_a_frame_between_two_anchors_names_both_and_t_in_capture_print_and_gallery(tmp_path):
    """Issue 22: an in-between walk frame was named by one anchor only, and for a spline the
    first listed one (the anchor *before* its segment: the key lists one back for the curve)."""
    from passersby.app.captures import segment_of
    from passersby.app.gallery import GalleryBackend

    home = tmp_path / "home"
    face = np.asarray(Image.open(sorted(FIXTURES.glob("*.jpg"))[0]).convert("RGB").resize((128, 128)))
    walk = {"style": "spline", "tempo": 6.0, "fps": 30.0, "drift_speed": 0.3, "tangent_scale": 1.75}
    # Walk positions 3..6 are ledger rows 40..43; t = 7.5 s after position 3: a quarter from 4 to 5.
    key = {"frame": 675, "source": "latent-walk", "model": "7712902bed20794e", "anchor_ids": [3, 4, 5, 6],
           "ledger_ids": [40, 41, 42, 43], "t": 7.5, "walk": walk}
    cap = save_capture(home, "feminine", face, key, shown_at=1764572700.0)
    assert cap.record["anchors"] == {"from": 41, "to": 42, "t": 0.25} and cap.record["anchor_id"] == 41
    on_anchor = {**key, "t": 6.0}  # exactly on position 4: one face, no second anchor
    assert segment_of(on_anchor) == {"from": 41, "to": None, "t": 0.0}
    # Between keyframes: the blend of two walk positions (4.25 and 4.75, mixed half and half).
    blended = {**key, "between": {"from": 660, "next": {**key, "t": 10.5}, "mix": 0.5}}
    assert segment_of(blended) == {"from": 41, "to": 42, "t": 0.5}
    # A feedback screen crossfading from the previous segment's anchor to the new one's.
    loop = {"source": "feedback", "segment": {"ledger_id": 9}, "previous": {"ledger_id": 8}, "mix": 0.3}
    assert segment_of(loop) == {"from": 8, "to": 9, "t": 0.3}

    out = tmp_path / "p"
    r = CliRunner().invoke(app, ["print", cap.id, "--size", "A5", "--dpi", "100", "--label", "--home", str(home),
                                 "--out", str(out)])
    assert r.exit_code == 0, r.output
    with Image.open(out.with_suffix(".png")) as im:
        record, description = json.loads(im.text["passersby"]), im.text["Description"]
    assert (record["anchor_id"], record["to_anchor"], record["t"]) == (41, 42, 0.25)
    assert "between anchors #41 and #42 (t 0.25)" in description
    backend = GalleryBackend(home)
    try:
        [item] = backend.items()
    finally:
        backend.close()
    assert item["anchors"] == {"from": 41, "to": 42, "t": 0.25}
    assert item["where"] == "between anchors #41 and #42 (t 0.25)"
