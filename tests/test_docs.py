"""The README is checked against the code: every subcommand documented, set-up commands real."""

from __future__ import annotations

import re
from pathlib import Path

from passersby.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def registered_commands() -> set[str]:
    return {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}


def test_every_subcommand_is_in_the_readme_table() -> None:
    documented = set(re.findall(r"^\| `passersby (\w[\w-]*)", README, flags=re.M))
    assert documented == registered_commands()


def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_test_one() -> None:
    setup = README.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)\n```", setup, flags=re.S)
    assert len(blocks) == 2
    run_main, run_tests = blocks
    assert "constraints-cpu.txt" in run_main and "constraints-cpu.txt" in run_tests
    assert "passersby " in run_main and "pytest" in run_tests
    ci = (ROOT / ".ci" / "run").read_text()
    assert "-c constraints-cpu.txt" in ci and 'pip install -q -c constraints-cpu.txt -e ".[test]"' in ci
    assert "python -m pytest -q" in ci


def test_cpu_constraints_pin_a_cpu_torch() -> None:
    pins = (ROOT / "constraints-cpu.txt").read_text()
    assert re.search(r"^torch==\d+\.\d+\.\d+$", pins, flags=re.M)


def test_readme_pictures_exist() -> None:
    for rel in re.findall(r"\]\(((?:docs|passersby)/[^)]+)\)", README):
        assert (ROOT / rel).is_file(), rel
