"""The feedback loop, headless, for a long time: does it stay alive, fluid and never repeat?

Runs the real installation (app/installation.build: engine, ledger, painter, generator; a
throwaway ledger) with every screen in feedback mode, unpaced, for --frames frames per screen,
and reports per screen:
- collapses detected and recovered, by reason (the loop's own vitals: stream/vitals.py), and
  segments (anchors) used;
- the longest stretch without a face, in seconds, by dlib's detector on one keyframe a second;
- frame-to-frame change (mean |difference| / 255 on a 64 px thumbnail): median, p1 (freezes
  would show as ~0) and p99 outside anchor changes (flicker would show as large values);
- never repeating: every keyframe's EfficientNet-Lite0 features against every earlier
  keyframe's more than --gap seconds before it: the smallest such distance, beside the typical
  distance between keyframes one second apart in the same segment (what "the same face,
  moving" measures);
- render speed (unpaced frames/s per screen, both screens at once).
It also writes a contact sheet of one minute of each screen (a keyframe a second) and a video
of the first --video-seconds (screens side by side), for people to look at.

Usage:
    python benchmarks/feedback.py --painter runs/painter/model.safetensors --frames 100000 \\
        --json docs/feedback/soak.json --sheet docs/feedback/minute.jpg --video docs/feedback/loop.mp4
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from _common import machine_info, percentile, write_json
from passersby.app.installation import build
from passersby.settings import load_settings
from passersby.stream.vitals import thumbnail


def _settings(a: argparse.Namespace):
    import dataclasses

    s = load_settings(None, {"feedback.painter": str(a.painter or ""), "feedback.drift": a.drift,
                             "feedback.crossfade": a.crossfade,
                             "walk.tempo": a.tempo, "stream.seed": a.seed, "model.runtime": a.runtime,
                             "stream.queue": 4, "enhancer.mode": "off"}, search=False)  # the loop itself, at 256
    return dataclasses.replace(s, screens=tuple(dataclasses.replace(sc, source="feedback") for sc in s.screens))


class ScreenLog:
    """What one screen's frames showed (bounded: thumbnails of keyframes only)."""

    def __init__(self, fps: float) -> None:
        self.fps, self.prev = fps, None
        self.changes: list[float] = []
        self.anchor_change: list[bool] = []
        self.keys: list[np.ndarray] = []  # keyframes at half size, for the never-repeat check
        self.key_images: list[np.ndarray] = []  # the first minute's, for the sheet
        self.key_segments: list[int] = []
        self.collapses: dict[str, int] = {}
        self.segments: set[int] = set()
        self.faceless_run = self.longest_faceless = self.with_face = 0

    def add(self, frame) -> None:
        t = thumbnail(frame.image)
        seg = frame.key["segment"]["ledger_id"]
        if self.prev is not None:
            self.changes.append(float(np.abs(t - self.prev).mean()))
            self.anchor_change.append(frame.key["segment"]["start"] == frame.index or frame.key["previous"] is not None)
        self.prev = t
        if "collapse" in frame.key:
            self.collapses[frame.key["collapse"]] = self.collapses.get(frame.key["collapse"], 0) + 1
        self.segments.add(seg)
        if frame.index % round(self.fps) == 0:
            from passersby.data.faces import face_score

            self.keys.append(np.ascontiguousarray(frame.image[::2, ::2]))
            self.key_segments.append(seg)
            if len(self.key_images) < 60:
                self.key_images.append(frame.image)
            if face_score(frame.image) > 0:
                self.with_face, self.faceless_run = self.with_face + 1, 0
            else:
                self.faceless_run += 1
                self.longest_faceless = max(self.longest_faceless, self.faceless_run)


def repeats(thumbs: list[np.ndarray], segments: list[int], gap: int) -> dict[str, float]:
    """Smallest feature distance of a keyframe to any keyframe > gap s earlier, and the typical
    distance between keyframes 1 s apart in the same segment."""
    import torch

    from passersby.metrics.features import FeatureExtractor

    x = torch.from_numpy(np.stack(thumbs)).permute(0, 3, 1, 2).float() / 127.5 - 1
    f = FeatureExtractor(batch_size=100)(x).numpy().astype(np.float64)  # (K, 1280)
    sq = (f * f).sum(1)
    d = np.sqrt(np.maximum(sq[:, None] + sq[None] - 2 * f @ f.T, 0))
    k = len(f)
    far = np.triu(np.ones((k, k), bool), gap + 1)  # pairs more than `gap` keyframes apart
    same = [d[i, i + 1] for i in range(k - 1) if segments[i] == segments[i + 1]]
    return {"keyframes": k, "min_distance_far_pairs": float(d[far].min()) if far.any() else None,
            "median_distance_1s_same_segment": float(np.median(same)) if same else None,
            "p1_distance_far_pairs": float(np.percentile(d[far], 1)) if far.any() else None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--painter", type=Path, help="painter file (default: the shipped one)")
    ap.add_argument("--frames", type=int, default=3000, help="frames per screen")
    ap.add_argument("--drift", type=float, default=0.8)
    ap.add_argument("--tempo", type=float, default=6.0)
    ap.add_argument("--crossfade", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--runtime", default="auto")
    ap.add_argument("--gap", type=int, default=10, help="seconds: keyframes closer in time are not compared")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--sheet", type=Path)
    ap.add_argument("--video", type=Path)
    ap.add_argument("--video-seconds", type=float, default=30.0)
    a = ap.parse_args(argv)
    settings = _settings(a)
    inst = build(settings, dry_ledger=True)
    e = inst.engine
    logs = [ScreenLog(settings.walk.fps) for _ in e.screens]
    video, n_video = None, round(a.video_seconds * settings.walk.fps)
    t0 = time.perf_counter()
    try:
        e.start(pace=False)
        with Progress(TextColumn("feedback"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()) as bar:
            task = bar.add_task("frames", total=a.frames)
            for i in range(a.frames):
                frames = [e.take(k) for k in range(len(logs))]
                for log, f in zip(logs, frames):
                    log.add(f)
                if a.video is not None and i < n_video:
                    video = _video_frame(video, a.video, frames, settings.walk.fps, last=i == n_video - 1)
                bar.advance(task)
    finally:
        wall = time.perf_counter() - t0
        inst.close()
        if video is not None:
            video.__exit__(None, None, None)
    out: dict[str, Any] = {"machine": machine_info(), "args": {k: str(v) for k, v in vars(a).items()},
                           "model": inst.model.hash, "status": {k: v for k, v in e.status().items() if k in ("painter_hash", "runtime")},
                           "wall_s": wall, "fps_per_screen_unpaced": a.frames / wall, "screens": {}}
    for name, log in zip(e.screens, logs):
        ch = np.array(log.changes)
        calm = ch[~np.array(log.anchor_change)] if len(ch) else ch
        out["screens"][name] = {
            "frames": a.frames, "segments": len(log.segments), "collapses": log.collapses,
            "longest_without_face_s": float(log.longest_faceless),
            "keyframes_with_face": log.with_face / max(1, len(log.keys)),
            "change_median": float(np.median(ch)), "change_p1": percentile(list(ch), 1),
            "change_p99_within_segments": percentile(list(calm), 99) if len(calm) else None,
            "never_repeat": repeats(log.keys, log.key_segments, a.gap)}
        print(name, out["screens"][name], flush=True)
    write_json(a.json, out)
    if a.sheet:
        _sheet(a.sheet, [log.key_images for log in logs])
    return 0


def _video_frame(video, path: Path, frames, fps: float, last: bool):
    from passersby.outputs.video import VideoWriter, side_by_side

    wide = side_by_side([f.image for f in frames])
    if video is None:
        video = VideoWriter(path, wide.shape[1], wide.shape[0], fps).__enter__()
    video.write(wide)
    if last:
        video.__exit__(None, None, None)
        return None
    return video


def _sheet(path: Path, rows: list[list[np.ndarray]]) -> None:
    """One row block per screen: its first minute, a keyframe a second, 12 per row."""
    from passersby.pictures import grid_image, save_png

    ims = [im for row in rows for im in row]
    small = [im[::2, ::2] for im in ims]
    grid = grid_image(np.stack(small), ncol=12)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        from PIL import Image

        from passersby.atomic import atomic_open

        with atomic_open(path, "wb") as f:
            Image.fromarray(grid).save(f, format="JPEG", quality=88)
    else:
        save_png(path, grid)


if __name__ == "__main__":
    sys.exit(main())
