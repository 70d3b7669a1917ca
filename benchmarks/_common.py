"""Helpers shared by the benchmark scripts: machine description, statistics, JSON output.

Not a benchmark itself; `python benchmarks/NAME.py` puts this folder on sys.path, so the
scripts import it as `_common`.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def lscpu() -> dict[str, Any]:
    """`lscpu`'s model name and flags (the flags say what the CPU computes fast: avx2,
    avx512f, avx512_bf16, amx_bf16...); from /proc/cpuinfo when lscpu is missing."""
    import shutil
    import subprocess

    fields: dict[str, str] = {}
    if shutil.which("lscpu"):
        try:
            out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10,
                                 env={**os.environ, "LC_ALL": "C"}).stdout
            fields = {k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in out.splitlines())}
        except (OSError, subprocess.SubprocessError):
            fields = {}
    if "Flags" not in fields:
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "model name"):
                    fields.setdefault("Flags" if key.strip() == "flags" else "Model name", value.strip())
        except OSError:
            pass
    return {"model_name": fields.get("Model name", cpu_model()), "cpus": fields.get("CPU(s)"),
            "flags": fields.get("Flags", "").split()}


SIMD_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def cpu_line(info: dict[str, Any]) -> str:
    """One line for the console: model, CPU count and the SIMD flags that matter for torch."""
    have = [f for f in SIMD_FLAGS if f in info["flags"]]
    simd = " ".join(have) or "none of " + " ".join(SIMD_FLAGS)
    return f"CPU (lscpu): {info['model_name']}, {info['cpus']} CPUs; SIMD: {simd}"


def load_average() -> tuple[float, float, float] | None:
    try:
        return tuple(round(x, 2) for x in os.getloadavg())  # type: ignore[return-value]
    except OSError:
        return None


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on; recorded at the start and the end of a run."""
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        # lscpu's flags that decide speed here (bf16 or not, AVX-512 or not)
        "simd_flags": [f for f in SIMD_FLAGS if f in set(lscpu()["flags"])],
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "load_average_1_5_15min": load_average(),
    }


def _proc_stat() -> tuple[float, float] | None:
    """(busy, steal) CPU seconds of the whole machine since boot, from /proc/stat (Linux)."""
    try:
        f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    user, nice, system, idle, iowait, irq, softirq, steal = (f + [0] * 8)[:8]
    return (user + nice + system + irq + softirq) / tick, steal / tick


class CpuMeter:
    """How much of the machine other processes (and the hypervisor) took while we measured.

    others = the machine's busy CPU time minus this process's, as a share of wall × cores;
    steal = time the hypervisor gave our virtual CPUs to someone else, same units.
    """

    def __init__(self) -> None:
        self.wall0, self.proc0, self.stat0 = time.perf_counter(), time.process_time(), _proc_stat()

    def stop(self) -> dict[str, Any]:
        wall, ours = time.perf_counter() - self.wall0, time.process_time() - self.proc0
        cores = os.cpu_count() or 1
        out: dict[str, Any] = {"wall_s": wall, "process_cpu_s": ours, "others_share": None, "steal_share": None}
        stat1 = _proc_stat()
        if self.stat0 and stat1 and wall > 0:
            busy, steal = stat1[0] - self.stat0[0], stat1[1] - self.stat0[1]
            out["others_share"] = max(0.0, busy - ours) / (wall * cores)
            out["steal_share"] = steal / (wall * cores)
        return out


def busy_note(cpu: dict[str, Any]) -> str:
    """A warning when others used more than 10% of the machine while we measured."""
    others, steal = cpu.get("others_share"), cpu.get("steal_share")
    if others is None:
        return ""
    if others > 0.10 or (steal or 0) > 0.10:
        return (f"machine busy: other processes used {others:.0%} of the cores (hypervisor steal {steal:.0%}) "
                "while we measured — absolute numbers are low, and with several torch threads even the ratio is "
                "skewed (a model of many small ops loses more to a descheduled thread than one of large ops); "
                "re-run on an idle machine, or compare runs made with --threads 1")
    return ""


def percentile(xs: list[float], q: float) -> float:
    """q-th percentile (0..100) with linear interpolation, as numpy's default."""
    s = sorted(xs)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q / 100.0
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def write_json(path: Path | None, result: dict[str, Any]) -> None:
    """Write `result` atomically (temp + fsync + rename): a run killed mid-write keeps the last
    whole file, so long runs can write their partial results as they go."""
    if path is None:
        return
    from passersby.atomic import atomic_open

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "w") as f:
        f.write(json.dumps(result, indent=2, sort_keys=False) + "\n")


def set_threads(n: int | None) -> None:
    if n:
        torch.set_num_threads(n)


def peak_gflops(seconds: float = 1.0) -> dict[str, float]:
    """This machine's measured compute roof, one thread (what each screen's renderer gets): an
    fp32 matmul (1024^2), a 3x3 convolution (64 -> 64 channels at 128^2, channels-last) and,
    where the CPU has native bf16, a bf16 matmul; GFLOP/s, 2 FLOPs per multiply-add."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a = torch.randn(1024, 1024)
        x = torch.randn(1, 64, 128, 128).contiguous(memory_format=torch.channels_last)
        w = torch.randn(64, 64, 3, 3).contiguous(memory_format=torch.channels_last)
        cases = {"matmul_fp32": (lambda: a @ a, 2 * 1024 ** 3),
                 "conv3x3_fp32": (lambda: torch.nn.functional.conv2d(x, w, padding=1), 2 * 128 * 128 * 64 * 64 * 9)}
        if torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported():
            b = a.bfloat16()
            cases["matmul_bf16"] = (lambda: b @ b, 2 * 1024 ** 3)
        out = {}
        with torch.no_grad():
            for name, (fn, flops) in cases.items():
                fn()
                n, t0 = 0, time.perf_counter()
                while time.perf_counter() - t0 < seconds:
                    fn()
                    n += 1
                out[name] = flops * n / (time.perf_counter() - t0) / 1e9
        return out
    finally:
        torch.set_num_threads(threads)


def setting(kv: str) -> tuple[str, Any]:
    """"KEY=VALUE" -> (key, value): the value as JSON (2, 0.5, true) where it reads as JSON, else
    the text itself (torch, off).

    Example:
        >>> setting("enhancer.every=2"), setting("model.runtime=torch")
        (('enhancer.every', 2), ('model.runtime', 'torch'))
    """
    key, _, value = kv.partition("=")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value
