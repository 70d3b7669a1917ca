"""Every `>>>` example in the package's docstrings runs and shows what it says.

One test per module with examples. An example that needs a database server, a display, a model
being trained or objects built elsewhere (an engine, a hub) is marked `# doctest: +SKIP` in its
own line, with the reason in that docstring. Modules whose optional packages are missing are
skipped as a whole (pytest.importorskip semantics).
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import passersby

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _modules() -> list[str]:
    """Every module of the package, by name (nothing imported)."""
    names = [passersby.__name__]
    for info in pkgutil.walk_packages(passersby.__path__, passersby.__name__ + "."):
        names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name: str) -> None:
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name and not e.name.startswith("passersby"):
            pytest.skip(f"{name} needs {e.name}, not installed here")
        raise
    tests = [t for t in doctest.DocTestFinder(exclude_empty=True).find(module, name) if t.examples]
    if not tests:
        pytest.skip("no examples")
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report: list[str] = []
    for test in sorted(tests, key=lambda t: t.name):
        runner.run(test, out=report.append)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, "".join(report)
