"""Turn folders of pictures into a training dataset: aligned faces, deduplicated, labelled.

`prepare(SRC, DST)` (or `prepare([SRC1, SRC2], DST)`, several sources merged into one
dataset) walks each SRC (recursively, in sorted order, so two runs give the same dataset),
finds every face in every picture (`faces.find_faces`), aligns each one FFHQ-style by its
5 landmarks (`align.py`), flags greyscale and woodblock pictures (`media.py`), drops exact and
near duplicates, and writes::

    DST/images/000000.png ...   RGB PNG, size x size, one per kept face, in manifest order
    DST/manifest.json           what the training code reads (see `manifest.py`)
    DST/report.json, report.txt counts per source, every skipped picture and face with why
    DST/contact-sheet.jpg       a grid of the set (an even sample of 400 at most)

A picture without a face is skipped, unless `centre_crop_fallback` (for folders that are
already face crops, where detection may fail on stylised faces): then its centre square is
used, as before alignment existed. With several sources, each item's `source` is
``<folder name>/<path in it>``; with one, the path in it.

Labels: a face matched to a per-face box of a labels CSV (IoU >= 0.3 or its centre in the
box; `labels.match_face_label`) takes that box's label (source "box"). Otherwise the picture's
label (CSV label or title, then file and folder names) goes to its main face: the only face,
or the largest when it is at least 1.5 times the side of the next; other faces stay unknown
unless `classify_unlabelled`.

Everything is first written to a temporary folder beside DST and renamed into place at the end,
so DST is either the old dataset or the complete new one, never half of either.
"""

from __future__ import annotations

import json
import os
import stat
import shutil
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from passersby.data.contact import contact_sheet, sample_indices
from passersby.data.faces import DETECTORS
from passersby.data.images import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, WHITE
from passersby.data.labels import LabelTable, label_from_path, read_labels_csv
from passersby.data.manifest import (
    FORMAT,
    VERSION,
    DatasetError,
    Manifest,
    ManifestItem,
    data_hash,
    load_manifest,
)
from passersby.data.media import MediaFlags
from passersby.data.phash import (
    DEFAULT_THRESHOLD,
    FINE_THRESHOLD,
    NearDuplicateIndex,
    hamming,
    phash_hex,
)
from passersby.data.picture import (
    FaceOutcome,
    PictureJob,
    PictureOptions,
    PictureOutcome,
    process_picture,
)
from passersby.data.report import PrepareReport, Skipped, SourceReport, category, format_report
from passersby.data.split import HELD_OUT_SHARE, SPLITS, in_split

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

DEFAULT_MIN_SIDE = 64  # smallest centre crop worth upscaling (fallback crops only)
DEFAULT_MIN_FACE = 64  # px, detector box side: the Met set's smallest annotated faces
MAIN_FACE_RATIO = 1.5  # the largest face is the sitter when this much larger than the next
CONTACT_SHEET = "contact-sheet.jpg"


class PrepareError(Exception):
    """Bad arguments to `prepare` (missing SRC, DST not empty, ...): a one-line message."""


@dataclass(frozen=True)
class _Source:
    """One SRC folder: its name in the dataset (prefix of item sources) and its pictures."""

    name: str
    root: Path
    prefix: str
    images: list[Path]


def prepare(
    src: Path | Sequence[Path],
    dst: Path,
    size: int = 256,
    labels: Path | Sequence[Path] | None = None,
    near_dup_threshold: int = DEFAULT_THRESHOLD,
    classify_unlabelled: bool = False,
    progress: bool = True,
    overwrite: bool = False,
    min_face: int = DEFAULT_MIN_FACE,
    min_side: int = DEFAULT_MIN_SIDE,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    background: tuple[int, int, int] = WHITE,
    workers: int = 1,
    centre_crop_fallback: bool = False,
    colour_only: bool = False,
    detector: str = "auto",
    write_contact_sheet: bool = True,
    zoom: float = 1.0,
    split: str = "all",
    held_out_share: float = HELD_OUT_SHARE,
    max_filled: float = 1.0,
) -> PrepareReport:
    """Prepare the pictures under `src` (one folder or several) as one dataset at `dst`.

    Args:
        src: folder(s) of pictures, searched recursively (hidden files and folders ignored).
        dst: output folder; must not exist or be empty, unless `overwrite`.
        size: side of the square output images in pixels.
        zoom: > 1 frames faces tighter than FFHQ's crop (its side divided by zoom).
        labels: CSV(s) with ``file,label``, ``file,title`` or ``file,faces,genders`` columns
            (see `labels.read_labels_csv`); each is looked up for the pictures of every source.
        near_dup_threshold: largest pHash Hamming distance counted as a near duplicate
            (see `phash`); -1 keeps near duplicates and drops exact ones only.
        classify_unlabelled: label faces that have no label otherwise with the gender
            classifier.
        progress: show a progress bar on the terminal.
        overwrite: replace an existing non-empty `dst` (atomically, at the end).
        min_face: skip faces whose detector box side is under this many source pixels.
        min_side: skip pictures whose centre crop would be smaller (with the fallback).
        max_pixels: reject images declaring more pixels (decompression bombs).
        background: RGB colour that transparent pixels are composited on.
        workers: processes working in parallel; the result does not depend on it.
        centre_crop_fallback: centre-crop pictures in which no face is found (else skipped).
        colour_only: drop greyscale prints/drawings and woodblock prints (else only flagged).
        detector: "auto" (HOG, then the CNN where HOG finds nothing), "hog" or "cnn".
        write_contact_sheet: write DST/contact-sheet.jpg.
        split: "all" pictures, only those of the fixed "train" split, or only the "held-out"
            paintings (`passersby.data.split`: by file name, the same on every machine).
        held_out_share: the share of paintings the held-out split holds.
        max_filled: skip faces whose crop has more than this share filled from outside the
            picture (a blurred reflection; `filled` in the manifest), e.g. 0.15.

    Returns:
        The report, also saved as DST/report.json and DST/report.txt.

    Raises:
        PrepareError: bad arguments; nothing is written.
        labels.LabelError: a labels CSV that cannot be read; nothing is written.

    Example:
        >>> srcs = [Path("~/met").expanduser(), Path("~/wikiart").expanduser()]
        >>> report = prepare(srcs, Path("data/faces"), colour_only=True)  # source pictures on disk; a long run  # doctest: +SKIP
        >>> [(s.name, s.faces_kept) for s in report.sources]  # source pictures on disk; a long run  # doctest: +SKIP
        [('met', 801), ('wikiart', 590)]
    """
    started = time.monotonic()
    roots = [src] if isinstance(src, (str, os.PathLike)) else list(src)
    roots = [Path(r).expanduser().resolve() for r in roots]
    dst = Path(dst).expanduser().absolute()
    _check_arguments(roots, dst, size, near_dup_threshold, overwrite, workers)
    _check_options(min_face, detector)
    if not 0.5 <= zoom <= 3.0:
        raise PrepareError(f"--zoom must be between 0.5 and 3, got {zoom}")
    if split not in SPLITS:
        raise PrepareError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    if not 0.0 < held_out_share < 1.0:
        raise PrepareError(f"--held-out-share must be between 0 and 1, got {held_out_share}")
    if not 0.0 <= max_filled <= 1.0:
        raise PrepareError(f"--max-filled must be between 0 and 1, got {max_filled}")
    label_paths = [labels] if isinstance(labels, (str, os.PathLike)) else list(labels or [])
    tables = [read_labels_csv(Path(p)) for p in label_paths]
    sources, ignored = _find_sources(roots)
    outside = 0
    for source in sources:  # the split is taken before any work: other pictures never load
        kept = [p for p in source.images if in_split(p.name, split, held_out_share)]
        outside += len(source.images) - len(kept)
        source.images[:] = kept
    opts = PictureOptions(
        size, min_face, min_side, max_pixels, centre_crop_fallback, colour_only, detector,
        classify_unlabelled, background, zoom,
    )
    report = PrepareReport(src=", ".join(map(str, roots)), dst=str(dst), size=size)
    report.found = sum(len(s.images) for s in sources)
    report.ignored_files = ignored
    report.settings = {
        "min_face": min_face,
        "zoom": zoom,
        "min_side": min_side,
        "near_dup_threshold": near_dup_threshold,
        "centre_crop_fallback": centre_crop_fallback,
        "colour_only": colour_only,
        "detector": detector,
        "classify_unlabelled": classify_unlabelled,
        "labels": [str(p) for p in label_paths],
        "max_pixels": max_pixels,
        "split": split,
        "held_out_share": held_out_share,
        "outside_split": outside,
        "max_filled": max_filled,
    }
    tmp = _make_temp(dst)
    try:
        items = _build(sources, tmp, tables, opts, near_dup_threshold, report, progress, workers,
                       max_filled)
        report.labels_csv_unmatched = sorted({u for t in tables for u in t.unused()})
        if write_contact_sheet and items:
            _write_contact_sheet(tmp, items)
            report.contact_sheet = str(dst / CONTACT_SHEET)
        report.seconds = round(time.monotonic() - started, 2)
        _write_outputs(tmp, items, size, report)
        _publish(tmp, dst, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report


def _check_options(min_face: int, detector: str) -> None:
    if min_face < 1:
        raise PrepareError(f"--min-face must be at least 1 pixel, got {min_face}")
    if detector not in DETECTORS:
        raise PrepareError(f"--detector must be one of {', '.join(DETECTORS)}, got {detector!r}")


def _make_temp(dst: Path) -> Path:
    """Create the temporary output folder beside dst (after removing stale ones)."""
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PrepareError(
            f"{dst.parent}: cannot create the output's folder: {e.strerror}"
        ) from None
    _remove_stale_temps(dst)
    tmp = dst.parent / f".{dst.name}.tmp-{os.getpid()}"
    (tmp / "images").mkdir(parents=True)
    return tmp


def _check_arguments(
    roots: list[Path], dst: Path, size: int, threshold: int, overwrite: bool, workers: int
) -> None:
    if not roots:
        raise PrepareError("no source folder given")
    for src in roots:
        _check_source(src, dst)
    if not 16 <= size <= 4096:
        raise PrepareError(f"--size must be between 16 and 4096 pixels, got {size}")
    if not -1 <= threshold <= 64:
        raise PrepareError(f"--near-dup-threshold must be between -1 and 64 bits, got {threshold}")
    if workers < 1:
        raise PrepareError(f"--workers must be at least 1, got {workers}")
    if dst.exists() and not dst.is_dir():
        raise PrepareError(f"{dst}: exists and is not a folder")
    if dst.is_dir() and any(dst.iterdir()) and not overwrite:
        raise PrepareError(
            f"{dst}: folder exists and is not empty; choose another or pass --overwrite"
        )


def _check_source(src: Path, dst: Path) -> None:
    if not src.is_dir():
        raise PrepareError(
            f"{src}: source folder not found" if not src.exists() else f"{src}: not a folder"
        )
    resolved = dst.resolve()
    if resolved == src or src in resolved.parents:
        raise PrepareError(f"{dst}: the output folder must not be inside the source folder {src}")
    if resolved in src.parents:
        raise PrepareError(f"{dst}: the output folder must not contain the source folder {src}")


def _find_sources(roots: list[Path]) -> tuple[list[_Source], list[str]]:
    """The pictures of every source, each source named uniquely; ignored files (prefixed)."""
    sources, ignored, names = [], [], Counter[str]()
    for root in roots:
        if root in (s.root for s in sources):
            raise PrepareError(f"{root}: source folder given twice")
        images, other = _find_images(root)
        if not images:
            raise PrepareError(
                f"{root}: no image files found (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})"
            )
        names[root.name] += 1
        name = root.name if names[root.name] == 1 else f"{root.name}-{names[root.name]}"
        prefix = f"{name}/" if len(roots) > 1 else ""
        sources.append(_Source(name, root, prefix, images))
        ignored += [prefix + o for o in other]
    return sources, ignored


def _find_images(src: Path) -> tuple[list[Path], list[str]]:
    """Image files under src, sorted by relative path; and what else was there (relative
    paths, those that are not plain files with the reason after a tab).

    Hidden files and folders (".git", "._IMG.jpg" from macOS) are neither: they are not the
    user's pictures. Symlinked folders are not followed (a link loop cannot hang the walk) and
    are listed; so are folders named like images, FIFOs, sockets and devices named like images
    (opening a FIFO would block forever) and broken or looping links. Names that are not UTF-8
    are listed with their undecodable bytes escaped.
    """
    images: list[Path] = []
    ignored: list[str] = []
    for root, dirs, files in os.walk(src):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for d in list(dirs):
            path = Path(root) / d
            if path.is_symlink():
                ignored.append(f"{printable(path.relative_to(src).as_posix())}\tsymlinked folder, not followed")
            elif Path(d).suffix.lower() in IMAGE_EXTENSIONS:
                ignored.append(f"{printable(path.relative_to(src).as_posix())}\ta folder named like an image "
                               "(searched like any folder)")
        for name in files:
            if name.startswith("."):
                continue
            path = Path(root) / name
            rel = printable(path.relative_to(src).as_posix())
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                ignored.append(rel)
            elif (why := _not_a_file(path)) is not None:
                ignored.append(f"{rel}\t{why}")
            else:
                images.append(path)
    images.sort(key=lambda p: p.relative_to(src).as_posix())
    return images, sorted(ignored)


def _not_a_file(path: Path) -> str | None:
    """Why `path` (named like an image) cannot be read as a picture file, or None if it can."""
    try:
        mode = os.stat(path).st_mode  # follows links: a link to a picture is a picture
    except OSError as e:
        return "broken or looping symlink" if path.is_symlink() else f"cannot stat ({e.strerror})"
    if stat.S_ISREG(mode):
        return None
    kind = "FIFO" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode) else "device" \
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a plain file"
    return f"{kind} named like an image, not read"


def printable(name: str) -> str:
    """A file name as text any report can hold: bytes that were not UTF-8 (surrogate-escaped
    by the OS layer) become \\xNN.

    Example:
        >>> printable(os.fsdecode(b"caf\\xe9.jpg"))
        'caf\\\\xe9.jpg'
    """
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _build(
    sources: list[_Source],
    tmp: Path,
    tables: list[LabelTable],
    opts: PictureOptions,
    threshold: int,
    report: PrepareReport,
    progress: bool,
    workers: int,
    max_filled: float = 1.0,
) -> list[dict[str, Any]]:
    """Process every picture in order, writing kept faces into tmp/images."""
    jobs, labels, owners = [], [], []
    for source in sources:
        report.sources.append(SourceReport(source.name, str(source.root)))
        for path in source.images:
            rel = path.relative_to(source.root).as_posix()
            label, label_source, faces = _labels_for(rel, tables)
            want = opts.classify
            jobs.append(PictureJob(str(path), source.prefix + printable(rel), faces, want))
            labels.append((label, label_source))
            owners.append(report.sources[-1])
    state = _DedupState(NearDuplicateIndex(threshold), {}, {})
    items: list[dict[str, Any]] = []
    with _ProgressBar(progress, len(jobs)) as advance:
        for out, label, src_report in zip(_run(jobs, opts, workers), labels, owners, strict=True):
            advance()
            _add_picture(out, label, src_report, state, report, tmp, items, max_filled)
    _summarise(report, items)
    return items


@dataclass
class _DedupState:
    near: NearDuplicateIndex  # pHash of every written image, keyed by item name
    seen_sha: dict[str, str]  # sha256 of every used source file -> its source name
    fine: dict[str, int]  # fine_hash of every written image, by item name


def _add_picture(
    out: PictureOutcome,
    label: tuple[str | None, str | None],
    src: SourceReport,
    state: _DedupState,
    report: PrepareReport,
    tmp: Path,
    items: list[dict[str, Any]],
    max_filled: float = 1.0,
) -> None:
    """Count one picture's outcome and write its kept faces (or its fallback crop)."""
    src.pictures += 1
    src.faces_found += len(out.faces)
    src.pictures_with_faces += bool(out.faces)
    reason = out.reason
    if reason is None and out.sha256 in state.seen_sha:
        report.exact_duplicates += 1
        reason = f"exact duplicate of {state.seen_sha[out.sha256]}"
    if reason is not None:
        _skip(report, src.pictures_dropped, out.source, reason)
        return
    state.seen_sha[out.sha256] = out.source
    main = _main_face(out.faces)
    candidates = out.faces if out.centre_crop is None else [out.centre_crop]
    for face in candidates:
        name = out.source if len(out.faces) < 2 else f"{out.source}#face{face.index + 1}"
        reason = face.reason or _too_filled(face, max_filled) or _near_duplicate(face, state, report)
        if reason is not None:
            _skip(report, src.faces_dropped, name, reason)
            continue
        state.near.add(face.phash, name)
        state.fine[name] = face.fine
        item = _write_image(tmp, len(items), out, face, _face_label(face, main, label))
        items.append(item)
        src.faces_kept += item["face"]
        src.centre_cropped += not item["face"]
        for flag in ("greyscale", "woodblock"):
            if item["media"][flag]:
                src.flagged[flag] = src.flagged.get(flag, 0) + 1


def _skip(report: PrepareReport, counts: dict[str, int], name: str, reason: str) -> None:
    report.skipped.append(Skipped(name, reason))
    kind = category(reason)
    counts[kind] = counts.get(kind, 0) + 1


def _too_filled(face: FaceOutcome, max_filled: float) -> str | None:
    """Why a face whose crop is mostly blurred fill is not kept (None: it is kept)."""
    if face.filled > max_filled:
        return f"crop filled beyond the picture: {face.filled:.0%} > --max-filled {max_filled:.0%}"
    return None


def _near_duplicate(face: FaceOutcome, state: _DedupState, report: PrepareReport) -> str | None:
    """A written image that this one repeats: pHash within the threshold, confirmed by the
    fine hash (aligned faces of different sitters can share a pHash; see `phash.fine_hash`)."""
    for key, distance in state.near.find_all(face.phash):
        fine = hamming(state.fine[key], face.fine)
        if fine <= FINE_THRESHOLD:
            report.near_duplicates += 1
            return f"near duplicate of {key} (pHash distance {distance}, fine {fine})"
    return None


def _main_face(faces: list[FaceOutcome]) -> int | None:
    """Index of the picture's sitter: its only face, or a face clearly larger than the rest."""
    if len(faces) == 1:
        return faces[0].index
    if len(faces) > 1:
        side = [(f.box[2] - f.box[0] + f.box[3] - f.box[1]) / 2 for f in faces]
        if side[0] >= MAIN_FACE_RATIO * side[1]:  # faces come largest first
            return faces[0].index
    return None


def _face_label(
    face: FaceOutcome, main: int | None, picture: tuple[str | None, str | None]
) -> tuple[str | None, str | None]:
    """A face's label and its source: its box label, the picture's, then the classifier's."""
    if face.label is not None:
        return face.label, face.label_source
    if picture[0] is not None and (face.index == main or face.index < 0):
        return picture
    if face.gender is not None:
        return face.gender, "classifier"
    return None, None


def _summarise(report: PrepareReport, items: list[dict[str, Any]]) -> None:
    reasons = Counter(category(s.reason) for s in report.skipped)
    report.skipped_by_reason = dict(sorted(reasons.items()))
    report.written = len(items)
    report.faces_found = sum(1 for i in items if i["face"])
    report.centre_cropped = report.written - report.faces_found
    report.labels = dict(Counter(str(i["label"]) if i["label"] else "unknown" for i in items))
    report.label_sources = dict(Counter(i["label_source"] or "none" for i in items))


def _labels_for(rel: str, tables: list[LabelTable]) -> tuple[str | None, str | None, tuple]:
    """Picture label and its source (CSV label or title, then file and folder names), and
    the per-face boxes with labels from the first CSV that has them."""
    label, source, faces = None, None, ()
    for table in tables:
        entry = table.lookup(rel)
        if entry is None:
            continue
        if label is None and entry.label is not None:
            label, source = entry.label, entry.source
        faces = faces or entry.faces
    if label is None:
        label = label_from_path(rel)
        source = "filename" if label is not None else None
    return label, source, faces


def _run(jobs: list[PictureJob], opts: PictureOptions, workers: int) -> Iterator[PictureOutcome]:
    """Results of `process_picture` in job order, from this process or a pool."""
    work = partial(process_picture, opts=opts)
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


def _write_image(
    tmp: Path,
    index: int,
    out: PictureOutcome,
    face: FaceOutcome,
    label: tuple[str | None, str | None],
) -> dict[str, Any]:
    """Write one kept face (or fallback crop) and return its manifest item."""
    name = f"images/{index:06d}.png"
    _write_file(tmp / name, face.png)
    c = out.colour
    flags = MediaFlags(c.saturation, face.woodblock_score, c.spread, c.luma)
    return {
        "file": name,
        "source": out.source,
        "sha256": out.sha256,
        "phash": phash_hex(face.phash),
        "crop": list(face.crop),
        "face": face.index >= 0,
        "label": label[0],
        "label_source": label[1],
        "face_index": face.index,
        "box": list(face.box),
        "quad": face.quad,
        "filled": face.filled,
        "detector": out.detector,
        "media": {
            "saturation": c.saturation,
            "chroma_spread": c.spread,
            "luma": c.luma,
            "greyscale": flags.greyscale,
            "woodblock_score": face.woodblock_score,
            "woodblock": flags.woodblock,
        },
    }


def _write_contact_sheet(tmp: Path, items: list[dict[str, Any]]) -> None:
    picked = [items[i] for i in sample_indices(len(items))]
    jpeg = contact_sheet([tmp / i["file"] for i in picked], [i["label"] for i in picked])
    _write_file(tmp / CONTACT_SHEET, jpeg)


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
