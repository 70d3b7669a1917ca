"""prepare(): odd files, duplicates, labels, atomic output, and the manifest reader."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import passersby.data.prepare as prep
from passersby.data.labels import FEMININE, MASCULINE, LabelError
from passersby.data.prepare import DatasetError, PrepareError, load_manifest, prepare

PORTRAITS = Path(__file__).resolve().parents[1] / "fixtures" / "portraits"
SIZE = 64  # small outputs keep the tests fast; the code path is the same at 256


def run(src: Path, dst: Path, **kw: object) -> prep.PrepareReport:
    return prepare(src, dst, size=SIZE, progress=False, **kw)


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_odd_files(odd_source, tmp_path: Path) -> None:
    dst = tmp_path / "out"
    report = run(odd_source.root, dst, centre_crop_fallback=True)
    reasons = {s.source: s.reason for s in report.skipped}
    assert set(reasons) == set(odd_source.broken)
    for rel, start in odd_source.broken.items():
        assert reasons[rel].startswith(start), (rel, reasons[rel])
    assert report.exact_duplicates == 1 and report.near_duplicates == 1
    assert report.found == len(odd_source.broken) + len(odd_source.written)
    assert report.ignored_files == odd_source.ignored  # .hidden.jpg is not even listed
    assert report.skipped_by_reason["decompression bomb"] == 2

    manifest = load_manifest(dst)
    assert [i.source for i in manifest.items] == odd_source.written
    for k, item in enumerate(manifest.items):
        assert item.file == f"images/{k:06d}.png"
        with Image.open(dst / item.file) as im:
            assert im.mode == "RGB" and im.size == (SIZE, SIZE)
    assert report.written == len(manifest) == report.faces_found + report.centre_cropped

    text = (dst / "report.txt").read_text()
    for rel in odd_source.broken:
        assert rel in text
    saved = json.loads((dst / "report.json").read_text())
    assert saved["written"] == report.written and len(saved["skipped"]) == len(odd_source.broken)
    assert leftovers(tmp_path) == []


def test_odd_formats_look_right(odd_source, tmp_path: Path) -> None:
    dst = tmp_path / "out"
    run(odd_source.root, dst, centre_crop_fallback=True)
    items = {i.source: i for i in load_manifest(dst).items}
    raw = {i["source"]: i for i in json.loads((dst / "manifest.json").read_text())["items"]}

    def pixels(rel: str) -> np.ndarray:
        with Image.open(dst / items[rel].file) as im:
            return np.asarray(im)

    gray = pixels("gray16.png")
    assert (
        np.array_equal(gray[..., 0], gray[..., 2]) and 60 < gray.mean() < 200
    )  # scaled, not clipped
    box = raw["rotated.jpg"]["box"]  # the face found in the upright 100 x 128 image
    assert box[2] <= 100 and box[3] <= 128 and box[3] - box[1] > 40
    for rel, clear in (("rgba.png", 40), ("palette.png", 20)):  # transparent left columns
        src_x, src_y = _source_coordinates(raw[rel]["quad"])
        strip = (src_x > 2) & (src_x < clear - 2) & (src_y > 2) & (src_y < 126)
        assert strip.sum() > 20 and pixels(rel)[strip].mean() > 245, rel
    cmyk = pixels("cmyk.jpg").astype(int)
    assert np.ptp(cmyk.mean(axis=(0, 1))) > 5  # still in colour, not grey


def _source_coordinates(quad: list[list[float]]) -> tuple[np.ndarray, np.ndarray]:
    """Where each output pixel's centre lies in the source picture, from the item's quad."""
    tl, bl, _, tr = (np.array(c) for c in quad)
    v, u = (np.mgrid[0:SIZE, 0:SIZE] + 0.5) / SIZE
    src = tl + u[..., None] * (tr - tl) + v[..., None] * (bl - tl)
    return src[..., 0], src[..., 1]


def test_titles_csv_labels(portraits_src: Path, tmp_path: Path) -> None:
    report = run(
        portraits_src, tmp_path / "out", labels=PORTRAITS / "titles.csv", centre_crop_fallback=True
    )
    manifest = load_manifest(tmp_path / "out")
    by_source = {i.source: i for i in manifest.items}
    assert len(manifest) == 12 and report.labels == {FEMININE: 6, MASCULINE: 5, "unknown": 1}
    assert by_source["pope-julius-ii.jpg"].label == MASCULINE
    assert by_source["portrait-of-a-lady.jpg"].label == FEMININE
    assert by_source["self-portrait-1887.jpg"].label is None
    assert {i.label_source for i in manifest.items} == {"title", None}
    assert manifest.class_names == (FEMININE, MASCULINE)
    assert report.faces_found == 9 and report.centre_cropped == 3  # HOG 8, the CNN 1 more


def test_labels_csv_and_file_name_labels(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "women").mkdir(parents=True)
    files = sorted(PORTRAITS.glob("*.jpg"))
    shutil.copy(files[0], src / "a.jpg")
    shutil.copy(files[1], src / "women" / "b.jpg")
    shutil.copy(files[2], src / "portrait-of-a-man.jpg")
    shutil.copy(files[3], src / "d.jpg")
    csv = tmp_path / "labels.csv"
    csv.write_text("file,label\na.jpg,male\nwomen/b.jpg,\nmissing.jpg,f\n")
    report = run(src, tmp_path / "out", labels=csv, centre_crop_fallback=True)  # a.jpg: no face
    got = {i.source: (i.label, i.label_source) for i in load_manifest(tmp_path / "out").items}
    assert got == {
        "a.jpg": (MASCULINE, "csv"),
        "d.jpg": (None, None),
        "portrait-of-a-man.jpg": (MASCULINE, "filename"),
        "women/b.jpg": (FEMININE, "filename"),  # a blank CSV label falls back to the folder
    }
    assert report.labels_csv_unmatched == ["missing.jpg"]


def test_bad_labels_csv_writes_nothing(portraits_src: Path, tmp_path: Path) -> None:
    csv = tmp_path / "labels.csv"
    csv.write_text("file,label\nx.jpg,f\ny.jpg,androgynous\n")
    with pytest.raises(LabelError, match=r"labels\.csv:3: unknown label 'androgynous'"):
        run(portraits_src, tmp_path / "out", labels=csv)
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_faces_only_by_default(portraits_src: Path, tmp_path: Path) -> None:
    report = run(portraits_src, tmp_path / "out")
    assert report.written == 9 and report.skipped_by_reason == {"no face found": 3}
    assert all(i.face for i in load_manifest(tmp_path / "out").items)
    hog = run(portraits_src, tmp_path / "hog", detector="hog")  # the CNN finds one more
    assert hog.written == 8 and hog.skipped_by_reason == {"no face found": 4}


def test_classifier_fills_only_missing_labels_on_faces(portraits_src: Path, tmp_path: Path) -> None:
    run(portraits_src, tmp_path / "out", labels=PORTRAITS / "titles.csv", classify_unlabelled=True)
    items = load_manifest(tmp_path / "out").items
    assert all(i.label_source in ("title", "classifier", None) for i in items)
    by_source = {i.source: i for i in items}
    assert [s for s, i in by_source.items() if i.label_source == "classifier"] == [
        "self-portrait-1887.jpg"
    ]
    assert by_source["self-portrait-1887.jpg"].face
    assert by_source["self-portrait-1887.jpg"].label == MASCULINE  # van Gogh


def test_crash_midway_leaves_no_dataset_and_no_temp(
    portraits_src: Path, tmp_path: Path, monkeypatch
) -> None:
    real = prep._write_image
    calls = []

    def failing(*args, **kw):
        calls.append(1)
        if len(calls) > 3:
            raise OSError(28, "No space left on device")
        return real(*args, **kw)

    monkeypatch.setattr(prep, "_write_image", failing)
    with pytest.raises(OSError):
        run(portraits_src, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert leftovers(tmp_path) == []


def test_refuses_to_overwrite_then_swaps_atomically(
    portraits_src: Path, tmp_path: Path, monkeypatch
) -> None:
    dst = tmp_path / "out"
    first = run(portraits_src, dst)
    old_hash = load_manifest(dst).data_hash
    with pytest.raises(PrepareError, match="not empty.*--overwrite"):
        run(portraits_src, dst)
    (portraits_src / "pope-julius-ii.jpg").unlink()

    monkeypatch.setattr(
        prep, "_write_outputs", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom"))
    )
    with pytest.raises(RuntimeError):
        run(portraits_src, dst, overwrite=True)
    assert load_manifest(dst).data_hash == old_hash  # a failed overwrite keeps the old dataset
    monkeypatch.undo()

    second = run(portraits_src, dst, overwrite=True)
    assert second.written == first.written - 1 and load_manifest(dst).data_hash != old_hash
    assert leftovers(tmp_path) == []


def test_empty_dst_folder_is_fine_and_stale_temps_are_removed(
    portraits_src: Path, tmp_path: Path
) -> None:
    dst = tmp_path / "out"
    dst.mkdir()
    stale = tmp_path / ".out.tmp-999999999"  # a run that was killed; no such process
    (stale / "images").mkdir(parents=True)
    run(portraits_src, dst)
    assert len(load_manifest(dst)) == 9 and not stale.exists()


@pytest.mark.parametrize(
    "make_src, dst_name, message",
    [
        (lambda t: t / "nope", "out", "source folder not found"),
        (lambda t: t, "out", "must not be inside the source"),
        (lambda t: t / "src", "src", "must not be inside the source"),
    ],
)
def test_bad_arguments(tmp_path: Path, make_src, dst_name: str, message: str) -> None:
    (tmp_path / "src").mkdir()
    with pytest.raises(PrepareError, match=message):
        run(make_src(tmp_path), tmp_path / dst_name)


def test_no_images_and_bad_size(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "readme.txt").write_text("hi")
    with pytest.raises(PrepareError, match="no image files found"):
        run(tmp_path / "src", tmp_path / "out")
    with pytest.raises(PrepareError, match="--size"):
        prepare(tmp_path / "src", tmp_path / "out", size=3, progress=False)


def test_deterministic_and_same_with_workers(portraits_src: Path, tmp_path: Path) -> None:
    run(portraits_src, tmp_path / "a")
    run(portraits_src, tmp_path / "b", workers=2)
    a = json.loads((tmp_path / "a" / "manifest.json").read_text())
    b = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert a == b
    for item in a["items"]:
        assert (tmp_path / "a" / item["file"]).read_bytes() == (
            tmp_path / "b" / item["file"]
        ).read_bytes()


def test_manifest_format(portraits_src: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out"
    run(portraits_src, dst)
    raw = json.loads((dst / "manifest.json").read_text())
    assert raw["format"] == "passersby-dataset" and raw["version"] == 1 and raw["size"] == SIZE
    assert raw["class_names"] == [FEMININE, MASCULINE]  # from the file names of the fixtures
    item = raw["items"][0]
    assert set(item) == {
        "file",
        "source",
        "sha256",
        "phash",
        "crop",
        "face",
        "label",
        "label_source",
        "face_index",
        "box",
        "quad",
        "filled",
        "detector",
        "media",
    }
    assert set(item["media"]) == {
        "saturation", "chroma_spread", "luma", "greyscale", "woodblock_score", "woodblock"
    }
    assert len(item["quad"]) == 4 and 0 <= item["filled"] <= 1 and item["detector"] == "hog"
    assert len(item["sha256"]) == 64 and len(item["phash"]) == 16
    assert raw["data_hash"] == prep.data_hash([i["sha256"] for i in raw["items"]], SIZE)


def test_load_manifest_errors(portraits_src: Path, tmp_path: Path) -> None:
    dst = tmp_path / "data"
    with pytest.raises(DatasetError, match=r"no such dataset folder .* run `passersby prepare SRC"):
        load_manifest(dst)
    dst.mkdir()
    with pytest.raises(DatasetError, match=r"data: no manifest\.json — run `passersby prepare SRC"):
        load_manifest(dst)
    dst.rmdir()
    run(portraits_src, dst)
    path = dst / "manifest.json"
    good = json.loads(path.read_text())

    def broken(change) -> str:
        raw = json.loads(json.dumps(good))
        change(raw)
        path.write_text(json.dumps(raw))
        with pytest.raises(DatasetError) as e:
            load_manifest(dst)
        return str(e.value)

    assert "not a passersby dataset" in broken(lambda r: r.update(format="other"))
    assert "newer than this passersby" in broken(lambda r: r.update(version=2))
    assert "'size'" in broken(lambda r: r.update(size="256"))
    assert "'class_names'" in broken(lambda r: r.update(class_names=["masculine", "feminine"]))
    assert "items[0] field 'crop'" in broken(lambda r: r["items"][0].update(crop=[1, 2]))
    assert "items[1] label 'other'" in broken(lambda r: r["items"][1].update(label="other"))
    assert "'data_hash' does not match" in broken(lambda r: r["items"].pop())
    path.write_text(json.dumps(good))
    (dst / good["items"][0]["file"]).unlink()
    assert "listed in manifest.json but missing" in str(
        pytest.raises(DatasetError, load_manifest, dst).value
    )
    assert len(load_manifest(dst, check_files=False)) == 9
    path.write_text("{not json")
    with pytest.raises(DatasetError, match="unreadable"):
        load_manifest(dst)


def test_fifos_odd_names_image_named_folders_and_link_loops_are_reported_not_fatal(tmp_path: Path) -> None:
    """Found trying it as a hostile user would (issue 11): a FIFO named like an image hung
    prepare in open(); a non-UTF-8 name crashed the report with a UnicodeEncodeError; folders
    named like images and symlink loops went unreported."""
    import os
    import signal

    src = tmp_path / "src"
    src.mkdir()
    for k, f in enumerate(sorted(PORTRAITS.glob("*.jpg"))[:3]):
        shutil.copy(f, src / f"p{k}.jpg")
    shutil.copy(sorted(PORTRAITS.glob("*.jpg"))[3], os.path.join(os.fsencode(src), b"caf\xe9.jpg"))
    os.mkfifo(src / "pipe.jpg")
    (src / "album.jpg").mkdir()
    shutil.copy(sorted(PORTRAITS.glob("*.jpg"))[4], src / "album.jpg" / "inside.jpg")
    os.symlink(src / "loop-b.jpg", src / "loop-a.jpg")
    os.symlink(src / "loop-a.jpg", src / "loop-b.jpg")
    os.symlink(src, src / "again")  # a folder link back to the top
    signal.alarm(120)  # a hang fails the test instead of the suite
    try:
        report = run(src, tmp_path / "out", centre_crop_fallback=True)
    finally:
        signal.alarm(0)
    ignored = "\n".join(report.ignored_files)
    assert "pipe.jpg\tFIFO named like an image, not read" in ignored
    assert "album.jpg\ta folder named like an image" in ignored
    assert "loop-a.jpg\tbroken or looping symlink" in ignored and "loop-b.jpg\tbroken or looping symlink" in ignored
    assert "again\tsymlinked folder, not followed" in ignored
    sources = [i.source for i in load_manifest(tmp_path / "out").items]
    assert "caf\\xe9.jpg" in sources and "album.jpg/inside.jpg" in sources  # read, and named printably
    text = (tmp_path / "out" / "report.txt").read_text(encoding="utf-8")
    assert "pipe.jpg" in text


def test_split_holds_out_the_same_paintings_and_they_never_meet(portraits_src: Path, tmp_path: Path) -> None:
    from passersby.data.split import held_out

    everything = run(portraits_src, tmp_path / "all", centre_crop_fallback=True)
    train = run(portraits_src, tmp_path / "train", centre_crop_fallback=True, split="train", held_out_share=0.5)
    held = run(portraits_src, tmp_path / "held", centre_crop_fallback=True, split="held-out", held_out_share=0.5)
    sources = {name: {i.source.split("#")[0] for i in load_manifest(tmp_path / name).items}
               for name in ("all", "train", "held")}
    assert sources["train"] and sources["held"] and not sources["train"] & sources["held"]
    assert sources["train"] | sources["held"] == sources["all"]
    assert all(held_out(s, 0.5) for s in sources["held"]) and not any(held_out(s, 0.5) for s in sources["train"])
    assert train.settings["outside_split"] + held.settings["outside_split"] == everything.found
    assert train.written + held.written == everything.written


def test_max_filled_skips_faces_mostly_outside_their_picture(portraits_src: Path, tmp_path: Path) -> None:
    # tight face crops framed 1.3x: much of each crop lies outside the picture
    loose = run(portraits_src, tmp_path / "loose", zoom=1.3)

    def filled(dst: Path) -> list[float]:
        return [i["filled"] for i in json.loads((dst / "manifest.json").read_text())["items"]]

    fills = sorted(filled(tmp_path / "loose"))
    cut = (fills[0] + fills[-1]) / 2
    assert fills[0] < cut < fills[-1]
    tight = run(portraits_src, tmp_path / "tight", zoom=1.3, max_filled=cut)
    kept = filled(tmp_path / "tight")
    assert 0 < len(kept) < loose.written and all(f <= cut for f in kept)
    assert tight.skipped_by_reason["crop filled beyond the picture"] == loose.written - len(kept)
    with pytest.raises(PrepareError, match="--max-filled"):
        run(portraits_src, tmp_path / "bad", max_filled=1.5)
    with pytest.raises(PrepareError, match="--split"):
        run(portraits_src, tmp_path / "bad", split="test")
