"""Headless rendering of the stream to video / PNG frames (`passersby render`).

Same engine and ledger as the live installation, but not paced: frames are taken from the
screens' queues as fast as they are rendered, so a 30 s video takes as long as its frames take
to render. Files are written atomically (outputs/video.py): an interrupted render leaves no
half-written video.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from passersby.outputs.video import FrameDirWriter, VideoWriter, side_by_side
from passersby.stream.engine import Engine


@dataclass
class RenderResult:
    files: list[Path] = field(default_factory=list)
    frames: int = 0  # per screen
    wall_s: float = 0.0
    faces: int = 0  # anchors claimed


def per_screen_path(out: Path, screen: str) -> Path:
    """clip.mp4 + "feminine" -> clip-feminine.mp4"""
    return out.with_name(f"{out.stem}-{screen}{out.suffix or '.mp4'}")


def render_stream(engine: Engine, seconds: float, out: Path | None, frames_dir: Path | None,
                  per_screen: bool = False, progress: bool = True) -> RenderResult:
    """Render `seconds` of every screen of `engine` (not started yet) into files.

    Args:
        engine: a built, unstarted engine (app/installation.build).
        seconds: video length; frames = round(seconds * fps), at least 1.
        out: .mp4 path: screens side by side, or one file per screen with `per_screen`.
        frames_dir: folder for PNG frames (screens side by side) and frames.jsonl (their keys).
        progress: show a progress bar.

    Example:
        >>> render_stream(inst.engine, 5, Path("clip.mp4"), None)  # a running installation; a long run  # doctest: +SKIP
    """
    n = max(1, round(seconds * engine.fps))
    names = engine.screens
    result = RenderResult(frames=n)
    t0 = time.perf_counter()
    engine.start(pace=False)
    with ExitStack() as stack:
        videos: list[VideoWriter] = []
        dirs: FrameDirWriter | None = None
        bar = stack.enter_context(Progress(TextColumn("rendering"), BarColumn(), MofNCompleteColumn(),
                                           TimeRemainingColumn(), disable=not progress, transient=True))
        task = bar.add_task("frames", total=n)
        for i in range(n):
            frames = [engine.take(k) for k in range(len(names))]
            images = [f.image for f in frames]
            if i == 0:  # sizes are known now
                videos, dirs = _open_writers(stack, out, frames_dir, per_screen, names, images, engine.fps)
            if per_screen:
                for v, im in zip(videos, images):
                    v.write(im)
            elif videos:
                videos[0].write(side_by_side(images))
            if dirs is not None:
                dirs.write(side_by_side(images), {"frame": i, "screens": [f.key for f in frames]})
            bar.advance(task)
        result.files = [v.path for v in videos] + ([Path(frames_dir)] if frames_dir else [])
    result.wall_s = time.perf_counter() - t0
    result.faces = sum(p.anchors.claimed for p in engine.producers)
    return result


def _open_writers(stack: ExitStack, out: Path | None, frames_dir: Path | None, per_screen: bool,
                  names: list[str], images: list, fps: float) -> tuple[list[VideoWriter], FrameDirWriter | None]:
    videos = []
    if out is not None:
        out = Path(out)
        if per_screen:
            for name, im in zip(names, images):
                videos.append(stack.enter_context(VideoWriter(per_screen_path(out, name), im.shape[1], im.shape[0], fps)))
        else:
            wide = side_by_side(images)
            videos.append(stack.enter_context(VideoWriter(out, wide.shape[1], wide.shape[0], fps)))
    dirs = stack.enter_context(FrameDirWriter(frames_dir)) if frames_dir is not None else None
    return videos, dirs
