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
    # sqlite_open: the one way passersby opens its SQLite stores, a leaf like atomic.
    assert offenders(("passersby.stream",), ("passersby.stream", "passersby.atomic", "passersby.sqlite_open")) == []


def test_the_ledger_package_is_checked_and_sits_below_the_rest_of_the_stream():
    """The ledger is the stream's lowest layer: it imports no other stream module (the engine
    and the sources use it, never the other way), and the leaf helpers import nothing of ours."""
    deps = imports()
    ledger = sorted(m for m in deps if m.startswith("passersby.stream.ledger"))
    for expected in ("passersby.stream.ledger", "passersby.stream.ledger.core", "passersby.stream.ledger.sqlite",
                     "passersby.stream.ledger.postgres", "passersby.stream.ledger.leased",
                     "passersby.stream.ledger.protocol", "passersby.stream.ledger.spec"):
        assert expected in ledger  # the checker walks the package too
    assert offenders(("passersby.stream.ledger",), ("passersby.stream.ledger", "passersby.atomic",
                                                    "passersby.sqlite_open")) == []
    assert deps["passersby.sqlite_open"] == set() and deps["passersby.atomic"] == set()


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


def test_only_the_command_line_trains():
    """The show path (app, stream, web, taste, sample, runtime, metrics, model, data) never
    imports the training code: model files load through passersby.model.load."""
    users = sorted(m for m, deps in imports().items()
                   if not m.startswith("passersby.train") and any(d.startswith("passersby.train") for d in deps))
    assert users == ["passersby.cli"]


def test_checking_a_settings_file_imports_no_torch(tmp_path):
    import subprocess
    import sys

    f = tmp_path / "passersby.toml"
    f.write_text('[walk]\ntempo = 5.0\n[model]\nruntime = "auto"\n')
    code = ("import sys; from passersby.settings import load_settings; "
            f"load_settings({str(f)!r}, {{}}, search=False); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def cycles(deps: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles between modules: strongly connected components of more than one module
    (Tarjan's algorithm), each sorted. A `from passersby.x import y` counts as an arrow to the
    module passersby.x.y when that is a module, else to passersby.x."""
    modules = set(deps)
    succ = {m: sorted(d for d in ds if d in modules and d != m) for m, ds in deps.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in succ[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
            if len(component) > 1:
                out.append(sorted(component))

    for m in sorted(modules):
        if m not in index:
            connect(m)
    return sorted(out)


def module_imports() -> dict[str, set[str]]:
    """module -> the passersby modules it imports, module-level, inside functions and under
    `if TYPE_CHECKING:` alike (each is an arrow a reader follows, and a lazy import that closes a
    circle is one refactoring away from a half-imported module at start-up). `from a import b`
    is an arrow to a.b when that is a module (a submodule), else to a (a name in it)."""
    modules = set(imports())
    out: dict[str, set[str]] = {}
    for f in sorted(PKG.rglob("*.py")):
        mod = ".".join(f.relative_to(PKG.parent).with_suffix("").parts).removesuffix(".__init__")
        targets = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for a in node.names:
                    sub = f"{node.module}.{a.name}"
                    targets.add(sub if sub in modules else node.module)
            elif isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
        out[mod] = {t for t in targets if t in modules and t != mod}
    return out


def test_the_package_has_no_import_cycles():
    assert cycles(module_imports()) == []


def test_the_cycle_finder_finds_a_cycle_and_its_members():
    deps = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(deps) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_cycle_checker_sees_type_checking_and_lazy_imports():
    deps = module_imports()
    assert "passersby.stream.running" in deps["passersby.stream.pacer"]  # under `if TYPE_CHECKING:`
    assert "passersby.app.cli_common" in deps["passersby.app.service"]  # inside a function
