"""Reading an ImageReward checkpoint and loading it strictly into `ImageRewardModel`.

Loading is four visible steps (see `imagereward.load`): resolve -> `read_state_dict` ->
`convert_state_dict` -> `load_converted`. The original's checkpoint is a plain `torch.save(state_dict)`
keyed `blip.visual_encoder.*`, `blip.text_encoder.*`, `blip.{vision,text}_proj.*` and
`mlp.layers.{0,2,4,6,7}.*` (indices skip the Dropouts between its Linears).
"""

from __future__ import annotations

import ctypes
import functools
import mmap
import pickle
import sys
import zipfile
from pathlib import Path
from typing import Callable, Mapping

import torch
from safetensors.torch import load_file as load_safetensors

from ..errors import CheckpointError

# Prefix swaps from the original's keys to this package's modules, applied in order, first match wins.
KEY_SWAPS: tuple[tuple[str, str], ...] = (
    ("blip.visual_encoder.", "visual_encoder."),
    ("blip.text_encoder.", "text_encoder."),
    ("mlp.layers.0.", "head.0."),
    ("mlp.layers.2.", "head.1."),
    ("mlp.layers.4.", "head.2."),
    ("mlp.layers.6.", "head.3."),
    ("mlp.layers.7.", "head.4."),
)

# Keys of the original checkpoint that scoring never uses, dropped on purpose: the contrastive
# projections of BLIP pre-training, and a buffer that the text encoder rebuilds itself.
IGNORED_KEYS: frozenset[str] = frozenset(
    {
        "blip.vision_proj.weight",
        "blip.vision_proj.bias",
        "blip.text_proj.weight",
        "blip.text_proj.bias",
        "blip.text_encoder.embeddings.position_ids",
    }
)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Reads a checkpoint safely: `.safetensors`, or a torch file with `weights_only=True`, memory-mapped
    when the file allows it. A `{"state_dict": ...}` or `{"model": ...}` wrapper is unwrapped.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: the file is truncated, corrupt or not a state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        if path.suffix == ".safetensors":
            state = load_safetensors(str(path))
        else:
            state = _torch_load(path)
    except pickle.UnpicklingError as e:
        if "weights_only" in str(e) or "Weights only" in str(e):
            raise CheckpointError(
                f"{path} holds Python objects besides tensors, which are not loaded for safety; "
                "save a plain state dict (torch.save(model.state_dict())) or a .safetensors file"
            ) from e
        raise _unreadable(path, e) from e
    except Exception as e:  # torch.load fails in many ways on a damaged file (IndexError, KeyError, …)
        raise _unreadable(path, e) from e
    for wrapper in ("state_dict", "model"):
        if isinstance(state, Mapping) and wrapper in state and isinstance(state[wrapper], Mapping):
            state = state[wrapper]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors")
    return dict(state)


def _unreadable(path: Path, error: Exception) -> CheckpointError:
    detail = str(error).splitlines()[0] if str(error) else ""
    return CheckpointError(
        f"could not read checkpoint {path} ({type(error).__name__}: {detail}); "
        "the file may be truncated or corrupt: delete it and download it again"
    )


def is_memory_mapped(path: str | Path) -> bool:
    """Whether `read_state_dict` memory-maps this file (torch's zip format) rather than reading it."""
    path = Path(path)
    return path.suffix != ".safetensors" and zipfile.is_zipfile(path)


def _torch_load(path: Path) -> Mapping[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True, mmap=is_memory_mapped(path))


def convert_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Renames the original's keys onto this package's modules and drops `IGNORED_KEYS`.

    Pure: tensors are passed through untouched. A key that matches no swap is kept as it is, so that the
    strict load names it as unexpected.
    """
    return {convert_key(key): tensor for key, tensor in state.items() if key not in IGNORED_KEYS}


def to_original_layout(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of `convert_state_dict` for this package's keys: the original checkpoint's naming,
    so that a state dict saved from `ImageRewardModel` loads into the original package."""
    inverse = tuple((new, old) for old, new in KEY_SWAPS)
    return {_swap_prefix(key, inverse): tensor for key, tensor in state.items()}


def convert_key(key: str) -> str:
    """This package's name for one of the original checkpoint's keys."""
    return _swap_prefix(key, KEY_SWAPS)


def original_key(key: str) -> str:
    """The original checkpoint's name for one of this package's keys (`head.4.weight` -> `mlp.layers.7.weight`)."""
    return _swap_prefix(key, tuple((new, old) for old, new in KEY_SWAPS))


def _swap_prefix(key: str, swaps: tuple[tuple[str, str], ...]) -> str:
    """The key with its first matching prefix replaced, or unchanged when none matches."""
    for old, new in swaps:
        if key.startswith(old):
            return new + key[len(old) :]
    return key


MATCHING_CONFIGS = "Check that med_config.json (and vision_config.json) belong to this checkpoint."


def check_state_dict(
    model: torch.nn.Module,
    state: Mapping[str, torch.Tensor],
    file_key: Callable[[str], str] = str,
    advice: str = MATCHING_CONFIGS,
) -> None:
    """Compares converted keys and shapes with the model's, key by key, before anything is copied.

    Args:
        file_key: the checkpoint file's own name for a converted key, used in the message.

    Raises:
        CheckpointError: naming missing, unexpected and mis-shaped keys by the file's own key names.
    """
    expected = model.state_dict()
    missing = sorted(file_key(k) for k in set(expected) - set(state))
    unexpected = sorted(file_key(k) for k in set(state) - set(expected))
    mis_shaped = [
        f"{file_key(k)}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {_short(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_short(unexpected)}")
    if mis_shaped:
        problems.append(f"mis-shaped weights {_short(mis_shaped)}")
    if problems:
        raise CheckpointError(
            "checkpoint does not match the model architecture: " + "; ".join(problems) + ". " + advice
        )


def _short(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return f"[{shown}{f', … {len(items) - limit} more' if len(items) > limit else ''}]"


def load_converted(
    model: torch.nn.Module,
    state: Mapping[str, torch.Tensor],
    file_key: Callable[[str], str] = str,
    advice: str = MATCHING_CONFIGS,
) -> None:
    """Checks (see `check_state_dict`), then loads strictly, assigning the checkpoint's tensors (no copy for a
    model built on the meta device)."""
    check_state_dict(model, state, file_key, advice)
    model.load_state_dict(state, strict=True, assign=True)


_PAGE = mmap.PAGESIZE
_MADV_DONTNEED = getattr(mmap, "MADV_DONTNEED", 4)


def release_pages(tensor: torch.Tensor) -> None:
    """Drops the resident pages under a CPU tensor that is no longer needed, on Linux.

    Only for tensors memory-mapped from a checkpoint (`is_memory_mapped`), which are never written: their
    pages are clean copies of the file, so dropping them loses nothing, and reading them again faults them
    back in from the file. (On ordinary memory the same call would zero the pages.) Only whole pages inside
    the tensor are dropped. Anywhere but Linux, a no-op.
    """
    if sys.platform != "linux" or tensor.device.type != "cpu" or tensor.numel() == 0:
        return
    start = tensor.data_ptr()
    end = start + tensor.numel() * tensor.element_size()
    first, last = -(-start // _PAGE) * _PAGE, end // _PAGE * _PAGE
    if last > first:
        _libc().madvise(ctypes.c_void_p(first), ctypes.c_size_t(last - first), _MADV_DONTNEED)


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return libc
