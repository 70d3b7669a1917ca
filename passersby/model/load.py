"""Model files: the one place that loads every network the installation runs, and the shipped ones.

Every caller (the installation, the swipe app, the gallery, `sample`, benchmarks) loads a
generator, painter, enhancer or latent direction through here; `passersby.train` only trains
(tests/test_layers.py keeps the show path free of it). The files themselves are safetensors
with their config in the metadata (passersby.checkpoint), never pickled code.

Shipped files live in the package's `assets/` folder, each with its card:
    default.safetensors   the face generator       (MODEL_CARD.md)
    painter.safetensors   the feedback loop's painter (PAINTER_CARD.md)
    enhancer.safetensors  the learned 2x upscaler   (ENHANCER_CARD.md)
    default-directions.safetensors  the default generator's named latent directions
                          (model/directions.py; docs/directions/)
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from passersby.checkpoint import ModelInfo
    from passersby.model.choose import ScreenChoice
    from passersby.model.direction import LabelDirection

DEFAULT_MODEL = "default.safetensors"
DEFAULT_PAINTER = "painter.safetensors"
DEFAULT_ENHANCER = "enhancer.safetensors"
DEFAULT_DIRECTIONS = "default-directions.safetensors"


def asset_path(name: str) -> Path:
    """A file shipped in the package's assets folder.

    Example:
        >>> asset_path(DEFAULT_MODEL).name
        'default.safetensors'
    """
    return Path(str(resources.files("passersby") / "assets" / name))


def default_model_path() -> Path:
    """The generator shipped inside the package (see passersby/assets/MODEL_CARD.md)."""
    return asset_path(DEFAULT_MODEL)


def default_painter_path() -> Path:
    """The painter shipped inside the package (passersby/assets/PAINTER_CARD.md)."""
    return asset_path(DEFAULT_PAINTER)


def default_enhancer_path() -> Path:
    """The enhancer shipped inside the package (passersby/assets/ENHANCER_CARD.md)."""
    return asset_path(DEFAULT_ENHANCER)


def default_directions_path() -> Path:
    """The direction file shipped for the default generator (model/directions.py; docs/directions/)."""
    return asset_path(DEFAULT_DIRECTIONS)


def load_generator(path: Path | str | None = None, device: "str | torch.device" = "cpu") -> tuple[Any, "ModelInfo"]:
    """A generator file (default: the shipped one): (Generator in eval mode, fp32; ModelInfo).

    Raises:
        CheckpointError: missing, damaged, or not a generator file.

    Example:
        >>> g, info = load_generator()  # the shipped model
        >>> info.config.resolution
        256
    """
    from passersby.checkpoint import load_model

    return load_model(Path(path) if path else default_model_path(), device)


def load_painter(path: Path | str, device: "str | torch.device" = "cpu") -> tuple[Any, "ModelInfo"]:
    """A painter file written by training: (Painter in eval mode, ModelInfo).

    Raises:
        CheckpointError: not a painter file (e.g. a generator), or damaged.

    Example:
        >>> painter, info = load_painter("runs/painter/model.safetensors")  # a trained file  # doctest: +SKIP
    """
    from passersby.checkpoint import load_kind_file
    from passersby.config import PainterConfig
    from passersby.model.painter import Painter

    return load_kind_file(path, "painter", PainterConfig, Painter, device)


def load_enhancer(path: Path | str, device: "str | torch.device" = "cpu") -> tuple[Any, "ModelInfo"]:
    """An enhancer file written by training: (Enhancer in eval mode, ModelInfo).

    Raises:
        CheckpointError: not an enhancer file, or damaged.

    Example:
        >>> enhancer, info = load_enhancer("runs/enhancer/model.safetensors")  # a trained file  # doctest: +SKIP
    """
    from passersby.checkpoint import load_kind_file
    from passersby.config import EnhancerConfig
    from passersby.model.enhancer import Enhancer

    return load_kind_file(path, "enhancer", EnhancerConfig, Enhancer, device)


def load_direction(meta: dict) -> "LabelDirection | None":
    """The masculine/feminine latent direction stored in a generator file's metadata, if any.

    Example:
        >>> load_direction({}) is None
        True
    """
    from passersby.model.direction import LabelDirection

    d = meta.get("directions", {}).get("sex")
    return LabelDirection.from_dict(d) if d else None


def screen_steering(info: "ModelInfo", label: str, field: str = "label",
                    between_classes: bool = True) -> tuple[int | None, Any, float]:
    """How one screen's faces are drawn from a generator: (class index, direction, offset).

    A conditional model renders `label`'s class (an empty label: -1, faces between the classes,
    or an error without `between_classes`); an unconditional one moves `offset` std of z along
    the direction stored in its file (nothing for an empty label).

    Args:
        info: the generator file's ModelInfo (load_generator).
        label: "masculine", "feminine" or "" (unsteered).
        field: the setting or option the label came from, named in errors.
        between_classes: whether an empty label may show a conditional model's in-between faces.

    Raises:
        ValueError: the model cannot show `label` (names the file, the field and what to do).

    Example:
        >>> g, info = load_generator()
        >>> index, vector, offset = screen_steering(info, "feminine")
    """
    cfg = info.config
    if cfg.n_classes:
        if not label and between_classes:
            return -1, None, 0.0  # Generator.embed: between the classes
        if label not in cfg.class_names:
            raise ValueError(f"{field}: {label!r} is not a class of {info.path.name} {list(cfg.class_names)}")
        return cfg.class_names.index(label), None, 0.0
    if not label:
        return None, None, 0.0
    direction = load_direction(info.meta)
    if direction is None:
        raise ValueError(f"{info.path}: has no masculine/feminine direction for {field} {label!r}; "
                         "run `passersby direction`, or show unsteered faces")
    return None, direction.vector, direction.scale_for(label)


def load_choice(info: "ModelInfo") -> "ScreenChoice | None":
    """The sex probe and small offsets a labelled screen chooses its faces with (model/choose.py),
    stored with the direction by `passersby direction` (files from before v4 have none).

    Raises:
        ValueError: the stored entry is malformed (names the file and what to do).

    Example:
        >>> g, info = load_generator()
        >>> load_choice(info).scale_for("masculine")
        2.0
    """
    from passersby.model.choose import ScreenChoice

    if info.config.n_classes:
        return None
    d = info.meta.get("directions", {}).get("sex", {}).get("choice")
    if not d:
        return None
    try:
        return ScreenChoice.from_dict(d)
    except ValueError as e:
        raise ValueError(f"{info.path}: {e}; run `passersby direction` again, or set model.choose = 0") from e
