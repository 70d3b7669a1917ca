"""Recording what the screens show: H.264 MP4 files and folders of keyed PNG frames.

`VideoWriter` encodes RGB frames to an MP4 through PyAV (libx264, whose encoder ships inside
PyAV's wheels, so no system ffmpeg is needed). `FrameDirWriter` keeps every frame lossless, next
to the key that re-renders it. `side_by_side` composes the screens into one picture. Both writers
are atomic: a crash or an exception never leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from passersby.atomic import atomic_open, fsync_dir, name_disk_error

# PyAV's wheels (checked with av 18.1 on Linux x86_64) carry libx264; "h264" resolves to it too.
H264_ENCODERS = ("libx264",)


def _check_image(image: Any, shape: tuple[int, int, int] | None = None) -> np.ndarray:
    """`image` as a C-contiguous (H, W, 3) uint8 array; ValueError naming expected vs got."""
    got = (getattr(image, "shape", None), getattr(image, "dtype", type(image).__name__))
    ok = isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 \
        and image.shape[2] == 3 and (shape is None or image.shape == shape)
    if not ok:
        want = f"{shape}" if shape is not None else "(H, W, 3)"
        raise ValueError(f"expected a {want} uint8 RGB image, got shape {got[0]} dtype {got[1]}")
    return np.ascontiguousarray(image)


def exact_rate(fps: float | Fraction) -> Fraction:
    """`fps` as an exact fraction: 30 -> 30, 12.5 -> 25/2, and the NTSC rates written as
    decimals to their exact values: 29.97 -> 30000/1001, 23.976 -> 24000/1001.

    Example:
        >>> exact_rate(29.97)
        Fraction(30000, 1001)
    """
    if isinstance(fps, Fraction):
        rate = fps
    else:
        ntsc = Fraction(round(fps * 1.001) * 1000, 1001)
        near_ntsc = abs(fps - ntsc) < 0.005 and abs(fps - round(fps)) > 0.005
        rate = ntsc if near_ntsc else Fraction(fps).limit_denominator(1000)
    if rate <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return rate


def h264_encoder() -> str:
    """The name of the first H.264 encoder this PyAV build has; RuntimeError if none."""
    import av

    for name in H264_ENCODERS:
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # av raises UnknownCodecError (a ValueError) or FFmpegError by version
            continue
    raise RuntimeError(f"this PyAV build has no H.264 encoder (tried {', '.join(H264_ENCODERS)})")


class VideoWriter:
    """Write RGB frames to an H.264 MP4 (yuv420p, constant frame rate), atomically.

    Frames go to a temporary file beside `path`; `close()` finishes the file, fsyncs it and
    renames it over `path`. An exception inside the `with` block deletes the temporary file and
    leaves any existing `path` untouched.

    Args:
        path: the .mp4 file to (re)place.
        width, height: frame size in pixels; both even (yuv420p halves the chroma planes).
        fps: frames per second, stored exactly (time base 1/fps; 29.97 becomes 30000/1001).
        crf: libx264 quality, 0 (lossless) .. 51 (worst); 18 is visually lossless.

    Example:
        >>> with VideoWriter("walk.mp4", 512, 256, fps=30) as video:  # writes a video file  # doctest: +SKIP
        ...     for frame in frames:
        ...         video.write(side_by_side([frame.left, frame.right]))
    """

    def __init__(self, path: str | Path, width: int, height: int, fps: float, crf: int = 18) -> None:
        if width <= 0 or height <= 0 or width % 2 or height % 2:
            raise ValueError(f"H.264 (yuv420p) needs a positive even width and height, "
                             f"got {width}x{height}")
        if not 0 <= crf <= 51:
            raise ValueError(f"crf must be in 0..51, got {crf}")
        self.path = Path(path)
        self.shape = (height, width, 3)
        self.rate = exact_rate(fps)
        self.frames_written = 0
        self._closed = False
        self._stack = contextlib.ExitStack()
        try:
            self._open(crf)
        except BaseException as exc:  # hand the error to atomic_open: it deletes its temporary file
            self._stack.__exit__(type(exc), exc, exc.__traceback__)
            raise

    def _open(self, crf: int) -> None:
        import av

        encoder = h264_encoder()
        self._tmp_file = self._stack.enter_context(atomic_open(self.path, "wb"))
        # A file object rather than a path: atomic_open owns the temporary name and its cleanup.
        # No movflags=+faststart: it reopens the output by name, which a file object has not.
        # Browsers still play it (they fetch the index at the end with a range request).
        self._container = av.open(self._tmp_file, mode="w", format="mp4")
        stream = self._container.add_stream(encoder, rate=self.rate)
        stream.width, stream.height = self.shape[1], self.shape[0]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = 1 / self.rate
        stream.options = {"crf": str(crf)}
        self._stream = stream

    def write(self, image: np.ndarray) -> None:
        """Encode one (height, width, 3) uint8 RGB frame."""
        import av

        if self._closed:
            raise RuntimeError(f"VideoWriter for {self.path} is closed")
        image = _check_image(image, self.shape)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = self.frames_written  # one tick of the 1/fps time base per frame: exact rate
        frame.time_base = self._stream.codec_context.time_base
        try:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        except OSError as e:  # "[Errno 28] No space left on device" named no file: name the video
            raise name_disk_error(e, self.path) from e
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder, finish the MP4 and move it into place (idempotent)."""
        if self._closed:
            return
        if not self.frames_written:  # PyAV writes the header with the first packet: 0 bytes
            self.abort()
            raise ValueError(f"no frames written; {self.path} left as it was")
        self._closed = True
        try:
            for packet in self._stream.encode(None):  # drain the frames x264 holds for lookahead
                self._container.mux(packet)
            self._container.close()
        except BaseException as exc:
            self._stack.__exit__(type(exc), exc, exc.__traceback__)
            if isinstance(exc, OSError):  # a full disk: say which video
                raise name_disk_error(exc, self.path) from exc
            raise
        self._stack.close()  # atomic_open: fsync, rename over self.path, fsync the folder

    def abort(self) -> None:
        """Drop everything written so far; `path` keeps whatever it held before."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self._container.close()
        err = RuntimeError("video aborted")
        with contextlib.suppress(RuntimeError):
            self._stack.__exit__(RuntimeError, err, None)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class FrameDirWriter:
    """Write every frame as a lossless PNG plus its key, so any frame can be re-rendered.

    `folder/frame-000000.png`, `frame-000001.png`, ... are written atomically; each frame's line
    `{"index": i, "file": "frame-000000.png", "key": {...}}` is appended to `folder/frames.jsonl`.
    A folder holding earlier output of this writer is continued after its highest frame number;
    a folder holding anything else is refused, so a typo cannot scatter frames into a photo album.

    Args:
        folder: where the frames go; created if missing.
        compress_level: PNG zlib level 0..9; 1 keeps up with 30 fps of 1024 px frames.

    Example:
        >>> with FrameDirWriter("frames/") as out:  # writes a video file  # doctest: +SKIP
        ...     out.write(frame.image, frame.key)
    """

    NAME = re.compile(r"frame-(\d{6,})\.png")
    INDEX = "frames.jsonl"

    def __init__(self, folder: str | Path, compress_level: int = 1) -> None:
        self.folder = Path(folder)
        self.compress_level = compress_level
        self.folder.mkdir(parents=True, exist_ok=True)
        self.next_index = self._resume_index()
        self._index = open(self.folder / self.INDEX, "a", encoding="utf-8", newline="\n")

    def _resume_index(self) -> int:
        """Index after the highest existing frame; ValueError if the folder holds other files."""
        last = -1
        for p in sorted(self.folder.iterdir()):
            m = self.NAME.fullmatch(p.name)
            if m:
                last = max(last, int(m.group(1)))
            elif p.name != self.INDEX:
                raise ValueError(f"refusing to write frames into {self.folder}: it holds {p.name!r}, "
                                 f"not only frame-*.png and {self.INDEX}")
        return last + 1

    def write(self, image: np.ndarray, key: dict[str, Any]) -> Path:
        """Write `image` ((H, W, 3) uint8 RGB) as the next PNG and log `key`; returns the PNG path."""
        from PIL import Image

        if self._index.closed:
            raise RuntimeError(f"FrameDirWriter for {self.folder} is closed")
        image = _check_image(image)
        name = f"frame-{self.next_index:06d}.png"
        # Serialise first: a key that is not JSON-able fails before anything is written.
        line = json.dumps({"index": self.next_index, "file": name, "key": key}, sort_keys=True)
        path = self.folder / name
        with atomic_open(path, "wb") as f:
            Image.fromarray(image, "RGB").save(f, format="PNG", compress_level=self.compress_level)
        self._index.write(line + "\n")
        self._index.flush()  # a crash loses at most the line of the frame being written
        self.next_index += 1
        return path

    def close(self) -> None:
        """Make the key log durable and close it (idempotent)."""
        if self._index.closed:
            return
        os.fsync(self._index.fileno())
        self._index.close()
        fsync_dir(self.folder)

    def __enter__(self) -> FrameDirWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()


def side_by_side(images: list[np.ndarray], gap: int = 0) -> np.ndarray:
    """Compose screens left to right into one (H, sum W + gaps, 3) uint8 image.

    Args:
        images: (H, W_i, 3) uint8 RGB images, all the same height H.
        gap: black pixel columns between neighbours.

    Example:
        >>> side_by_side([np.zeros((4, 2, 3), np.uint8), np.ones((4, 3, 3), np.uint8)], gap=1).shape
        (4, 6, 3)
    """
    if not images:
        raise ValueError("side_by_side needs at least one image")
    if gap < 0:
        raise ValueError(f"gap must be >= 0, got {gap}")
    images = [_check_image(im) for im in images]
    heights = [im.shape[0] for im in images]
    if len(set(heights)) != 1:
        raise ValueError(f"side_by_side needs images of one height, got heights {heights}")
    parts: list[np.ndarray] = []
    for i, im in enumerate(images):
        if i and gap:
            parts.append(np.zeros((heights[0], gap, 3), np.uint8))
        parts.append(im)
    return np.concatenate(parts, axis=1)
