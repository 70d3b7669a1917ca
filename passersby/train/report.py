"""A run's loss curves (its sample grids are drawn with passersby/pictures.py)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from passersby.checkpoint import atomic_write_bytes


def plot_curves(history: list[dict[str, Any]], path: Path) -> None:
    """Loss curves (left) and feature-space metrics (right) from the run's log rows."""
    import matplotlib

    matplotlib.use("Agg")  # headless; never opens a window
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history if "loss_d" in h]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for key, label in (("loss_d", "D hinge"), ("loss_g", "G"), ("loss_recon", "D recon (L1)")):
        ys = [h[key] for h in history if key in h]
        if ys:
            ax1.plot(steps[: len(ys)], ys, label=label)
    ax1.set_xlabel("step")
    ax1.set_title("losses")
    if ax1.lines:  # no loss row yet (metrics before the first log step): no empty legend
        ax1.legend()
    mrows = [h for h in history if "kid_effnetlite0" in h]
    if mrows:
        ax2.plot([h["step"] for h in mrows], [h["kid_effnetlite0"] * 1000 for h in mrows], "o-", label="KID×1000 (EffNet-Lite0)")
        ax2.plot([h["step"] for h in mrows], [h["fd_effnetlite0"] for h in mrows], "s-", label="FD (EffNet-Lite0)")
        ax2.set_yscale("log")
        ax2.legend()
    erows = [h for h in history if "psnr" in h and "feature_distance" in h]  # the enhancer's verdict metric
    if erows:
        s = [h["step"] for h in erows]
        ax2.plot(s, [h["feature_distance"] for h in erows], "o-", label="feature distance, enhancer (held-out)")
        ax2.plot(s, [h["feature_distance_lanczos"] for h in erows], "--", label="feature distance, Lanczos")
        ax3 = ax2.twinx()
        ax3.plot(s, [h["psnr"] for h in erows], "s-", color="tab:green", label="PSNR dB, enhancer")
        ax3.plot(s, [h["psnr_lanczos"] for h in erows], ":", color="tab:green", label="PSNR dB, Lanczos")
        ax3.set_ylabel("PSNR dB (higher is better)")
        ax2.legend(loc="upper left", fontsize=8)
        ax3.legend(loc="lower right", fontsize=8)
    ax2.set_xlabel("step")
    ax2.set_title("held-out faces restored from half size" if erows else "distance to the training set (lower is better)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    atomic_write_bytes(Path(path), buf.getvalue())
