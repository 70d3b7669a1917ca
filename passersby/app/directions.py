"""Direction files in the installation: which one a model uses, each screen's start offsets, the sheet.

The direction file (model/directions.py) comes from the setting `model.directions`; empty means
the file shipped for the shipped model (passersby/assets/default-directions.safetensors) and none
for another model. Each screen's `screens.offsets` ("head turn=1.5, light=-1") are the sliders'
positions from the first frame (stream/offsets.Offsets); a live control moves them from there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from passersby.checkpoint import ModelInfo
from passersby.model.directions import AMOUNTS, DirectionFileError, DirectionSet, directions_for, read_directions
from passersby.model.load import default_directions_path
from passersby.settings import ScreenSettings, Settings, parse_offsets
from passersby.stream.offsets import Offsets


def installation_directions(settings: Settings, info: ModelInfo) -> DirectionSet | None:
    """The direction file the installation steers with, checked against its model; None if none.

    Raises:
        DirectionFileError: the file is missing, damaged or another model's (one line naming
            model.directions), or a screen names offsets without a file.

    Example:
        >>> from passersby.model.load import load_generator
        >>> from passersby.settings import load_settings
        >>> "head turn" in installation_directions(load_settings(None, search=False), load_generator()[1]).names
        True
    """
    path = settings.model.directions
    if not path:
        shipped = default_directions_path()
        if shipped.is_file():
            found = read_directions(shipped)
            if found.model == info.hash:  # the shipped model's own file
                return found
        if any(s.offsets for s in settings.screens):
            raise DirectionFileError("screens.offsets: this model has no shipped direction file; set model.directions "
                                     "to one written by `passersby directions MODEL --out FILE`")
        return None
    return directions_for(path, info.hash)


def screen_offsets(screen: ScreenSettings, directions: DirectionSet | None) -> Offsets:
    """The screen's sliders: the file's directions, at the screen's `offsets` from the first frame.

    Raises:
        DirectionFileError: an offset names a direction the file does not have (lists the names).

    Example:
        >>> screen_offsets(ScreenSettings("s"), None).targets()
        {}
    """
    wanted = parse_offsets(screen.offsets)
    if directions is None:
        return Offsets()
    steps = directions.steps()
    for name in wanted:
        if name not in steps.names and name not in steps.ids:
            raise DirectionFileError(f"screens.offsets of {screen.name!r}: no direction {name!r} in the direction file; "
                                     f"it has {', '.join(steps.names)} (`passersby directions list FILE`)")
    return Offsets(steps, wanted)


def strip_pictures(directions: DirectionSet) -> list[np.ndarray]:
    """Each direction's thumbnail strip decoded: (h, W, 3) uint8, in the set's order.

    Raises:
        DirectionFileError: a direction has no strip.
    """
    import io

    from PIL import Image

    out = []
    for d in directions.directions:
        if d.source not in directions.strips:
            raise DirectionFileError(f"direction {d.name!r} has no thumbnail strip; write the file again")
        out.append(np.asarray(Image.open(io.BytesIO(directions.strips[d.source])).convert("RGB")))
    return out


def write_sheet(directions: DirectionSet, path: Path, quality: int = 85) -> int:
    """The contact sheet: one labelled row per direction (index, name, source, share of the
    variance), faces at -3 ... +3 std; JPEG, atomically. Returns its size in bytes.

    Example:
        >>> write_sheet(read_directions("dirs.safetensors"), Path("dirs.jpg"))  # a file written by `passersby directions`  # doctest: +SKIP
    """
    from passersby.metrics.sheets import labelled_rows, save_jpeg

    labels = []
    for i, d in enumerate(directions.directions):
        if "explained" in d.info:
            extra = f"{100 * d.info['explained']:.1f}% of the 8x8 variance"
        elif "held_out_corr" in d.info:
            extra = f"measured turn (r {d.info['held_out_corr']:.2f})"
        else:
            extra = "masculine +" if d.source == "label" else "measured"
        labels.append(f"{i}  {d.name}\n{d.source}, {extra}")
    sheet = labelled_rows(strip_pictures(directions), labels, [f"{a:+g}" for a in AMOUNTS], label_width=210)
    return save_jpeg(Path(path), sheet, quality)
