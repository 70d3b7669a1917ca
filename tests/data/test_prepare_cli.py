"""`passersby prepare` through typer, on an app built here as passersby/cli.py builds it."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from passersby.data.cli import prepare_command
from passersby.data.prepare import load_manifest

PORTRAITS = Path(__file__).resolve().parents[1] / "fixtures" / "portraits"


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)
    app.command()(prepare_command)
    return app


def invoke(app: typer.Typer, *args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_prepare_prints_a_summary(app, portraits_src: Path, tmp_path: Path) -> None:
    dst = tmp_path / "data" / "portraits"  # parent folders are created
    result = invoke(app, portraits_src, dst, "--size", "64", "--labels", PORTRAITS / "titles.csv")
    assert result.exit_code == 0, result.output
    assert "written" in result.output and "9" in result.output and "report.txt" in result.output
    assert "label feminine" in result.output and "contact-sheet.jpg" in result.output
    assert len(load_manifest(dst)) == 9


def test_help_has_an_example(app) -> None:
    result = invoke(app, "--help")
    assert result.exit_code == 0 and "passersby prepare ~/portraits" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["{tmp}/missing", "{tmp}/out"], "source folder not found"),
        (["{src}", "{tmp}/out", "--size", "2"], "--size must be between"),
        (["{src}", "{tmp}/out", "--labels", "{tmp}/nope.csv"], "labels CSV not found"),
        (["{src}", "{tmp}/out", "--labels", "{tmp}/bad.csv"], "bad.csv:2: unknown label 'x'"),
        (["{src}", "{tmp}/full"], "not empty"),
        (["{src}", "{tmp}/out", "--labels", "{tmp}/boxes.csv"], "boxes.csv:2: face box 'a,b,c,d'"),
        (["{src}", "{tmp}/out", "--min-face", "0"], "--min-face must be at least 1"),
        (["{src}", "{tmp}/out", "--detector", "eyes"], "--detector must be one of"),
        (["{src}", "{src}", "{tmp}/out"], "source folder given twice"),
    ],
)
def test_errors_are_one_line_and_exit_1(
    app, portraits_src: Path, tmp_path: Path, args, message
) -> None:
    (tmp_path / "bad.csv").write_text("file,label\na.jpg,x\n")
    (tmp_path / "boxes.csv").write_text('file,faces,genders\na.jpg,"a,b,c,d",female\n')
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("precious")
    argv = [a.format(tmp=tmp_path, src=portraits_src) for a in args] + ["--size", "64"] * (
        "--size" not in args
    )
    result = invoke(app, *argv)
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) <= 2
    assert (tmp_path / "full" / "keep.txt").read_text() == "precious"
    assert not (tmp_path / "out").exists()


def test_several_sources_and_labels(app, portraits_src: Path, tmp_path: Path) -> None:
    other = tmp_path / "more"
    other.mkdir()
    (portraits_src / "jeanne-samary-1877.jpg").rename(other / "jeanne-samary-1877.jpg")
    boxes = tmp_path / "boxes.csv"
    boxes.write_text('file,faces,genders\njeanne-samary-1877.jpg,"10,20,110,120",not-female\n')
    dst = tmp_path / "both"
    result = invoke(
        app, portraits_src, other, dst, "--size", "64", "--labels", PORTRAITS / "titles.csv",
        "--labels", boxes,
    )
    assert result.exit_code == 0, result.output
    items = {i.source: i for i in load_manifest(dst).items}
    assert len(items) == 9 and items["more/jeanne-samary-1877.jpg"].label_source == "box"
    assert items["portraits/pope-julius-ii.jpg"].label_source == "title"
    assert "more: pictures / faces found / kept" in result.output


def test_one_path_is_an_error(app, portraits_src: Path) -> None:
    result = invoke(app, portraits_src)
    assert result.exit_code == 2
    assert "error: give at least one SRC folder and the DST" in result.output


def test_cli_default_min_face_is_prepare_s() -> None:
    from passersby.data import cli, prepare

    assert cli.DEFAULT_MIN_FACE == prepare.DEFAULT_MIN_FACE
