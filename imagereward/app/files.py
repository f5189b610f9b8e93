"""What the page leaves on disk, and how long: a public page must not fill its disk.

A request leaves three kinds of files: the visitor's uploads (Gradio's upload folder, one copy each), the
request's downloads (CSV, JSON and a zip of the images, written straight into that folder, so that Gradio
serves them without copying them again), and nothing else: the gallery shows the uploads themselves.

- `Janitor` removes, every `sweep_every` seconds, what Gradio handed out (uploads, the downloads it served)
  once it is `lifetime` seconds old, the request folders the downloads were written in, and the empty folders
  uploads leave behind; at exit, all of them. It does this instead of Gradio's `delete_cache`, whose sweep
  (Gradio 6.31, `route_utils.delete_files_created_by_app`) iterates the live set of uploads in a worker thread
  while uploads add to it: the `RuntimeError` that raises ends its loop for good, and the disk then fills.
- A process's downloads folder (`imagereward-downloads-<pid>`) is removed when the process exits, and
  folders of processes that are gone (killed before they could clean up) are removed at start.
- `disk_used()` is what the upload folder holds, which `admission.UploadGuard` keeps under a budget.

So the disk the page uses is at most the budget plus what the requests under way write (the downloads, at
most `view.MAX_ZIP_BYTES` of images per request, and their text files).
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PREFIX = "imagereward-downloads-"
DEFAULT_LIFETIME = 900
# Seconds an upload's folder must have been empty before it is removed.
EMPTY_GRACE = 5
# Gradio names an upload's folder by the SHA-1 or SHA-256 of its content.
_HASH_FOLDER = re.compile(r"^[0-9a-f]{40}$|^[0-9a-f]{64}$")


def _folders(parent: Path) -> list[os.DirEntry]:
    try:
        return [e for e in os.scandir(parent) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []


def sweep_every(lifetime: float) -> int:
    """How often files are checked for their age: a tenth of their lifetime, at least every second, at most
    every minute."""
    return int(max(1, min(60, lifetime // 10)))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def sweep_stale(folders: list[Path], own: Path) -> list[Path]:
    """Removes the downloads folders under `folders` that belong to processes that no longer run; returns
    them."""
    removed = []
    for folder in folders:
        try:
            candidates = list(folder.glob(f"{PREFIX}*"))
        except OSError:
            continue
        for path in candidates:
            pid = path.name.removeprefix(PREFIX)
            if path == own or not pid.isdigit() or not path.is_dir() or _alive(int(pid)):
                continue
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def disk_used(folder: Path) -> int:
    """Bytes of the regular files under `folder` (links not followed)."""
    total = 0
    for root, _, names in os.walk(folder):
        for name in names:
            try:
                stat = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if not os.path.islink(os.path.join(root, name)):
                total += stat.st_size
    return total


class DiskMeter:
    """What `folder` holds (`disk_used`), measured at most every `every` seconds, plus what was `add`ed since."""

    def __init__(self, folder: str | Path, every: float = 2.0) -> None:
        self.folder = Path(folder)
        self.every = every
        self._bytes = 0
        self._since = 0
        self._when = float("-inf")

    def used(self) -> int:
        now = time.monotonic()
        if now - self._when >= self.every:
            self._bytes, self._since, self._when = disk_used(self.folder), 0, now
        return self._bytes + self._since

    def add(self, size: int) -> None:
        """Counts bytes about to be written (an admitted upload) until the next measurement."""
        self._since += size


class Downloads:
    """This process's downloads folder inside Gradio's upload folder: one subfolder per request, removed once
    older than `lifetime`; the whole folder removed at exit, and stale ones of dead processes at start.

    Args:
        upload_folder: Gradio's (`gradio.utils.get_upload_folder()`).
        lifetime: seconds a request's downloads are kept.
    """

    def __init__(self, upload_folder: str | Path, lifetime: float = DEFAULT_LIFETIME) -> None:
        self.upload_folder = Path(upload_folder)
        self.root = self.upload_folder / f"{PREFIX}{os.getpid()}"
        self.lifetime = lifetime
        # Stale folders: of earlier processes here, and of older versions, which wrote to the system temp folder.
        sweep_stale([self.upload_folder, Path(tempfile.gettempdir())], self.root)
        atexit.register(self.remove)

    def new_folder(self) -> Path:
        """A new, empty folder for one request's downloads, named by its creation time (expired ones are
        removed first)."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.expire()
        folder = self.root / f"{time.time():.0f}-{uuid.uuid4().hex}"
        folder.mkdir()
        return folder

    def expire(self) -> None:
        """Removes the request folders older than the lifetime (by the time in their name), and the folders
        Gradio's uploads leave empty once it has removed their file (empty for `EMPTY_GRACE` seconds: Gradio
        makes a folder just before it moves an upload in)."""
        now = time.time()
        for entry in _folders(self.root):
            created = entry.name.split("-", 1)[0]
            if not created.isdigit() or now - int(created) > self.lifetime:
                shutil.rmtree(entry.path, ignore_errors=True)
        for entry in _folders(self.upload_folder):
            try:
                if _HASH_FOLDER.match(entry.name) and now - entry.stat(follow_symlinks=False).st_mtime > EMPTY_GRACE:
                    os.rmdir(entry.path)  # only if empty
            except OSError:
                continue

    def remove(self) -> None:
        """Removes this process's downloads folder (at exit)."""
        shutil.rmtree(self.root, ignore_errors=True)


def expire_tracked(blocks: Any, age: float | None) -> int:
    """Removes the files Gradio tracks for `blocks` (uploads, outputs it moved to its cache) that are older
    than `age` seconds (all with None), except those its components keep (the examples); returns how many.
    Iterates copies of Gradio's sets, which uploads add to meanwhile."""
    keep: set[str] = set()
    for component in list(blocks.blocks.values()):
        keep.update(getattr(component, "keep_in_cache", set()))
    now, removed = time.time(), 0
    for tracked in list(blocks.temp_file_sets):
        for file in list(tracked):
            if file in keep:
                continue
            try:
                if age is not None and now - os.lstat(file).st_ctime <= age:
                    continue
                os.remove(file)
                removed += 1
            except FileNotFoundError:
                pass
            except OSError:
                continue
            tracked.discard(file)
    return removed


class Janitor:
    """A daemon thread that, every `sweep_every(lifetime)` seconds, removes what Gradio tracks for `blocks`
    once it is `lifetime` old (`expire_tracked`) and the downloads' expired folders (`Downloads.expire`); at
    exit, all of it.

    Args:
        downloads: the page's downloads.
        blocks: the Gradio app whose files to sweep (None: only the downloads).
    """

    def __init__(self, downloads: Downloads, blocks: Any | None = None) -> None:
        self.downloads = downloads
        self.blocks = blocks
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="imagereward-janitor", daemon=True)

    def start(self) -> Janitor:
        atexit.register(self.remove_all)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def sweep(self) -> None:
        """One round: the files past their lifetime."""
        if self.blocks is not None:
            expire_tracked(self.blocks, self.downloads.lifetime)
        self.downloads.expire()

    def remove_all(self) -> None:
        """Removes every file of this process's (at exit)."""
        self.stop()
        if self.blocks is not None:
            expire_tracked(self.blocks, None)
        self.downloads.remove()

    def _run(self) -> None:
        every = sweep_every(self.downloads.lifetime)
        while not self._stop.wait(every):
            try:
                self.sweep()
            except Exception:  # a failed round must not end the sweeping
                log.exception("sweeping the page's files failed; trying again in %s s", every)
