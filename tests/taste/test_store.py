"""The taste store: ratings in SQLite, durable, validated, exported and imported as JSON;
and the `passersby taste export | import | curators` commands."""

from __future__ import annotations

import json
import sqlite3
import threading

import numpy as np
import pytest
from typer.testing import CliRunner

from passersby.taste.cli import taste_app
from passersby.taste.store import FORMAT, TasteStore, TasteStoreError, check_curator, taste_path

RNG = np.random.default_rng(0)


def z(d: int = 128) -> np.ndarray:
    return RNG.standard_normal(d)


@pytest.fixture
def store(tmp_path):
    with TasteStore(tmp_path / "taste.sqlite") as s:
        yield s


def test_add_and_read_back_exactly(store):
    zs = [z() for _ in range(4)]
    ids = [store.add("ada", v, r, "model-a", label="feminine")
           for v, r in zip(zs, ["like", "dislike", "superlike", "skip"])]
    got_z, ratings, got_ids = store.ratings("ada")
    assert got_ids == ids and ids == sorted(ids)
    assert ratings == ["like", "dislike", "superlike", "skip"]
    assert got_z.dtype == np.float32 and got_z.shape == (4, 128)
    np.testing.assert_array_equal(got_z, np.stack(zs).astype(np.float32))  # bit-exact float32
    row = store.con.execute("SELECT curator, rating, model_hash, label, created_at FROM ratings WHERE id = ?",
                            [ids[0]]).fetchone()
    assert row[:4] == ("ada", "like", "model-a", "feminine") and row[4] > 1.6e9


def test_profiles_are_per_curator_and_model(store):
    store.add("ada", z(), "like", "model-a")
    store.add("ada", z(), "dislike", "model-b")
    store.add("bo", z(), "like", "model-a")
    assert store.ratings("ada", "model-a")[1] == ["like"]
    assert store.ratings("ada", "model-b")[1] == ["dislike"]
    assert store.ratings("ada")[1] == ["like", "dislike"]
    assert store.ratings("nobody")[0].shape == (0, 0)
    assert store.counts("ada") == {"like": 1, "dislike": 1, "superlike": 0, "skip": 0}
    assert store.counts("ada", "model-b")["dislike"] == 1
    assert [(name, n) for name, n, _ in store.curators()] == [("ada", 2), ("bo", 1)]


def test_mixed_latent_sizes_need_a_model_hash(store):
    store.add("ada", z(128), "like", "big")
    store.add("ada", z(16), "like", "small")
    with pytest.raises(TasteStoreError, match="several latent sizes"):
        store.ratings("ada")
    assert store.ratings("ada", "small")[0].shape == (1, 16)


@pytest.mark.parametrize("kwargs, match", [
    (dict(rating="meh"), "rating must be one of"),
    (dict(rating=None), "rating must be one of"),
    (dict(curator=""), "non-empty"),
    (dict(curator="   "), "non-empty"),
    (dict(curator=" ada"), "surrounding spaces"),
    (dict(curator="a" * 65), "at most 64"),
    (dict(curator="a\nb"), "printable"),
    (dict(curator=3), "non-empty string"),
    (dict(z=np.zeros((2, 4))), "vector"),
    (dict(z=[]), "vector"),
    (dict(z=[1.0, np.nan]), "finite"),
    (dict(z=[1e39]), "finite"),  # overflows float32
    (dict(z="abc"), "z must be"),
    (dict(model_hash=""), "model_hash"),
    (dict(label="x" * 65), "label"),
    (dict(created_at=-1.0), "created_at"),
])
def test_add_validates_every_field(store, kwargs, match):
    args = dict(curator="ada", z=z(), rating="like", model_hash="m")
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        store.add(**args)
    assert store.curators() == []


def test_curator_names():
    assert check_curator("Ada Lovelace (2nd)") == "Ada Lovelace (2nd)"
    assert check_curator("Zoë") == "Zoë"
    assert check_curator("x" * 64)


def test_durable_settings_and_reopen(tmp_path):
    path = tmp_path / "taste.sqlite"
    with TasteStore(path) as s:
        assert s.con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert s.con.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        rid = s.add("ada", z(), "like", "m")
    with TasteStore(path, create=False) as s:
        assert s.ratings("ada")[2] == [rid]


def test_two_connections_see_each_others_ratings(tmp_path):
    with TasteStore(tmp_path / "t.sqlite") as a, TasteStore(tmp_path / "t.sqlite") as b:
        a.add("ada", z(), "like", "m")
        b.add("ada", z(), "dislike", "m")
        assert a.ratings("ada")[1] == b.ratings("ada")[1] == ["like", "dislike"]


def test_adds_from_many_threads(store):
    def rate(k: int) -> None:
        for i in range(25):
            store.add(f"c{k}", np.full(8, k * 100 + i, np.float32), "like", "m")

    threads = [threading.Thread(target=rate, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [n for _, n, _ in store.curators()] == [25, 25, 25, 25]


def test_bad_files_are_refused_with_the_path(tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(TasteStoreError, match="junk.sqlite.*not a passersby taste store"):
        TasteStore(junk)
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE x (a)").connection.commit()
    with pytest.raises(TasteStoreError, match="not a passersby taste store"):
        TasteStore(other)
    with pytest.raises(TasteStoreError, match="is a directory"):
        TasteStore(tmp_path)
    with pytest.raises(TasteStoreError, match="no taste store here"):
        TasteStore(tmp_path / "missing.sqlite", create=False)
    with pytest.raises(TasteStoreError, match="directory does not exist"):
        TasteStore(tmp_path / "no" / "such" / "taste.sqlite")
    closed = TasteStore(tmp_path / "c.sqlite")
    closed.close()
    closed.close()  # twice is fine
    with pytest.raises(TasteStoreError, match="closed"):
        closed.ratings("ada")


def test_taste_path_is_in_the_home(tmp_path):
    assert taste_path(tmp_path) == tmp_path / "taste.sqlite"


# ---------------------------------------------------------------- export / import


def test_export_import_round_trip(tmp_path, store):
    for r in ("like", "dislike", "superlike", "skip"):
        store.add("ada", z(), r, "model-a", label="masculine")
    store.add("bo", z(), "like", "model-a")
    out = tmp_path / "exports" / "ada.json"
    assert store.export_json("ada", out) == 4
    data = json.loads(out.read_text())
    assert data["format"] == FORMAT and data["version"] == 1 and data["curator"] == "ada"
    assert data["count"] == 4 and len(data["ratings"][0]["z"]) == 128
    assert set(data["ratings"][0]) == {"z", "rating", "model_hash", "created_at", "label"}
    assert [p.name for p in out.parent.iterdir()] == ["ada.json"]  # no temporary file left

    with TasteStore(tmp_path / "other.sqlite") as other:
        assert other.import_json(out) == 4
        assert other.import_json(out) == 0  # twice: nothing new
        z1, r1, _ = store.ratings("ada")
        z2, r2, _ = other.ratings("ada")
        np.testing.assert_array_equal(z1, z2)
        assert r1 == r2
        assert other.con.execute("SELECT DISTINCT label FROM ratings").fetchall() == [("masculine",)]
        assert other.import_json(out, curator="ada-copy") == 4
        assert [(n, c) for n, c, _ in other.curators()] == [("ada", 4), ("ada-copy", 4)]
    assert store.import_json(out) == 0  # into the store it came from: all already there


def test_export_of_an_unknown_curator_fails(tmp_path, store):
    store.add("ada", z(), "like", "m")
    with pytest.raises(TasteStoreError, match="'nobody' has no ratings.*'ada'"):
        store.export_json("nobody", tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()


def _export(tmp_path, store) -> dict:
    store.add("ada", z(8), "like", "m")
    store.add("ada", z(8), "dislike", "m")
    store.export_json("ada", tmp_path / "good.json")
    return json.loads((tmp_path / "good.json").read_text())


@pytest.mark.parametrize("change, field", [
    (lambda d: d.update(format="something-else"), "format"),
    (lambda d: d.update(version=99), "version"),
    (lambda d: d.update(version="1"), "version"),
    (lambda d: d.update(curator=""), "curator"),
    (lambda d: d.pop("ratings"), "ratings"),
    (lambda d: d["ratings"].append(3), "ratings[2]"),
    (lambda d: d["ratings"][1].update(rating="meh"), "ratings[1].rating"),
    (lambda d: d["ratings"][1].pop("z"), "ratings[1].z"),
    (lambda d: d["ratings"][1].update(z=[1, "2"]), "ratings[1].z"),
    (lambda d: d["ratings"][1].update(z=[True, 1.0]), "ratings[1].z"),
    (lambda d: d["ratings"][1].update(z=[]), "ratings[1].z"),
    (lambda d: d["ratings"][1].update(z=[float("nan")]), "ratings[1].z"),
    (lambda d: d["ratings"][0].update(model_hash=""), "ratings[0].model_hash"),
    (lambda d: d["ratings"][0].update(created_at="yesterday"), "ratings[0].created_at"),
    (lambda d: d["ratings"][0].update(label=7), "ratings[0].label"),
    # Found by a hostile import (issue 11): a time that broke `taste curators` for good, and a
    # latent of another size than the model's, which stopped `taste`/`serve` from starting.
    (lambda d: d["ratings"][0].update(created_at=1e300), "ratings[0].created_at"),
    (lambda d: d["ratings"][0].update(created_at=-5), "ratings[0].created_at"),
    (lambda d: d["ratings"][1].update(z=[0.5] * 4), "ratings[1].z"),
])
def test_import_names_the_file_and_the_bad_field(tmp_path, store, change, field):
    data = _export(tmp_path, store)
    change(data)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with TasteStore(tmp_path / "fresh.sqlite") as fresh:
        with pytest.raises(TasteStoreError) as e:
            fresh.import_json(bad)
        assert str(e.value).startswith(f"{bad}: {field}:"), str(e.value)
        assert "\n" not in str(e.value)
        assert fresh.curators() == []  # all or nothing


def test_import_refuses_a_latent_size_other_than_the_stores_for_that_model(tmp_path, store):
    data = _export(tmp_path, store)  # model "m", 8 numbers each
    data["ratings"] = [{**data["ratings"][0], "z": [0.25] * 16, "created_at": 1.7e9}]
    bad = tmp_path / "other-size.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(TasteStoreError, match=r"ratings\[0\]\.z: 16 numbers, but ratings of model m have 8"):
        store.import_json(bad)
    data["ratings"][0]["model_hash"] = "m2"  # another model may have another size
    bad.write_text(json.dumps(data))
    assert store.import_json(bad) == 1


@pytest.mark.parametrize("content, match", [
    (b"{not json", "not valid JSON \\(line 1"),
    (b"\xff\xfe\x00", "cannot read"),
    (b"[1, 2]", "not a passersby taste export"),
    (b"[" * 100_000, "not valid JSON"),
])
def test_import_of_junk(tmp_path, store, content, match):
    path = tmp_path / "junk.json"
    path.write_bytes(content)
    with pytest.raises(TasteStoreError, match=match):
        store.import_json(path)
    with pytest.raises(TasteStoreError, match="cannot read"):
        store.import_json(tmp_path / "missing.json")


def test_import_with_a_bad_curator_override(tmp_path, store):
    _export(tmp_path, store)
    with pytest.raises(TasteStoreError, match="--curator"):
        store.import_json(tmp_path / "good.json", curator=" x ")


# ---------------------------------------------------------------- commands


def _run(*args: str):
    return CliRunner().invoke(taste_app, list(args), prog_name="passersby taste")


@pytest.mark.parametrize("command", [[], ["export"], ["import"], ["curators"]])
def test_every_command_help_has_examples(command):
    res = _run(*command, "--help")
    assert res.exit_code == 0 and "Examples:" in res.output


def test_export_import_curators_commands(tmp_path):
    home_a, home_b = tmp_path / "a", tmp_path / "b"
    home_a.mkdir()
    with TasteStore(taste_path(home_a)) as s:
        s.add("ada", z(), "like", "m")
        s.add("ada", z(), "dislike", "m")
    res = _run("curators", "--home", str(home_a))
    assert res.exit_code == 0 and res.output.startswith("ada") and "2 ratings" in res.output
    out = tmp_path / "ada.json"
    res = _run("export", "--curator", "ada", "--out", str(out), "--home", str(home_a))
    assert res.exit_code == 0 and "2 ratings" in res.output and out.is_file()
    res = _run("import", str(out), "--home", str(home_b))  # a fresh home: created
    assert res.exit_code == 0 and "imported 2 new" in res.output
    res = _run("import", str(out), "--home", str(home_b), "--curator", "ada-2")
    assert res.exit_code == 0
    res = _run("import", str(out), "--home", str(home_b))
    assert res.exit_code == 0 and "imported 0 new" in res.output
    res = _run("curators", "--home", str(home_b))
    assert [line.split()[:2] for line in res.output.splitlines()] == [["ada", "2"], ["ada-2", "2"]]


@pytest.mark.parametrize("args, match", [
    (["curators"], "no taste store here"),
    (["export", "--curator", "ada", "--out", "x.json"], "no taste store here"),
    (["import", "missing.json"], "cannot read"),
    (["--curator", ""], "--curator"),
    (["--label", "sideways"], "--label must be one of"),
])
def test_command_errors_are_one_red_line(tmp_path, args, match):
    res = _run(*args, "--home", str(tmp_path / "home"))
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and match in lines[0], res.output


def _tiny_head(model_hash: str):
    from passersby.taste.head import HeadConfig, fit_head

    zz = np.random.default_rng(0).standard_normal((200, 128))
    return fit_head(zz, np.tanh(zz[:, :12]) + 1.0, model_hash, HeadConfig(pca=4, hidden=8, epochs=2, landmarks=4))


def test_export_carries_a_built_feature_head_and_import_installs_it(tmp_path):
    from passersby.taste.head import FeatureHead, head_path

    home_a, home_b = tmp_path / "a", tmp_path / "b"
    home_a.mkdir()
    with TasteStore(taste_path(home_a)) as s:
        s.add("ada", z(), "like", "m1")
    head = _tiny_head("m1")
    head.save(head_path(home_a, "m1"))
    out = tmp_path / "ada.json"
    assert _run("export", "--curator", "ada", "--out", str(out), "--home", str(home_a)).exit_code == 0
    assert set(json.loads(out.read_text())["feature_heads"]) == {"m1"}
    res = _run("import", str(out), "--home", str(home_b))
    assert res.exit_code == 0 and "feature heads of models m1" in res.output, res.output
    back = FeatureHead.load(head_path(home_b, "m1"), "m1")
    zz = np.random.default_rng(1).standard_normal((3, 128))
    np.testing.assert_allclose(back(zz), head(zz))
    assert not [p for p in head_path(home_b, "m1").parent.iterdir() if p.name.startswith(".import-")]
    res = _run("import", str(out), "--home", str(home_b))  # the head is here already: kept, not reinstalled
    assert res.exit_code == 0 and "feature heads" not in res.output


@pytest.mark.parametrize("heads, match", [
    ({"m1": "not base64!"}, "feature_heads[m1]: not base64"),
    ({"m1": "AAAA"}, "feature_heads[m1]: not a readable feature head"),
    ("x", "feature_heads: expected an object"),
    ("other-model", "a feature head of model m2, not m1"),
])
def test_a_bad_feature_head_in_an_export_is_one_error_line_and_imports_nothing(tmp_path, heads, match):
    import base64

    from passersby.taste.head import head_path

    if heads == "other-model":
        path = tmp_path / "h.safetensors"
        _tiny_head("m2").save(path)
        heads = {"m1": base64.b64encode(path.read_bytes()).decode()}
    (tmp_path / "a").mkdir()
    with TasteStore(taste_path(tmp_path / "a")) as s:
        s.add("ada", z(), "like", "m1")
        out = tmp_path / "ada.json"
        s.export_json("ada", out, {"feature_heads": heads})
    res = _run("import", str(out), "--home", str(tmp_path / "b"))
    lines = res.output.strip().splitlines()
    assert res.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error: ") and match in lines[0], res.output
    assert not head_path(tmp_path / "b", "m1").exists()
    assert not list((tmp_path / "b" / "cache").glob(".import-*"))
    with TasteStore(taste_path(tmp_path / "b")) as s:
        assert s.curators() == []
