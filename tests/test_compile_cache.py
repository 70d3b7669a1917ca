"""The compile cache (passersby/compile_cache.py): the second build of a network reads the saved
OpenVINO model instead of converting it, renders the same frames, and survives damage."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from passersby import compile_cache
from passersby.runtime import available, make_renderer, make_upscaler

pytestmark = pytest.mark.skipif(not available("openvino"), reason="OpenVINO is not installed here")


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("PASSERSBY_COMPILE_CACHE", str(root))
    return root


@pytest.fixture
def tiny_generator(model_config):
    """An unconditional 64 px generator (random weights, eval mode)."""
    import torch

    from passersby.model.generator import Generator

    torch.manual_seed(0)
    return Generator(model_config()).eval()


@pytest.fixture
def tiny_enhancer():
    import torch

    from passersby.config import EnhancerConfig
    from passersby.model.enhancer import Enhancer

    torch.manual_seed(1)
    return Enhancer(EnhancerConfig(resolution=32, channels=8, blocks=1)).eval()


@pytest.fixture
def conversions(monkeypatch) -> list[str]:
    """Counts OpenVINO conversions (the slow step the cache saves)."""
    ov = compile_cache.quiet_openvino()  # a plain import would send telemetry (compile_cache.no_telemetry)

    calls, real = [], ov.convert_model

    def counting(*a, **k):
        calls.append(type(a[0]).__name__)
        return real(*a, **k)

    monkeypatch.setattr(ov, "convert_model", counting)
    return calls


def test_the_second_renderer_reads_the_cache_and_renders_the_same(cache, conversions, tiny_generator):
    z = np.random.default_rng(0).standard_normal((3, tiny_generator.cfg.z_dim)).astype(np.float32)
    first = make_renderer(tiny_generator, "openvino")(z)
    assert conversions == ["FusedGenerator"] and len(list(cache.glob("*.xml"))) == 1
    assert list(cache.glob("*.bin")) and not list(cache.glob(".tmp-*"))
    second = make_renderer(tiny_generator, "openvino")(z)
    assert conversions == ["FusedGenerator"]  # read, not converted
    np.testing.assert_array_equal(first, second)
    assert any((cache / "blobs").iterdir())  # OpenVINO kept the compiled blob too


def test_other_weights_are_another_entry(cache, conversions, tiny_generator):
    import torch

    make_renderer(tiny_generator, "openvino")
    with torch.no_grad():
        next(tiny_generator.parameters()).add_(0.01)
    make_renderer(tiny_generator, "openvino")
    assert len(conversions) == 2 and len(list(cache.glob("*.xml"))) == 2


def test_a_damaged_entry_is_converted_afresh_with_a_warning(cache, conversions, tiny_generator, caplog):
    z = np.zeros((1, tiny_generator.cfg.z_dim), np.float32)
    good = make_renderer(tiny_generator, "openvino")(z)
    xml = next(cache.glob("*.xml"))
    xml.write_text("<not a model")
    with caplog.at_level(logging.WARNING, logger="passersby"):
        again = make_renderer(tiny_generator, "openvino")(z)
    assert len(conversions) == 2 and any("unreadable" in r.message for r in caplog.records)
    np.testing.assert_array_equal(good, again)
    assert make_renderer(tiny_generator, "openvino")(z).tobytes() == good.tobytes() and len(conversions) == 2


def test_an_unwritable_cache_runs_from_memory(tmp_path, monkeypatch, conversions, tiny_generator, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder would be")
    monkeypatch.setenv("PASSERSBY_COMPILE_CACHE", str(blocker / "cache"))
    z = np.zeros((1, tiny_generator.cfg.z_dim), np.float32)
    with caplog.at_level(logging.WARNING, logger="passersby"):
        assert make_renderer(tiny_generator, "openvino")(z).shape[0] == 1
    assert any("cannot save" in r.message for r in caplog.records)


def test_off_converts_every_time(monkeypatch, conversions, tiny_generator):
    monkeypatch.setenv("PASSERSBY_COMPILE_CACHE", "off")
    make_renderer(tiny_generator, "openvino")
    make_renderer(tiny_generator, "openvino")
    assert len(conversions) == 2


def test_the_enhancer_is_cached_too(cache, conversions, tiny_enhancer):
    frame = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    a = make_upscaler(tiny_enhancer, "openvino", side=32)(frame)
    b = make_upscaler(tiny_enhancer, "openvino", side=32)(frame)
    assert conversions == ["Enhancer"] and np.array_equal(a, b)


def test_temporaries_of_killed_runs_are_removed_when_old(tmp_path):
    import os
    import time

    old, young = tmp_path / ".tmp-aaa-1.bin", tmp_path / ".tmp-bbb-2.xml"
    old.write_bytes(b"x")
    young.write_bytes(b"y")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    assert compile_cache.clean_temporaries(tmp_path) == 1 and not old.exists() and young.exists()


def test_the_key_is_the_same_in_another_process(tmp_path):
    """A cache is for the next start: the key must not depend on anything of this process."""
    import subprocess
    import sys

    code = ("import torch; from passersby.compile_cache import model_key; from passersby.model.enhancer import "
            "Enhancer; from passersby.config import EnhancerConfig; torch.manual_seed(1); "
            "print(model_key(Enhancer(EnhancerConfig(resolution=32, channels=8, blocks=1)), [(1, 3, 32, 32)], 'x'))")
    keys = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**__import__("os").environ, "PYTHONHASHSEED": str(seed)}).stdout.strip()
            for seed in (1, 2, 3)}
    assert len(keys) == 1 and len(keys.pop()) == 24


def test_a_conversion_sends_no_telemetry(monkeypatch, tiny_generator):
    """OpenVINO's converter reports each conversion by forking a process from a thread (a CI run hung
    at exit on such a child): after passersby converts a model, no such process is started."""
    import multiprocessing
    import time

    import openvino_telemetry.main as telemetry

    monkeypatch.setenv("PASSERSBY_COMPILE_CACHE", "off")
    monkeypatch.delenv("CI", raising=False)  # openvino_telemetry declines by itself in a CI job
    monkeypatch.setattr(telemetry.OptInChecker, "check", telemetry.OptInChecker.check)  # restored after
    started = []
    monkeypatch.setattr(multiprocessing.Process, "start", lambda self: started.append(self))
    make_renderer(tiny_generator, "openvino")
    make_renderer(tiny_generator, "openvino")  # the second conversion re-inits the telemetry singleton
    time.sleep(0.5)  # the telemetry's thread pool would have forked by now
    assert started == []
    assert telemetry.Telemetry().consent is False
