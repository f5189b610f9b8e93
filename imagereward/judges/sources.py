"""Where the judges' weights come from, and finding them in a `download_root` as their originals do.

The original (`ImageReward.utils._download`) keeps each file as `<download_root>/<basename of its URL>`
(default `~/.cache/ImageReward`, shared with an installed original) and uses a file found there without any
check; otherwise it downloads the URL. The URLs are the original's: OpenAI's `ViT-L-14.pt` (its SHA-256 is
in the URL and is checked after a download, as `clip.load` does), Salesforce's `model_large.pth`, LAION's
aesthetic MLP. THUDM's `med_config.json` comes from the hub repo through huggingface_hub, as the original
fetches it. `HF_HUB_OFFLINE=1` forbids every download.

PickScore and HPSv2.1 come from the hub, as their originals fetch them (`from_pretrained`,
`hf_hub_download`): into the Hugging Face cache, or, with a `download_root`, into a folder laid out like
`tests/fixtures/parity-judges/<judge>/` (PickScore: one subfolder per hub repo, named `<owner>-<repo>`).
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


CLIP_FILE = WeightsFile(
    "https://openaipublic.azureedge.net/clip/models/"
    "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt",
    sha256="b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836",
)
BLIP_FILE = WeightsFile("https://storage.googleapis.com/sfr-vision-language-research/BLIP/models/model_large.pth")
AESTHETIC_FILE = WeightsFile(
    "https://github.com/christophschuhmann/improved-aesthetic-predictor/raw/main/sac%2Blogos%2Bava1-l14-linearMSE.pth"
)
MED_CONFIG_REPO = "THUDM/ImageReward"
MED_CONFIG_FILE = "med_config.json"


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


def med_config(root: str | Path | None) -> Path:
    """THUDM's `med_config.json` (BLIP's BERT config): `<root>/med_config.json`, else from the hub into root.

    Raises:
        WeightsUnavailableError: not in root, and the hub could not be reached.
    """
    folder = download_root(root)
    target = folder / MED_CONFIG_FILE
    if target.is_file():
        return target
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(
            hf_hub_download(MED_CONFIG_REPO, MED_CONFIG_FILE, local_dir=str(folder), library_name="imagereward")
        )
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as e:
        raise WeightsUnavailableError(
            f"could not get {MED_CONFIG_FILE} from the hub repo {MED_CONFIG_REPO} ({type(e).__name__}); "
            f"put it into {folder} to work offline"
        ) from e


# ------------------------------------------------------------------------------ hub judges (PickScore, HPSv2.1)
@dataclass(frozen=True)
class HubRepo:
    """A hub repo whose files a judge reads, and the subfolder a `download_root` keeps them in."""

    repo_id: str
    # The revision the originals load.
    revision: str = "main"

    @property
    def folder(self) -> str:
        return self.repo_id.replace("/", "-")


PICKSCORE_MODEL = HubRepo("yuvalkirstain/PickScore_v1")
PICKSCORE_PROCESSOR = HubRepo("laion/CLIP-ViT-H-14-laion2B-s32B-b79K")
PICKSCORE_WEIGHTS = ("model.safetensors", "pytorch_model.bin")  # the first the repo (or folder) has
HPS_REPO = HubRepo("xswu/HPSv2")
HPS_FILE = "HPS_v2.1_compressed.pt"
HPS_CONFIG = "open_clip_config.json"  # optional, in a download_root only: the architecture if not ViT-H-14


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


def pickscore_folders(root: str | Path | None) -> tuple[Path, Path]:
    """PickScore's model folder (`config.json` + weights) and processor folder (`tokenizer.json` +
    `preprocessor_config.json`): `<root>/yuvalkirstain-PickScore_v1/` and
    `<root>/laion-CLIP-ViT-H-14-laion2B-s32B-b79K/` (filled from the hub when files are missing), or the
    hub cache's snapshots when `root` is None. Only these files are fetched (not LAION's 4 GB of weights)."""
    folders = []
    for repo, files in (
        (PICKSCORE_MODEL, (("config.json",), PICKSCORE_WEIGHTS)),
        (PICKSCORE_PROCESSOR, (("tokenizer.json",), ("preprocessor_config.json",))),
    ):
        folder = download_root(root) / repo.folder if root is not None else None
        paths = [hub_file(repo, names, folder) for names in files]
        folders.append(paths[0].parent)
    return folders[0], folders[1]


def hps_files(root: str | Path | None) -> tuple[Path, Path | None]:
    """HPSv2.1's checkpoint (`<root>/HPS_v2.1_compressed.pt`, else from the hub repo xswu/HPSv2, as
    `hpsv2.score` fetches it) and the optional `<root>/open_clip_config.json`."""
    folder = download_root(root) if root is not None else None
    weights = hub_file(HPS_REPO, (HPS_FILE,), folder)
    config = folder / HPS_CONFIG if folder is not None and (folder / HPS_CONFIG).is_file() else None
    return weights, config
