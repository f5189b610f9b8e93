"""Faster CPU matrix products for the encoders' Linear layers.

On x86 CPUs PyTorch's `F.linear` goes to MKL; oneDNN's linear kernel (the one `torch.compile` uses on the
CPU) is measurably faster here for both float32 and bfloat16 (see BENCHMARKS.md), and gives the same
numbers up to float rounding. `OneDnnLinear` uses it for CPU tensors and falls back to `F.linear`
everywhere else (CUDA, other dtypes, or a PyTorch build without oneDNN).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_ONEDNN_DTYPES = (torch.float32, torch.bfloat16)


def onednn_available() -> bool:
    """Whether this PyTorch build has oneDNN and its pointwise linear operator."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


class OneDnnLinear(nn.Linear):
    """`nn.Linear` (same parameters, same state dict) that runs on oneDNN for CPU float32/bfloat16."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            x.device.type != "cpu"
            or x.dtype not in _ONEDNN_DTYPES
            or x.dtype != self.weight.dtype
            or torch.is_grad_enabled()
            or torch.compiler.is_compiling()  # inductor picks its own (oneDNN) kernel for F.linear
        ):
            return F.linear(x, self.weight, self.bias)
        flat = x.reshape(-1, x.shape[-1])
        out = torch.ops.mkldnn._linear_pointwise(flat, self.weight, self.bias, "none", [], "")
        return out.view(*x.shape[:-1], out.shape[-1])


def use_onednn_linears(module: nn.Module) -> int:
    """Turns every plain `nn.Linear` under `module` into `OneDnnLinear`, keeping its parameters.

    Returns:
        How many layers were switched (0 when oneDNN is not available).
    """
    if not onednn_available():
        return 0
    switched = 0
    for sub in module.modules():
        if type(sub) is nn.Linear:
            sub.__class__ = OneDnnLinear
            switched += 1
    return switched
