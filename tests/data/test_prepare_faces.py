"""prepare() on whole pictures: every face aligned, per-face labels, skips, media flags, merge."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from passersby.data.labels import FEMININE, MASCULINE, LabelError
from passersby.data.media import WOODBLOCK_SCORE, mean_saturation, woodblock_score
from passersby.data.prepare import load_manifest, prepare

PORTRAITS = Path(__file__).resolve().parents[1] / "fixtures" / "portraits"


def load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))

SIZE = 64
LADY, MAN = "jeanne-samary-1877.jpg", "man-with-a-pipe-1892.jpg"
# Where the two faces are pasted into the group picture: (x, y, side) of each tile.
TILES = {LADY: (20, 40, 256), MAN: (330, 100, 128)}


def run(src, dst: Path, **kw: object):
    return prepare(src, dst, size=SIZE, progress=False, detector="hog", **kw)


def _group_picture() -> np.ndarray:
    """A 'group portrait': two fixture faces, one large and one small, on a painted ground."""
    rng = np.random.default_rng(1)
    canvas = np.empty((400, 520, 3), np.uint8)
    canvas[:] = (110, 80, 50)
    canvas = np.clip(canvas + rng.normal(0, 6, canvas.shape), 0, 255).astype(np.uint8)
    for name, (x, y, side) in TILES.items():
        face = cv2.resize(load_rgb(PORTRAITS / name), (side, side), interpolation=cv2.INTER_CUBIC)
        canvas[y : y + side, x : x + side] = face
    return canvas


def _box(name: str) -> str:
    """The annotated face box of a tile, as an annotator draws it (brow to chin)."""
    x, y, side = TILES[name]
    return f"{x + 0.2 * side:.0f},{y + 0.2 * side:.0f},{x + 0.8 * side:.0f},{y + 0.9 * side:.0f}"


@pytest.fixture
def group_src(tmp_path: Path) -> Path:
    src = tmp_path / "group"
    src.mkdir()
    Image.fromarray(_group_picture()).save(src / "group.png")
    return src


@pytest.fixture
def boxes_csv(tmp_path: Path) -> Path:
    csv = tmp_path / "boxes.csv"
    csv.write_text(
        "file,met_object_id,faces,genders\n"
        f'group.png,1,"{_box(MAN)};{_box(LADY)};400,10,450,60",not-female;female;female\n'
    )
    return csv


def test_every_face_is_aligned_and_takes_its_box_label(
    group_src: Path, boxes_csv: Path, tmp_path: Path
) -> None:
    report = run(group_src, tmp_path / "out", labels=boxes_csv)
    items = load_manifest(tmp_path / "out").items
    raw = json.loads((tmp_path / "out" / "manifest.json").read_text())["items"]
    assert report.written == 2 and report.sources[0].faces_kept == 2
    assert [i.label for i in items] == [FEMININE, MASCULINE]  # largest face first
    assert [i.label_source for i in items] == ["box", "box"]
    assert [r["face_index"] for r in raw] == [0, 1]
    for r, name in zip(raw, (LADY, MAN), strict=True):
        x, y, side = TILES[name]
        cx, cy = np.mean(r["quad"], axis=0)
        assert x < cx < x + side and y < cy < y + side  # the crop is on that face
        assert r["filled"] < 0.2 and r["face"] and r["detector"] == "hog"


def test_min_face_skips_small_faces_and_says_why(group_src: Path, tmp_path: Path) -> None:
    report = run(group_src, tmp_path / "out", min_face=120)
    assert report.written == 1
    [skip] = report.skipped
    assert skip.source == "group.png#face2" and skip.reason.startswith("face too small: ")
    assert "--min-face 120" in skip.reason
    assert report.sources[0].faces_dropped == {"face too small": 1}
    assert "group.png#face2\tface too small" in (tmp_path / "out" / "report.txt").read_text()


def test_no_face_is_skipped_unless_centre_crop_fallback(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(PORTRAITS / LADY, src / LADY)
    wall = np.full((90, 120, 3), (60, 120, 90), np.uint8)  # a picture of a green wall
    Image.fromarray(wall).save(src / "wall.png")
    report = run(src, tmp_path / "skip")
    assert report.written == 1 and [(s.source, s.reason) for s in report.skipped] == [
        ("wall.png", "no face found")
    ]
    report = run(src, tmp_path / "keep", centre_crop_fallback=True)
    items = {i.source: i for i in load_manifest(tmp_path / "keep").items}
    assert report.written == 2 and report.centre_cropped == 1 and not report.skipped
    assert items["wall.png"].face is False and items["wall.png"].crop == (15, 0, 105, 90)
    assert items[LADY].face is True


def test_greyscale_is_flagged_and_dropped_with_colour_only(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    pope = cv2.resize(load_rgb(PORTRAITS / "pope-julius-ii.jpg"), (256, 256))
    Image.fromarray(pope).convert("L").convert("RGB").save(src / "drawing.png")
    Image.fromarray(_group_picture()).save(src / "painting.png")
    run(src, tmp_path / "all")
    raw = json.loads((tmp_path / "all" / "manifest.json").read_text())["items"]
    flags = {(r["source"], r["media"]["greyscale"]) for r in raw}
    assert flags == {("drawing.png", True), ("painting.png", False)}
    report = run(src, tmp_path / "colour", colour_only=True)
    assert {i.source for i in load_manifest(tmp_path / "colour").items} == {"painting.png"}
    assert report.sources[0].pictures_dropped == {"greyscale print or drawing": 1}


def test_media_measures() -> None:
    assert mean_saturation(np.full((10, 10, 3), 77, np.uint8)) == 0.0
    paper = np.full((256, 256, 3), (235, 225, 200), np.uint8)
    cv2.circle(paper, (128, 128), 80, (20, 20, 20), 3)  # an ink outline on flat paper
    cv2.line(paper, (90, 110), (120, 110), (20, 20, 20), 2)
    yy, xx = np.mgrid[0:256, 0:256]
    light = (128 + 80 * np.sin(xx / 15) * np.cos(yy / 18)).astype(np.uint8)  # soft modelling
    shaded = np.dstack([light, (light * 0.8).astype(np.uint8), (light * 0.6).astype(np.uint8)])
    assert woodblock_score(paper) >= WOODBLOCK_SCORE > woodblock_score(shaded)


def test_woodblock_fixture_is_flagged(tmp_path: Path) -> None:
    geisha = load_rgb(PORTRAITS / "the-geisha-kamekichi.jpg")
    painting = load_rgb(PORTRAITS / "portrait-of-a-young-woman-1480.jpg")
    assert woodblock_score(geisha) >= WOODBLOCK_SCORE > woodblock_score(painting)


def test_several_sources_make_one_dataset(tmp_path: Path, group_src: Path) -> None:
    other = tmp_path / "portraits"
    other.mkdir()
    shutil.copy(PORTRAITS / LADY, other / LADY)
    shutil.copy(group_src / "group.png", other / "group.png")  # the same file in both
    report = run([group_src, other], tmp_path / "out")
    assert [s.name for s in report.sources] == ["group", "portraits"]
    assert [(s.pictures, s.faces_kept) for s in report.sources] == [(1, 2), (2, 1)]
    assert report.sources[1].pictures_dropped == {"exact duplicate": 1}
    items = load_manifest(tmp_path / "out").items
    assert [i.source for i in items] == ["group/group.png"] * 2 + [f"portraits/{LADY}"]
    text = (tmp_path / "out" / "report.txt").read_text()
    assert "source group (" in text and "source portraits (" in text


def test_contact_sheet_is_written(group_src: Path, tmp_path: Path) -> None:
    report = run(group_src, tmp_path / "out")
    sheet = tmp_path / "out" / "contact-sheet.jpg"
    assert report.contact_sheet == str(sheet)
    with Image.open(sheet) as im:
        assert im.format == "JPEG" and im.size == (2 * 96, 96)  # two faces, one row


@pytest.mark.parametrize(
    "row, message",
    [
        ('group.png,"1,2,3",female', r"boxes\.csv:2: face box '1,2,3' in 'faces' is not x0,y0"),
        ('group.png,"1,2,3,4;5,6,7,8",female', r"boxes\.csv:2: 2 face boxes but 1 labels"),
        ('group.png,"1,2,3,4",robot', r"boxes\.csv:2: unknown label 'robot' in 'genders'"),
    ],
)
def test_bad_face_boxes_csv(group_src: Path, tmp_path: Path, row: str, message: str) -> None:
    csv = tmp_path / "boxes.csv"
    csv.write_text(f"file,faces,genders\n{row}\n")
    with pytest.raises(LabelError, match=message):
        run(group_src, tmp_path / "out", labels=csv)
    assert not (tmp_path / "out").exists()
