"""The report of a `prepare` run: counts per source, every skipped picture and face with why.

Written beside the dataset as report.json (everything) and report.txt (for a person).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Skipped:
    """One source picture, or one face of it, left out of the dataset.

    A face of a picture with several is named ``path#faceN`` (N from 1, largest first).
    """

    source: str
    reason: str


@dataclass
class SourceReport:
    """Counts for one SRC folder.

    `pictures_dropped` counts whole pictures by reason (unreadable, no face, greyscale, exact
    duplicate); `faces_dropped` counts faces by reason (too small, woodblock, near duplicate).
    """

    name: str
    path: str
    pictures: int = 0
    pictures_with_faces: int = 0
    faces_found: int = 0
    faces_kept: int = 0
    centre_cropped: int = 0
    pictures_dropped: dict[str, int] = field(default_factory=dict)
    faces_dropped: dict[str, int] = field(default_factory=dict)
    flagged: dict[str, int] = field(default_factory=dict)  # kept images flagged greyscale etc.


@dataclass
class PrepareReport:
    """What `prepare` did; also written to DST/report.json and DST/report.txt.

    `found` counts pictures, `written` images (one per kept face); `faces_found` counts the
    written images that come from a detected face, `centre_cropped` the fallback crops.
    """

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
    sources: list[SourceReport] = field(default_factory=list)
    ignored_files: list[str] = field(default_factory=list)
    labels_csv_unmatched: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    contact_sheet: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def report_path(self) -> Path:
        return Path(self.dst) / "report.txt"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def category(reason: str) -> str:
    """The kind of a skip reason, for counting: "truncated file: ..." -> "truncated file".

    Example:
        >>> category("face too small: 40 px, under --min-face 64 px")
        'face too small'
    """
    return reason.split(":")[0].split(" of ")[0].split(" (")[0]


def format_report(report: PrepareReport) -> str:
    """The human-readable report.txt."""
    lines = [
        f"passersby prepare {report.src} -> {report.dst} (size {report.size}, {report.seconds} s)",
        f"pictures found   {report.found}",
        f"images written   {report.written}",
        f"aligned faces    {report.faces_found}",
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
    for s in report.sources:
        lines += _source_lines(s)
    if report.contact_sheet:
        lines.append(f"contact sheet    {report.contact_sheet}")
    odd = [f for f in report.ignored_files if "\t" in f]  # named like images, but not picture files
    plain = len(report.ignored_files) - len(odd)
    if plain:
        lines.append(f"ignored {plain} files that are not images (see report.json)")
    if odd:
        lines.append(f"not read: {len(odd)} entries named like images that are not picture files")
        lines += [f"  {f}" for f in odd]
    if report.labels_csv_unmatched:
        lines.append(
            f"{len(report.labels_csv_unmatched)} labels CSV rows matched no image, e.g. "
            + ", ".join(report.labels_csv_unmatched[:5])
        )
    lines += ["", "skipped pictures and faces:"]
    lines += [f"{s.source}\t{s.reason}" for s in report.skipped]
    return "\n".join(lines) + "\n"


def _source_lines(s: SourceReport) -> list[str]:
    lines = [
        "",
        f"source {s.name} ({s.path})",
        f"  pictures {s.pictures}, with a face {s.pictures_with_faces}, "
        f"faces found {s.faces_found}, faces kept {s.faces_kept}"
        + (f", centre-cropped {s.centre_cropped}" if s.centre_cropped else ""),
    ]
    lines += [f"  pictures dropped, {k}: {v}" for k, v in sorted(s.pictures_dropped.items())]
    lines += [f"  faces dropped, {k}: {v}" for k, v in sorted(s.faces_dropped.items())]
    lines += [f"  kept but flagged {k}: {v}" for k, v in sorted(s.flagged.items())]
    return lines
