"""EfficientNet-Lite0 feature extraction: shapes, determinism, weights, devices."""

import numpy as np
import pytest
import torch

from passersby.metrics.features import FeatureExtractor, load_model, preprocess


def _images(seed, n, height=64, width=64):
    """Smooth random images in [-1, 1], shape (n, 3, height, width)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 8, 8, generator=g) * 2 - 1
    return torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear")


def test_features_shape_dtype_and_determinism():
    images = _images(0, 5, 96, 80)  # any H, W
    extractor = FeatureExtractor(batch_size=2)
    feats = extractor.extract(images)
    assert feats.shape == (5, 1280) and feats.dtype == torch.float32
    assert torch.isfinite(feats).all()
    assert torch.equal(feats, extractor.extract(images))
    # The batch size does not change the result beyond float noise.
    torch.testing.assert_close(FeatureExtractor(batch_size=5).extract(images), feats)


def test_different_images_give_different_features():
    feats = FeatureExtractor().extract(torch.cat([_images(1, 2), -torch.ones(1, 3, 64, 64)]))
    cos = torch.nn.functional.cosine_similarity(feats[:, None], feats[None], dim=-1)  # (3, 3)
    off_diagonal = cos[~torch.eye(3, dtype=torch.bool)]
    assert (off_diagonal < 0.999).all()
    assert (feats[0] - feats[1]).abs().max() > 1e-2


def test_rejects_bad_input():
    extractor = FeatureExtractor()
    with pytest.raises(TypeError):
        extractor.extract(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError):
        extractor.extract(torch.zeros(3, 32, 32))
    assert extractor.extract(torch.zeros(0, 3, 32, 32)).shape == (0, 1280)


def test_preprocess_matches_inception_style_scaling():
    x = preprocess(torch.tensor([-1.0, 0.0, 1.0]).view(1, 3, 1, 1).expand(1, 3, 224, 224))
    # (pixel - 127) / 128 with pixel = (x + 1) * 127.5
    np.testing.assert_allclose(x[0, :, 0, 0].numpy(), [-127 / 128, 0.5 / 128, 128 / 128])


def test_model_is_cached_and_has_imagenet_weights():
    assert load_model("cpu") is load_model(torch.device("cpu"))
    cbook = pytest.importorskip("matplotlib.cbook")
    from PIL import Image

    try:
        path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    except (OSError, ValueError):
        pytest.skip("matplotlib sample data not installed")
    photo = np.asarray(Image.open(path).convert("RGB").resize((224, 224)))  # (224, 224, 3)
    x = torch.from_numpy(photo.copy()).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        logits = load_model("cpu")(preprocess(x))  # (1, 1000)
    # The classic ImageNet test photo: Grace Hopper in uniform (652 military uniform,
    # 457 bow tie, 834 suit, 906 Windsor tie).
    assert int(logits.argmax()) in {652, 457, 834, 906}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    images = _images(2, 3)
    cpu = FeatureExtractor().extract(images)
    gpu = FeatureExtractor().extract(images.cuda())
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, atol=2e-3, rtol=2e-3)
