"""Compiled models kept between starts: OpenVINO's IR and its compiled blobs, one copy per model.

Why: after a watchdog restart or a power cut the screens are black until their networks are
ready, and converting a torch module to OpenVINO (tracing it) took ~5.5 s per network on a
loaded 2-core machine, for each screen, the chain measurement and the capture path. The
converted model (IR: .xml + .bin) is saved under a key of everything that shapes it (the
module's class and source file, its weights, the input shapes, the OpenVINO and passersby
versions), so the next start, and the second screen of this one, read it in ~0.1 s; OpenVINO's
own CACHE_DIR then keeps the compiled blob too.

Where: `$PASSERSBY_COMPILE_CACHE` if set ("off" or "" disables it), else
`$XDG_CACHE_HOME/passersby/openvino` (`~/.cache/passersby/openvino`). A cache that cannot be
read or written never stops a start: the model is converted in memory, as without a cache, and
a warning says why. Entries are written to temporary names and renamed (.bin before .xml: an
.xml names a complete entry), so a crash leaves no half entry that looks whole.

Example:
    >>> compile_cache_dir({"PASSERSBY_COMPILE_CACHE": "off"}) is None
    True
    >>> str(compile_cache_dir({"PASSERSBY_COMPILE_CACHE": "/tmp/c"}))
    '/tmp/c'
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import os
import threading
import uuid
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

log = logging.getLogger("passersby")
_LOCKS: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)  # key -> one converter at a time


def compile_cache_dir(env: Mapping[str, str] | None = None) -> Path | None:
    """The cache folder (see the module docstring), or None when disabled."""
    env = os.environ if env is None else env
    if "PASSERSBY_COMPILE_CACHE" in env:
        value = env["PASSERSBY_COMPILE_CACHE"].strip()
        return None if value in ("", "off") else Path(value).expanduser()
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "passersby" / "openvino"


def model_key(module: torch.nn.Module, shapes: list[tuple[int, ...]], tag: str) -> str:
    """sha256 (24 hex) of what makes the converted model: class, its source file, weights and
    buffers, input shapes, `tag` (e.g. the precision), the OpenVINO and passersby versions."""
    ov = quiet_openvino()

    from passersby import __version__

    h = hashlib.sha256()
    for part in (type(module).__qualname__, tag, repr(shapes), ov.__version__, __version__):
        h.update(part.encode() + b"\0")
    # Sorted: a set's order of classes differs between processes (hashes of ids), the key must not.
    for cls in sorted({type(m) for m in module.modules()}, key=lambda c: (c.__module__, c.__qualname__)):
        try:
            h.update(Path(inspect.getsourcefile(cls) or "").read_bytes())
        except (OSError, TypeError):
            h.update(cls.__qualname__.encode())
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode() + str(tuple(t.shape)).encode() + str(t.dtype).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:24]


def no_telemetry() -> None:
    """Make OpenVINO's model converter send no usage telemetry: openvino_telemetry's consent check
    answers "declined" (what `opt_in_out --opt_out` would write to the user's home, without writing it).

    Why: the converter reports each conversion to Google Analytics unless a consent file says no
    (no file counts as yes), from a thread pool, by *forking* a process
    (openvino_telemetry.backend.backend_ga4). An installation has no business phoning home, and a
    fork from a thread can deadlock the child (seen: the CI's pytest hung at exit, waiting for such a
    child stuck on a lock it inherited mid-fork). Idempotent; nothing to do without openvino_telemetry.

    Example:
        >>> no_telemetry()
        >>> from openvino_telemetry.utils.opt_in_checker import OptInChecker
        >>> OptInChecker().check(False).name
        'DECLINED'
    """
    try:
        import openvino_telemetry.main as telemetry
        from openvino_telemetry.utils.opt_in_checker import ConsentCheckResult
    except ImportError:
        return
    # Telemetry.init asks the checker on every conversion (init_ovc_telemetry re-inits the singleton).
    telemetry.OptInChecker.check = lambda self, *a, **k: ConsentCheckResult.DECLINED
    existing = getattr(telemetry.Telemetry, "_SingletonMetaClass__single_instance", None)
    if existing is not None:
        existing.consent = False


def quiet_openvino() -> Any:
    """`import openvino`, with its telemetry off first: importing it already sends an event (no_telemetry).

    Example:
        >>> quiet_openvino().__name__
        'openvino'
    """
    no_telemetry()
    import openvino

    return openvino


def ov_model(core: Any, module: torch.nn.Module, example: tuple[torch.Tensor, ...], tag: str = "",
             convert: Callable[[], Any] | None = None) -> Any:
    """`module` as an OpenVINO model: read from the cache when it holds it, else converted (and
    saved for the next start). Sets `core`'s CACHE_DIR so its compiled blob is kept too.

    Args:
        core: the ov.Core that will compile it.
        module: the torch module (eval mode).
        example: example inputs (their shapes are part of the key).
        tag: anything else that changes the converted model (e.g. "input=[1, 128]").
        convert: () -> ov.Model; default `ov.convert_model(module, example_input=example)`.
    """
    ov = quiet_openvino()

    def fresh() -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about python control flow: static here
            return convert() if convert is not None else ov.convert_model(
                module, example_input=example[0] if len(example) == 1 else example)

    root = compile_cache_dir()
    if root is None:
        return fresh()
    key = model_key(module, [tuple(x.shape) for x in example], tag)
    xml, bin_ = root / f"{key}.xml", root / f"{key}.bin"
    with _LOCKS[key]:
        if xml.exists() and bin_.exists():
            try:
                model = core.read_model(str(xml))
                _set_blob_cache(core, root)
                return model
            except Exception as e:  # noqa: BLE001 (a damaged entry of any kind: convert afresh)
                log.warning("compile cache: %s unreadable (%s); converting afresh", xml, e)
                for p in (xml, bin_):
                    p.unlink(missing_ok=True)
        model = fresh()
        _save(model, root, key)
    _set_blob_cache(core, root)
    return model


def _set_blob_cache(core: Any, root: Path) -> None:
    try:
        (root / "blobs").mkdir(parents=True, exist_ok=True)
        core.set_property({"CACHE_DIR": str(root / "blobs")})
    except Exception as e:  # noqa: BLE001 (no blob cache: compile every start, as before)
        log.warning("compile cache: %s not usable (%s); compiling without it", root / "blobs", e)


def _save(model: Any, root: Path, key: str) -> None:
    """Write the IR under temporary names, then rename: .bin first, .xml (the mark) last."""
    ov = quiet_openvino()

    tmp = root / f".tmp-{key}-{uuid.uuid4().hex[:8]}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        clean_temporaries(root)
        ov.save_model(model, str(tmp) + ".xml", compress_to_fp16=False)
        for suffix in (".bin", ".xml"):
            with open(str(tmp) + suffix, "rb") as f:
                os.fsync(f.fileno())
            os.replace(str(tmp) + suffix, root / f"{key}{suffix}")
    except Exception as e:  # noqa: BLE001 (full disk, read-only home: run from memory)
        log.warning("compile cache: cannot save %s (%s); the next start converts again", root / f"{key}.xml", e)
    finally:
        for suffix in (".bin", ".xml"):
            try:
                Path(str(tmp) + suffix).unlink(missing_ok=True)
            except OSError:
                pass  # no folder to clean


def clean_temporaries(root: Path | None = None, older_than_s: float = 600.0) -> int:
    """Remove temporary files of killed runs from the cache (older than `older_than_s`: a
    younger one may be another process's entry being written); returns how many.

    Example:
        >>> clean_temporaries(Path("/nonexistent"))
        0
    """
    root = compile_cache_dir() if root is None else root
    if root is None or not root.is_dir():
        return 0
    import time

    n = 0
    for p in root.glob(".tmp-*"):
        try:
            if time.time() - p.stat().st_mtime > older_than_s:
                p.unlink()
                n += 1
        except OSError:
            pass
    return n
