"""Settings + model -> a running Engine: the one place where the stream meets the model.

The engine (stream/engine.py) and the sinks never see a generator: they get, per screen, a
function that proposes anchors and a factory for a renderer. This module builds those from
the settings: the model file (default: the shipped one), its masculine/feminine latent
direction (or classes, for a conditional model), and the runtime.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch

from passersby.checkpoint import ModelInfo
from passersby.app.chain import plan_chains
from passersby.app.directions import installation_directions, screen_offsets
from passersby.model.choose import choosing_proposer
from passersby.model.direction import steered_proposer
from passersby.model.load import load_choice, load_generator, screen_steering
from passersby.home import ledger_spec, resolve_home
from passersby.runtime import make_renderer, resolve
from passersby.scratch import ScratchDir
from passersby.settings import ScreenSettings, Settings
from passersby.stream.engine import Engine, ScreenPlan
from passersby.stream.ledger import LedgerSpec
from passersby.stream.offsets import Offsets
from passersby.stream.sources import LatentWalk

if TYPE_CHECKING:
    from passersby.app.chain import ChainPlan
    from passersby.model.directions import DirectionSet
    from passersby.app.rerender import Rerenderer


@dataclass
class Installation:
    """A built engine and what it runs. `close()` removes a dry-run ledger."""

    engine: Engine
    model: ModelInfo
    runtime: str
    ledger: Path
    dry_dir: ScratchDir | None = None
    home: Path | None = None
    make_rerenderer: Callable[[], "Rerenderer"] | None = None  # built on first use (compiles models)
    _rerenderer: "Rerenderer | None" = None
    # The model's named directions (model/directions.DirectionSet: names, strips), for sliders; None: none.
    directions: "DirectionSet | None" = None
    desk: Any = None  # its app/controls.ControlDesk, set by whoever runs it live (cli_common.build_installation)

    def rerenderer(self) -> "Rerenderer":
        """The installation's Rerenderer (app/rerender.py), built once."""
        if self._rerenderer is None:
            self._rerenderer = self.make_rerenderer()
        return self._rerenderer

    def close(self) -> None:
        self.engine.stop()
        if self.dry_dir is not None:
            self.dry_dir.close()


def _taste(settings: Settings, home: Path, info: ModelInfo, g: torch.nn.Module):
    """(taste model, Exactingness knob) of the configured curator for this model, or (None, None).

    The model is what the swipe app fits from the same ratings: taste.model 'picture' (PictureTaste:
    the rated faces' true picture features, candidates' predicted by the feature head) or 'z'
    (TasteModel, linear in z).
    """
    if not settings.taste.curator:
        return None, None
    from passersby.blas import limit_blas_threads
    from passersby.taste.picture import fit_taste
    from passersby.taste.steer import Exactingness
    from passersby.taste.store import TasteStore

    path = home / "taste.sqlite"
    if not path.exists():
        raise ValueError(f"taste.curator: {path} does not exist; rate faces first with "
                         f"`passersby taste --curator {settings.taste.curator}`")
    with TasteStore(path) as store:
        z, ratings, _ids = store.ratings(settings.taste.curator, model_hash=info.hash)
    if not len(ratings):
        raise ValueError(f"taste.curator: {settings.taste.curator!r} has rated no faces of model {info.hash} in "
                         f"{path}; run `passersby taste --curator {settings.taste.curator}`")
    # The proposers score up to 64 candidates per anchor while the renderers hold both cores.
    limit_blas_threads(1)
    from passersby.taste.prior import cached_prior

    # The same prior as the swipe app's (computed there first, normally), so the same model.
    label0 = 0 if info.config.n_classes else None  # a conditional model: any class shows what moves the picture
    prior = cached_prior(home, info.hash, make_renderer(g, settings.model.runtime, settings.model.threads, label0),
                         info.config.z_dim)
    head = features = None
    if settings.taste.model == "picture":
        import logging

        from passersby.taste.features import FeatureCache, feature_cache_path, true_features
        from passersby.taste.head import cached_head

        say = logging.getLogger("passersby").warning
        render = make_renderer(g, settings.model.runtime, settings.model.threads, label0)
        # The shipped model's head ships in the package; another model's is built once (minutes).
        head = cached_head(home, info.hash, render, info.config.z_dim, on_compute=lambda why: say(
            "building the taste feature head of model %s (%s): once per model, minutes", info.hash, why))
        # What the rated faces look like: embedded by the swipe app as it showed them; a profile
        # from before that cache, or an imported one, is rendered and embedded here once (~0.1 s a face).
        with FeatureCache(feature_cache_path(home, info.hash)) as cache:
            features = true_features(z, cache, render, on_render=lambda n: say(
                "taste: embedding %d rated faces of %s not in the feature cache (once)", n, settings.taste.curator))
    return fit_taste(z, ratings, prior, head, features=features), Exactingness(settings.taste.exactingness)


def _proposal(g: torch.nn.Module, info: ModelInfo, screen: ScreenSettings, settings: Settings,
              steering: tuple, offsets: "Offsets | None", taste=None, knob=None) -> tuple[Callable, bool]:
    """How a screen draws its anchors: (rng -> latent, whether to claim ahead).

    One of three ways: a labelled screen of a model with a stored sex probe and no taste or critic
    chooses its faces near the typical face (model/choose.py); a taste or a critic steers the
    draws (taste/steer.py); otherwise plain draws, pushed along the direction for a label.
    Rendering candidates (the choice, a critic, the taste's look) would stall the screen's frames:
    those claim ahead, in the screen's claim thread.
    """
    label_index, vector, scale = steering
    m, z_dim = settings.model, info.config.z_dim
    propose = steered_proposer(z_dim, vector, scale, screen.label)
    critic = _critic(g, m.runtime, label_index, offsets) if settings.taste.min_critic > -1.0 else None
    choice = load_choice(info) if screen.label and vector is not None and m.choose > 1 else None
    if choice is not None and taste is None and critic is None:
        return choosing_proposer(z_dim, vector, choice, screen.label, m.choose,
                                 _sex_reader(g, m.runtime, choice, screen.label, offsets)), True
    if taste is None and critic is None:
        return propose, False
    return _steered_by_taste(g, propose, z_dim, settings, label_index, offsets, taste, knob, critic)


def _steered_by_taste(g: torch.nn.Module, propose: Callable, z_dim: int, settings: Settings, label_index: int | None,
                      offsets: "Offsets | None", taste, knob, critic) -> tuple[Callable, bool]:
    """The proposer steered by a taste and/or gated by a critic (taste/steer.steer), and whether it
    renders its candidates (a critic, or the taste's look: then it claims ahead)."""
    from passersby.taste.model import TasteModel
    from passersby.taste.steer import steer

    if taste is not None and offsets is not None and offsets.steps.ids:
        taste = ShiftedTaste(taste, offsets)
    k = settings.taste.rerank if getattr(taste, "true_features", False) else 0
    look = _look(g, settings.model.runtime, label_index, offsets) if k > 1 else None
    # Without a taste, every candidate is liked alike: the critic alone decides.
    steered = steer(propose, taste if taste is not None else TasteModel.empty(z_dim),
                    knob if knob is not None else 0.0, critic=critic,
                    min_critic=None if critic is None else settings.taste.min_critic,
                    look=look, rerank=k if look is not None else 0)
    return steered, critic is not None or look is not None


def _screen_plan(g: torch.nn.Module, info: ModelInfo, screen: ScreenSettings, settings: Settings,
                 taste=None, knob=None, painter=None, chain=None, directions=None) -> ScreenPlan:
    label_index, vector, scale = screen_steering(info, screen.label, f"screens.label of {screen.name!r}")
    # The screen's sliders (walk screens): shared by its source and by the critic and the taste,
    # which judge each candidate as it will be shown, moved by the sliders' targets.
    offsets = screen_offsets(screen, directions) if screen.source == "walk" else None
    propose, ahead = _proposal(g, info, screen, settings, (label_index, vector, scale), offsets, taste, knob)
    if screen.source == "peep":  # stills on a press: no chain levels, the enhancer (if any) on each face
        return ScreenPlan(name=screen.name, propose=propose, make_source=_peep_factory(g, info, settings, label_index, chain),
                          ahead=ahead)
    make = _source_factory(g, info, screen, settings, label_index, painter, offsets)
    return ScreenPlan(name=screen.name, propose=propose, make_source=_chained(make, screen, settings, chain),
                      ahead=ahead)


def _peep_factory(g: torch.nn.Module, info: ModelInfo, settings: Settings, label_index: int | None,
                  chain: "ChainPlan") -> Callable:
    """anchors -> a PeepSource: each face rendered by the generator, then the enhancer when the
    chain has it (its level for peep screens is measured like the others, at no cost: one still)."""
    from passersby.settings import peep_config
    from passersby.stream.peep import PeepSource

    m = settings.model
    levels, start = chain.levels["peep"]
    enhance = levels[start].enhance

    def build(anchors):
        render = make_renderer(g, m.runtime, m.threads, label_index)
        up = None
        if enhance:
            from passersby.runtime import make_upscaler

            up = make_upscaler(chain.enhancer, m.runtime, m.threads, chain.side)

        def render_face(z: np.ndarray):
            image = render(z)[0]
            if up is None:
                return image, []
            return up(image), [{"enhancer": chain.enhancer_hash}]

        side = chain.side * (chain.enhancer.cfg.scale if enhance else 1)
        return PeepSource(peep_config(settings), anchors, render_face, side, info.hash)

    return build


def _chained(make: Callable, screen: ScreenSettings, settings: Settings, chain: "ChainPlan") -> Callable:
    """anchors -> the source inside its chain (stream/keyframes.Keyframes, at the level measured
    for its kind of source in `chain`, app/chain.plan_chains)."""
    from passersby.app.chain import HEADROOM, EnhanceStage
    from passersby.runtime import make_upscaler
    from passersby.stream.keyframes import chain as keyframes

    levels, start = chain.levels[screen.source]
    m = settings.model

    def build(anchors):
        stage = None
        if any(lv.enhance for lv in levels):
            stage = EnhanceStage(make_upscaler(chain.enhancer, m.runtime, m.threads, chain.side), chain.enhancer_hash)
        spec = [((stage,) if lv.enhance else (), lv.every) for lv in levels]
        return keyframes(make(anchors), spec, budget=HEADROOM / settings.walk.fps if chain.realtime else None,
                         patience=round(3 * settings.walk.fps), start_level=start,
                         raise_after=settings.enhancer.raise_after or None)

    return build


def _source_factory(g: torch.nn.Module, info: ModelInfo, screen: ScreenSettings, settings: Settings,
                    label_index: int | None, painter, offsets: "Offsets | None" = None) -> Callable:
    """anchors -> the screen's frame source: the latent walk (steered by `offsets`), or the
    feedback loop (`painter`: (Painter, ModelInfo), loaded once for all feedback screens)."""
    m = settings.model
    if screen.source == "feedback":
        from passersby.app.feedback import face_found, loop_step
        from passersby.settings import feedback_config
        from passersby.stream.feedback import FeedbackLoop

        net, pinfo, k = painter
        models = {"generator": info.hash, "painter": pinfo.hash}
        return lambda anchors: FeedbackLoop(feedback_config(settings, k), anchors,
                                            make_renderer(g, m.runtime, m.threads, label_index),
                                            loop_step(net, m.runtime, m.threads),
                                            face_found, models)
    return lambda anchors: LatentWalk(settings.walk, anchors, make_renderer(g, m.runtime, m.threads, label_index),
                                      info.hash, offsets)


def _painter(settings: Settings, realtime: bool = True):
    """(Painter, ModelInfo, frames per painting, seconds per painting) when a screen is a
    feedback loop, else None. The frames per painting are measured here unless set (offline,
    not realtime: a painting every frame)."""
    if not any(s.source == "feedback" for s in settings.screens):
        return None
    from passersby.app.feedback import choose_step_every, loop_step, painter_path
    from passersby.model.load import load_painter

    net, info = load_painter(painter_path(settings.feedback.painter))
    m, f = settings.model, settings.feedback
    k, seconds = choose_step_every(loop_step(net, m.runtime, m.threads), net.cfg.resolution, settings.walk.fps,
                                   f.crossfade / settings.walk.tempo, f.step_every or (0 if realtime else 1))
    return net, info, k, seconds


def _as_shown(z: np.ndarray, offsets: "Offsets | None") -> np.ndarray:
    """Latent(s) moved by the screen's slider targets: the face as it will be shown."""
    delta = offsets.delta() if offsets is not None else None
    return z if delta is None else z + delta


# Candidates (the screens' choice, a critic, the taste's look) are rendered in background threads
# (a screen's claim thread, an edition's lease worker) beside the screens' own renderers. Two
# OpenVINO renderers called from two such threads at once hung for good: both claim threads stuck
# copying their input into their infer requests, a benchmark's installation waiting for its first
# faces (benchmarks/memory_soak.py under load, 1 start in ~40; stacks in docs/operations/
# claim-hang-openvino.txt). So candidates render with the fused generator in PyTorch, which runs
# in any number of threads (4 faces: 46 ms against OpenVINO's 37 ms on the AVX-512 machine).
CANDIDATE_RUNTIME = "torch-fused"


def _candidate_renderer(g: torch.nn.Module, runtime: str, label_index: int | None):
    """The renderer a background thread judges candidates with: PyTorch (fused), or the GPU's
    where the installation renders there."""
    return make_renderer(g, runtime if resolve(runtime) == "cuda" else CANDIDATE_RUNTIME, 1, label_index)


def _critic(g: torch.nn.Module, runtime: str, label_index: int | None,
            offsets: "Offsets | None" = None) -> Callable[[np.ndarray], float]:
    """z -> the face detector's score of the rendered face (data/faces.face_score), moved by the
    screen's slider targets first (the face as it will be shown). Its own renderer: it runs
    inside the ledger claim, in the screen's claim-ahead thread (or, on an edition's console, in
    the lease worker thread: stream/ledger/leased.py), never in two at once."""
    from passersby.data.faces import face_score

    render = _candidate_renderer(g, runtime, label_index)

    def score(z: np.ndarray) -> float:
        z = np.asarray(z, np.float32)
        return face_score(render(_as_shown(z, offsets)[None])[0])

    return score


def _sex_reader(g: torch.nn.Module, runtime: str, choice, label: str,
                offsets: "Offsets | None" = None) -> Callable[[np.ndarray], np.ndarray]:
    """model/choose.sex_reader on each candidate as it will be shown (moved by the slider
    targets). Its own renderer and feature extractor: it runs inside the ledger claim, in the
    screen's claim-ahead thread."""
    from passersby.metrics.features import FeatureExtractor
    from passersby.model.choose import sex_reader

    render = _candidate_renderer(g, runtime, None)
    return sex_reader(lambda z: render(_as_shown(z, offsets)), FeatureExtractor(), choice, label)


def _look(g: torch.nn.Module, runtime: str, label_index: int | None,
          offsets: "Offsets | None" = None) -> Callable[[np.ndarray], np.ndarray]:
    """(k, z_dim) candidates -> (k, 1280) the true features of their faces as they will be shown
    (moved by the slider targets), for the taste's re-rank (taste/steer.ranked). Its own renderer
    and feature extractor: it runs inside the ledger claim, in the screen's claim-ahead thread."""
    from passersby.metrics.features import FeatureExtractor
    from passersby.taste.features import EMBED_BATCH, embed

    render = _candidate_renderer(g, runtime, label_index)
    fx = FeatureExtractor(batch_size=EMBED_BATCH)  # built once: the network is the slow part to load

    def look(z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, np.float32)
        return embed(render(_as_shown(z, offsets)), fx)

    return look


class ShiftedTaste:
    """A taste (TasteModel, PictureTaste) that judges each candidate anchor moved by a screen's
    slider targets (stream/offsets.Offsets.delta): the face as it will be shown.

    Example:
        >>> from passersby.taste.model import TasteModel
        >>> ShiftedTaste(TasteModel.empty(4), Offsets()).prob(np.zeros((2, 4))).shape
        (2,)
    """

    def __init__(self, taste, offsets: "Offsets") -> None:
        self.taste, self.offsets = taste, offsets

    def prob(self, z: np.ndarray) -> np.ndarray:
        delta = self.offsets.delta()
        return self.taste.prob(z if delta is None else np.asarray(z) + delta)

    def prob_seen(self, z: np.ndarray, features: np.ndarray) -> np.ndarray:
        """Rendered candidates (the look renders them moved, as shown): their z moved too."""
        delta = self.offsets.delta()
        return self.taste.prob_seen(z if delta is None else np.asarray(z) + delta, features)

    def __getattr__(self, name: str):
        return getattr(self.taste, name)


def build(settings: Settings, home: Path | None = None, dry_ledger: bool = False, realtime: bool = True) -> Installation:
    """Load the model and build (not start) the engine for `settings`.

    Args:
        settings: resolved settings (settings.load_settings).
        home: installation home (None: settings.stream.home, $PASSERSBY_HOME, per-user dir).
        dry_ledger: draw anchors from a throwaway ledger in a temp dir: the real ledger is
            neither read nor written, no face is used up.
        realtime: False for offline rendering: every screen's largest chain, never lowered,
            whatever this machine's speed (app/chain.plan_chains).

    Example:
        >>> inst = build(load_settings(None))  # builds and runs the whole installation  # doctest: +SKIP
        >>> inst.engine.start()  # builds and runs the whole installation  # doctest: +SKIP
    """
    home = resolve_home(home or (Path(settings.stream.home) if settings.stream.home else None))
    g, info = load_generator(settings.model.path or None)
    g = g.float().eval()  # stored fp16; this CPU computes in fp32
    runtime = resolve(settings.model.runtime)
    if runtime in ("torch", "torch-fused", "compile"):
        torch.set_num_threads(settings.model.threads)
    dry_dir = ScratchDir("passersby-dry-") if dry_ledger else None  # a killed dry run's goes at the next
    # A dry run never touches the real ledger, not even an edition's shared one.
    spec = LedgerSpec(dry_dir.path / "ledger.sqlite") if dry_dir else ledger_spec(settings, home)
    path = spec.path
    path.parent.mkdir(parents=True, exist_ok=True)
    taste, knob = _taste(settings, home, info, g)
    painter = _painter(settings, realtime)
    chain = plan_chains(settings, g, info, painter, realtime)
    directions = installation_directions(settings, info)
    plans = [_screen_plan(g, info, s, settings, taste, knob, painter and painter[:3], chain, directions)
             for s in settings.screens]
    seed = None if settings.stream.seed < 0 else settings.stream.seed
    status = {"model": info.path.name, "model_hash": info.hash, "runtime": runtime, "home": str(home),
              "dry_ledger": dry_ledger, "ledger": spec.describe()}
    if painter is not None:
        status.update(painter=painter[1].path.name, painter_hash=painter[1].hash,
                      sources={sc.name: sc.source for sc in settings.screens},
                      feedback_step_every=painter[2], feedback_step_ms=round(1000 * painter[3], 1))
        if painter[2] > 1 and not settings.feedback.step_every:
            import logging

            logging.getLogger("passersby").warning(
                "feedback: one painting takes %.0f ms here; painting every %d frames (the frames between are "
                "blends) to keep %.0f fps", 1000 * painter[3], painter[2], settings.walk.fps)
    status.update(enhancer=chain.enhancer_hash, chain_start=chain.summary)
    if directions is not None:
        status.update(directions=list(directions.names), directions_digest=directions.steps().digest)
    if taste is not None:
        status.update(curator=settings.taste.curator, taste_ratings=taste.n)
    if settings.taste.min_critic > -1.0:
        status.update(min_critic=settings.taste.min_critic)
    engine = Engine(plans, settings.walk.fps, spec, info.config.z_dim, info.hash, settings.stream.queue, seed,
                    info=status, exactingness=knob)
    make = lambda: _rerenderer(settings, g, info, painter, chain, spec, directions)  # noqa: E731 - deferred
    return Installation(engine, info, runtime, path, dry_dir, home, make, directions=directions)


def _rerenderer(settings: Settings, g: torch.nn.Module, info: ModelInfo, painter, chain: "ChainPlan", ledger: LedgerSpec,
                directions=None):
    """A Rerenderer with this installation's models, runtime, ledger (read-only) and directions."""
    from passersby.app.rerender import Rerenderer

    m = settings.model
    screens = {s.name: s for s in settings.screens}
    models = {"generator": info.hash}
    step = upscale = None
    if painter is not None:
        from passersby.app.feedback import loop_step

        step, models["painter"] = loop_step(painter[0], m.runtime, m.threads), painter[1].hash
    if chain.enhancer is not None:
        from passersby.runtime import make_upscaler

        upscale, models["enhancer"] = make_upscaler(chain.enhancer, m.runtime, m.threads, chain.side), chain.enhancer_hash

    def anchor_of(anchor_id: int) -> np.ndarray:
        with ledger.open_existing() as led:
            return led.anchor(anchor_id)

    def render_for(screen: str):
        if screen not in screens:
            from passersby.app.rerender import RerenderError

            raise RerenderError(f"no screen {screen!r} in this installation ({', '.join(screens)})")
        return make_renderer(g, m.runtime, m.threads, screen_steering(info, screens[screen].label)[0])

    return Rerenderer(models, render_for, anchor_of, step, upscale,
                      directions=None if directions is None else directions.steps())
