"""`passersby taste`: the swipe app that learns a curator's taste, and its ratings' files.

Registered in passersby.cli as ``app.add_typer(taste_app, name="taste")``.
"""

from __future__ import annotations

import datetime as dt
import signal
import threading
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import typer

taste_app = typer.Typer(
    invoke_without_command=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)  # its help is taste_main's docstring

HOME = typer.Option(None, "--home", help="Installation home (default: stream.home of the settings, "
                                         "$PASSERSBY_HOME, else the per-user data dir).")
CONFIG = typer.Option(None, "--config", help="Settings file, the same as `show` reads (default: ./passersby.toml, "
                                             "else <home>/passersby.toml): its model and runtime are rated.")
LABELS = ("any", "feminine", "masculine")


def _fail(e: Any) -> None:
    typer.secho(f"error: {e}", fg="red", err=True)
    raise typer.Exit(1)


def _settings(config: Optional[Path], home: Optional[Path]):
    """(Settings, home): the installation's own, so the swipe app rates what the stream shows."""
    from passersby.settings import SettingsError, settings_and_home

    try:
        return settings_and_home(config, home)
    except SettingsError as e:
        _fail(e)


def _open_store(home: Path, create: bool):
    from passersby.taste.store import TasteStore, TasteStoreError, taste_path

    path = taste_path(home)
    try:
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        return TasteStore(path, create=create)
    except (TasteStoreError, OSError) as e:
        _fail(e)


def _when(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


# ---------------------------------------------------------------- the app


def _faces(model: Optional[Path], label: str, runtime: str) -> tuple[Callable, Callable, str]:
    """(renderer, proposer, model hash) for the faces of one screen (`label`) of `model`."""
    from passersby.model.direction import steered_proposer
    from passersby.model.load import load_generator, screen_steering
    from passersby.runtime import make_renderer

    g, info = load_generator(model)
    steer = "" if label == "any" else label
    # A conditional model's faces are always one class here: every rating is of a screen's face.
    label_index, vector, scale = screen_steering(info, steer, "--label", between_classes=False)
    renderer = make_renderer(g, runtime, threads=1, label=label_index)
    return renderer, steered_proposer(info.config.z_dim, vector, scale, steer), info.hash


@taste_app.callback()
def taste_main(
    ctx: typer.Context,
    curator: str = typer.Option("curator", "--curator", help="Whose taste: each curator has their own profile."),
    home: Optional[Path] = HOME,
    config: Optional[Path] = CONFIG,
    model: Optional[Path] = typer.Option(None, "--model", help="Generator .safetensors (default: model.path of the "
                                         "settings, else the shipped model)."),
    label: str = typer.Option("any", "--label", help="Which screen's faces to rate: feminine, masculine or any."),
    port: int = typer.Option(8766, "--port", min=0, max=65535, help="Port of the app."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address (default loopback; rating always needs the token)."),
    token: Optional[str] = typer.Option(None, "--token", help="Token for rating (default: a random one)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the faces shown (default: fresh each run)."),
    runtime: Optional[str] = typer.Option(None, "--runtime", help="auto, openvino, onnxruntime, torch-fused, torch "
                                          "(default: model.runtime of the settings)."),
) -> None:
    """Teach the installation a curator's taste: rate faces in the browser, the model learns.

    Without a subcommand: serves the swipe app and prints its address with the token; open it
    on a phone, tablet or desktop. Keys: right/L like, left/D dislike, up superlike, down/space
    skip; or swipe the face. Ratings go to <home>/taste.sqlite. Ctrl-C stops.

    Examples:
        passersby taste --curator ada
        passersby taste --curator ada --label feminine --port 9000
        passersby taste --curator ada --host 0.0.0.0 --token s3cret
        passersby taste export --curator ada --out ada-taste.json
        passersby taste curators
    """
    if ctx.invoked_subcommand is not None:
        return
    from passersby.checkpoint import CheckpointError
    from passersby.taste.store import TasteStoreError, check_curator

    if label not in LABELS:
        _fail(f"--label must be one of {list(LABELS)}, got {label!r}")
    try:
        check_curator(curator)
    except ValueError as e:
        _fail(f"--curator: {e}")
    settings, home_dir = _settings(config, home)
    model = model or (Path(settings.model.path) if settings.model.path else None)
    runtime = runtime or settings.model.runtime
    store = _open_store(home_dir, create=True)
    try:
        renderer, propose, model_hash = _faces(model, label, runtime)
        from passersby.taste.prior import cached_prior

        dim = int(np.asarray(propose(np.random.default_rng(0))).shape[0])
        prior = cached_prior(home_dir, model_hash, renderer, dim, on_compute=lambda: typer.echo(
            "learning which latent directions change the picture (once per model, ~20 s)..."))
        head = features = None
        if settings.taste.model == "picture":  # the stream fits the same model (app/installation.py)
            from passersby.taste.features import FeatureCache, feature_cache_path
            from passersby.taste.head import cached_head

            head = cached_head(home_dir, model_hash, renderer, dim, on_compute=lambda why: typer.echo(
                f"learning what this model's faces look like from their latents (once per model, "
                f"minutes): {why}"))
            features = FeatureCache(feature_cache_path(home_dir, model_hash))
        try:
            _serve(store, renderer, propose, model_hash, curator, host, port, token, seed, label, prior, head,
                   features)
        finally:
            if features is not None:
                features.close()
    except OSError as e:  # the address: "cannot listen on 127.0.0.1:8766: Address already in use"
        _fail(f"{e.strerror or e}; try another --port")
    except (CheckpointError, TasteStoreError, ValueError, RuntimeError) as e:
        _fail(e)
    finally:
        store.close()


def _serve(store, renderer, propose, model_hash: str, curator: str, host: str, port: int,
           token: Optional[str], seed: Optional[int], label: str, prior=None, head=None, features=None) -> None:
    from passersby.taste.server import TasteServer

    server = TasteServer(store, renderer, propose, model_hash, curator, host=host, port=port, token=token,
                         seed=seed, label="" if label == "any" else label, prior=prior, head=head,
                         feature_cache=features)
    server.start()
    quit_event = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: quit_event.set())
    typer.echo(f"taste: curator {curator}, {label} faces, model {model_hash[:12]}")
    typer.echo(f"  rate here:  {server.control_url}")
    typer.echo(f"  look only:  {server.url}")
    typer.echo("  Ctrl-C stops.")
    try:
        while not quit_event.wait(0.5):
            pass
    finally:
        server.stop()
    typer.echo(f"taste: stopped; {server.deck.progress()['rated']} ratings by {curator} for this model")


# ---------------------------------------------------------------- files


@taste_app.command("export")
def export_command(
    curator: str = typer.Option(..., "--curator", help="Whose ratings."),
    out: Path = typer.Option(..., "--out", help="JSON file to write (atomically)."),
    home: Optional[Path] = HOME,
    config: Optional[Path] = CONFIG,
) -> None:
    """Write a curator's ratings (latents, ratings, models, times) to a JSON file.

    The file also carries the feature heads (taste/head.py) built here for the rated models, so
    the picture taste is the same wherever it is imported (the shipped model's head ships with
    passersby and is not copied).

    Examples:
        passersby taste export --curator ada --out ada-taste.json
        passersby taste export --curator ada --out /media/usb/ada.json --home /srv/gallery
    """
    from passersby.taste.store import TasteStoreError

    from passersby.taste.head import heads_for_export

    home_dir = _settings(config, home)[1]
    with _open_store(home_dir, create=False) as store:
        try:
            hashes = {r["model_hash"] for r in store.export_dict(curator)["ratings"]}
            n = store.export_json(curator, out, {"feature_heads": heads_for_export(home_dir, hashes)})
        except (TasteStoreError, ValueError) as e:
            _fail(e)
    typer.echo(f"wrote {out}: {n} ratings by {curator}")


@taste_app.command("import")
def import_command(
    file: Path = typer.Argument(..., help="A file written by `passersby taste export`."),
    curator: Optional[str] = typer.Option(None, "--curator", help="File the ratings under this name "
                                                                  "(default: the file's curator)."),
    home: Optional[Path] = HOME,
    config: Optional[Path] = CONFIG,
) -> None:
    """Add the ratings of an export file; ratings already here are skipped, so twice is harmless.

    Examples:
        passersby taste import ada-taste.json
        passersby taste import ada-taste.json --curator ada-2 --home /srv/gallery
    """
    from passersby.taste.store import TasteStoreError

    from passersby.taste.head import install_heads
    from passersby.taste.store import _load_export

    home_dir = _settings(config, home)[1]
    with _open_store(home_dir, create=True) as store:
        try:
            data = _load_export(Path(file))
            # The heads first: a bad one rejects the file before any rating is added.
            heads = install_heads(home_dir, data.get("feature_heads") if isinstance(data, dict) else None, str(file))
            n = store.import_json(file, curator=curator)
        except (TasteStoreError, ValueError) as e:
            _fail(e)
    typer.echo(f"imported {n} new ratings from {file} (ratings already here are skipped)"
               + (f"; feature heads of models {', '.join(heads)}" if heads else ""))


@taste_app.command("curators")
def curators_command(home: Optional[Path] = HOME, config: Optional[Path] = CONFIG) -> None:
    """List the curators with ratings: how many, and when they last rated.

    Examples:
        passersby taste curators
        passersby taste curators --home /srv/gallery
    """
    with _open_store(_settings(config, home)[1], create=False) as store:
        rows = store.curators()
    if not rows:
        typer.echo(f"no ratings yet in {store.path}")
        return
    width = max(len(name) for name, _, _ in rows)
    for name, count, last in rows:
        typer.echo(f"{name:<{width}}  {count:>6} ratings  last {_when(last)}")
