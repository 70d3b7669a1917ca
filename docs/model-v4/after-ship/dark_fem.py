"""Feminine-side faces (choice offset 3): do our grey sex probe and the independent classifier agree,
overall and on dark grounds (what a 'darker backgrounds' taste picks)?"""
import numpy as np, torch
from PIL import Image
from passersby.checkpoint import load_model
from passersby.sample import default_model_path, render
from passersby.model.load import load_choice, load_direction
from passersby.model.direction import steered_proposer
from passersby.metrics.features import FeatureExtractor
from passersby.metrics.probe_features import probe_features
from passersby.metrics.gender import classify_gender
torch.set_num_threads(2)
g, info = load_model(default_model_path()); g = g.float().eval()
choice, d = load_choice(info), load_direction(info.meta)
N = 300
out = {}
for name, scale in (("choice-offset", choice.scale_for("feminine")), ("pushed", d.scale_for("feminine") if hasattr(d, "scale_for") else 5.0)):
    push = steered_proposer(128, d.vector, scale, "feminine")
    rng = np.random.default_rng(5)
    z = np.stack([push(rng) for _ in range(N)]).astype(np.float32)
    im = render(g, torch.from_numpy(z), batch=1)
    feats, found = probe_features(im, FeatureExtractor(), "grey")
    ours = np.full(N, np.nan); ours[found] = choice.label_prob(feats, "feminine")
    ind = classify_gender(list(im))
    indf = np.array([np.nan if l is None else (p if l == "feminine" else 1 - p) for l, p in ind])
    ground = np.concatenate([im[:, :32].reshape(N, -1), im[:, :, :32].reshape(N, -1)], 1).mean(1)
    dark = ground < np.quantile(ground, 0.25)
    ok = ~np.isnan(ours) & ~np.isnan(indf)
    print(name, "scale", scale, "n", ok.sum(),
          "| ours P(f)>.5:", round(float((ours[ok] > .5).mean()), 2), "indep:", round(float((indf[ok] > .5).mean()), 2),
          "| dark quartile ours:", round(float((ours[ok & dark] > .5).mean()), 2), "indep:", round(float((indf[ok & dark] > .5).mean()), 2),
          "| agree:", round(float(((ours[ok] > .5) == (indf[ok] > .5)).mean()), 2),
          "| gate ours>=.7 -> indep:", round(float((indf[ok & (ours >= .7)] > .5).mean()), 2), int((ok & (ours >= .7)).sum()),
          "| dark & gate:", round(float((indf[ok & dark & (ours >= .7)] > .5).mean()), 2), int((ok & dark & (ours >= .7)).sum()), flush=True)
    idx = np.flatnonzero(ok & dark)[:16]
    Image.fromarray(np.concatenate([np.concatenate(list(im[idx[:8], ::2, ::2]), 1), np.concatenate(list(im[idx[8:16], ::2, ::2]), 1)], 0)).save(f"runs/real/dark-fem-{name}.png")
    print("dark shown: ours", np.round(ours[idx], 2).tolist(), "indep", np.round(indf[idx], 2).tolist())
