"""`passersby hires`: native face squares for the enhancer (never resized), split by picture."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from passersby.cli import app
from passersby.data.hires import held_out_picture, native_face_squares, square_around
from passersby.data.manifest import DatasetError, load_manifest
from passersby.data.training_set import load_training_set


def test_square_around_centres_on_the_face_and_stays_inside_the_picture():
    assert square_around((100, 100, 300, 300), 128, 800, 600) == (136, 136)
    assert square_around((0, 0, 200, 200), 128, 800, 600) == (36, 36)
    assert square_around((700, 500, 800, 600), 64, 800, 600) == (718, 518)  # moved inside
    assert square_around((10, 10, 100, 100), 128, 800, 600) is None  # face smaller than the square
    assert square_around((0, 0, 300, 300), 256, 200, 600) is None  # picture narrower than the square


def test_held_out_split_is_a_function_of_the_picture():
    hashes = [f"{i:08x}" + "0" * 56 for i in range(0, 2 ** 32, 2 ** 24)]
    share = np.mean([held_out_picture(h, 0.25) for h in hashes])
    assert 0.2 < share < 0.3
    assert all(held_out_picture(h, 0.25) == held_out_picture(h, 0.25) for h in hashes)


def test_native_squares_are_the_source_pixels_and_pictures_never_cross_splits(tmp_path, prepared_data):
    m = load_manifest(prepared_data)
    src_root = prepared_data.parent / f"{prepared_data.name}-src"
    out = tmp_path / "hires"
    report = native_face_squares(prepared_data, [src_root], out, size=48, held_out=0.08)  # 1 of the 9 faces held out
    assert report.train + report.held_out + report.too_small == sum(it.face for it in m.items)
    assert report.train >= 8 and report.held_out >= 1 and report.missing_source == 0
    sources = {}
    for split in ("train", "held-out"):
        raw = json.loads((out / split / "manifest.json").read_text())
        hm = load_manifest(out / split)
        assert hm.size == 48
        for item, it in zip(raw["items"], hm.items):
            x0, y0, x1, y1 = item["crop"]
            picture = np.asarray(Image.open(src_root / Path(item["source"]).name).convert("RGB"))
            square = np.asarray(Image.open(out / split / it.file))
            assert np.array_equal(square, picture[y0:y1, x0:x1])  # exactly the source's pixels
            sources.setdefault(item["sha256"], set()).add(split)
    assert all(len(v) == 1 for v in sources.values())
    assert load_training_set(out / "train", 48).images.shape[1:] == (3, 48, 48)
    assert not list(tmp_path.glob(".hires.tmp-*"))


def test_refuses_a_non_empty_output_and_too_few_faces(tmp_path, prepared_data):
    src_root = prepared_data.parent / f"{prepared_data.name}-src"
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    with pytest.raises(DatasetError, match="not an empty folder"):
        native_face_squares(prepared_data, [src_root], tmp_path / "full")
    assert (tmp_path / "full" / "x").read_text() == "keep me"
    with pytest.raises(DatasetError, match="pass a smaller --size"):
        native_face_squares(prepared_data, [src_root], tmp_path / "big", size=1024)
    assert not (tmp_path / "big").exists() and not list(tmp_path.glob(".big.tmp-*"))


def test_cli_hires_reports_and_errors_in_one_line(tmp_path, prepared_data):
    src_root = prepared_data.parent / f"{prepared_data.name}-src"
    r = CliRunner().invoke(app, ["hires", str(prepared_data), str(tmp_path / "h"), "--from", str(src_root),
                                 "--size", "48"])
    assert r.exit_code == 0, r.output
    assert "training and" in r.output and (tmp_path / "h" / "train" / "manifest.json").is_file()
    r = CliRunner().invoke(app, ["hires", str(tmp_path / "nope"), str(tmp_path / "h2"), "--from", str(src_root)])
    assert r.exit_code == 1 and r.output.strip().startswith("error:") and "Traceback" not in r.output
    r = CliRunner().invoke(app, ["hires", str(prepared_data), str(tmp_path / "h3"), "--from", str(src_root),
                                 "--held-out", "1.5"])
    assert r.exit_code == 1 and "error: --held-out" in r.output
