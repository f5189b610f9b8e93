"""Where the baselines' weights come from, and finding them in a `download_root` as the original does.

The original (`ImageReward.utils._download`) keeps each file as `<download_root>/<basename of its URL>`
(default `~/.cache/ImageReward`, shared with an installed original) and uses a file found there without any
check; otherwise it downloads the URL. The URLs are the original's: OpenAI's `ViT-L-14.pt` (its SHA-256 is
in the URL and is checked after a download, as `clip.load` does), Salesforce's `model_large.pth`, LAION's
aesthetic MLP. THUDM's `med_config.json` comes from the hub repo through huggingface_hub, as the original
fetches it. `HF_HUB_OFFLINE=1` forbids every download.
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
