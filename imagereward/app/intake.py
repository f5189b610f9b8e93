"""A call's inputs admitted, for every route (the page, `/score`, `/score_pairs`, `/explain`, the MCP tools):
which files it may name, and how much work they may cause.

Every request may be hostile. A sent item is opened only if its path lies inside one of the allowed roots
(Gradio's upload folder, the app's examples; `Roots`); any other path is refused by a lexical check, before any
file-system call, with the same sentence whether it exists or not. The work is bounded: each file at most the
upload limit in bytes and `images.MAX_IMAGE_PIXELS` pixels by its header, resized to at most
`images.MAX_RESIZE_FACTOR` times the square the model sees, and all of a call's files together at most
`pixel_budget` decoded pixels (`PixelBudget`: each file counted once per preprocessing however often it is
referenced, and refused every time if refused once). `Intake` takes a call's items through these checks and
decodes the admitted ones once. URLs and base64 data are received first by `remote`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from ..errors import ImageLoadError
from ..images.decoding import Decoder, Decoding
from ..images.reading import header_size
from ..images.transforms import Preprocessing
from .settings import MAX_UPLOAD_MB

NOT_UPLOADED = (
    "not a file you uploaded to this page; only images you upload (or the page's examples) can be scored here, "
    "and URLs are not fetched on this route (score_images and /score_pairs take URLs and base64 data)"
)
# Where the queue's gate says a file a call may not name lies (`admission.QueueGate`): never a file.
REFUSED_FOLDER = "imagereward-refused"
EXPIRED = "this upload is no longer on the server (uploads are kept for a while only); upload the image again"


# ------------------------------------------------------------------------------------------ the files
def gallery_paths(value: Sequence[Any] | None) -> list[Any]:
    """The path of each item of a `gr.Gallery(type="filepath")` value (`[(path, caption), ...]`, plain
    paths, or the API's file dicts), as sent: nothing is opened or checked here."""
    paths = []
    for item in value or []:
        path = item[0] if isinstance(item, (list, tuple)) and item else item
        if isinstance(path, dict):
            path = path.get("path") or (path.get("image") or {}).get("path")
        paths.append(path)
    return paths


def sent_name(raw: Any, index: int) -> str:
    """The name an item of a request goes by: the file name of its path as sent (nothing is opened)."""
    text = raw if isinstance(raw, str) else ""
    return text.replace("\\", "/").rsplit("/", 1)[-1] or f"image {index + 1}"


class Roots:
    """The only folders a request may name files in (Gradio's uploads, the examples), resolved once.

    Args:
        folders: the folders, as configured (links are resolved here, once).
    """

    def __init__(self, folders: Sequence[str | Path]) -> None:
        self.folders = [str(f) for f in folders]
        self.real = tuple(os.path.realpath(f) for f in self.folders)

    @staticmethod
    def of(roots: Roots | Sequence[str | Path]) -> Roots:
        """`roots` as `Roots` (folders are resolved once here)."""
        return roots if isinstance(roots, Roots) else Roots(roots)

    def allowed(self, raw: Any, name: str, refusal: str = NOT_UPLOADED) -> str:
        """The path of a sent item if it lies inside one of the folders, else refused with `refusal`.

        The first check is lexical, so a path outside the folders is refused before any file-system call can
        tell whether it exists; then links are resolved and the check repeated.

        Raises:
            ImageLoadError: the path is not a string, not absolute, or not inside a folder.
        """
        if not isinstance(raw, str) or not raw or "\x00" in raw or not os.path.isabs(raw):
            raise ImageLoadError(name, refusal)
        path = os.path.normpath(raw)
        if REFUSED_FOLDER in Path(path).parts:
            raise ImageLoadError(name, refusal)
        if not self._inside(path) or not self._inside(os.path.realpath(path)):
            raise ImageLoadError(name, refusal)
        return path

    def _inside(self, path: str) -> bool:
        return any(path.startswith(root.rstrip(os.sep) + os.sep) for root in self.real)


class PixelBudget:
    """The pixels one request may decode, all its files and prompts together.

    A file costs its width x height (from its header) once per preprocessing the request decodes it with
    (ImageReward's, and PickScore's or HPSv2.1's own when they are asked for), and only the first time it
    appears: a file referenced again is neither counted nor checked again, and a file refused once is refused
    every time it appears, with the same reason. Every file is also checked against each preprocessing's
    resize bound (`Preprocessing.check_size`) before anything is decoded.

    Args:
        pixels: the budget.
        preprocessings: how the request's judges read pixels.
        max_bytes: the most one file may take (the upload limit: Gradio's own limit is off, since it drops a
            whole pick for one file over it).
    """

    def __init__(
        self, pixels: int, preprocessings: Sequence[Preprocessing], max_bytes: int = MAX_UPLOAD_MB * 2**20
    ) -> None:
        self.pixels = pixels
        self.max_bytes = max_bytes
        self.left = pixels
        self.preprocessings = list(dict.fromkeys(preprocessings))
        self._seen: dict[str, ImageLoadError | None] = {}

    def admit(self, path: str, name: str) -> None:
        """Counts an allowed file against the budget (see the class doc).

        Raises:
            ImageLoadError: unreadable, expired, too large, its resize too large, or over what is left.
        """
        if path in self._seen:
            refused = self._seen[path]
            if refused is not None:
                raise refused.renamed(name)
            return
        try:
            if not os.path.lexists(path):
                raise ImageLoadError(name, EXPIRED)
            size = os.path.getsize(path)
            if size > self.max_bytes:
                raise ImageLoadError(
                    name,
                    f"{size / 2**20:.1f} MB is over the {self.max_bytes // 2**20} MB a file may be; compress it or "
                    "scale it down first",
                )
            width, height = header_size(path, name)
            for preprocessing in self.preprocessings:
                preprocessing.check_size(width, height, name)
            cost = width * height * len(self.preprocessings)
            if cost > self.left:
                raise ImageLoadError(
                    name,
                    f"the request's budget of {self.pixels:,} decoded pixels was used up by the images before it "
                    "(each image counts once for ImageReward and once more for each other judge that reads "
                    "pixels its own way); score it in another request",
                )
        except ImageLoadError as e:
            self._seen[path] = e
            raise
        self._seen[path] = None
        self.left -= cost


class Intake:
    """One call's files on their way in, for every route (score, pairs, explain): each sent item checked
    (inside the roots, then within the size limits and what is left of the pixel budget) or refused with its
    reason, in the order taken; then every admitted file decoded once per preprocessing (`decode`).

    Args:
        roots: the only folders files may be named in.
        budget: the call's pixel budget (its preprocessings are what `decode` makes).
    """

    def __init__(self, roots: Roots | Sequence[str | Path], budget: PixelBudget) -> None:
        self.roots = Roots.of(roots)
        self.budget = budget
        self.sources: list[str] = []  # the admitted files' paths, in the order taken
        self.names: list[str] = []
        self.slots: dict[int, int] = {}  # an item's index as sent -> its index among the admitted
        self.refused: dict[int, ImageLoadError] = {}

    def take(self, index: int, raw: Any, name: str, path: str | None = None, refusal: str = NOT_UPLOADED) -> bool:
        """Admits item `index` (sent as `raw`; `path`: a file the call's own receiver wrote, checked by the
        budget only) or records why not; True if admitted."""
        try:
            path = path if path is not None else self.roots.allowed(raw, name, refusal)
            self.budget.admit(path, name)
        except ImageLoadError as e:
            self.refused[index] = e
            return False
        self.slots[index] = len(self.sources)
        self.sources.append(path)
        self.names.append(name)
        return True

    def refuse(self, index: int, error: ImageLoadError) -> None:
        """Records item `index` as refused for a reason found before its file was looked at."""
        self.refused[index] = error

    def decode(self, decoder: Decoder | None = None) -> dict[Preprocessing, list[Decoding]]:
        """Every admitted file as each of the budget's preprocessings makes it (`Decoder.decode`), decoded once;
        `decoder`: the threads to use (default: threads of its own, shut down after)."""
        owned = decoder is None
        decoder = decoder or Decoder()
        try:
            return decoder.decode(self.sources, self.names, self.budget.preprocessings)
        finally:
            if owned:
                decoder.close()
