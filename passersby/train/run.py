"""`passersby train`: drive the loop with progress, periodic pictures, metrics and checkpoints."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from passersby.checkpoint import CheckpointError
from passersby.config import ModelConfig, TrainConfig
from passersby.train import dist
from passersby.data.training_set import load_training_set
from passersby.train.kinds import kind_of
from passersby.train.loop import latest_checkpoint, resume, save_checkpoint
from passersby.train.report import plot_curves
from passersby.train.state import rng_states

LOG_EVERY = 50


def _progress(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    TextColumn("{task.fields[status]}"), disable=not enabled)


def train(data_dir: Path, run: Path, cfg: TrainConfig, steps: int, resume_run: bool = False,
          device: str = "auto", max_minutes: float | None = None, evaluate_metrics: bool = True,
          conditional: bool = True, init: Path | None = None) -> dict:
    """Train until `steps` total steps (or `max_minutes`), writing everything under `run`.

    Args:
        data_dir: a folder made by `passersby prepare`.
        run: output folder (created); with `resume_run`, continued from its newest checkpoint.
        cfg: the run's TrainConfig (its ModelConfig's class_names are taken from the data).
        steps: total optimisation steps, counting steps done before a resume.
        device: "auto", "cpu" or "cuda".
        max_minutes: stop (with a checkpoint) after this much wall time.
        evaluate_metrics: compute KID/FD + memorisation every cfg.metric_every steps.
        conditional: condition on the dataset's labels (when it has any).
        init: a model file (same kind and architecture) whose weights a fresh run starts from
            (fine-tuning; the discriminator starts fresh); recorded in RUN/init.json.

    Returns:
        The last log row (step, losses, metrics).

    Example:
        >>> train(Path("data/portraits"), Path("runs/a"), TrainConfig(), steps=20000)  # a long run: trains a model  # doctest: +SKIP
    """
    info, dev = dist.setup(device)
    try:
        return _train(data_dir, run, cfg, steps, resume_run, info, dev, max_minutes, evaluate_metrics, conditional, init)
    finally:
        dist.cleanup(info)


def _train(data_dir, run, cfg, steps, resume_run, info, dev, max_minutes, evaluate_metrics, conditional, init) -> dict:
    run = Path(run)
    if not resume_run and latest_checkpoint(run) is not None:
        # A fresh run here would interleave its checkpoints with the old ones (and rotation would
        # delete the new ones, which sort first): refuse instead.
        raise CheckpointError(f"{run}: already holds a run ({latest_checkpoint(run).name}) — "
                              "pass --resume to continue it, or choose a new --out")
    data = load_training_set(data_dir, cfg.model.resolution, device=dev)
    if isinstance(cfg.model, ModelConfig):  # the painter is never conditional
        classes = list(data.class_names) if conditional and len(data.class_names) >= 2 else []
        cfg = TrainConfig.from_dict({**cfg.to_dict(), "model": {**cfg.model.to_dict(), "class_names": classes}})
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    kind = kind_of(cfg)
    ts = kind.build_state(cfg, dev, info.rank)
    if resume_run:
        resume(ts, cfg, data, run, rank=info.rank)
        if info.main:
            truncate_log(run / "log.jsonl", ts.step)
    elif init is not None:
        start_from(ts, Path(init))
    dist.broadcast_module(ts.G, info)
    dist.broadcast_module(ts.D, info)
    run.mkdir(parents=True, exist_ok=True)
    if info.main:
        (run / "train_config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        if init is not None and not resume_run:
            from passersby.checkpoint import file_hash

            (run / "init.json").write_text(json.dumps({"path": str(init), "hash": file_hash(Path(init))}, indent=2))
    t_start, t_log, n_log = time.time(), time.time(), 0
    sums = {"loss_d": 0.0, "loss_g": 0.0, "loss_recon": 0.0}
    row: dict = {"step": ts.step}
    with _progress(info.main) as bar:
        task = bar.add_task("train", total=steps, completed=ts.step, status="")
        while ts.step < steps:
            st = kind.train_step(ts, data, cfg, dev, info)
            for k in sums:
                sums[k] += getattr(st, k)
            n_log += 1
            # Every process must agree to stop, or the others would wait for it forever.
            out_of_time = max_minutes is not None and dist.any_process(
                (time.time() - t_start) > max_minutes * 60, info, dev)
            last = ts.step >= steps or out_of_time
            if ts.step % LOG_EVERY == 0 or last:
                ips = n_log * cfg.batch_size * info.world / max(1e-9, time.time() - t_log)
                row = {"step": ts.step, **{k: v / n_log for k, v in sums.items()}, "img_per_s": ips,
                       "elapsed_s": time.time() - t_start}
                ts.history.append(row)
                if info.main:
                    append_log(run, row)
                bar.update(task, completed=ts.step, status=f"D {row['loss_d']:.3f}  G {row['loss_g']:.3f}  {ips:.1f} img/s")
                sums = dict.fromkeys(sums, 0.0)
                t_log, n_log = time.time(), 0
            periodic(ts, cfg, data, run, info, dev, last, evaluate_metrics)
            if out_of_time:
                break
    return ts.history[-1] if ts.history else row


def start_from(ts, path: Path) -> None:
    """Load a model file's weights into a fresh run's G and its EMA copy (strictly: the same
    architecture), e.g. to fine-tune the shipped painter with another recipe."""
    from passersby.checkpoint import read_model_file

    if not path.is_file():
        raise CheckpointError(f"--init: {path} does not exist; give a model file written by `passersby train`")
    tensors, _ = read_model_file(path)
    sd = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
    try:
        ts.G.load_state_dict(sd, strict=True)
        ts.G_ema.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"--init: {path} does not fit this run's network ({str(e).splitlines()[0][:160]}); "
                              "use the same --kind and size options as its run") from e


def periodic(ts, cfg: TrainConfig, data, run: Path, info, dev, last: bool, evaluate_metrics: bool) -> None:
    """Samples, metrics and checkpoints on their schedules (rank 0 writes; others wait)."""
    do_sample = ts.step % cfg.sample_every == 0 or last
    do_metric = evaluate_metrics and (ts.step % cfg.metric_every == 0 or last)
    do_ckpt = ts.step % cfg.checkpoint_every == 0 or last
    if not (do_sample or do_metric or do_ckpt):
        return
    # Collective: every process sends its random streams, rank 0 stores them in the checkpoint.
    rank_rngs = dist.all_gather_object(rng_states(ts.rngs), info) if (do_ckpt or do_metric) else None
    if info.main:
        kind = kind_of(cfg)
        g = kind.for_inference(ts, dev)
        if do_sample:
            kind.write_samples(g, run, ts.step, dev, data)
        is_best, m = False, None
        if do_metric:
            try:
                m = kind.evaluate(g, data, cfg, dev)
            except Exception as e:  # a broken metric must not end a long run: say so, go on
                import sys

                print(f"warning: metrics failed at step {ts.step}: {e!r}", file=sys.stderr)
                m = None
        if do_metric and m is not None:
            flat = {k: v for k, v in m.items() if not isinstance(v, dict)}
            flat.update({f"mem_{k}": v for k, v in m.get("memorisation", {}).items()})
            ts.history.append({"step": ts.step, **flat})
            append_log(run, ts.history[-1])
            score = m.get("score", m.get("kid_effnetlite0"))  # lower is better, for every kind
            if ts.best_metric is None or score < ts.best_metric:
                ts.best_metric, is_best = score, True
        if do_ckpt or is_best:
            save_checkpoint(ts, cfg, data, run, info, g, is_best, extra={}, rank_rngs=rank_rngs)
        plot_curves(ts.history, run / "curves.png")
    dist.barrier(info)


def append_log(run: Path, row: dict) -> None:
    """One JSON row per line in RUN/log.jsonl (truncated back to the checkpoint on resume)."""
    with open(run / "log.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")


def truncate_log(path: Path, step: int) -> None:
    """Drop log rows written after `step` (the checkpoint resumed from), so none appear twice."""
    from passersby.checkpoint import atomic_write_bytes

    if not path.is_file():
        return
    keep = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line).get("step", 0) <= step]
    atomic_write_bytes(path, ("\n".join(keep) + "\n" if keep else "").encode())
