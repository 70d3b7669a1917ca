"""Arrows run one way: the stream core knows no model and no web page, sinks see only frames,
and only the command line reaches the application layer. Checked on every import statement,
including those inside functions (lazy imports are still arrows)."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "passersby"


def imports() -> dict[str, set[str]]:
    """module -> the passersby modules it imports (anywhere in the file)."""
    out: dict[str, set[str]] = {}
    for f in sorted(PKG.rglob("*.py")):
        mod = ".".join(f.relative_to(PKG.parent).with_suffix("").parts).removesuffix(".__init__")
        names = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
        out[mod] = {n for n in names if n == "passersby" or n.startswith("passersby.")}
    return out


def offenders(prefixes: tuple[str, ...], allowed: tuple[str, ...]) -> list[str]:
    bad = []
    for mod, deps in imports().items():
        if mod.startswith(prefixes):
            bad += [f"{mod} -> {d}" for d in deps if not (d == "passersby" or d.startswith(allowed))]
    return bad


def test_the_stream_core_imports_only_itself():
    assert offenders(("passersby.stream",), ("passersby.stream", "passersby.atomic")) == []


def test_sinks_see_only_frames():
    assert offenders(("passersby.web", "passersby.outputs"),
                     ("passersby.web", "passersby.outputs", "passersby.stream.frames", "passersby.atomic")) == []


def test_only_the_command_line_reaches_the_application_layer():
    users = sorted(m for m, deps in imports().items()
                   if not m.startswith("passersby.app") and any(d.startswith("passersby.app") for d in deps))
    assert users == ["passersby.cli"]


def test_the_checker_sees_lazy_imports():
    deps = imports()["passersby.app.installation"]
    assert "passersby.taste.steer" in deps  # imported inside a function
