"""Runtimes: latents in, uint8 frames out, as fast as this machine allows.

The reference is eager PyTorch running the training-time `Generator` ("torch"). The fast
runtimes run the inference rewrite (`model/fused.py`: BatchNorm folded, upsample+conv as one
transposed conv) through:

    openvino     OpenVINO's CPU plugin (converts the torch module directly; bf16 where the
                 CPU has AMX/AVX512-BF16, else fp32)
    onnxruntime  ONNX Runtime's CPU provider (needs the `onnx` package to export)
    compile      torch.compile (inductor; needs a C++ compiler at run time, ~15-35 s to start)
    torch-fused  the rewrite in eager PyTorch (no extra package)
    cuda         the rewrite in eager PyTorch on the GPU, where torch has CUDA and sees one
                 (the painter's loop step and the enhancer too: the whole chain on the GPU)

"auto" takes the first of cuda, openvino, onnxruntime, torch-fused that can run here. Each renderer is
meant for ONE thread (one per screen): the stream runs a renderer per screen in its own
thread, with `threads` cores each (1 on a 2-core machine with two screens).
tests/test_runtime.py checks every available runtime against the reference.
"""

from __future__ import annotations

import importlib.util
import io
import warnings
from typing import Callable

import numpy as np
import torch

from passersby.compile_cache import ov_model, quiet_openvino
from passersby.config import RUNTIMES  # defined there: settings name them without importing torch
from passersby.model.fused import FusedGenerator, fuse, to_uint8
from passersby.model.generator import Generator

AUTO_ORDER = ("cuda", "openvino", "onnxruntime", "torch-fused")


class Renderer:
    """z (n, z_dim) float32 -> (n, R, R, 3) uint8 frames.

    Args:
        name: the runtime that renders.
        fn: the batch function; call the renderer, not fn.
        precision: what the runtime computes in ("fp32", "bf16").

    Example:
        >>> r = make_renderer(g, "torch-fused")  # a model built elsewhere (model/load.py)  # doctest: +SKIP
        >>> r(np.zeros((1, 128), np.float32)).shape  # a model built elsewhere (model/load.py)  # doctest: +SKIP
        (1, 256, 256, 3)
    """

    def __init__(self, name: str, fn: Callable[[np.ndarray], np.ndarray], precision: str = "fp32") -> None:
        self.name = name
        self.precision = precision
        self._fn = fn

    def __call__(self, z: np.ndarray) -> np.ndarray:
        z = np.ascontiguousarray(z, dtype=np.float32)
        if z.ndim != 2:
            raise ValueError(f"latents must be (n, z_dim), got shape {z.shape}")
        return self._fn(z)


def available(name: str) -> bool:
    """Can runtime `name` run here (its package imports)?"""
    need = {"openvino": ["openvino"], "onnxruntime": ["onnxruntime", "onnx"], "compile": [],
            "torch-fused": [], "torch": [], "cuda": []}
    if name == "cuda":  # a CUDA build of torch and a GPU (the CPU build says False without initialising)
        return torch.cuda.is_available()
    if name not in need:
        raise ValueError(f"unknown runtime {name!r}; one of {RUNTIMES}")
    return all(importlib.util.find_spec(p) is not None for p in need[name])


def resolve(name: str) -> str:
    """"auto" -> the first available fast runtime; others are checked and returned."""
    if name == "auto":
        return next(n for n in AUTO_ORDER if available(n))
    if not available(name):
        raise ValueError(f"runtime {name!r} is not installed here: pip install "
                         f"{'onnxruntime onnx' if name == 'onnxruntime' else name}, or use --runtime auto")
    return name


def make_renderer(g: Generator, name: str = "auto", threads: int = 1, label: int | None = None) -> Renderer:
    """A renderer for generator `g` (and class `label` if it is conditional).

    Args:
        g: the generator (its weights are copied; g is not changed).
        name: one of RUNTIMES.
        threads: CPU threads this renderer may use.
        label: class index for a conditional model (-1: between the classes), None otherwise.
    """
    name = resolve(name)
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if name == "torch":
        return _torch_reference(g, label)
    fused = fuse(g, label)
    build = {"openvino": _openvino, "onnxruntime": _onnxruntime, "compile": _compiled,
             "torch-fused": _torch_fused, "cuda": _cuda}[name]
    return build(fused, threads)


def _torch_reference(g: Generator, label: int | None) -> Renderer:
    from passersby.pictures import to_uint8 as reference_uint8

    g = g.eval()

    @torch.no_grad()
    def fn(z: np.ndarray) -> np.ndarray:
        lab = None if label is None else torch.full((len(z),), int(label))
        return reference_uint8(g(torch.from_numpy(z), lab))

    return Renderer("torch", fn)


def _torch_fused(fused: FusedGenerator, threads: int) -> Renderer:
    @torch.no_grad()
    def fn(z: np.ndarray) -> np.ndarray:
        return to_uint8(fused(torch.from_numpy(z)).numpy())

    return Renderer("torch-fused", fn)


def _cuda(fused: FusedGenerator, threads: int) -> Renderer:
    """The fused generator on the GPU, fp32 (frames come back to the CPU as uint8)."""
    dev = torch.device("cuda")
    net = fused.to(dev).eval()

    @torch.no_grad()
    def fn(z: np.ndarray) -> np.ndarray:
        return to_uint8(net(torch.from_numpy(z).to(dev)).cpu().numpy())

    return Renderer("cuda", fn)


def _on_cuda(module: torch.nn.Module):
    """x (numpy, float32) -> module(x) on the GPU, back as numpy; several inputs allowed."""
    dev = torch.device("cuda")
    net = module.to(dev).eval()

    @torch.no_grad()
    def run(*xs: np.ndarray) -> np.ndarray:
        return net(*(torch.from_numpy(x).to(dev) for x in xs)).cpu().numpy()

    return run


def _compiled(fused: FusedGenerator, threads: int) -> Renderer:
    compiled = torch.compile(fused, dynamic=False)

    @torch.no_grad()
    def fn(z: np.ndarray) -> np.ndarray:
        return to_uint8(compiled(torch.from_numpy(z)).numpy())

    return Renderer("compile", fn)


def _openvino(fused: FusedGenerator, threads: int) -> Renderer:
    ov = quiet_openvino()

    core = ov.Core()
    caps = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    precision = "bf16" if "BF16" in caps else "fp32"
    z_dim = fused.init_weight.shape[0] - (0 if fused.class_vec is None else fused.class_vec.shape[1])
    example = torch.zeros(1, z_dim)
    model = ov_model(core, fused, (example,), f"input=[1, {z_dim}]",
                     lambda: ov.convert_model(fused, example_input=example, input=[1, z_dim]))
    compiled = core.compile_model(model, "CPU", {
        "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
        "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1, "INFERENCE_NUM_THREADS": threads,
        # Each screen compiles its own model; pinned, their threads could share one core.
        "ENABLE_CPU_PINNING": False,
    })
    request = compiled.create_infer_request()

    def fn(z: np.ndarray) -> np.ndarray:
        # The graph is compiled for batch 1 (a screen renders one frame at a time).
        return np.concatenate([to_uint8(request.infer({0: z[i : i + 1]})[0]) for i in range(len(z))])

    return Renderer("openvino", fn, precision)


def _onnxruntime(fused: FusedGenerator, threads: int) -> Renderer:
    import onnxruntime as ort

    z_dim = fused.init_weight.shape[0] - (0 if fused.class_vec is None else fused.class_vec.shape[1])
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(fused, (torch.zeros(1, z_dim),), buf, input_names=["z"], output_names=["image"],
                          dynamic_axes={"z": {0: "n"}, "image": {0: "n"}}, dynamo=False, opset_version=17)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    # Spinning threads burn the core the other screen needs.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])

    def fn(z: np.ndarray) -> np.ndarray:
        return to_uint8(session.run(None, {"z": z})[0])

    return Renderer("onnxruntime", fn)


def make_loop_step(painter: torch.nn.Module, name: str = "auto", threads: int = 1) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The feedback loop's step (model/painter.LoopStep) on a runtime: (picture (R, R, 3) uint8,
    field (R, R, 2) float32) -> next picture, uint8. "torch" is the eager reference; "auto" and
    "openvino" compile the whole step with OpenVINO when it imports (else the reference).

    Example:
        >>> step = make_loop_step(painter)  # a model built elsewhere (model/load.py)  # doctest: +SKIP
        >>> nxt = step(frame, field)  # a model built elsewhere (model/load.py)  # doctest: +SKIP
    """
    from passersby.model.painter import LoopStep

    if name not in RUNTIMES:
        raise ValueError(f"unknown runtime {name!r}; one of {RUNTIMES}")
    module = LoopStep(painter.float().eval()).eval()
    side = painter.cfg.resolution
    run = None
    if name == "cuda" or name == "auto" and available("cuda"):
        run = _on_cuda(module)
    elif name in ("auto", "openvino") and available("openvino"):
        run = _openvino_step(module, side, threads)
    if run is None:
        @torch.no_grad()
        def run(x: np.ndarray, f: np.ndarray) -> np.ndarray:
            return module(torch.from_numpy(x), torch.from_numpy(f)).numpy()

    def step(image: np.ndarray, field: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32) / 127.5 - 1.0  # (1, 3, R, R)
        y = run(x, np.ascontiguousarray(field[None], dtype=np.float32))  # (1, 3, R, R) in [-1, 1]
        return np.rint((np.clip(y[0], -1, 1) + 1) * 127.5).astype(np.uint8).transpose(1, 2, 0).copy()

    return step


def _openvino_step(module: torch.nn.Module, side: int, threads: int):
    ov = quiet_openvino()

    core = ov.Core()
    model = ov_model(core, module, (torch.zeros(1, 3, side, side), torch.zeros(1, side, side, 2)), "loop step")
    compiled = core.compile_model(model, "CPU", {
        "INFERENCE_PRECISION_HINT": "f32",  # the loop feeds on its own output: no bf16 drift
        "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1, "INFERENCE_NUM_THREADS": threads,
        "ENABLE_CPU_PINNING": False,
    })
    request = compiled.create_infer_request()
    return lambda x, f: request.infer({0: x, 1: f})[0]


def make_upscaler(enhancer: torch.nn.Module, name: str = "auto", threads: int = 1, side: int = 256
                  ) -> Callable[[np.ndarray], np.ndarray]:
    """The enhancer (model/enhancer.Enhancer) on a runtime: (side, side, 3) uint8 -> (s side,
    s side, 3) uint8. "torch" is the eager reference; "auto"/"openvino" compile it for `side`
    with OpenVINO when it imports (bf16 where the CPU has it: the enhancer's output is shown,
    never fed back, so bf16's rounding does not accumulate). Other sizes go through the reference.

    Example:
        >>> up = make_upscaler(enhancer)  # a model built elsewhere (model/load.py)  # doctest: +SKIP
        >>> up(frame).shape  # a model built elsewhere (model/load.py)  # doctest: +SKIP
        (512, 512, 3)
    """
    if name not in RUNTIMES:
        raise ValueError(f"unknown runtime {name!r}; one of {RUNTIMES}")
    module = enhancer.float().eval()

    @torch.no_grad()
    def reference(x: np.ndarray) -> np.ndarray:
        return module(torch.from_numpy(x)).numpy()

    run = reference
    if name == "cuda" or name == "auto" and available("cuda"):
        run, reference = _on_cuda(module), _on_cuda(module)  # any size on the GPU
    elif name in ("auto", "openvino") and available("openvino"):
        run = _openvino_image(module, side, threads, allow_bf16=True)

    def upscale(image: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32) / 127.5 - 1.0  # (1, 3, H, W)
        y = run(x) if image.shape[:2] == (side, side) else reference(x)  # (1, 3, sH, sW) in [-1, 1]
        return np.rint((np.clip(y[0], -1, 1) + 1) * 127.5).astype(np.uint8).transpose(1, 2, 0).copy()

    return upscale


def _openvino_image(module: torch.nn.Module, side: int, threads: int, allow_bf16: bool):
    """One-input picture network (1, 3, side, side) compiled with OpenVINO for one thread group."""
    ov = quiet_openvino()

    core = ov.Core()
    bf16 = allow_bf16 and "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    model = ov_model(core, module, (torch.zeros(1, 3, side, side),), "image")
    compiled = core.compile_model(model, "CPU", {
        "INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32",
        "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1, "INFERENCE_NUM_THREADS": threads,
        "ENABLE_CPU_PINNING": False,
    })
    request = compiled.create_infer_request()
    return lambda x: request.infer({0: x})[0]
