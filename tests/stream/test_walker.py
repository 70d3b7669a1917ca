"""The latent walk: exact at anchors, smooth across them, on the typical shell, restartable, bounded."""

from __future__ import annotations

import json

import numpy as np
import pytest

from passersby.stream.walker import STYLES, Walker, WalkConfig, anchor_ids, drift_anchor, frame_latent

D = 128  # the default model's z_dim
# 2 s at 30 fps: 60 frames an anchor keeps long runs fast; the shape of the path does not
# depend on tempo (it is a function of t / tempo), only the frame spacing does.
FAST = dict(tempo=2.0, fps=30.0)
FPA = 60  # frames per anchor under FAST

try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # not a test dependency of passersby; the property tests run where it is
    given = None


class Source:
    """Anchor i is a pure function of (seed, i), so a source can be resumed at any anchor."""

    def __init__(self, seed: int = 0, d: int = D, start: int = 0) -> None:
        self.seed, self.d, self.next_id = seed, d, start
        self.drawn: dict[int, np.ndarray] = {}

    def __call__(self) -> np.ndarray:
        z = anchor(self.seed, self.next_id, self.d)
        self.drawn[self.next_id] = z
        self.next_id += 1
        return z


def anchor(seed: int, i: int, d: int = D) -> np.ndarray:
    return np.random.default_rng([seed, i]).standard_normal(d).astype(np.float32)


def walker(style: str, seed: int = 0, **cfg) -> Walker:
    return Walker(WalkConfig(style=style, **{**FAST, **cfg}), Source(seed), np.random.default_rng(seed + 100))


def run(w: Walker, frames: range) -> np.ndarray:
    return np.stack([w.latent(n) for n in frames]).astype(np.float64)


@pytest.fixture(scope="module")
def long_runs() -> dict[str, tuple[np.ndarray, Walker]]:
    """40 anchors of frames per style (shared: the slowest thing in this file, ~1 s)."""
    out = {}
    for style in STYLES:
        w = walker(style)
        out[style] = run(w, range(40 * FPA + 1)), w
    return out


def steps(z: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.diff(z, axis=0), axis=1)


# --- configuration ---------------------------------------------------------------------------

def test_config_round_trips_and_defaults() -> None:
    cfg = WalkConfig()
    assert (cfg.style, cfg.tempo, cfg.fps, cfg.frames_per_anchor) == ("spline", 6.0, 30.0, 180.0)
    assert WalkConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


@pytest.mark.parametrize("field, value", [
    ("style", "linear"), ("tempo", 0.0), ("tempo", -6.0), ("tempo", float("nan")), ("fps", 0),
    ("fps", float("inf")), ("tempo", True), ("tempo", "6"), ("drift_speed", 0.0), ("drift_speed", 1.5),
    ("tangent_scale", 0.0), ("tangent_scale", 2.5),
])
def test_bad_config_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        WalkConfig(**{field: value})


def test_an_anchor_must_last_a_frame_and_unknown_fields_are_refused() -> None:
    with pytest.raises(ValueError, match="tempo"):
        WalkConfig(tempo=0.01, fps=30.0)
    with pytest.raises(ValueError, match="speed"):
        WalkConfig.from_dict({"speed": 1.0})


# --- the pure function -------------------------------------------------------------------------

@pytest.mark.parametrize("style", STYLES)
def test_frame_latent_is_exactly_the_anchor_at_anchor_times(style: str) -> None:
    a = np.stack([anchor(1, i) for i in range(6)])
    cfg = WalkConfig(style=style, tempo=6.0)
    for i in range(6):
        z = frame_latent(a, i * 6.0, cfg)
        assert z.dtype == np.float32 and z.shape == (D,)
        np.testing.assert_array_equal(z, a[i])


@pytest.mark.parametrize("style", STYLES)
def test_frame_latent_is_pure(style: str) -> None:
    a = np.stack([anchor(2, i) for i in range(5)])
    before = a.copy()
    cfg = WalkConfig(style=style)
    first = [frame_latent(a, t, cfg) for t in np.linspace(0, 24, 97)]
    again = [frame_latent(a, t, cfg) for t in np.linspace(0, 24, 97)]
    np.testing.assert_array_equal(np.stack(first), np.stack(again))
    np.testing.assert_array_equal(a, before)


def test_frame_latent_refuses_bad_input() -> None:
    a = np.stack([anchor(0, i) for i in range(3)])
    cfg = WalkConfig()
    for t in (-0.1, 12.1):
        with pytest.raises(ValueError, match="t must be"):
            frame_latent(a, t, cfg)
    with pytest.raises(ValueError, match="k >= 2"):
        frame_latent(a[:1], 0.0, cfg)
    with pytest.raises(ValueError, match="non-zero"):
        frame_latent(np.zeros((3, D)), 3.0, cfg)


def test_renormalisation_keeps_midpoints_on_the_shell_where_a_blend_shrinks() -> None:
    a = np.stack([anchor(3, i) for i in range(4)])
    for style in ("spline", "slerp"):
        mid = frame_latent(a, 9.0, WalkConfig(style=style))  # half-way between anchors 1 and 2
        lo, hi = np.linalg.norm(a[1:3], axis=1).min(), np.linalg.norm(a[1:3], axis=1).max()
        assert lo - 1e-4 <= np.linalg.norm(mid) <= hi + 1e-4
    assert np.linalg.norm((a[1] + a[2]) / 2) < 0.8 * np.sqrt(D)  # what it would be without


def test_antipodal_anchors_do_not_divide_by_zero() -> None:
    a = np.stack([anchor(4, 0), -anchor(4, 0), anchor(4, 0)])
    for style in STYLES:
        z = np.stack([frame_latent(a, t, WalkConfig(style=style)) for t in np.linspace(0, 12, 49)])
        assert np.all(np.isfinite(z)) and np.all(np.linalg.norm(z, axis=1) > 0.5 * np.sqrt(D))


def test_drift_anchor_is_a_stationary_step_toward_the_target() -> None:
    rng = np.random.default_rng(5)
    w = rng.standard_normal((1000, D))
    for _ in range(50):  # stays N(0, I): no shrinking toward the origin over many steps
        w = drift_anchor(w, rng.standard_normal(w.shape), 0.3)
    assert abs(w.var() - 1.0) < 0.02
    prev, target = anchor(5, 0).astype(np.float64), anchor(5, 1).astype(np.float64)
    nxt = drift_anchor(prev, target, 0.3)
    assert np.linalg.norm(nxt - target) < np.linalg.norm(prev - target)


# --- smoothness over long walks -----------------------------------------------------------------

@pytest.mark.parametrize("style", STYLES)
def test_no_frame_to_frame_step_is_a_jump(style: str, long_runs) -> None:
    z, _ = long_runs[style]
    s = steps(z)
    ratio = s.max() / np.median(s)
    assert ratio < 2.5, ratio  # measured here: spline 1.9, slerp 1.6, drift 1.45
    if style != "slerp":  # slerp rests at anchors by design; the splines keep moving
        assert s.min() / np.median(s) > 0.4  # no freeze (measured ~0.54)


@pytest.mark.parametrize("style", STYLES)
def test_no_seam_at_anchors(style: str, long_runs) -> None:
    z, _ = long_runs[style]
    s = steps(z)  # s[n] is the step from frame n to n + 1
    med = np.median(s)
    for i in range(1, 40):
        f = i * FPA
        before, after = s[f - 1], s[f]
        around = s[[f - 3, f - 2, f + 1, f + 2]]
        if style == "slerp":  # C1 by resting: both sides ~0
            assert max(before, after) < 0.1 * med  # measured ~0.05 at 60 frames an anchor
        else:
            assert 0.8 < before / after < 1.25
            assert around.min() / 1.25 < before < around.max() * 1.25


@pytest.mark.parametrize("style", ["spline", "drift"])
def test_velocity_is_continuous_through_anchors(style: str, long_runs) -> None:
    """C1: the finite-difference velocities on both sides of an anchor agree, as well as they
    do inside a segment; a path with a corner (plain linear blending) fails the same check."""
    z, _ = long_runs[style]

    def mismatch(z: np.ndarray, f: int) -> float:
        v_in, v_out = z[f] - z[f - 1], z[f + 1] - z[f]
        return float(np.linalg.norm(v_out - v_in) / np.linalg.norm(v_out + v_in) * 2)

    at_anchors = max(mismatch(z, i * FPA) for i in range(1, 40))
    inside = max(mismatch(z, i * FPA + FPA // 3) for i in range(1, 40))
    assert at_anchors < 0.1 and at_anchors < 2 * inside, (at_anchors, inside)
    a = np.stack([anchor(6, i) for i in range(3)]).astype(np.float64)
    corner = np.stack([a[0] + (a[1] - a[0]) * f / FPA for f in range(FPA)]
                      + [a[1] + (a[2] - a[1]) * f / FPA for f in range(FPA)])
    assert mismatch(corner, FPA) > 1.0


@pytest.mark.parametrize("style", STYLES)
def test_norms_stay_on_the_typical_shell(style: str, long_runs) -> None:
    z, w = long_runs[style]
    norms = np.linalg.norm(z, axis=1)
    assert norms.min() > 0.8 * np.sqrt(D) and norms.max() < 1.2 * np.sqrt(D)
    if style != "drift":  # each frame's radius is within its anchors' (spline: measured <= 1.4% out)
        radii = np.linalg.norm(np.stack([w._source.drawn[i] for i in range(42)]), axis=1)
        for n in range(0, 40 * FPA, 7):
            ids = list(w.anchor_ids(n))
            assert radii[ids].min() * 0.97 < norms[n] < radii[ids].max() * 1.03


# --- the walker ---------------------------------------------------------------------------------

@pytest.mark.parametrize("style", STYLES)
def test_walker_is_deterministic_and_passes_through_anchors(style: str, long_runs) -> None:
    z, w = long_runs[style]
    np.testing.assert_array_equal(run(walker(style), range(0, 6 * FPA, 11)), z[0 : 6 * FPA : 11])
    if style != "drift":  # drift's anchors are stepped from the source's first one
        for i in range(40):
            np.testing.assert_array_equal(z[i * FPA], w._source.drawn[i])
    assert not np.array_equal(run(walker(style, seed=1), range(FPA // 2, FPA)), z[FPA // 2 : FPA])


@pytest.mark.parametrize("style", STYLES)
def test_walker_rebuilt_from_state_continues_identically(style: str) -> None:
    w = walker(style)
    run(w, range(0, 5 * FPA + 17))
    state = json.loads(json.dumps(w.state()))  # JSON-able, and survives the trip
    rebuilt = Walker.from_state(state, Source(0, start=state["next_anchor_id"]))
    later = range(5 * FPA + 17, 12 * FPA, 5)
    np.testing.assert_array_equal(run(rebuilt, later), run(w, later))


@pytest.mark.parametrize("style", STYLES)
def test_jumping_ahead_gives_the_same_frames_as_walking(style: str, long_runs) -> None:
    z, _ = long_runs[style]
    w = walker(style)
    for n in (25 * FPA + 13, 40 * FPA):
        np.testing.assert_array_equal(w.latent(n), z[n].astype(np.float32))
    assert w.window[1] <= 4


@pytest.mark.parametrize("style", STYLES)
def test_memory_is_bounded(style: str) -> None:
    w = Walker(WalkConfig(style=style, tempo=1.0, fps=2.0), Source(7), np.random.default_rng(7))
    sizes = []
    for n in range(2 * 1000):
        w.latent(n)
        sizes.append(w.window[1])
    assert w.next_anchor_id >= 1000
    assert max(sizes[20:]) == min(sizes[20:]) == (2 if style == "slerp" else 4)
    assert len(json.dumps(w.state())) < 20_000


@pytest.mark.parametrize("style", STYLES)
def test_frame_key_reproduces_the_frame(style: str) -> None:
    w = walker(style, seed=8)
    drawn: dict[int, np.ndarray] = {}
    for n in list(range(0, 3 * FPA, 7)) + [3 * FPA, 9 * FPA + 1, 20 * FPA + 59]:
        z = w.latent(n)
        first, count = w.window
        drawn.update({i: w.anchor(i) for i in range(first, first + count)})
        key = json.loads(json.dumps(w.frame_key(n)))
        assert key["frame"] == n and tuple(key["anchor_ids"]) == w.anchor_ids(n)
        again = frame_latent(np.stack([drawn[i] for i in key["anchor_ids"]]), key["t"],
                             WalkConfig.from_dict(key["walk"]))
        np.testing.assert_array_equal(again, z)
        assert w.anchors_needed_until(n) == key["anchor_ids"][-1] + 1 <= w.next_anchor_id


def test_anchor_ids_and_needs() -> None:
    cfg = WalkConfig()  # 180 frames an anchor
    assert anchor_ids(0, cfg) == (0, 1, 2) and anchor_ids(179, cfg) == (0, 1, 2)
    assert anchor_ids(180, cfg) == (0, 1, 2, 3) and anchor_ids(360, cfg) == (1, 2, 3, 4)
    assert anchor_ids(360, WalkConfig(style="slerp")) == (2, 3)
    assert Walker(cfg, Source()).anchors_needed_until(360) == 5
    with pytest.raises(ValueError, match="frame_index"):
        anchor_ids(-1, cfg)
    with pytest.raises(ValueError, match="frame_index"):
        anchor_ids(1.5, cfg)  # type: ignore[arg-type]


def test_walker_refuses_dropped_frames_bad_anchors_and_a_bad_rng() -> None:
    w = walker("spline")
    w.latent(10 * FPA)
    with pytest.raises(ValueError, match="dropped"):
        w.latent(0)
    with pytest.raises(ValueError, match="not in the window"):
        w.anchor(0)
    with pytest.raises(ValueError, match="rng"):
        Walker(WalkConfig(style="drift"), Source(), 7)  # type: ignore[arg-type]
    bad = iter([np.zeros(D), np.ones(D)])
    with pytest.raises(ValueError, match="anchor_source"):
        Walker(WalkConfig(), lambda: next(bad)).latent(0)
    shapes = iter([np.ones(D), np.ones(D + 1)])
    with pytest.raises(ValueError, match="anchor_source"):
        Walker(WalkConfig(), lambda: next(shapes)).latent(0)
    with pytest.raises(ValueError, match="version"):
        Walker.from_state({**w.state(), "version": 0}, Source())


# --- properties (hypothesis, where installed) ---------------------------------------------------

if given is not None:

    @settings(max_examples=60, deadline=None)
    @given(style=st.sampled_from(STYLES), seed=st.integers(0, 2**16), k=st.integers(2, 6),
           d=st.sampled_from([2, 3, 16, 128]), frac=st.floats(0, 1), tempo=st.floats(0.1, 20))
    def test_property_frames_are_finite_and_on_the_shell(style, seed, k, d, frac, tempo) -> None:
        a = np.random.default_rng(seed).standard_normal((k, d)).astype(np.float32)
        cfg = WalkConfig(style=style, tempo=tempo, fps=max(30.0, 1 / tempo))
        t = frac * (k - 1) * tempo
        z = frame_latent(a, t, cfg)
        radii = np.linalg.norm(a, axis=1)
        assert np.all(np.isfinite(z))
        assert 0.5 * radii.min() <= np.linalg.norm(z) <= 2 * radii.max()  # spline overshoot is mild
        i = int(round(frac * (k - 1)))
        np.testing.assert_array_equal(frame_latent(a, i * tempo, cfg), a[i])

    @settings(max_examples=40, deadline=None)
    @given(style=st.sampled_from(STYLES), seed=st.integers(0, 2**16), tempo=st.floats(0.05, 10),
           fps=st.floats(1, 120), n=st.integers(0, 5000))
    def test_property_frame_key_reproduces_any_frame(style, seed, tempo, fps, n) -> None:
        if tempo * fps < 1:
            return
        w = Walker(WalkConfig(style=style, tempo=tempo, fps=fps), Source(seed, d=16), np.random.default_rng(seed))
        z = w.latent(n)
        key = w.frame_key(n)
        a = np.stack([w.anchor(i) for i in key["anchor_ids"]])
        np.testing.assert_array_equal(frame_latent(a, key["t"], w.cfg), z)

else:

    @pytest.mark.skip(reason="hypothesis is not installed")
    def test_property_tests_need_hypothesis() -> None:
        pass


def test_drift_without_rng_takes_its_targets_from_the_source() -> None:
    """So a ledger sees every fresh draw: anchor k = drift_anchor(anchor k-1, k-th draw)."""
    src = Source(5)
    w = Walker(WalkConfig(style="drift"), src)
    w.latent(3 * FPA)
    drawn = [np.asarray(src.drawn[k], np.float64) for k in sorted(src.drawn)]
    n = w.next_anchor_id
    assert n == len(drawn) >= 4  # one source call per anchor, targets included
    expect = drawn[0]
    for k in range(1, n):
        expect = drift_anchor(expect, drawn[k], 0.3).astype(np.float32).astype(np.float64)
    np.testing.assert_array_equal(w.anchor(n - 1), expect.astype(np.float32))
