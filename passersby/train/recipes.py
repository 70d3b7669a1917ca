"""Named training recipes: the defaults `passersby train --recipe NAME` starts from.

- "projected" (default): the FastGAN-style generator against small heads on frozen
  EfficientNet-Lite0 features (model/projected.py), Projected GAN's Adam betas, bf16 autocast
  where the CPU has native bf16, and a mode-seeking term (without it, the conditional
  generator ignored z within 500 steps: one face per class). Measured: 7.4-8.5 images/s on a
  2-core AVX-512/bf16 CPU, faces by ~3,000 steps; the fastgan recipe managed 0.66 images/s on
  another 2-core CPU (same-machine comparison: benchmarks/recipes.py).
- "fastgan": the previous recipe (discriminator learned from pixels, with a reconstruction
  decoder), worse than "projected" on a CPU. Kept here, not in benchmarks/: it is how the
  earlier models were trained, so their runs resume and can be reproduced, and
  benchmarks/recipes.py compares against it.
- "painter": the feedback loop's painter (`--kind painter`): a U-Net from markers to faces,
  L1 + the projected discriminator, the same optimiser settings as "projected".
- "enhancer": the learned upscaler (`--kind enhancer`): restores native faces shrunk 2x;
  L1 on pixels and on their gradients, fp32 (a regression: no adversarial game by default).

Every value can still be overridden by a flag; the resolved TrainConfig is stored in each
checkpoint, so a run resumes with exactly the recipe it started with.
"""

from __future__ import annotations

from typing import Any

from passersby.config import ModelConfig

RECIPES: dict[str, dict[str, Any]] = {
    "projected": {  # the model is ModelConfig's defaults: one place says what is trained and shipped
        "model": {k: getattr(ModelConfig, k) for k in ("discriminator", "ngf", "ndf", "d_resolution")},
        "train": {"batch_size": 8, "lr": 2e-4, "beta1": 0.0, "beta2": 0.99, "amp": True,
                  "augment": "color,translation,cutout", "ms_weight": 1.0},
    },
    "painter": {  # the feedback loop's painter (`--kind painter`, train/painter.py)
        "model": {"ngf": 16, "ndf": 32, "d_resolution": 192},
        "train": {"batch_size": 8, "lr": 2e-4, "beta1": 0.0, "beta2": 0.99, "amp": True,
                  "augment": "color,translation,cutout"},
    },
    "enhancer": {  # the learned upscaler (`--kind enhancer`, train/enhancer.py)
        "model": {"channels": 32, "blocks": 2},
        "train": {"batch_size": 8, "lr": 5e-4, "beta1": 0.9, "beta2": 0.99, "amp": False,
                  "augment": "", "ema_decay": 0.99},
    },
    "fastgan": {
        "model": {"discriminator": "fastgan", "ngf": 16, "ndf": 32, "d_resolution": 0},
        "train": {"batch_size": 8, "lr": 2e-4, "beta1": 0.5, "beta2": 0.999, "amp": False,
                  "augment": "color,translation,cutout"},
    },
}


def recipe_defaults(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model overrides, train overrides) of a recipe.

    Args:
        name: a key of RECIPES.

    Raises:
        ValueError: unknown recipe name (the message lists the known ones).

    Example:
        >>> recipe_defaults("projected")[0]["discriminator"]
        'projected'
    """
    if name not in RECIPES:
        raise ValueError(f"--recipe: unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")
    r = RECIPES[name]
    return dict(r["model"]), dict(r["train"])
