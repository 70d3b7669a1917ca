"""Frozen, typed configuration.

`ModelConfig` describes a generator/discriminator pair completely: it is stored inside every
checkpoint, so loading a model needs nothing else (as nanoGPT's GPTConfig). `TrainConfig`
describes one training run and is stored in training checkpoints so `--resume` can check it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

RESOLUTIONS = (64, 128, 256)
DISCRIMINATORS = ("fastgan", "projected")
# The renderers a screen can run on (passersby.runtime); here so that checking a settings file
# needs no torch.
RUNTIMES = ("auto", "cuda", "openvino", "onnxruntime", "compile", "torch-fused", "torch")
MS_SPACES = ("pixels", "features")

# What a stored generator config that lacks a field means: the defaults ModelConfig had before
# it took the training recipe's (ngf 32, the fastgan discriminator). A checkpoint stores every
# field its code knew, so a missing one was written before the field existed, when it meant
# these: models/previous-default-*.safetensors and candidate-b store no discriminator and no
# d_resolution and load as fastgan / 0, as they always did. Frozen: never follow the defaults.
STORED_CONFIG_FALLBACKS: dict[str, Any] = {"resolution": 256, "z_dim": 128, "ngf": 32, "ndf": 32,
                                           "class_names": (), "discriminator": "fastgan", "d_resolution": 0,
                                           "restorer": None}


@dataclass(frozen=True)
class RestorerConfig:
    """Architecture of the restorer, the generator's optional last stage (model/restorer.py).

    Args:
        width: channels at half side (128 px for a 256 px face).
        deep: channels at quarter side, where the residual blocks work.
        blocks: residual blocks at quarter side.

    Example:
        >>> RestorerConfig().deep
        48
    """

    width: int = 32
    deep: int = 48
    blocks: int = 3

    def __post_init__(self) -> None:
        if not (4 <= self.width <= 256 and 4 <= self.deep <= 256 and 0 <= self.blocks <= 16):
            raise ValueError(f"restorer widths must be 4..256 and blocks 0..16, got {self}")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a FastGAN-style generator and its discriminator.

    Args:
        resolution: output side in pixels (64, 128 or 256).
        z_dim: latent size; a face is one point z ~ N(0, I) of this size.
        ngf: generator width; channel counts are multiples of it (FastGAN uses 64; 16 here).
        ndf: discriminator width.
        class_names: names of the classes the generator is conditioned on, e.g.
            ("feminine", "masculine"); empty for an unconditional model.
        discriminator: "fastgan" (learned from pixels, with a reconstruction decoder) or
            "projected" (small heads on frozen EfficientNet-Lite0 features; model/projected.py).
        d_resolution: side at which the projected discriminator sees images (0 = resolution).
        restorer: the image-to-image stage after the last layer (model/restorer.py), or None.

    Example:
        >>> ModelConfig(resolution=128, ngf=32).n_classes
        0
        >>> ModelConfig().discriminator, ModelConfig().ngf  # what `passersby train` builds
        ('projected', 16)
    """

    # The defaults are the generator this project trains and ships (`passersby train`'s default
    # recipe, "projected", reads them: train/recipes.py; passersby/assets/default.safetensors).
    resolution: int = 256
    z_dim: int = 128
    ngf: int = 16
    ndf: int = 32
    class_names: tuple[str, ...] = ()
    discriminator: str = "projected"
    d_resolution: int = 192
    restorer: RestorerConfig | None = None

    def __post_init__(self) -> None:
        if isinstance(self.restorer, dict):  # as stored in a checkpoint's JSON
            object.__setattr__(self, "restorer", RestorerConfig(**self.restorer))
        if self.resolution not in RESOLUTIONS:
            raise ValueError(f"resolution must be one of {RESOLUTIONS}, got {self.resolution}")
        if self.z_dim < 8 or self.ngf < 4 or self.ndf < 4:
            raise ValueError("z_dim must be >= 8 and ngf, ndf >= 4")
        if self.discriminator not in DISCRIMINATORS:
            raise ValueError(f"discriminator must be one of {DISCRIMINATORS}, got {self.discriminator!r}")
        if self.d_resolution and (self.d_resolution < 64 or self.d_resolution % 32):
            raise ValueError(f"d_resolution must be 0 or a multiple of 32 >= 64, got {self.d_resolution}")
        if len(self.class_names) == 1:
            raise ValueError("a conditional model needs at least two class names")
        object.__setattr__(self, "class_names", tuple(self.class_names))

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["class_names"] = list(self.class_names)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        """The config a checkpoint stores; a field it lacks takes STORED_CONFIG_FALLBACKS, not the
        class defaults (which may change), so an old file loads as it always did.

        Args:
            d: ModelConfig.to_dict() as stored (any subset of its fields).

        Raises:
            ValueError: a field this passersby does not know (a newer file), or a bad value.

        Example:
            >>> ModelConfig.from_dict({"ngf": 16}).discriminator, ModelConfig().discriminator
            ('fastgan', 'projected')
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model config fields {sorted(unknown)}: newer passersby?")
        d = {**STORED_CONFIG_FALLBACKS, **d}  # a missing field: its meaning when it was written
        d["class_names"] = tuple(d["class_names"])
        return cls(**d)


class _KindConfig:
    """What the painter's and the enhancer's configs share: a `kind` tag in their dict (what
    checkpoints dispatch on), no classes, and a strict from_dict."""

    kind = ""
    class_names = ()  # unconditional, always

    @property
    def n_classes(self) -> int:
        return 0

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        d = {k: v for k, v in d.items() if k != "kind"}
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown {cls.kind} config fields {sorted(unknown)}: newer passersby?")
        return cls(**d)


@dataclass(frozen=True)
class PainterConfig(_KindConfig):
    """Architecture of the feedback loop's painter (markers -> face, model/painter.py) and of the
    projected discriminator it trains against.

    Args:
        resolution: picture side in pixels (64, 128 or 256).
        ngf: the U-Net's width at full resolution; deeper levels double it, up to 8x.
        depth: how many times the U-Net halves the picture (5 at 256: down to 8 x 8).
        ndf: width of the discriminator's heads.
        d_resolution: side at which the projected discriminator sees pictures (0 = resolution).
        l1_weight: weight of the L1 distance to the real picture against the adversarial term.
        self_feed: share of each batch whose markers are read from the painter's own painting
            (of the same real face) instead of the real picture: it learns to correct its own
            errors, which is what keeps the feedback loop from drifting into blobs.
        pool: 0, or how many of the loop's own states training keeps between steps (as neural
            cellular automata are taught to persist): the self-fed share of each batch is then
            read from these states, each the painter's painting of the previous reading of one
            real face, so it learns to paint that face back after many steps, not just one.
        pool_depth: a pool state older than this many paintings is replaced by a fresh face.

    Example:
        >>> PainterConfig(resolution=64, depth=3).to_dict()["kind"]
        'painter'
    """

    resolution: int = 256
    ngf: int = 16
    depth: int = 5
    ndf: int = 32
    d_resolution: int = 192
    l1_weight: float = 10.0
    self_feed: float = 0.5
    pool: int = 0
    pool_depth: int = 32

    # Class constants, not fields: what `from_dict` dispatches on, and what the projected
    # discriminator and the training loop read from any model config.
    kind = "painter"
    discriminator = "projected"

    def __post_init__(self) -> None:
        if self.resolution not in RESOLUTIONS:
            raise ValueError(f"resolution must be one of {RESOLUTIONS}, got {self.resolution}")
        if self.ngf < 4 or self.ndf < 4 or not 2 <= self.depth <= 7 or self.resolution >> self.depth < 2:
            raise ValueError(f"ngf, ndf must be >= 4 and depth in 2..7 leaving >= 2 pixels, got "
                             f"ngf={self.ngf} ndf={self.ndf} depth={self.depth} at {self.resolution}")
        if self.d_resolution and (self.d_resolution < 64 or self.d_resolution % 32):
            raise ValueError(f"d_resolution must be 0 or a multiple of 32 >= 64, got {self.d_resolution}")
        if not self.l1_weight >= 0:
            raise ValueError(f"l1_weight must be >= 0, got {self.l1_weight}")
        if not 0.0 <= self.self_feed <= 1.0:
            raise ValueError(f"self_feed must be in [0, 1], got {self.self_feed}")
        for name in ("pool", "pool_depth"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "pool" else 1):
                raise ValueError(f"{name} must be an integer >= {0 if name == 'pool' else 1}, got {v!r}")


@dataclass(frozen=True)
class EnhancerConfig(_KindConfig):
    """Architecture of the enhancer, the learned upscaler (model/enhancer.py), and its losses.

    Args:
        resolution: side of the native training squares (`passersby hires --size`), the
            high-resolution target; the network sees them shrunk by `scale`.
        scale: how many times larger the output is (2 or 4).
        channels: width of the network (it works at half the input's side).
        blocks: residual blocks (two 3x3 convolutions each).
        edge_weight: weight of the L1 distance between image gradients (finite differences),
            which rewards crisp strokes over the blur a plain L1 settles for.
        adv_weight: weight of a patch discriminator's hinge loss on pixels (0 = off).
        ndf: the patch discriminator's width.

    Example:
        >>> EnhancerConfig().to_dict()["kind"]
        'enhancer'
    """

    resolution: int = 192
    scale: int = 2
    channels: int = 32
    blocks: int = 2
    edge_weight: float = 1.0
    adv_weight: float = 0.0
    ndf: int = 32

    kind = "enhancer"
    discriminator = "patch"

    def __post_init__(self) -> None:
        if self.scale not in (2, 4):
            raise ValueError(f"scale must be 2 or 4, got {self.scale}")
        if not 32 <= self.resolution <= 2048 or self.resolution % (2 * self.scale):
            raise ValueError(f"resolution must be 32..2048 and a multiple of {2 * self.scale}, got {self.resolution}")
        if self.channels < 4 or self.ndf < 4 or not 0 <= self.blocks <= 16:
            raise ValueError(f"channels, ndf must be >= 4 and blocks in 0..16, got {self.channels}, {self.ndf}, {self.blocks}")
        if not (self.edge_weight >= 0 and self.adv_weight >= 0):
            raise ValueError(f"edge_weight and adv_weight must be >= 0, got {self.edge_weight}, {self.adv_weight}")



def model_config_from_dict(d: dict[str, Any]) -> "ModelConfig | PainterConfig | EnhancerConfig":
    """The config a checkpoint stores: a painter's or an enhancer's (they say "kind"), or a generator's."""
    if d.get("kind") == "painter":
        return PainterConfig.from_dict(d)
    if d.get("kind") == "enhancer":
        return EnhancerConfig.from_dict(d)
    return ModelConfig.from_dict(d)


@dataclass(frozen=True)
class TrainConfig:
    """One training run.

    Args:
        batch_size: images per optimisation step (per process under DDP).
        lr: Adam learning rate for both networks.
        ema_decay: decay of the exponential moving average of generator weights.
        augment: DiffAugment policy, comma-separated from "color", "translation", "cutout".
        recon_weight: weight of the discriminator's self-supervised reconstruction loss.
        sample_every / checkpoint_every / metric_every: in steps.
        keep_last: how many recent checkpoints to keep beside the best one.
        seed: seeds every RNG of the run.
        amp: bfloat16 autocast on CUDA and on CPUs with native bf16 (avx512_bf16 / AMX).
        beta1, beta2: Adam's moment decays (FastGAN: 0.5, 0.999; Projected GAN: 0.0, 0.99).
        ms_weight: weight of the mode-seeking term (Mao et al. 2019, MSGAN): the generator is
            rewarded for making two latents of the same class give different pictures; 0 = off.
        ms_space: where the mode-seeking term measures "different": "pixels" (L1 between the
            pictures) or "features" (L1 between the projected discriminator's pooled coarsest
            features: different faces, not different noise; needs discriminator "projected").
        metric_samples: generated images used for the KID/FD metric.
        parts_weight: weight of the component discriminators on the eyes and the mouth
            (model/components.py; their hinge losses are added to D's and G's); 0 = off.
        cov_weight: weight of the coverage term (train/coverage.py: each real face pulls its
            nearest generated face, IMLE); 0 = off.
        cov_pool, cov_every, cov_batch: latents rendered per nearest-neighbour search, steps
            between searches, real faces pulled per step.

    Example:
        >>> TrainConfig(batch_size=8).augment
        'color,translation,cutout'
    """

    batch_size: int = 8
    lr: float = 2e-4
    ema_decay: float = 0.999
    augment: str = "color,translation,cutout"
    recon_weight: float = 1.0
    sample_every: int = 500
    checkpoint_every: int = 1000
    metric_every: int = 2000
    keep_last: int = 3
    seed: int = 0
    amp: bool = True
    metric_samples: int = 500
    beta1: float = 0.5
    beta2: float = 0.999
    ms_weight: float = 0.0
    ms_space: str = "pixels"
    parts_weight: float = 0.0
    cov_weight: float = 0.0
    cov_pool: int = 384
    cov_every: int = 100
    cov_batch: int = 4
    model: ModelConfig | PainterConfig | EnhancerConfig = field(default_factory=ModelConfig)

    def __post_init__(self) -> None:
        # Checked here, not deep in the loop: a 0 would be a ZeroDivisionError at the first step
        # (sample_every) or silently keep every checkpoint (keep_last).
        for name in ("batch_size", "sample_every", "checkpoint_every", "metric_every", "keep_last",
                     "cov_pool", "cov_every", "cov_batch"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.ms_space not in MS_SPACES:
            raise ValueError(f"ms_space must be one of {', '.join(MS_SPACES)}, got {self.ms_space!r}")
        if self.ms_space == "features" and self.model.discriminator != "projected":
            raise ValueError("ms_space 'features' needs the projected discriminator (its features)")
        if (self.parts_weight or self.cov_weight) and getattr(self.model, "discriminator", "") != "projected":
            raise ValueError("parts_weight and cov_weight need the projected recipe (EfficientNet-Lite0 features)")
        if self.parts_weight < 0 or self.cov_weight < 0:
            raise ValueError("parts_weight and cov_weight must be >= 0")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["model"] = self.model.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        d = dict(d)
        d["model"] = model_config_from_dict(d.get("model", {}))
        return cls(**d)
