"""VideoWriter, FrameDirWriter and side_by_side: what is written decodes back to what was given."""

from __future__ import annotations

import json
from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from passersby.outputs.video import FrameDirWriter, VideoWriter, exact_rate, side_by_side

H, W = 128, 128  # one screen; two side by side make the 256 x 128 video


def screen(i: int, phase: float) -> np.ndarray:
    """A smooth gradient that moves every frame (H.264 keeps smooth content well above 30 dB)."""
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    r = 127.5 + 127.5 * np.sin((x + 4 * i) / 11.0 + phase)
    g = 127.5 + 127.5 * np.cos((y - 3 * i) / 13.0 + phase)
    b = 127.5 + 127.5 * np.sin((x + y + 5 * i) / 17.0)
    return np.stack([r, g, b], axis=-1).round().astype(np.uint8)


def source(n: int) -> list[np.ndarray]:
    return [side_by_side([screen(i, 0.0), screen(i, 1.5)]) for i in range(n)]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def test_video_decodes_back_frame_exact(tmp_path):
    frames = source(45)
    path = tmp_path / "walk.mp4"
    with VideoWriter(path, 2 * W, H, fps=30) as video:
        for f in frames:
            video.write(f)
    assert [p.name for p in tmp_path.iterdir()] == ["walk.mp4"]  # no temporary file left

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert (stream.width, stream.height) == (2 * W, H)
        assert stream.average_rate == 30
        decoded = [fr.to_ndarray(format="rgb24") for fr in container.decode(stream)]
    assert len(decoded) == 45
    for i, (got, want) in enumerate(zip(decoded, frames)):
        assert got.shape == want.shape
        assert psnr(got, want) > 30, f"frame {i}: {psnr(got, want):.1f} dB"
        if i:
            change = np.abs(got.astype(np.int16) - decoded[i - 1].astype(np.int16)).mean()
            assert change > 10.0, f"frame {i} barely differs from frame {i - 1} ({change:.2f})"


def test_video_timestamps_are_exact_multiples_of_one_over_fps(tmp_path):
    path = tmp_path / "ntsc.mp4"
    with VideoWriter(path, 64, 32, fps=29.97) as video:
        for i in range(10):
            video.write(np.full((32, 64, 3), 20 * i, np.uint8))
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == Fraction(30000, 1001)
        times = [fr.pts * fr.time_base for fr in container.decode(stream)]
    assert times == [Fraction(1001, 30000) * i for i in range(10)]


@pytest.mark.parametrize("size", [(255, 128), (256, 127), (0, 128)])
def test_odd_or_empty_sizes_are_rejected(tmp_path, size):
    with pytest.raises(ValueError, match="even width and height"):
        VideoWriter(tmp_path / "x.mp4", *size, fps=30)
    assert list(tmp_path.iterdir()) == []


def test_wrong_image_shape_names_expected_and_got(tmp_path):
    with pytest.raises(ValueError, match=r"\(32, 64, 3\).*got shape \(64, 32, 3\)"):
        with VideoWriter(tmp_path / "x.mp4", 64, 32, fps=30) as video:
            video.write(np.zeros((64, 32, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_exception_inside_with_leaves_no_file_and_keeps_the_old_one(tmp_path):
    path = tmp_path / "walk.mp4"
    with pytest.raises(KeyError):
        with VideoWriter(path, 64, 32, fps=30) as video:
            video.write(np.zeros((32, 64, 3), np.uint8))
            raise KeyError("boom")
    assert list(tmp_path.iterdir()) == []

    path.write_bytes(b"the previous recording")
    with pytest.raises(KeyError):
        with VideoWriter(path, 64, 32, fps=30) as video:
            video.write(np.zeros((32, 64, 3), np.uint8))
            raise KeyError("boom")
    assert [p.name for p in tmp_path.iterdir()] == ["walk.mp4"]
    assert path.read_bytes() == b"the previous recording"


def test_closing_without_frames_keeps_the_old_file(tmp_path):
    path = tmp_path / "walk.mp4"
    path.write_bytes(b"old")
    with pytest.raises(ValueError, match="no frames written"):
        VideoWriter(path, 64, 32, fps=30).close()
    assert [p.name for p in tmp_path.iterdir()] == ["walk.mp4"] and path.read_bytes() == b"old"


def test_exact_rate():
    assert exact_rate(30) == 30 and exact_rate(12.5) == Fraction(25, 2)
    assert exact_rate(23.976) == Fraction(24000, 1001)
    with pytest.raises(ValueError):
        exact_rate(0)


def test_frame_dir_writer_round_trip_and_resume(tmp_path):
    folder = tmp_path / "frames"
    frames = source(3)
    keys = [{"model": "abc", "frame": i, "anchor_ids": [i, i + 1], "t": i / 3} for i in range(3)]
    with FrameDirWriter(folder) as out:
        for f, k in zip(frames[:2], keys[:2]):
            out.write(f, k)
    with FrameDirWriter(folder) as out:  # its own earlier output: continues the numbering
        assert out.write(frames[2], keys[2]).name == "frame-000002.png"

    assert sorted(p.name for p in folder.iterdir()) == [
        "frame-000000.png", "frame-000001.png", "frame-000002.png", "frames.jsonl"]
    for i, f in enumerate(frames):
        assert np.array_equal(np.asarray(Image.open(folder / f"frame-{i:06d}.png")), f)
    lines = [json.loads(line) for line in (folder / "frames.jsonl").read_text().splitlines()]
    assert lines == [{"index": i, "file": f"frame-{i:06d}.png", "key": keys[i]} for i in range(3)]


def test_frame_dir_writer_refuses_foreign_folders_and_bad_keys(tmp_path):
    (tmp_path / "holiday.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match="holiday.jpg"):
        FrameDirWriter(tmp_path)
    folder = tmp_path / "frames"
    with FrameDirWriter(folder) as out:
        with pytest.raises(TypeError):
            out.write(np.zeros((4, 4, 3), np.uint8), {"not json": object()})
        with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
            out.write(np.zeros((4, 4), np.uint8), {})
    assert [p.name for p in folder.iterdir()] == ["frames.jsonl"]


def test_side_by_side():
    a, b = np.full((4, 2, 3), 1, np.uint8), np.full((4, 3, 3), 2, np.uint8)
    out = side_by_side([a, b], gap=1)
    assert out.shape == (4, 6, 3)
    assert (out[:, :2] == 1).all() and (out[:, 2] == 0).all() and (out[:, 3:] == 2).all()
    assert np.array_equal(side_by_side([a]), a)
    with pytest.raises(ValueError, match="one height"):
        side_by_side([a, np.zeros((5, 2, 3), np.uint8)])
    with pytest.raises(ValueError):
        side_by_side([])
