"""Turn a folder of images into a training dataset: square face crops, deduplicated, labelled.

`prepare(SRC, DST)` walks SRC (recursively, in sorted order, so two runs give the same dataset),
decodes every image, crops a square around the largest face (or the centre), resizes it, drops
exact and near duplicates, and writes::

    DST/images/000000.png ...   RGB PNG, size x size, numbered in manifest order
    DST/manifest.json           what the training code reads (see `load_manifest`)
    DST/report.json, report.txt counts, and every skipped file with the reason

Each manifest item records its source (path relative to SRC), the SHA-256 of the source file,
the pHash of the output image, the crop box (x0, y0, x1, y1) in pixels of the upright source
image (after its EXIF rotation), whether a face was detected, and the label with its source.

Everything is first written to a temporary folder beside DST and renamed into place at the end,
so DST is either the old dataset or the complete new one, never half of either.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from passersby.data.faces import DEFAULT_MARGIN, Box, crop_and_resize, detect_faces, square_crop_box
from passersby.data.images import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    WHITE,
    BadImage,
    decode_image,
)
from passersby.data.labels import (
    GenderClassifier,
    LabelTable,
    label_from_path,
    read_labels_csv,
)
from passersby.data.manifest import (
    FORMAT,
    VERSION,
    DatasetError,
    Manifest,
    ManifestItem,
    data_hash,
    load_manifest,
)
from passersby.data.phash import DEFAULT_THRESHOLD, NearDuplicateIndex, phash, phash_hex

# The reader is re-exported: callers of the writer find it here too.
__all__ = [
    "DatasetError",
    "Manifest",
    "ManifestItem",
    "PrepareError",
    "PrepareReport",
    "Skipped",
    "data_hash",
    "load_manifest",
    "prepare",
]

DEFAULT_MIN_SIDE = 64  # smallest crop worth upscaling; the reference crops start at 82 px


class PrepareError(Exception):
    """Bad arguments to `prepare` (missing SRC, DST not empty, ...): a one-line message."""


@dataclass
class Skipped:
    """One source file left out of the dataset."""

    source: str
    reason: str


@dataclass
class PrepareReport:
    """What `prepare` did; also written to DST/report.json and DST/report.txt."""

    src: str
    dst: str
    size: int
    found: int = 0
    written: int = 0
    faces_found: int = 0
    centre_cropped: int = 0
    exact_duplicates: int = 0
    near_duplicates: int = 0
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    label_sources: dict[str, int] = field(default_factory=dict)
    ignored_files: list[str] = field(default_factory=list)
    labels_csv_unmatched: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def report_path(self) -> Path:
        return Path(self.dst) / "report.txt"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Options:
    size: int
    margin: float
    min_side: int
    max_pixels: int
    require_face: bool
    classify: bool
    background: tuple[int, int, int]


@dataclass
class _Outcome:
    """The per-file result of `_process`, small enough to send between processes."""

    source: str
    sha256: str = ""
    reason: str | None = None
    png: bytes = b""
    phash: int = 0
    crop: Box = (0, 0, 0, 0)
    face: bool = False
    gender: str | None = None


def prepare(
    src: Path,
    dst: Path,
    size: int = 256,
    labels: Path | None = None,
    require_face: bool = False,
    near_dup_threshold: int = DEFAULT_THRESHOLD,
    classify_unlabelled: bool = False,
    progress: bool = True,
    overwrite: bool = False,
    margin: float = DEFAULT_MARGIN,
    min_side: int = DEFAULT_MIN_SIDE,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    background: tuple[int, int, int] = WHITE,
    workers: int = 1,
) -> PrepareReport:
    """Prepare the images under `src` as a dataset at `dst`.

    Args:
        src: folder of images, searched recursively (hidden files and folders are ignored).
        dst: output folder; must not exist or be empty, unless `overwrite`.
        size: side of the square output images in pixels.
        labels: CSV with ``file,label`` or ``file,title`` columns (see `labels.read_labels_csv`).
        require_face: skip images in which no face is detected instead of centre-cropping them.
        near_dup_threshold: largest pHash Hamming distance counted as a near duplicate
            (see `phash`); -1 keeps near duplicates and drops exact ones only.
        classify_unlabelled: label images that have no label from CSV/title/file name with the
            gender classifier, where a face was detected.
        progress: show a progress bar on the terminal.
        overwrite: replace an existing non-empty `dst` (atomically, at the end).
        margin: crop side / face box side (see `faces.DEFAULT_MARGIN`).
        min_side: skip images whose crop would be smaller than this many pixels.
        max_pixels: reject images declaring more pixels (decompression bombs).
        background: RGB colour that transparent pixels are composited on.
        workers: processes decoding and cropping in parallel; the result does not depend on it.

    Returns:
        The report, also saved as DST/report.json and DST/report.txt.

    Raises:
        PrepareError: bad arguments; nothing is written.
        labels.LabelError: a labels CSV that cannot be read; nothing is written.

    Example:
        >>> src = Path("~/portraits").expanduser()
        >>> report = prepare(src, Path("data/portraits"))  # doctest: +SKIP
        >>> report.written, report.near_duplicates  # doctest: +SKIP
        (912, 3)
    """
    started = time.monotonic()
    src, dst = Path(src).expanduser().resolve(), Path(dst).expanduser().absolute()
    _check_arguments(src, dst, size, near_dup_threshold, overwrite, workers)
    table = read_labels_csv(Path(labels)) if labels is not None else None
    candidates, ignored = _find_images(src)
    if not candidates:
        raise PrepareError(
            f"{src}: no image files found (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})"
        )
    opts = _Options(
        size, margin, min_side, max_pixels, require_face, classify_unlabelled, background
    )
    report = PrepareReport(src=str(src), dst=str(dst), size=size, found=len(candidates))
    report.ignored_files = ignored
    report.settings = {
        "margin": margin,
        "min_side": min_side,
        "near_dup_threshold": near_dup_threshold,
        "require_face": require_face,
        "classify_unlabelled": classify_unlabelled,
        "labels": str(labels) if labels else None,
        "max_pixels": max_pixels,
    }
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PrepareError(
            f"{dst.parent}: cannot create the output's folder: {e.strerror}"
        ) from None
    _remove_stale_temps(dst)
    tmp = dst.parent / f".{dst.name}.tmp-{os.getpid()}"
    try:
        (tmp / "images").mkdir(parents=True)
        items = _build(
            src, tmp, candidates, table, opts, near_dup_threshold, report, progress, workers
        )
        report.labels_csv_unmatched = table.unused() if table is not None else []
        report.seconds = round(time.monotonic() - started, 2)
        _write_outputs(tmp, items, size, report)
        _publish(tmp, dst, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report


def _check_arguments(
    src: Path, dst: Path, size: int, threshold: int, overwrite: bool, workers: int
) -> None:
    if not src.is_dir():
        raise PrepareError(
            f"{src}: source folder not found" if not src.exists() else f"{src}: not a folder"
        )
    if not 16 <= size <= 4096:
        raise PrepareError(f"--size must be between 16 and 4096 pixels, got {size}")
    if not -1 <= threshold <= 64:
        raise PrepareError(f"--near-dup-threshold must be between -1 and 64 bits, got {threshold}")
    if workers < 1:
        raise PrepareError(f"--workers must be at least 1, got {workers}")
    resolved = dst.resolve()
    if resolved == src or src in resolved.parents:
        raise PrepareError(f"{dst}: the output folder must not be inside the source folder {src}")
    if resolved in src.parents:
        raise PrepareError(f"{dst}: the output folder must not contain the source folder {src}")
    if dst.exists() and not dst.is_dir():
        raise PrepareError(f"{dst}: exists and is not a folder")
    if dst.is_dir() and any(dst.iterdir()) and not overwrite:
        raise PrepareError(
            f"{dst}: folder exists and is not empty; choose another or pass --overwrite"
        )


def _find_images(src: Path) -> tuple[list[Path], list[str]]:
    """Image files under src, sorted by relative path; and the other files (relative paths).

    Hidden files and folders (".git", "._IMG.jpg" from macOS) are neither: they are not the
    user's pictures. Symlinked folders are not followed, so a link loop cannot hang the walk.
    """
    images: list[Path] = []
    ignored: list[str] = []
    for root, dirs, files in os.walk(src):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.startswith("."):
                continue
            path = Path(root) / name
            if path.suffix.lower() in IMAGE_EXTENSIONS:
                images.append(path)
            else:
                ignored.append(path.relative_to(src).as_posix())
    images.sort(key=lambda p: p.relative_to(src).as_posix())
    return images, sorted(ignored)


def _build(
    src: Path,
    tmp: Path,
    candidates: list[Path],
    table: LabelTable | None,
    opts: _Options,
    threshold: int,
    report: PrepareReport,
    progress: bool,
    workers: int,
) -> list[dict[str, Any]]:
    """Process every candidate in order, writing accepted images into tmp/images."""
    tasks = []
    for path in candidates:
        rel = path.relative_to(src).as_posix()
        label, source = _label_for(rel, table)
        tasks.append((str(path), rel, label, source))
    seen_sha: dict[str, str] = {}
    near = NearDuplicateIndex(threshold)
    items: list[dict[str, Any]] = []
    reasons: Counter[str] = Counter()
    with _ProgressBar(progress, len(tasks)) as advance:
        jobs = [(path, rel, opts.classify and label is None) for path, rel, label, _ in tasks]
        for (_, rel, label, source), out in zip(tasks, _run(jobs, opts, workers), strict=True):
            advance()
            reason = out.reason or _duplicate_reason(out, seen_sha, near, report)
            if reason is not None:
                report.skipped.append(Skipped(rel, reason))
                reasons[_category(reason)] += 1
                continue
            seen_sha[out.sha256] = rel
            near.add(out.phash, rel)
            if label is None and out.gender is not None:
                label, source = out.gender, "classifier"
            items.append(_write_image(tmp, len(items), out, label, source))
            report.faces_found += out.face
    report.skipped_by_reason = dict(sorted(reasons.items()))
    report.written = len(items)
    report.centre_cropped = report.written - report.faces_found
    report.labels = dict(Counter(str(i["label"]) if i["label"] else "unknown" for i in items))
    report.label_sources = dict(Counter(i["label_source"] or "none" for i in items))
    return items


def _category(reason: str) -> str:
    """The kind of a skip reason, for counting: "truncated file: ..." -> "truncated file"."""
    return reason.split(":")[0].split(" of ")[0].split(" (")[0]


def _label_for(rel: str, table: LabelTable | None) -> tuple[str | None, str | None]:
    """CSV label or title first, then the file and folder names."""
    entry = table.lookup(rel) if table is not None else None
    if entry is not None and entry.label is not None:
        return entry.label, entry.source
    label = label_from_path(rel)
    return (label, "filename") if label is not None else (None, None)


def _duplicate_reason(
    out: _Outcome, seen_sha: dict[str, str], near: NearDuplicateIndex, report: PrepareReport
) -> str | None:
    if out.sha256 in seen_sha:
        report.exact_duplicates += 1
        return f"exact duplicate of {seen_sha[out.sha256]}"
    hit = near.find(out.phash)
    if hit is not None:
        report.near_duplicates += 1
        return f"near duplicate of {hit[0]} (pHash distance {hit[1]})"
    return None


def _run(jobs: list[tuple[str, str, bool]], opts: _Options, workers: int) -> Iterator[_Outcome]:
    """Results of `_process` in job order, from this process or a pool."""
    work = partial(_process, opts=opts)
    if workers == 1 or len(jobs) < 2 * workers:
        yield from map(work, jobs)
        return
    import multiprocessing

    # spawn, not fork: forking a process that may hold threads (torch, onnxruntime) can hang.
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        yield from pool.map(work, jobs, chunksize=4)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # on Ctrl-C, do not finish the queue


def _process(job: tuple[str, str, bool], opts: _Options) -> _Outcome:
    """Read, hash, decode, detect, crop, resize and encode one file (runs in a worker)."""
    path, rel, want_gender = job
    out = _Outcome(source=rel)
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        out.reason = f"cannot read file: {e.strerror or e}"
        return out
    out.sha256 = hashlib.sha256(data).hexdigest()
    try:
        rgb = decode_image(data, max_pixels=opts.max_pixels, background=opts.background)
    except BadImage as e:
        out.reason = e.reason
        return out
    h, w = rgb.shape[:2]
    face_box = _usable_face(detect_faces(rgb), h, w, opts)
    if face_box is None and opts.require_face:
        out.reason = "no face found"
        return out
    crop = square_crop_box(h, w, face_box, opts.margin)
    if crop[2] - crop[0] < opts.min_side:
        out.reason = f"too small: the crop is {crop[2] - crop[0]} px, under {opts.min_side} px"
        return out
    square = crop_and_resize(rgb, crop, opts.size)
    out.crop, out.face, out.phash = crop, face_box is not None, phash(square)
    out.png = _encode_png(square)
    if want_gender and face_box is not None:
        # Only with a detected face: without one the model's agreement with titled
        # reference portraits fell to ~60%, no better than guessing the majority class.
        out.gender = _classifier().classify(rgb, face_box)[0]
    return out


def _usable_face(faces: list[Box], h: int, w: int, opts: _Options) -> Box | None:
    """The largest face, unless its crop would be under min_side pixels.

    Such a face is too small to train on, and in an image that is large enough otherwise it
    is usually a false detection (dlib finds "faces" in eyes and folds of cloth) or a face in
    the background: the image is then treated as having no face.
    """
    if not faces:
        return None
    x0, y0, x1, y1 = square_crop_box(h, w, faces[0], opts.margin)
    return faces[0] if x1 - x0 >= opts.min_side else None


_gender_classifier: GenderClassifier | None = None


def _classifier() -> GenderClassifier:
    """One classifier per process, loaded on first use."""
    global _gender_classifier
    if _gender_classifier is None:
        _gender_classifier = GenderClassifier()
    return _gender_classifier


def _encode_png(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(
        buf, format="PNG", compress_level=1
    )  # paintings barely compress; level 6 was 3x slower for 1% less
    return buf.getvalue()


def _write_image(
    tmp: Path, index: int, out: _Outcome, label: str | None, source: str | None
) -> dict[str, Any]:
    """Write one accepted image and return its manifest item."""
    name = f"images/{index:06d}.png"
    _write_file(tmp / name, out.png)
    return {
        "file": name,
        "source": out.source,
        "sha256": out.sha256,
        "phash": phash_hex(out.phash),
        "crop": list(out.crop),
        "face": out.face,
        "label": label,
        "label_source": source,
    }


def _write_file(path: Path, data: bytes) -> None:
    """Write and fsync, so a power cut after the final rename cannot leave empty files."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _write_outputs(
    tmp: Path, items: list[dict[str, Any]], size: int, report: PrepareReport
) -> None:
    present = sorted({i["label"] for i in items if i["label"] is not None})
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "size": size,
        "class_names": present,
        "items": items,
        "data_hash": data_hash([i["sha256"] for i in items], size),
    }
    _write_file(tmp / "manifest.json", (json.dumps(manifest, indent=1) + "\n").encode())
    _write_file(tmp / "report.json", (json.dumps(report.to_dict(), indent=1) + "\n").encode())
    _write_file(tmp / "report.txt", format_report(report).encode())
    _fsync_dir(tmp / "images")
    _fsync_dir(tmp)


def format_report(report: PrepareReport) -> str:
    """The human-readable report.txt."""
    lines = [
        f"passersby prepare {report.src} -> {report.dst} (size {report.size}, {report.seconds} s)",
        f"found            {report.found}",
        f"written          {report.written}",
        f"faces found      {report.faces_found}",
        f"centre-cropped   {report.centre_cropped}",
        f"exact duplicates {report.exact_duplicates}",
        f"near duplicates  {report.near_duplicates}",
        f"skipped          {len(report.skipped)}",
    ]
    lines += [f"  {reason}: {n}" for reason, n in report.skipped_by_reason.items()]
    lines.append(
        "labels           " + ", ".join(f"{k} {v}" for k, v in sorted(report.labels.items()))
    )
    lines.append(
        "label sources    " + ", ".join(f"{k} {v}" for k, v in sorted(report.label_sources.items()))
    )
    if report.ignored_files:
        lines.append(
            f"ignored {len(report.ignored_files)} files that are not images (see report.json)"
        )
    if report.labels_csv_unmatched:
        lines.append(
            f"{len(report.labels_csv_unmatched)} labels CSV rows matched no image, e.g. "
            + ", ".join(report.labels_csv_unmatched[:5])
        )
    lines += ["", "skipped files:"] + [f"{s.source}\t{s.reason}" for s in report.skipped]
    return "\n".join(lines) + "\n"


def _publish(tmp: Path, dst: Path, overwrite: bool) -> None:
    """Move the finished tmp folder to dst in one rename (two, when replacing an old one)."""
    if dst.is_dir() and not any(dst.iterdir()):
        dst.rmdir()
    if not dst.exists():
        os.replace(tmp, dst)
    elif not overwrite:
        raise PrepareError(f"{dst}: appeared while preparing; not overwriting it")
    else:
        old = dst.parent / f".{dst.name}.old-{os.getpid()}"
        os.replace(dst, old)
        try:
            os.replace(tmp, dst)
        except BaseException:
            os.replace(old, dst)
            raise
        shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(dst.parent)


def _fsync_dir(path: Path) -> None:
    """Persist a folder's entries (a no-op where folders cannot be opened, as on Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_stale_temps(dst: Path) -> None:
    """Delete temp folders left beside dst by runs that were killed (their process is gone)."""
    prefixes = (f".{dst.name}.tmp-", f".{dst.name}.old-")
    for path in dst.parent.iterdir():  # not glob(): a name may hold "[" or "*"
        prefix = next((p for p in prefixes if path.name.startswith(p)), None)
        pid = path.name[len(prefix) :] if prefix else ""
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists but belongs to someone else
    return True


class _ProgressBar:
    """Context manager yielding an `advance()` callable; a rich bar, or nothing."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled, self.total, self._bar = enabled, total, None

    def __enter__(self) -> Any:
        if not self.enabled:
            return lambda: None
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(
            TextColumn("preparing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
        )
        self._bar.__enter__()
        task = self._bar.add_task("prepare", total=self.total)
        return lambda: self._bar.advance(task)

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
