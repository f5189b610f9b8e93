"""The one device boundary: where the model's work of a request runs.

Each kind of request (scoring, `/score_pairs`, explanations) is prepared on the CPU, handed to its device
function once, and finished on the CPU. On a ZeroGPU Space that function runs inside `spaces.GPU` (a GPU
worker is attached for `duration(request)` seconds; what crosses pickles), elsewhere it is a plain call in
this process. `Page` declares its three device functions with `device_function`; nothing else knows.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def device_function(work: F, duration: Callable[..., int], zero_gpu: bool) -> F:
    """`work` as the device runs it: wrapped in `spaces.GPU(duration=duration)` on ZeroGPU (`duration` gets
    `work`'s arguments and says how many seconds of GPU to ask for), else `work` itself.

    `spaces` is imported here only on ZeroGPU, where `app.py` has imported it before torch as it asks.
    """
    if not zero_gpu:
        return work
    import spaces

    return spaces.GPU(duration=duration)(work)
