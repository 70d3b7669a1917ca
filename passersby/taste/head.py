"""The feature head: what a face will look like, predicted from its latent without rendering it.

The taste model (taste/picture.py) wants features of the *picture* (EfficientNet-Lite0's
1280 pooled channels, metrics/features.py) for every candidate it scores: 64 per anchor on
the screens and 64 per swipe in the app. Rendering and embedding 64 faces costs ~6 s of a
2-core CPU (benchmarks/taste_head.py), which the screens cannot spare. So, once per
generator, a small MLP learns z -> the top `pca` principal components of the features of
its own renders (unlimited, free data), and scoring a candidate costs a few microseconds.

    z (m, z_dim) --MLP(z_dim -> hidden -> hidden -> pca)--> standardised PCA scores (m, pca)

`FeatureHead.r2` keeps, per component, how much of its variance the head explains on renders
it was not trained on; the head is only as good as those figures (benchmarks/taste_head.py).

The head is stored as one safetensors file (the weights) whose metadata holds JSON (format,
model hash, config, held-out R²), written atomically: `<home>/cache/taste-head-<hash>.safetensors`.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from passersby.atomic import atomic_open

FORMAT = "passersby-taste-head/1"
_TENSORS = ("w1", "b1", "w2", "b2", "w3", "b3", "landmarks", "pca_mean", "pca_components", "pca_scale")


class HeadError(ValueError):
    """A feature head file that cannot be used (missing, damaged, another model's)."""


@dataclass(frozen=True)
class HeadConfig:
    """How a feature head is built.

    Args:
        samples: faces rendered and embedded (the cost: ~0.1 s each on a busy 2-core CPU).
        pca: principal components of the 1280 features that the head predicts.
        hidden: width of the two hidden layers.
        epochs: passes over the training faces.
        holdout: share of the faces kept out of training to measure R².
        landmarks: centres of the "near these" kernel features (k-means in head space).
        seed: latents are default_rng([seed, chunk]) normals; training noise from it too.
    Example:
        >>> HeadConfig(samples=2000).pca
        32
    """

    # Held-out R² (shipped model): 0.41 from 6,000 faces, 0.50 from 12,000, 0.53 / 0.575 / 0.587 from
    # 16k / 29k / 37k; but the 37k head streamed fewer liked faces in benchmarks/taste.py (portraits
    # 81-91 % against 83-95 % on 4 seeds, docs/taste/levers.md): 12,000 ships (~15 min once per model).
    samples: int = 12000
    pca: int = 32
    hidden: int = 128  # 256: R² 0.60 from 37k faces, worse tastes offline (docs/taste/levers.md)
    epochs: int = 20  # 60 epochs overfit (5.6k faces: held-out R² 0.16 vs 0.43); 12k faces: 30 epochs 0.46, 20 0.50
    holdout: float = 0.1
    landmarks: int = 64
    seed: int = 100


def sample_pairs(render: Callable[[np.ndarray], np.ndarray], n: int, z_dim: int = 128, seed: int = 100,
                 batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Render n random faces and embed them: (z (n, z_dim) float32, features (n, 1280) float32).

    Args:
        render: z (m, z_dim) float32 -> (m, H, W, 3) uint8 (runtime.make_renderer).
        n: faces.
        z_dim: latent size.
        seed: chunk c of `batch` latents is default_rng([seed, c]) normals.
        batch: faces per render call.
    Example:
        >>> z, f = sample_pairs(make_renderer(g), 512)  # doctest: +SKIP
    """
    import torch

    from passersby.metrics.features import FeatureExtractor

    fx = FeatureExtractor(batch_size=32)
    zs, fs = [], []
    for c in range(math.ceil(n / batch)):
        # Always draw a whole chunk, so the first n latents are the same for any n.
        z = np.random.default_rng([seed, c]).standard_normal((batch, z_dim)).astype(np.float32)[: n - c * batch]
        x = torch.from_numpy(render(z)).permute(0, 3, 1, 2).float() / 127.5 - 1.0  # (batch, 3, H, W)
        zs.append(z)
        fs.append(fx.extract(x).numpy())
    return np.concatenate(zs), np.concatenate(fs)


@dataclass(frozen=True, eq=False)
class FeatureHead:
    """z -> standardised PCA scores of the picture's EfficientNet-Lite0 features, predicted.

    Args:
        w1, b1, w2, b2, w3, b3: the MLP (weights (in, out)); SiLU between layers.
        landmarks: (L, pca) centres of the kernel features (`kernel`), in head space.
        pca_mean, pca_components, pca_scale: (F,), (pca, F), (pca,): true features -> head space
            (`project`), to check the head against real renders.
        bandwidth: RBF length scale of the kernel features.
        kernel_mean, kernel_std: (L,) moments of the kernel features over random faces.
        model_hash: the generator the head was trained on.
        r2: (pca,) held-out R² per component.
        config: how it was built.
    Example:
        >>> head = FeatureHead.load(path, model_hash)  # doctest: +SKIP
        >>> head(np.zeros((2, 128))).shape  # doctest: +SKIP
        (2, 32)
    """

    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray
    w3: np.ndarray
    b3: np.ndarray
    landmarks: np.ndarray
    pca_mean: np.ndarray
    pca_components: np.ndarray
    pca_scale: np.ndarray
    bandwidth: float
    kernel_mean: np.ndarray
    kernel_std: np.ndarray
    model_hash: str
    r2: np.ndarray
    config: HeadConfig

    def __post_init__(self) -> None:
        if self.w1.ndim != 2 or self.w3.ndim != 2:
            raise HeadError(f"feature head: w1 {self.w1.shape} and w3 {self.w3.shape} must be matrices")
        h = self.w1.shape[1]
        k = self.w3.shape[1]
        shapes = {"b1": (h,), "w2": (h, h), "b2": (h,), "w3": (h, k), "b3": (k,)}
        for name, shape in shapes.items():
            if getattr(self, name).shape != shape:
                raise HeadError(f"feature head: {name} has shape {getattr(self, name).shape}, expected {shape}")
        if (self.pca_components.ndim != 2 or self.pca_components.shape[0] != k
                or self.pca_mean.shape != self.pca_components.shape[1:] or self.pca_scale.shape != (k,)):
            raise HeadError(f"feature head: PCA tensors {self.pca_mean.shape}, {self.pca_components.shape}, "
                            f"{self.pca_scale.shape} do not match {k} components")
        if self.landmarks.ndim != 2 or self.landmarks.shape[1] != k:
            raise HeadError(f"feature head: landmarks {self.landmarks.shape} do not match {k} components")
        n_l = len(self.landmarks)
        if self.kernel_mean.shape != (n_l,) or self.kernel_std.shape != (n_l,) or self.r2.shape != (k,):
            raise HeadError("feature head: kernel moments or r2 have the wrong length")
        arrays = (self.w1, self.b1, self.w2, self.b2, self.w3, self.b3, self.landmarks, self.kernel_mean,
                  self.kernel_std, self.pca_mean, self.pca_components, self.pca_scale)
        if not all(np.isfinite(a).all() for a in arrays) or not (self.bandwidth > 0 and (self.kernel_std > 0).all()):
            raise HeadError("feature head: non-finite or non-positive values")

    @property
    def z_dim(self) -> int:
        return self.w1.shape[0]

    @property
    def dim(self) -> int:
        """Number of predicted components."""
        return self.w3.shape[1]

    def __call__(self, z: np.ndarray) -> np.ndarray:
        """(m, z_dim) latents -> (m, pca) predicted standardised PCA scores (float64)."""
        z = np.asarray(z, dtype=np.float64)
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"the feature head takes (m, {self.z_dim}) latents, got shape {z.shape}")
        h = _silu(z @ self.w1 + self.b1)  # (m, hidden)
        h = _silu(h @ self.w2 + self.b2)  # (m, hidden)
        return h @ self.w3 + self.b3  # (m, pca)

    def project(self, features: np.ndarray) -> np.ndarray:
        """(m, F) true features of rendered faces -> (m, pca): what the head should predict for them."""
        f = np.asarray(features, np.float64)
        f = f / np.linalg.norm(f, axis=1, keepdims=True)
        return (f - self.pca_mean) @ self.pca_components.T / self.pca_scale

    def kernel(self, p: np.ndarray) -> np.ndarray:
        """(m, pca) head outputs -> (m, L) standardised RBF similarities to the landmarks.

        A taste "near these faces" is a bump around them in picture space: a positive weight
        on the landmarks near the liked faces (a kernel machine with fixed centres).
        """
        d2 = (p * p).sum(1)[:, None] + (self.landmarks**2).sum(1)[None, :] - 2.0 * p @ self.landmarks.T  # (m, L)
        k = np.exp(-np.maximum(d2, 0.0) / (2.0 * self.bandwidth**2))
        return (k - self.kernel_mean) / self.kernel_std

    def save(self, path: Path) -> None:
        """Write atomically: safetensors weights, JSON metadata (never pickle)."""
        from safetensors.numpy import save

        meta = {"format": FORMAT, "model_hash": self.model_hash, "bandwidth": self.bandwidth,
                "kernel_mean": self.kernel_mean.tolist(), "kernel_std": self.kernel_std.tolist(),
                "r2": self.r2.tolist(), "config": asdict(self.config)}
        data = save({name: np.ascontiguousarray(getattr(self, name), dtype=np.float32) for name in _TENSORS},
                    metadata={"passersby": json.dumps(meta)})
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "wb") as f:
            f.write(data)

    @classmethod
    def load(cls, path: Path, model_hash: str | None = None) -> FeatureHead:
        """Read a saved head; HeadError (one line) when missing, damaged or another model's."""
        from safetensors import safe_open

        path = Path(path)
        try:
            with safe_open(str(path), framework="numpy") as f:
                meta = json.loads((f.metadata() or {}).get("passersby", "null"))
                tensors = {name: f.get_tensor(name).astype(np.float64) for name in _TENSORS}
        except FileNotFoundError:
            raise HeadError(f"{path}: no feature head there") from None
        except Exception as e:  # safetensors raises its own error types for damaged files
            raise HeadError(f"{path}: not a readable feature head ({type(e).__name__}: {e})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise HeadError(f"{path}: not a feature head (expected format {FORMAT!r})")
        if model_hash is not None and meta.get("model_hash") != model_hash:
            raise HeadError(f"{path}: a feature head of model {meta.get('model_hash')}, not {model_hash}")
        try:
            return cls(**tensors, bandwidth=float(meta["bandwidth"]),
                       kernel_mean=np.asarray(meta["kernel_mean"], np.float64),
                       kernel_std=np.asarray(meta["kernel_std"], np.float64), model_hash=str(meta["model_hash"]),
                       r2=np.asarray(meta["r2"], np.float64), config=HeadConfig(**meta["config"]))
        except (KeyError, TypeError, ValueError) as e:
            raise HeadError(f"{path}: damaged feature head metadata ({e})") from None


def _silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-np.clip(x, -40.0, 40.0)))


def fit_head(z: np.ndarray, features: np.ndarray, model_hash: str, config: HeadConfig = HeadConfig(),
             threads: int = 1) -> FeatureHead:
    """Train a feature head on (latent, feature) pairs of one generator.

    Args:
        z: (n, z_dim) latents.
        features: (n, F) their renders' features (sample_pairs).
        model_hash: the generator's hash, stored with the head.
        config: sizes; config.holdout of the pairs measure R² and are not trained on.
        threads: torch threads for training.
    Returns:
        The head, with held-out R² per component.
    Example:
        >>> head = fit_head(*sample_pairs(render, 6000), info.hash)  # doctest: +SKIP
    """
    import torch

    z = np.asarray(z, np.float64)
    f = np.asarray(features, np.float64)
    if z.ndim != 2 or f.ndim != 2 or len(z) != len(f) or len(z) < 4 * config.pca:
        raise ValueError(f"fit_head needs (n, d) latents and (n, F) features, n >= {4 * config.pca}; "
                         f"got {z.shape} and {f.shape}")
    rng = np.random.default_rng([config.seed, 1])
    order = rng.permutation(len(z))
    n_test = max(1, int(round(config.holdout * len(z))))
    test, train = order[:n_test], order[n_test:]
    # PCA of the L2-normalised features (cosine geometry, as similarity in feature space is usually read).
    fn = f / np.linalg.norm(f, axis=1, keepdims=True)
    mean = fn[train].mean(0)
    vt = np.linalg.svd(fn[train] - mean, full_matrices=False)[2]
    comps = vt[: config.pca]  # (pca, F)
    scores = (fn - mean) @ comps.T  # (n, pca)
    scale = scores[train].std(0)
    y = scores / scale  # standardised: every component matters equally to the taste prior
    torch.manual_seed(config.seed)
    torch.set_num_threads(threads)
    net = torch.nn.Sequential(torch.nn.Linear(z.shape[1], config.hidden), torch.nn.SiLU(),
                              torch.nn.Linear(config.hidden, config.hidden), torch.nn.SiLU(),
                              torch.nn.Linear(config.hidden, config.pca)).double()
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, config.epochs)
    zt, yt = torch.from_numpy(z[train]), torch.from_numpy(y[train])
    gen = torch.Generator().manual_seed(config.seed)
    for _ in range(config.epochs):
        for idx in torch.randperm(len(zt), generator=gen).split(128):
            loss = ((net(zt[idx]) - yt[idx]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    with torch.no_grad():
        pred = net(torch.from_numpy(z[test])).numpy()
        pred_all = net(torch.from_numpy(z[train])).numpy()
    r2 = 1.0 - ((pred - y[test]) ** 2).mean(0) / y[test].var(0)
    w = [p.detach().numpy().astype(np.float64) for p in net.parameters()]
    landmarks, bandwidth = _kmeans(pred_all, config.landmarks, rng)
    mlp = (w[0].T, w[1], w[2].T, w[3], w[4].T, w[5], landmarks, mean, comps, scale, bandwidth)
    head = FeatureHead(*mlp, np.zeros(len(landmarks)), np.ones(len(landmarks)), model_hash, r2, config)
    k = head.kernel(pred_all)  # (n_train, L): standardise the kernel features on random faces
    return FeatureHead(*mlp, k.mean(0), np.maximum(k.std(0), 1e-6), model_hash, r2, config)


def _kmeans(x: np.ndarray, k: int, rng: np.random.Generator, iters: int = 25) -> tuple[np.ndarray, float]:
    """(k, d) centres of x (n, d) by Lloyd's algorithm, and the median distance to the nearest centre."""
    centres = x[rng.choice(len(x), size=k, replace=False)].copy()
    for _ in range(iters):
        d2 = (x * x).sum(1)[:, None] + (centres**2).sum(1)[None, :] - 2.0 * x @ centres.T  # (n, k)
        near = d2.argmin(1)
        for j in range(k):
            members = x[near == j]
            if len(members):
                centres[j] = members.mean(0)
    d2 = (x * x).sum(1)[:, None] + (centres**2).sum(1)[None, :] - 2.0 * x @ centres.T
    return centres, float(np.sqrt(np.maximum(d2.min(1), 1e-12)).mean())


SHIPPED_DIR = Path(__file__).resolve().parents[1] / "assets"  # heads of the shipped models: no build needed


def shipped_head_path(model_hash: str) -> Path:
    """Where the package ships the feature head of model `model_hash` (if it does)."""
    return SHIPPED_DIR / f"taste-head-{model_hash}.safetensors"


def head_path(home: Path, model_hash: str) -> Path:
    """Where the feature head of model `model_hash` is cached."""
    return Path(home) / "cache" / f"taste-head-{model_hash}.safetensors"


def cached_head(home: Path, model_hash: str, render: Callable[[np.ndarray], np.ndarray], z_dim: int,
                config: HeadConfig = HeadConfig(), on_compute: Callable[[str], None] | None = None,
                threads: int = 1) -> FeatureHead:
    """The feature head of model `model_hash`: from the cache, else the package's, else built and cached.

    Building renders and embeds config.samples faces (~10-20 min on a 2-core CPU). A damaged
    or foreign cache file is rebuilt, never trusted: `on_compute` is told why.

    Args:
        home: installation home.
        model_hash: the generator's hash (checkpoint.file_hash).
        render: z (m, z_dim) float32 -> (m, H, W, 3) uint8, used only when building.
        z_dim: latent size.
        config: how to build it.
        on_compute: called with a one-line reason before a (slow) build.
        threads: torch threads for building.
    Example:
        >>> head = cached_head(home, info.hash, make_renderer(g), 128)  # doctest: +SKIP
    """
    path = head_path(home, model_hash)
    try:
        head = FeatureHead.load(path, model_hash)
        if head.z_dim == z_dim:
            return head
        reason = f"{path}: a head for {head.z_dim}-d latents, not {z_dim}"
    except HeadError as e:
        reason = str(e)
    shipped = shipped_head_path(model_hash)
    if shipped.exists():
        try:
            head = FeatureHead.load(shipped, model_hash)
            if head.z_dim == z_dim:
                return head
        except HeadError as e:
            reason = f"{reason}; the shipped one is unusable: {e}"
    if on_compute is not None:
        on_compute(reason)
    z, f = sample_pairs(render, config.samples, z_dim, config.seed)
    head = fit_head(z, f, model_hash, config, threads)
    head.save(path)
    return head


# ---------------------------------------------------------------- export / import (taste export, taste import)


def heads_for_export(home: Path, model_hashes: Iterable[str]) -> dict[str, str]:
    """{model hash: base64 of its cached head file} for the models whose head is built, not shipped.

    A taste export carries them (`feature_heads`), so the installation that imports the
    ratings fits the same picture taste at once instead of rebuilding the head for minutes.

    Example:
        >>> heads_for_export(home, ["ffa635e066c237f7"])  # the shipped model's: not carried  # doctest: +SKIP
        {}
    """
    out = {}
    for model_hash in sorted(set(model_hashes)):
        path = head_path(home, model_hash)
        if shipped_head_path(model_hash).exists() or not path.exists():
            continue
        try:
            FeatureHead.load(path, model_hash)  # a damaged cache is not exported
        except HeadError:
            continue
        out[model_hash] = base64.b64encode(path.read_bytes()).decode("ascii")
    return out


def install_heads(home: Path, heads: Any, source: str = "the export") -> list[str]:
    """Check the heads of an export (`heads_for_export`'s dict) and cache those not yet usable here.

    Returns the model hashes installed. HeadError (one line, naming `source` and the model) when
    a head is malformed, damaged or not the model it claims; nothing is installed then.

    Example:
        >>> install_heads(home, data.get("feature_heads"), "ada.json")  # doctest: +SKIP
        ['44fb1680ff25f250']
    """
    if heads is None:
        return []
    if not isinstance(heads, dict):
        raise HeadError(f"{source}: feature_heads: expected an object of model hash -> head")
    checked: list[tuple[str, bytes]] = []
    for model_hash, text in heads.items():
        if not isinstance(model_hash, str) or not model_hash.isalnum() or not isinstance(text, str):
            raise HeadError(f"{source}: feature_heads: expected model hash -> base64 text, got {model_hash!r}")
        try:
            checked.append((model_hash, base64.b64decode(text, validate=True)))
        except (binascii.Error, ValueError):
            raise HeadError(f"{source}: feature_heads[{model_hash}]: not base64") from None
    installed = []
    cache = head_path(home, "x").parent
    cache.mkdir(parents=True, exist_ok=True)
    staged = []
    try:
        for model_hash, data in checked:  # every head is checked before any is installed
            fd, tmp = tempfile.mkstemp(dir=cache, prefix=".import-", suffix=".safetensors")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            staged.append(Path(tmp))
            try:
                FeatureHead.load(Path(tmp), model_hash)
            except HeadError as e:
                raise HeadError(f"{source}: feature_heads[{model_hash}]: {str(e).split(': ', 1)[-1]}") from None
        for (model_hash, _), tmp in zip(checked, staged):
            try:
                FeatureHead.load(head_path(home, model_hash), model_hash)
                continue  # a usable head is here already: keep it
            except HeadError:
                pass
            os.replace(tmp, head_path(home, model_hash))  # atomic: a reader sees the old file or the new
            installed.append(model_hash)
    finally:
        for tmp in staged:
            tmp.unlink(missing_ok=True)
    return installed
