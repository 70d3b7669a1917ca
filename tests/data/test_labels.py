"""Labels from a CSV, from titles and file names, and the optional classifier."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from passersby.data.labels import (
    FEMININE,
    MASCULINE,
    GenderClassifier,
    LabelError,
    label_from_path,
    label_from_words,
    normalise_label,
    read_labels_csv,
    words,
)

PORTRAITS = Path(__file__).resolve().parents[1] / "fixtures" / "portraits"


@pytest.mark.parametrize(
    "value, label",
    [
        ("female", FEMININE),
        ("Woman", FEMININE),
        (" F ", FEMININE),
        ("feminine", FEMININE),
        ("male", MASCULINE),
        ("MAN", MASCULINE),
        ("m", MASCULINE),
        ("masculine", MASCULINE),
        ("", None),
        ("unknown", None),
        ("?", None),
    ],
)
def test_normalise_label(value: str, label: str | None) -> None:
    assert normalise_label(value) == label


def test_normalise_label_rejects_other_words() -> None:
    with pytest.raises(ValueError, match="robot"):
        normalise_label("robot")


@pytest.mark.parametrize(
    "title, label",
    [
        ("portrait of a young woman 1480", FEMININE),
        ("a geisha in her lover s room", FEMININE),
        ("madonna and child", FEMININE),
        ("madame paul berard", FEMININE),  # named after her husband: the title word decides
        ("portrait of madelaine bernard 1888", FEMININE),  # a surname that is also a name
        ("pope julius ii", MASCULINE),
        ("christ giving his blessing 1478", MASCULINE),
        ("portrait of père tanguy 1888", MASCULINE),
        ("portrait of jacob obrecht", MASCULINE),
        ("portraits of willem moreel and his wife", None),  # both
        ("edmond and thérèse morbilli 1867", None),  # both names
        ("self portrait 1887", None),
        ("st john", MASCULINE),
        ("st", None),
        ("albrecht d rer 072", None),  # the painter's name, not the sitter's
        ("lady with unicorn by rafael santi", FEMININE),
        ("met dp130177", None),
    ],
)
def test_label_from_words(title: str, label: str | None) -> None:
    assert label_from_words(title) == label


def test_words_strip_accents_and_punctuation() -> None:
    assert words("Fürlegerin_with-Hair(1497).JPG") == ["furlegerin", "with", "hair", "jpg"]


def test_label_from_path_uses_file_then_folders() -> None:
    assert label_from_path("women/IMG_0001.jpg") == FEMININE
    assert label_from_path("men/portrait-of-a-lady.jpg") == FEMININE  # the file name first
    assert label_from_path("male/2019/IMG_0002.jpg") == MASCULINE
    assert label_from_path("misc/IMG_0003.jpg") is None


def test_titles_csv_of_the_fixtures() -> None:
    table = read_labels_csv(PORTRAITS / "titles.csv")
    assert len(table) == 12
    labels = [table.lookup(p.name) for p in sorted(PORTRAITS.glob("*.jpg"))]
    assert all(e is not None and e.source == "title" for e in labels)
    counts = [sum(e.label == x for e in labels) for x in (FEMININE, MASCULINE, None)]
    assert counts == [6, 5, 1]
    assert table.unused() == []


def test_labels_csv_by_relative_path_or_base_name(tmp_path: Path) -> None:
    csv = tmp_path / "labels.csv"
    csv.write_text("\ufefffile;Label\nsub/a.jpg;female\nb.jpg;M\n./c.jpg;\n", encoding="utf-8")
    table = read_labels_csv(csv)
    assert table.lookup("sub/a.jpg").label == FEMININE
    assert table.lookup("other/b.jpg").label == MASCULINE  # base name matches in any folder
    assert table.lookup("c.jpg").label is None and table.lookup("c.jpg").source == "csv"
    assert table.lookup("a.jpg") is None  # a path with a folder must match as a path
    assert table.unused() == []


def test_label_column_wins_and_title_fills_blanks(tmp_path: Path) -> None:
    csv = tmp_path / "both.csv"
    csv.write_text("file,label,title\na.jpg,male,portrait of a lady\nb.jpg,,portrait of a lady\n")
    table = read_labels_csv(csv)
    assert (table.lookup("a.jpg").label, table.lookup("a.jpg").source) == (MASCULINE, "csv")
    assert (table.lookup("b.jpg").label, table.lookup("b.jpg").source) == (FEMININE, "title")


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "file,label\na.jpg,female\nb.jpg,robot\n",
            r"labels\.csv:3: unknown label 'robot' for 'b\.jpg'",
        ),
        ("name,gender\na.jpg,female\n", r"labels\.csv: needs a 'file' column"),
        ("", r"labels\.csv: empty labels CSV"),
        ("file,label\na.jpg,f\na.jpg,m\n", r"labels\.csv:3: 'a\.jpg' is also on line 2"),
        ("file,label\n,f\n", r"labels\.csv:2: empty file name"),
    ],
)
def test_bad_labels_csv(tmp_path: Path, text: str, message: str) -> None:
    csv = tmp_path / "labels.csv"
    csv.write_text(text)
    with pytest.raises(LabelError, match=message):
        read_labels_csv(csv)


def test_missing_or_binary_labels_csv(tmp_path: Path) -> None:
    with pytest.raises(LabelError, match="not found"):
        read_labels_csv(tmp_path / "nope.csv")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00\x81\x82")
    with pytest.raises(LabelError, match="not UTF-8"):
        read_labels_csv(tmp_path / "bin.csv")


def test_classifier_on_a_detected_face() -> None:
    from passersby.data.faces import detect_faces

    with Image.open(PORTRAITS / "portrait-of-a-man-1462.jpg") as im:
        rgb = np.asarray(im.convert("RGB"))
    box = detect_faces(rgb)[0]
    label, confidence = GenderClassifier(min_confidence=0).classify(rgb, box)
    assert label in (FEMININE, MASCULINE) and 0 <= confidence <= 100
    assert GenderClassifier(min_confidence=101).classify(rgb, box)[0] is None
