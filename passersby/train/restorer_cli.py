"""`passersby restorer`: train a restorer for a generator and write the generator with it attached."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer

POOL_FACES = 1024  # random faces of the generator the critic sees (rendered once per run)


def attach(G, restorer, meta: dict, out: Path, report: dict) -> None:
    """Write generator G with `restorer` as its last stage to `out` (atomic), keeping G's metadata
    (its latent direction included: the restorer does not move faces in z)."""
    import dataclasses

    from passersby.checkpoint import save_model
    from passersby.model.generator import Generator

    cfg = dataclasses.replace(G.cfg, restorer=restorer.cfg)
    g2 = Generator(cfg).eval()
    sd = {k: v for k, v in G.state_dict().items() if not k.startswith("restorer.")}
    sd.update({f"restorer.{k}": v for k, v in restorer.state_dict().items()})
    g2.load_state_dict(sd, strict=True)
    keep = {k: v for k, v in meta.items() if k not in ("format", "version", "config", "passersby_version")}
    save_model(out, g2, cfg, {**keep, "restorer": report})


def face_pool(G, path: Path, n: int = POOL_FACES, seed: int = 99):
    """(n, 3, R, R) uint8 random faces of G (without a restorer it may already have), cached at path."""
    import numpy as np
    import torch

    if path.exists():
        return np.load(path)
    z = torch.from_numpy(np.random.default_rng(seed).standard_normal((n, G.cfg.z_dim)).astype(np.float32))
    from passersby.train.restorer_pairs import layout, paint

    with torch.no_grad():  # layout + paint: the generator without a restorer, between classes
        faces = torch.cat([paint(G, layout(G, z[i:i + 32])) for i in range(0, n, 32)])
    arr = ((faces + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, arr)
    tmp.replace(path)
    return arr


def restorer_command(
    data: Path = typer.Argument(..., help="The generator's prepared training set (real faces of its size)."),
    out: Path = typer.Option(..., "--out", help="Where to write the generator with the restorer attached."),
    model: Optional[Path] = typer.Option(None, help="Generator .safetensors; default: the shipped model."),
    run: Path = typer.Option(Path("runs/restorer"), help="Run folder: pairs, face pool, checkpoints (resumes)."),
    minutes: float = typer.Option(30.0, min=0.0, help="Training time (wall minutes) after the pairs are made."),
    invert_steps: int = typer.Option(40, min=1, help="Adam steps per face when inverting it into the generator."),
    threads: int = typer.Option(1, min=1, help="Torch threads."),
) -> None:
    """Train a restorer: the generator's last stage that repaints its faces as painted faces.

    Inverts every training face into the generator (the pairs, saved as it goes), trains the
    restorer on them for --minutes (checkpoints every 3 minutes: run again to go on), and writes
    the generator with the restorer attached to --out. `passersby show --model OUT` shows it.

    Examples:
        passersby restorer data/portraits --out runs/with-restorer.safetensors
        passersby restorer data/mine --model runs/mine/model.safetensors --run runs/mine-restorer --minutes 60 --out mine-r.safetensors
    """
    import torch

    from passersby.checkpoint import CheckpointError
    from passersby.data.training_set import DatasetError, load_training_set
    from passersby.model.load import load_generator
    from passersby.train.restorer import RestorerRun, RestorerTrainConfig, train
    from passersby.train.restorer_pairs import make_pairs

    torch.set_num_threads(threads)
    try:
        G, info = load_generator(model)
        data_set = load_training_set(data, G.cfg.resolution)
    except (CheckpointError, DatasetError, ValueError) as e:
        typer.secho(f"error: {e}", fg="red", err=True)
        raise typer.Exit(1)
    if G.restorer is not None:
        typer.secho(f"error: {info.path} already has a restorer; pass the bare generator with --model",
                    fg="red", err=True)
        raise typer.Exit(1)
    run.mkdir(parents=True, exist_ok=True)
    log = (lambda s: typer.echo(f"{time.strftime('%H:%M:%S')} {s}"))
    t0 = time.monotonic()
    recon = make_pairs(G, data_set.images, run / "pairs.npz", steps=invert_steps, log=log)
    faces = face_pool(G, run / "faces.npy")
    cfg = RestorerTrainConfig()
    r = RestorerRun(faces, recon, data_set.images.numpy(), cfg)
    train(r, run, minutes, log=log)
    report = {"generator": info.hash, "data": str(data), "faces": len(recon), "steps": r.step,
              "invert_steps": invert_steps, "config": cfg.to_dict(), "wall_s": round(time.monotonic() - t0)}
    attach(G, r.R_ema, info.meta, out, report)
    typer.echo(json.dumps(report, indent=1))
    typer.echo(f"wrote {out}")
