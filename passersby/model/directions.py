"""A model's direction file: named directions in its latent space, the sliders of a screen.

`passersby directions MODEL --out FILE` writes one (model/ganspace.py finds the directions);
the artist renames the ones that mean something (`passersby directions rename FILE 3 "head
turn"`), and the installation steers screens along them (stream/offsets.py, settings
`model.directions` and `screens.offsets`).

The file is safetensors (never pickle) with a JSON description in its metadata:

    tensors   "vectors" (k, z_dim) float32, unit vectors in z;
              "strip.<source>" uint8: the JPEG bytes of that direction's thumbnail strip
              (faces of one latent at -3 ... +3 std, side by side, AMOUNTS).
    metadata  {"format": "passersby-directions", "version": 1, "model": <generator hash>,
               "model_file": name, "found": {how: layer, n, seed}, "directions": [{"source":
               "pca-0" | ... | "label", "name": ..., "std": ..., and what was measured}]}

A direction's `source` is its stable id (frame keys use it, so renaming never breaks a
capture); `std` is the standard deviation of its component z.d under the prior z ~ N(0, I): 1 for
the unit vectors `passersby directions` writes (the std over the sampled latents is kept as
"sample_std"; a direction fitted on those latents looks wider on them than it is), so an amount
of 1 moves z by std x vector.
A file belongs to one generator (its hash): loading it for another model is refused.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "passersby-directions"
VERSION = 1
AMOUNTS = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)  # std of each thumbnail in a strip


class DirectionFileError(ValueError):
    """A direction file that cannot be read, written or used; the message names the file and what to do."""


@dataclass(frozen=True)
class Direction:
    """One named direction: a unit vector (z_dim,) in z, its component's std, its stable source id.

    Example:
        >>> d = Direction("pca-0", "head turn", np.array([0.0, 1.0]), 1.0)
        >>> d.step.tolist()
        [0.0, 1.0]
    """

    source: str  # "pca-<k>" or "label": the id frame keys use
    name: str
    vector: np.ndarray  # (z_dim,) unit
    std: float
    info: dict[str, Any] = dataclasses.field(default_factory=dict)  # what was measured (explained variance, ...)

    def __post_init__(self) -> None:
        # float32 values, as the file stores them: a set fresh from `find` and the same set read
        # back give the same steps bit for bit (frame keys check their digest).
        object.__setattr__(self, "vector", np.asarray(self.vector, np.float32).astype(np.float64))
        object.__setattr__(self, "std", float(self.std))

    @property
    def step(self) -> np.ndarray:
        """(z_dim,) float32: the move of one std along the direction."""
        return (np.asarray(self.vector, np.float64) * self.std).astype(np.float32)


@dataclass(frozen=True)
class DirectionSet:
    """The directions of one generator (`model` = its hash), with their thumbnail strips.

    Example:
        >>> s = DirectionSet("9f2c", (Direction("pca-0", "pca-0", np.eye(2)[0], 1.0),))
        >>> s.renamed("0", "head turn").names
        ('head turn',)
    """

    model: str
    directions: tuple[Direction, ...]
    strips: dict[str, bytes] = dataclasses.field(default_factory=dict)  # source -> JPEG of its strip
    model_file: str = ""
    found: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.directions)

    def index_of(self, which: str) -> int:
        """The position of a direction given as its index ("3"), its name or its source id.

        Raises:
            DirectionFileError: no such direction (the message lists them).
        """
        if which.isdigit() and int(which) < len(self.directions):
            return int(which)
        for i, d in enumerate(self.directions):
            if which in (d.name, d.source):
                return i
        listed = ", ".join(f"{i} {d.name!r}" for i, d in enumerate(self.directions))
        raise DirectionFileError(f"no direction {which!r}; the file has: {listed}")

    def renamed(self, which: str, name: str) -> "DirectionSet":
        """A copy with direction `which` (index, name or source) called `name`.

        Raises:
            DirectionFileError: an empty name, or one another direction has.
        """
        i = self.index_of(which)
        name = name.strip()
        if not name or any(c in name for c in "=,\n\"") :
            raise DirectionFileError(f"a direction name must be non-empty, without '=', ',' or quotes; got {name!r}")
        if name in self.names and self.names.index(name) != i:
            raise DirectionFileError(f"direction {self.names.index(name)} is already called {name!r}")
        dirs = list(self.directions)
        dirs[i] = dataclasses.replace(dirs[i], name=name)
        return dataclasses.replace(self, directions=tuple(dirs))

    def steps(self):
        """The stream's view (stream/offsets.DirectionSteps): ids, names, one-std step vectors."""
        from passersby.stream.offsets import DirectionSteps

        return DirectionSteps(tuple(d.source for d in self.directions), self.names,
                              np.stack([d.step for d in self.directions]) if self.directions else np.zeros((0, 0)))

    def save(self, path: Path) -> None:
        """Write the file atomically (the old one stays whole if anything fails).

        Raises:
            DirectionFileError: the file cannot be written (names it and what to do).
        """
        from safetensors.numpy import save

        from passersby.atomic import atomic_open

        meta = {"format": FORMAT, "version": VERSION, "model": self.model, "model_file": self.model_file,
                "found": self.found, "amounts": list(AMOUNTS),
                "directions": [{"source": d.source, "name": d.name, "std": d.std, **d.info} for d in self.directions]}
        tensors = {"vectors": np.stack([np.asarray(d.vector, np.float32) for d in self.directions])}
        tensors.update({f"strip.{s}": np.frombuffer(b, np.uint8).copy() for s, b in self.strips.items()})
        data = save(tensors, metadata={"passersby": json.dumps(meta, sort_keys=True)})
        try:
            with atomic_open(Path(path), "wb") as f:
                f.write(data)
        except OSError as e:
            raise DirectionFileError(f"{path}: could not write ({e}); the previous file is intact") from e


def read_directions(path: Path | str) -> DirectionSet:
    """A direction file as written by `DirectionSet.save`.

    Raises:
        DirectionFileError: missing, damaged, or not a direction file (the message names it).

    Example:
        >>> read_directions("/nonexistent.safetensors")
        Traceback (most recent call last):
        ...
        passersby.model.directions.DirectionFileError: /nonexistent.safetensors: no such direction file; write one with `passersby directions MODEL --out FILE`
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load

    path = Path(path)
    if not path.is_file():
        raise DirectionFileError(f"{path}: no such direction file; write one with `passersby directions MODEL --out FILE`")
    try:
        data = path.read_bytes()
        tensors = load(data)
        n = int.from_bytes(data[:8], "little")
        meta = json.loads(json.loads(data[8 : 8 + n])["__metadata__"]["passersby"])
        if meta.get("format") != FORMAT:
            raise ValueError(f"its format is {meta.get('format')!r}, not {FORMAT!r}")
        if meta.get("version") != VERSION:
            raise ValueError(f"version {meta.get('version')!r}; this passersby reads version {VERSION}")
        vectors = tensors["vectors"]
        rows = meta["directions"]
        if vectors.ndim != 2 or len(vectors) != len(rows):
            raise ValueError(f"{len(rows)} directions described but vectors of shape {vectors.shape}")
        dirs = tuple(Direction(r["source"], r["name"], vectors[i].astype(np.float64), float(r["std"]),
                               {k: v for k, v in r.items() if k not in ("source", "name", "std")})
                     for i, r in enumerate(rows))
        strips = {k[len("strip."):]: v.tobytes() for k, v in tensors.items() if k.startswith("strip.")}
        out = DirectionSet(str(meta["model"]), dirs, strips, str(meta.get("model_file", "")), dict(meta.get("found", {})))
    except (SafetensorError, OSError, ValueError, KeyError, TypeError, IndexError) as e:
        raise DirectionFileError(f"{path}: not a readable direction file ({e}); write it again with "
                                 "`passersby directions MODEL --out FILE`") from e
    if len(set(out.names)) != len(out.names) or len({d.source for d in dirs}) != len(dirs):
        raise DirectionFileError(f"{path}: two directions share a name or a source; rename one "
                                 "with `passersby directions rename`")
    return out


def directions_for(path: Path | str, model_hash: str, field: str = "model.directions") -> DirectionSet:
    """The direction file `path`, refused unless it belongs to the generator `model_hash`.

    Raises:
        DirectionFileError: unreadable, or another model's (one line naming the field and what to do).
    """
    s = read_directions(path)
    if s.model != model_hash:
        raise DirectionFileError(f"{field}: {path} holds the directions of model {s.model}, this installation runs "
                                 f"model {model_hash}; write its own with `passersby directions MODEL --out FILE`")
    return s


def rename_in_file(path: Path | str, which: str, name: str) -> DirectionSet:
    """Rename one direction of the file at `path` (atomically); returns the renamed set.

    Example:
        >>> rename_in_file("dirs.safetensors", "3", "head turn")  # a file written by `passersby directions`  # doctest: +SKIP
    """
    s = read_directions(path).renamed(which, name)
    s.save(Path(path))
    return s
