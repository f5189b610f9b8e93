"""The registry of published weights, and resolving a name or a path to local files.

Kept apart from the model code, as open_clip keeps `pretrained.py` apart from `factory.py`.
Downloads go through huggingface_hub, so its cache, progress bars, `HF_HOME`, `HF_HUB_CACHE` and
`HF_HUB_OFFLINE` all apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import WeightsUnavailableError


@dataclass(frozen=True)
class PretrainedWeights:
    """Where one set of published weights lives on the Hugging Face hub."""

    repo_id: str
    weights_file: str = "ImageReward.pt"
    med_config_file: str = "med_config.json"
    # The revision the original loads.
    revision: str = "main"


# Name -> weights; the ImageReward judge registers the published ones (`reward.WEIGHTS`).
_REGISTRY: dict[str, PretrainedWeights] = {}


@dataclass(frozen=True)
class ResolvedFiles:
    """Local files of one model: the checkpoint, its med_config and an optional vision_config."""

    weights: Path
    med_config: Path | None
    vision_config: Path | None


def available_models() -> list[str]:
    """Names of the published models that `imagereward.load` can download."""
    return list(_REGISTRY)


def register(name: str, weights: PretrainedWeights) -> None:
    """Adds a named entry (e.g. a fine-tuned checkpoint on the hub) to the registry."""
    _REGISTRY[name] = weights


def resolve(name_or_path: str | Path, download_root: str | Path | None = None) -> ResolvedFiles:
    """Finds the files of a registry name (downloading them if needed) or of a local file or folder.

    A folder must be laid out like the hub repo: `ImageReward.pt` (or `*.safetensors`) and
    `med_config.json`, optionally `vision_config.json`. A file is a checkpoint; a `med_config.json`
    beside it is used when present.

    Raises:
        ValueError: neither a registry name nor an existing path.
        FileNotFoundError: a folder without a checkpoint.
        WeightsUnavailableError: the download failed and the files are not cached.
    """
    if isinstance(name_or_path, str) and name_or_path in _REGISTRY:
        return _download(name_or_path, _REGISTRY[name_or_path], download_root)
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return _resolve_folder(path)
    if path.is_file():
        return ResolvedFiles(
            path, _optional(path.parent / "med_config.json"), _optional(path.parent / "vision_config.json")
        )
    raise ValueError(
        f"unknown model {str(name_or_path)!r}: not a registry name nor an existing file or folder; "
        f"available models: {available_models()}"
    )


def _optional(path: Path) -> Path | None:
    return path if path.is_file() else None


def _resolve_folder(folder: Path) -> ResolvedFiles:
    candidates = [folder / "ImageReward.pt", folder / "ImageReward.safetensors"]
    weights = next((p for p in candidates if p.is_file()), None)
    if weights is None:
        raise FileNotFoundError(
            f"no checkpoint in {folder}: expected ImageReward.pt or ImageReward.safetensors "
            "(with med_config.json), laid out like the hub repo THUDM/ImageReward"
        )
    return ResolvedFiles(weights, _optional(folder / "med_config.json"), _optional(folder / "vision_config.json"))


def _download(name: str, spec: PretrainedWeights, download_root: str | Path | None) -> ResolvedFiles:
    """Fetches the checkpoint and med_config through huggingface_hub.

    Without `download_root` the files live in the Hugging Face cache (shared with other tools);
    with it they are placed in that folder, as the original's `download_root` does.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    local_dir = str(Path(download_root).expanduser()) if download_root is not None else None
    paths = []
    for filename in (spec.weights_file, spec.med_config_file):
        where = {"revision": spec.revision, "local_dir": local_dir, "library_name": "imagereward"}
        try:
            paths.append(Path(hf_hub_download(spec.repo_id, filename, local_files_only=True, **where)))
            continue  # in the cache: no network at all
        except (LocalEntryNotFoundError, OSError):
            pass
        try:
            unreachable = hub_unreachable()
            if unreachable:
                raise LocalEntryNotFoundError(unreachable)
            paths.append(Path(hf_hub_download(spec.repo_id, filename, **where)))
        except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as e:
            raise WeightsUnavailableError(
                f"could not get {filename} of {name} from the Hugging Face hub repo {spec.repo_id} "
                f"({_why(e)}), and it is not in the local cache. To work offline, either copy "
                f"{spec.weights_file} and {spec.med_config_file} into a folder and load that folder "
                f"(imagereward.load('/path/to/folder'); on the command line --model /path/to/folder; for the app "
                f"IMAGEREWARD_MODEL=/path/to/folder), or fill the Hugging Face cache on a machine with network "
                f"(`hf download {spec.repo_id} {spec.weights_file} {spec.med_config_file}`) and set HF_HUB_OFFLINE=1."
            ) from e
    return ResolvedFiles(paths[0], paths[1], None)


# Seconds to wait for the hub's address to take a connection before giving up on it (huggingface_hub itself
# retries a failed connection five times over 23 s).
HUB_CONNECT_TIMEOUT = 3.0


def hub_unreachable() -> str | None:
    """Why the hub cannot be reached now (offline mode, or its address took no connection within
    `HUB_CONNECT_TIMEOUT`), or None. One connection attempt, before any download."""
    import socket
    from urllib.parse import urlsplit

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "offline mode is on (HF_HUB_OFFLINE)"
    parts = urlsplit(constants.ENDPOINT)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname or "", port), timeout=HUB_CONNECT_TIMEOUT).close()
    except OSError as e:
        return f"the hub at {constants.ENDPOINT} could not be reached ({type(e).__name__})"
    return None


def _why(error: Exception) -> str:
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    if isinstance(error, LocalEntryNotFoundError):
        reason = str(error)
        return (
            reason
            if reason.startswith(("offline mode", "the hub at"))
            else "offline mode is on, or the hub could not be reached"
        )
    if isinstance(error, HfHubHTTPError):
        return f"the hub answered: {str(error).splitlines()[0]}"
    return f"{type(error).__name__}: {error}"
