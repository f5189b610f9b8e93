"""What a benchmark ran on, measured in the same run: the CPU (model, cores, the flags that matter for
matrix units), torch and its threads, and the machine's GEMM peak in float32 and bfloat16, so that a figure
can be stated as a fraction of what the cores can do (and one above it recognised as a measuring error)."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

# The CPU flags that decide matrix throughput on x86.
FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "amx_int8")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                present = set(line.split(":", 1)[1].split())
                return [f for f in FLAGS if f in present]
    except OSError:
        pass
    return []


# The image encoder's matrix products (ViT-L/16, 197 tokens, a batch of 16 images): (M, K, N) of qkv, the
# attention output, and the MLP's two layers. They are most of the model's arithmetic.
MODEL_SHAPES = ((16 * 197, 1024, 3072), (16 * 197, 1024, 1024), (16 * 197, 1024, 4096), (16 * 197, 4096, 1024))


def gemm_peak(
    dtype: str = "fp32", shapes: tuple[tuple[int, int, int], ...] = MODEL_SHAPES, seconds: float = 4.0
) -> float:
    """The best GFLOP/s of the matrix products `shapes` ((M, K, N): an (M, K) input times a (K, N) weight;
    default the model's own) in `dtype` on this process's threads, by the best of the kernels the model can
    reach (`torch.mm`, `F.linear`, oneDNN's linear, which `model.kernels` uses): each timed as often as fits in
    its share of `seconds` after a warm-up. What the cores can do on this model's work, measured now: a
    benchmark figure above it is a measuring error. Measure it on a quiet machine (another process on the
    cores lowers it)."""
    import torch
    import torch.nn.functional as F

    kind = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    onednn = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    best_rate = 0.0
    for m, k, n in shapes:
        a, w = torch.randn(m, k).to(kind), torch.randn(n, k).to(kind)
        wt = w.t().contiguous()
        kernels = [lambda: torch.mm(a, wt), lambda: F.linear(a, w)]
        if onednn:
            kernels.append(lambda: torch.ops.mkldnn._linear_pointwise(a, w, None, "none", [], ""))
        for kernel in kernels:
            kernel()
            best, deadline = float("inf"), time.perf_counter() + seconds / len(shapes) / len(kernels)
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                kernel()
                best = min(best, time.perf_counter() - start)
            best_rate = max(best_rate, 2 * m * k * n / best / 1e9)
    return best_rate


def describe(peaks: bool = True) -> dict[str, Any]:
    """The machine as a benchmark reports it, with its GEMM peaks measured now (unless `peaks` is False)."""
    import torch

    machine: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "cpu_model": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "onednn": torch.backends.mkldnn.is_available(),
        "threads": torch.get_num_threads(),
    }
    if peaks:
        machine["gemm_peak_gflops"] = {"fp32": gemm_peak("fp32"), "bf16": gemm_peak("bf16")}
    return machine
