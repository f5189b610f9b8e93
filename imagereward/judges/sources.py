"""How a judge's files are found or downloaded, generically: each judge's module says which files it reads as
data in its `JudgeSpec.weights` (a `WeightsFile` by URL, or a `HubFile` of a hub repo); this module only fetches.

A `WeightsFile` is kept as the original (`ImageReward.utils._download`) keeps it: `<download_root>/<basename of
its URL>` (default `~/.cache/ImageReward`, shared with an installed original), used without any check when
found there, else downloaded (its SHA-256 checked when published, as `clip.load` does). A `HubFile` comes
through huggingface_hub, as the originals fetch theirs (`from_pretrained`, `hf_hub_download`): into the Hugging
Face cache, or, with a `download_root`, into `<root>/<owner>-<repo>/` (a folder laid out like
`tests/fixtures/parity-judges/<judge>/`); one kept `in_root` (THUDM's `med_config.json`) lies in the download
root itself, as the original keeps it. `HF_HUB_OFFLINE=1` forbids every download.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import WeightsUnavailableError

DEFAULT_ROOT = "~/.cache/ImageReward"


@dataclass(frozen=True)
class WeightsFile:
    """One published file: its URL, the name it has in a download_root, and its SHA-256 when known."""

    url: str
    sha256: str | None = None

    @property
    def filename(self) -> str:
        return os.path.basename(self.url)  # not unquoted: the original keeps the literal `%2B`


def download_root(folder: str | Path | None) -> Path:
    return Path(folder if folder is not None else DEFAULT_ROOT).expanduser()


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def find_or_download(spec: WeightsFile, root: str | Path | None, what: str) -> Path:
    """`<root>/<filename>` when it exists (as the original finds it), else downloaded there.

    Raises:
        WeightsUnavailableError: offline, or the download failed or did not match its SHA-256.
    """
    folder = download_root(root)
    target = folder / spec.filename
    if target.exists() and not target.is_file():
        raise WeightsUnavailableError(f"{target} exists and is not a regular file; move it away")
    if target.is_file():
        return target
    advice = (
        f"To work offline, put the file {spec.filename} ({spec.url}) into {folder} "
        "(or pass download_root= / --download-root with a folder that holds it)."
    )
    if offline():
        raise WeightsUnavailableError(f"{what} weights are not in {folder} and HF_HUB_OFFLINE is set. {advice}")
    try:
        _download(spec, target)
    except (OSError, ValueError) as e:
        raise WeightsUnavailableError(f"could not download {what} weights from {spec.url} ({e}). {advice}") from e
    return target


def _download(spec: WeightsFile, target: Path) -> None:
    """Streams the URL into a temporary file beside `target`, checks its SHA-256 when known, then renames it
    into place: an interrupted download never leaves a truncated file under the real name."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, partial = tempfile.mkstemp(prefix=f".{spec.filename}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(spec.url, timeout=60) as response:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if spec.sha256 is not None and digest.hexdigest() != spec.sha256:
            raise ValueError(f"the download's SHA-256 {digest.hexdigest()} is not the published {spec.sha256}")
        shutil.move(partial, target)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


# ------------------------------------------------------------------------------------------ hub files
@dataclass(frozen=True)
class HubRepo:
    """A hub repo whose files a judge reads, and the subfolder a `download_root` keeps them in."""

    repo_id: str
    # The revision the originals load.
    revision: str = "main"

    @property
    def folder(self) -> str:
        return self.repo_id.replace("/", "-")


@dataclass(frozen=True)
class HubFile:
    """One file a judge reads from a hub repo: the first of `names` the repo (or its folder) has. In a
    download root it lies in `<root>/<owner>-<repo>/`, or in the root itself (`in_root`); without one, in the
    Hugging Face cache, or in `~/.cache/ImageReward` (`original_cache`: as the original keeps `med_config.json`)."""

    repo: HubRepo
    names: tuple[str, ...]
    in_root: bool = False
    original_cache: bool = False

    @property
    def filename(self) -> str:
        return self.names[0]


Weights = WeightsFile | HubFile


def fetch_file(file: Weights, root: str | Path | None, what: str) -> Path:
    """One of a judge's files (`JudgeSpec.weights`), found or downloaded (see the module doc).

    Raises:
        WeightsUnavailableError: missing, and it could not be downloaded (named, with what to do offline).
    """
    if isinstance(file, WeightsFile):
        return find_or_download(file, root, what)
    if root is None and not file.original_cache:
        return hub_file(file.repo, file.names, None)
    folder = download_root(root)
    return hub_file(file.repo, file.names, folder if file.in_root else folder / file.repo.folder)


def hub_file(repo: HubRepo, filenames: tuple[str, ...], folder: Path | None) -> Path:
    """The first of `filenames` that `folder` holds (as it is, like the original's found files), else the first
    the hub repo has, through huggingface_hub: into `folder` when given, else the Hugging Face cache (offline
    mode, `HF_HOME` and `HF_HUB_CACHE` apply).

    Raises:
        WeightsUnavailableError: none of the files is there and the hub could not give one (named, with what
            to do offline).
    """
    if folder is not None:
        for name in filenames:
            if (folder / name).is_file():
                return folder / name
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

    error: Exception | None = None
    for name in filenames:
        try:
            path = hf_hub_download(
                repo.repo_id,
                name,
                revision=repo.revision,
                local_dir=str(folder) if folder is not None else None,
                library_name="imagereward",
            )
            return Path(path)
        except (EntryNotFoundError, LocalEntryNotFoundError) as e:
            error = error or e  # try the next name; report the first failure
        except (HfHubHTTPError, OSError) as e:
            error = e
            break
    where = f"in {folder}" if folder is not None else "in the Hugging Face cache"
    offline_hint = (
        f"put {filenames[0]} into {folder}"
        if folder is not None
        else f"fill the cache on a machine with network (`hf download {repo.repo_id} {filenames[0]}`) and set "
        "HF_HUB_OFFLINE=1, or pass download_root= / --download-root with a folder laid out like "
        f"<root>/{repo.folder}/{filenames[0]}"
    )
    why = "offline mode is on, or the hub could not be reached"
    if isinstance(error, HfHubHTTPError) and not isinstance(error, EntryNotFoundError):
        why = f"the hub answered: {str(error).splitlines()[0]}"
    raise WeightsUnavailableError(
        f"{filenames[0]} of the hub repo {repo.repo_id} is not {where} and could not be downloaded ({why}). "
        f"To work offline, {offline_hint}."
    ) from error
