"""Reading the tensors of a TorchScript archive (OpenAI's CLIP `ViT-L-14.pt`) without running its code.

`torch.jit.load` compiles the archive's `code/` and rebuilds its modules; `torch.load(weights_only=True)`
refuses the archive. This reader does neither: it unpickles `<prefix>/data.pkl` with an unpickler that knows
only four globals (`torch._utils._rebuild_tensor_v2`, the typed storages, `collections.OrderedDict`, and
TorchScript module classes, which become plain attribute bags), reads each storage from `<prefix>/data/<key>`,
and walks the module tree to the state-dict keys `torch.jit.load(f).state_dict()` gives. The zip member prefix
(`ViT-L-14/` in OpenAI's file) is read from the archive, not assumed.
"""

from __future__ import annotations

import collections
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError

_STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "DoubleStorage": torch.float64,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


class _ScriptModule:
    """A TorchScript module object as pickled: only its attributes (parameters, buffers, submodules)."""

    def __init__(self, *args: Any) -> None:
        self.attributes: dict[str, Any] = {}

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, dict):
            self.attributes = dict(state)


def _rebuild_tensor(storage: torch.Tensor, offset: int, size: tuple, stride: tuple, *_: Any) -> torch.Tensor:
    return storage.as_strided(size, stride, offset)


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str) -> None:
        import io

        super().__init__(io.BytesIO(data))
        self.archive = archive
        self.prefix = prefix
        self.storages: dict[str, torch.Tensor] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module.startswith("__torch__."):
            return _ScriptModule
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not a tensor or a TorchScript module")

    def persistent_load(self, pid: Any) -> torch.Tensor:
        kind, dtype, key, _location, numel = pid
        if kind != "storage" or not isinstance(dtype, torch.dtype):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        if key not in self.storages:
            raw = bytearray(self.archive.read(f"{self.prefix}data/{key}"))
            flat = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
            if flat.numel() < numel:
                raise pickle.UnpicklingError(f"storage {key} holds {flat.numel()} values, {numel} expected")
            self.storages[key] = flat
        return self.storages[key]


def is_torchscript_archive(path: str | Path) -> bool:
    """Whether the file is a zip whose pickle is a TorchScript module (it has a `code/` folder)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any("/code/" in name for name in archive.namelist())


def read_torchscript_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """The archive's parameters and buffers by state-dict key, without running or compiling its code.

    Raises:
        CheckpointError: not a TorchScript archive, or one that holds anything but modules and tensors.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
            if len(pickles) != 1:
                raise CheckpointError(f"{path} is not a TorchScript archive (no <name>/data.pkl in it)")
            prefix = pickles[0][: -len("data.pkl")]
            byteorder = f"{prefix}byteorder"
            if byteorder in archive.namelist() and archive.read(byteorder).strip() not in (b"little", b""):
                raise CheckpointError(f"{path} was saved big-endian; only little-endian archives are read")
            root = _Unpickler(archive.read(pickles[0]), archive, prefix).load()
    except (zipfile.BadZipFile, pickle.UnpicklingError, KeyError, EOFError, ValueError, RuntimeError) as e:
        raise CheckpointError(
            f"could not read the TorchScript archive {path} ({type(e).__name__}: {e}); the file may be truncated "
            "or corrupt: delete it and download it again"
        ) from e
    if not isinstance(root, _ScriptModule):
        raise CheckpointError(f"{path} does not hold a TorchScript module")
    tensors: dict[str, torch.Tensor] = {}
    _collect(root, "", tensors)
    return tensors


def _collect(module: _ScriptModule, prefix: str, out: dict[str, torch.Tensor]) -> None:
    for name, value in module.attributes.items():
        if isinstance(value, torch.Tensor):
            out[prefix + name] = value.clone()  # its own storage, not a view of the whole archive's buffer
        elif isinstance(value, _ScriptModule):
            _collect(value, f"{prefix}{name}.", out)
