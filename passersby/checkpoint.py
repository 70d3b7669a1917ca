"""Checkpoints: safetensors files whose header carries their JSON description.

One file per checkpoint, so one atomic rename makes it appear whole or not at all (write to a
temporary name, fsync, rename, fsync the directory). Nothing is pickled: tensors are
safetensors, everything else is JSON in the header's metadata (`__metadata__`), so a
checkpoint can be read with any safetensors reader and loading never executes code.

Two kinds, told apart by the metadata's "format":
- "passersby-model": an inference generator (EMA weights, optionally fp16) + its ModelConfig.
- "passersby-train": everything a run needs to resume exactly (G, D, EMA, optimiser states,
  RNG states, step, config, data hash).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from passersby import __version__
from passersby.atomic import atomic_open
from passersby.config import ModelConfig

MODEL_FORMAT = "passersby-model"
TRAIN_FORMAT = "passersby-train"
VERSION = 1


class CheckpointError(Exception):
    """A checkpoint could not be read or written; the message says which file and what to do."""


def file_hash(path: Path) -> str:
    """First 16 hex digits of the file's SHA-256: the identity of a model in frame ids."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a crash leaves either the old file or the new one.

    Raises:
        CheckpointError: if the write fails (disk full, permissions); the old file is intact.
    """
    try:
        with atomic_open(Path(path), "wb") as f:
            f.write(data)
    except OSError as e:
        raise CheckpointError(
            f"{path}: could not write ({e.strerror or e}); the previous file is intact — "
            "free disk space or choose another --out"
        ) from e


def _serialize(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> bytes:
    from safetensors.torch import save

    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    return save(tensors, metadata={"passersby": json.dumps(meta, sort_keys=True)})


def _read(path: Path, expect_format: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from safetensors.torch import load

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        data = path.read_bytes()
        tensors = load(data)
        # The safetensors header is u64-LE length + JSON; our metadata lives in it.
        n = int.from_bytes(data[:8], "little")
        raw = json.loads(data[8 : 8 + n]).get("__metadata__", {}).get("passersby")
    except Exception as e:  # safetensors raises its own error types; all mean "unreadable"
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint ({e})") from e
    if raw is None:
        raise CheckpointError(f"{path}: safetensors file without passersby metadata — not ours")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: corrupt passersby metadata ({e})") from e
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: corrupt passersby metadata (not a JSON object)")
    fmt, ver = meta.get("format"), meta.get("version")
    if fmt != expect_format:
        hint = " (pass the run's model.safetensors or best-model.safetensors)" if fmt == TRAIN_FORMAT else ""
        raise CheckpointError(f"{path}: is a {fmt!r} checkpoint, expected {expect_format!r}{hint}")
    if not isinstance(ver, int) or ver > VERSION:
        raise CheckpointError(f"{path}: checkpoint version {ver} is newer than this passersby reads ({VERSION}); upgrade passersby")
    return tensors, meta


# ---------------------------------------------------------------- inference models


@dataclass(frozen=True)
class ModelInfo:
    """What a model file says about itself. `hash` identifies it in frame ids."""

    config: ModelConfig
    hash: str
    path: Path
    meta: dict[str, Any]


def save_model(
    path: Path, generator: torch.nn.Module, cfg: ModelConfig, meta: dict[str, Any], half: bool = False
) -> None:
    """Write an inference generator (weights + BN statistics) with its config.

    Args:
        path: destination .safetensors file (written atomically).
        generator: a `Generator` in the state it should render in (EMA, BN recalibrated).
        cfg: its ModelConfig, stored so `load_model` needs nothing else.
        meta: JSON-able facts (step, metrics, data hash, training time...).
        half: store float tensors as fp16 (halves the file; loading casts back to fp32).
    """
    sd = generator.state_dict()
    if half:
        sd = {k: (v.half() if v.is_floating_point() else v) for k, v in sd.items()}
    full = {"format": MODEL_FORMAT, "version": VERSION, "config": cfg.to_dict(),
            "passersby_version": __version__, **meta}
    atomic_write_bytes(path, _serialize(sd, full))


def load_model(path: Path, device: str | torch.device = "cpu"):
    """Load an inference generator in eval mode, fp32.

    Returns:
        (Generator, ModelInfo)

    Example:
        >>> g, info = load_model("runs/x/model.safetensors")  # a trained file  # doctest: +SKIP
    """
    from passersby.model.generator import Generator

    tensors, meta = _read(Path(path), MODEL_FORMAT)
    kind = meta["config"].get("kind") if isinstance(meta.get("config"), dict) else None
    if kind in ("painter", "enhancer"):
        what = "the feedback loop's painter" if kind == "painter" else "an enhancer (the learned upscaler)"
        raise CheckpointError(f"{path}: is {what}, not a face generator")
    try:
        cfg = ModelConfig.from_dict(meta["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: bad model config in checkpoint ({e})") from e
    g = Generator(cfg)
    tensors = {k: (v.float() if v.is_floating_point() else v) for k, v in tensors.items()}
    try:
        g.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not match its config ({str(e).splitlines()[0]})") from e
    g = g.to(device).eval()
    return g, ModelInfo(config=cfg, hash=file_hash(Path(path)), path=Path(path), meta=meta)


def read_model_file(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, metadata) of any inference model file (generator or painter), checked."""
    return _read(Path(path), MODEL_FORMAT)


def load_kind_file(path, kind: str, config_cls, build, device: str | torch.device = "cpu"):
    """A non-generator model file (painter, enhancer) written by training: (module in eval
    mode, ModelInfo). `build(config) -> nn.Module`; weights are loaded strictly, as fp32.

    Raises:
        CheckpointError: a file of another kind (the message says how to train this one), or damaged.

    Example:
        >>> net, info = load_kind_file(p, "enhancer", EnhancerConfig, Enhancer)  # a trained file  # doctest: +SKIP
    """
    tensors, meta = read_model_file(Path(path))
    if not isinstance(meta.get("config"), dict) or meta["config"].get("kind") != kind:
        raise CheckpointError(f"{path}: is not {'an' if kind[0] in 'aeiou' else 'a'} {kind} "
                              f"(train one with `passersby train --kind {kind}`)")
    try:
        cfg = config_cls.from_dict(meta["config"])
        net = build(cfg)
        net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: bad {kind} file ({str(e).splitlines()[0]})") from e
    return net.to(device).eval(), ModelInfo(config=cfg, hash=file_hash(Path(path)), path=Path(path), meta=meta)


# ---------------------------------------------------------------- training state


def save_train_state(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write a resumable training checkpoint (see `passersby.train.state`)."""
    full = {"format": TRAIN_FORMAT, "version": VERSION, "passersby_version": __version__, **meta}
    atomic_write_bytes(path, _serialize(tensors, full))


def load_train_state(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a training checkpoint: (tensors, metadata)."""
    return _read(Path(path), TRAIN_FORMAT)
