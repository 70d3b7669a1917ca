"""Pack and unpack everything a training run needs to continue exactly where it stopped.

A run's randomness flows through three explicit CPU `torch.Generator`s (data order, latents,
augmentation), so their states plus weights, optimiser moments and the step are the whole
state: a resumed run draws the same batches, latents and augmentations as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

RNG_NAMES = ("data", "z", "aug")


@dataclass
class Rngs:
    """The run's explicit random streams, all on the CPU (device-independent draws)."""

    data: torch.Generator
    z: torch.Generator
    aug: torch.Generator

    @classmethod
    def seeded(cls, seed: int, rank: int = 0) -> "Rngs":
        # Distinct, reproducible streams per purpose and per process.
        base = seed * 1_000_003 + rank * 7919
        return cls(*(torch.Generator().manual_seed(base + i) for i in range(3)))


@dataclass
class TrainState:
    """Modules and optimisers of a run, plus its progress counters."""

    G: torch.nn.Module
    D: torch.nn.Module
    G_ema: torch.nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    rngs: Rngs
    step: int = 0
    best_metric: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    # Tensors a kind carries from step to step (the painter's pool of loop states), saved and
    # restored with the rest as "extra.{name}".
    extra: dict[str, torch.Tensor] = field(default_factory=dict)
    # Component discriminators (eyes, mouth) and their optimiser, when the run has them.
    P: torch.nn.Module | None = None
    opt_p: torch.optim.Optimizer | None = None

    def module_names(self) -> tuple[str, ...]:
        return ("G", "D", "G_ema") + (("P",) if self.P is not None else ())

    def optimizer_names(self) -> tuple[str, ...]:
        return ("opt_g", "opt_d") + (("opt_p",) if self.opt_p is not None else ())


def rng_states(rngs: Rngs) -> dict[str, torch.Tensor]:
    """{name: state} of the run's random streams (what `pack` stores as "rng.{name}")."""
    return {name: getattr(rngs, name).get_state() for name in RNG_NAMES}


def _flatten_optimizer(prefix: str, opt: torch.optim.Optimizer, out: dict[str, torch.Tensor]) -> list:
    sd = opt.state_dict()
    for idx, st in sd["state"].items():
        for name, val in st.items():
            t = val if torch.is_tensor(val) else torch.tensor(val)
            out[f"{prefix}.{idx}.{name}"] = t
    return sd["param_groups"]


def _unflatten_optimizer(prefix: str, tensors: dict[str, torch.Tensor], groups: list) -> dict:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, val in tensors.items():
        if key.startswith(prefix + "."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = val
    return {"state": state, "param_groups": groups}


def pack(ts: TrainState) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """TrainState -> (tensors for safetensors, JSON-able metadata)."""
    tensors: dict[str, torch.Tensor] = {}
    for name in ts.module_names():
        for k, v in getattr(ts, name).state_dict().items():
            tensors[f"{name}.{k}"] = v
    groups = {f"{o}_groups": _flatten_optimizer(o, getattr(ts, o), tensors) for o in ts.optimizer_names()}
    for name, st in rng_states(ts.rngs).items():
        tensors[f"rng.{name}"] = st
    for name, t in ts.extra.items():
        tensors[f"extra.{name}"] = t.detach().cpu().contiguous()
    meta = {"step": ts.step, "best_metric": ts.best_metric, "history": ts.history, **groups}
    return tensors, meta


def unpack(ts: TrainState, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Restore a freshly built TrainState (same config) in place from `pack`'s output."""
    dev = next(ts.G.parameters()).device
    for name in ts.module_names():
        sd = {k[len(name) + 1 :]: v for k, v in tensors.items() if k.startswith(name + ".")}
        getattr(ts, name).load_state_dict(sd, strict=True)
    for o in ts.optimizer_names():
        getattr(ts, o).load_state_dict(_unflatten_optimizer(o, tensors, meta[f"{o}_groups"]))
    for opt in (getattr(ts, o) for o in ts.optimizer_names()):  # Adam's moments live with their parameters
        for st in opt.state.values():
            for k, v in st.items():
                if torch.is_tensor(v) and k != "step":
                    st[k] = v.to(dev)
    for name in RNG_NAMES:
        getattr(ts.rngs, name).set_state(tensors[f"rng.{name}"])
    ts.extra = {k[len("extra."):]: v.to(dev) for k, v in tensors.items() if k.startswith("extra.")}
    ts.step = int(meta["step"])
    ts.best_metric = meta.get("best_metric")
    ts.history = list(meta.get("history", []))
