"""Importing passersby has no side effects: no CUDA, no files, no output."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

CHECK = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys

    import passersby
    torch_by_package = "torch" in sys.modules  # `import passersby` alone must stay light

    import torch
    calls = []
    real_lazy_init = torch.cuda._lazy_init
    def spy(*a, **k):  # records any attempt to initialise CUDA (a no-op call on CPU builds)
        calls.append("".join(__import__("traceback").format_stack(limit=6)))
        return real_lazy_init(*a, **k)
    torch.cuda._lazy_init = spy

    names = sorted(m.name for m in pkgutil.walk_packages(passersby.__path__, "passersby."))
    for name in names:
        importlib.import_module(name)
    result = {"names": names, "torch_by_package": torch_by_package, "lazy_init_calls": calls,
              "cuda_initialized": torch.cuda.is_initialized()}
    with open(sys.argv[1], "w") as f:
        json.dump(result, f)
    """
)


def test_importing_every_module_is_side_effect_free(tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    report = tmp_path / "report.json"
    res = subprocess.run([sys.executable, "-c", CHECK, str(report)], cwd=cwd, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "" and res.stderr == ""  # nothing printed, no warnings
    assert list(cwd.iterdir()) == []  # no files created where it runs
    r = json.loads(report.read_text())
    assert len(r["names"]) >= 25
    for expected in ("passersby.cli", "passersby.checkpoint", "passersby.sample", "passersby.train.run",
                     "passersby.train.loop", "passersby.model.generator", "passersby.data.prepare"):
        assert expected in r["names"]
    assert r["cuda_initialized"] is False
    assert r["lazy_init_calls"] == []
    assert r["torch_by_package"] is False
