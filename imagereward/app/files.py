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
- `Ledger` records which files each visitor may name in a call (their uploads, what the page sent them), and
  writes them through to a file of the process's, so that the next start removes what a process killed before
  it could clean up left behind (`sweep_dead_ledgers`); at start, uploads older than the lifetime are removed
  too (`sweep_old_uploads`), so that the disk budget counts only live files.
- `disk_used()` is what the upload folder holds, which `host.HostGuard` keeps under a budget.

So the disk the page uses is at most the budget plus what the requests under way write (the downloads, at
most `view.MAX_ZIP_BYTES` of images per request, and their text files).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Iterable

log = logging.getLogger(__name__)

PREFIX = "imagereward-downloads-"
LEDGER_PREFIX = "imagereward-files-"
# Files one visitor may name at once (the oldest are forgotten first): a quota's worth of small uploads.
MOST_PER_VISITOR = 4096
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
        sweep_dead_ledgers(self.upload_folder)
        sweep_old_uploads(self.upload_folder, lifetime)
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


def kept_files(blocks: Any) -> set[str]:
    """The files the components of `blocks` keep for good (the examples' copies in Gradio's cache)."""
    keep: set[str] = set()
    for component in list(blocks.blocks.values()):
        keep.update(getattr(component, "keep_in_cache", set()))
    return keep


def expire_tracked(blocks: Any, age: float | None) -> int:
    """Removes the files Gradio tracks for `blocks` (uploads, outputs it moved to its cache) that are older
    than `age` seconds (all with None), except those its components keep (the examples); returns how many.
    Iterates copies of Gradio's sets, which uploads add to meanwhile."""
    keep = kept_files(blocks)
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
    once it is `lifetime` old (`expire_tracked`), the downloads' expired folders (`Downloads.expire`) and the
    ledger's expired entries (`Ledger.expire`); at exit, all of it.

    Args:
        downloads: the page's downloads.
        blocks: the Gradio app whose files to sweep (None: only the downloads).
        ledger: the files visitors may name (None: none kept).
    """

    def __init__(self, downloads: Downloads, blocks: Any | None = None, ledger: Ledger | None = None) -> None:
        self.downloads = downloads
        self.blocks = blocks
        self.ledger = ledger
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
        if self.ledger is not None:
            self.ledger.expire()

    def remove_all(self) -> None:
        """Removes every file of this process's (at exit)."""
        self.stop()
        if self.blocks is not None:
            expire_tracked(self.blocks, None)
        if self.ledger is not None:
            self.ledger.remove()
        self.downloads.remove()

    def _run(self) -> None:
        every = sweep_every(self.downloads.lifetime)
        while not self._stop.wait(every):
            try:
                self.sweep()
            except Exception:  # a failed round must not end the sweeping
                log.exception("sweeping the page's files failed; trying again in %s s", every)


class Ledger:
    """The files each visitor may name in a call: what they uploaded (`host.HostGuard` records Gradio's
    answer) and what the page sent them (the outputs of their calls), each for `lifetime` seconds, at most
    `MOST_PER_VISITOR` per visitor; and the page's own files (its examples), which everyone may name.

    Every path is also written to `<folder>/imagereward-files-<pid>.txt` (one JSON string a line), rewritten
    with the files still there at each `expire`, and removed at exit with the files: after a kill, the next
    start removes what it lists (`sweep_dead_ledgers`).

    Args:
        folder: Gradio's upload folder.
        lifetime: seconds a file stays nameable (the files' lifetime).
        kept: () -> the page's own files (default: none).
    """

    def __init__(self, folder: str | Path, lifetime: float, kept: Callable[[], Iterable[str]] = tuple) -> None:
        self.folder = Path(folder)
        self.path = self.folder / f"{LEDGER_PREFIX}{os.getpid()}.txt"
        self.lifetime = lifetime
        self.kept = kept
        self._by_visitor: dict[str, OrderedDict[str, float]] = {}
        self._lock = threading.Lock()

    def add(self, who: str, paths: Iterable[str]) -> None:
        """Records `paths` as files `who` may name."""
        now = time.monotonic()
        new = []
        with self._lock:
            files = self._by_visitor.setdefault(who, OrderedDict())
            for path in paths:
                path = os.path.normpath(path)
                new.append(path)
                files[path] = now
                files.move_to_end(path)
            while len(files) > MOST_PER_VISITOR:
                files.popitem(last=False)
            if new:
                try:
                    self.folder.mkdir(parents=True, exist_ok=True)
                    with open(self.path, "a", encoding="utf-8") as f:
                        f.writelines(json.dumps(p) + "\n" for p in new)
                except OSError:
                    log.exception("the ledger of the page's files could not be written")

    def owns(self, who: str, path: str) -> bool:
        """Whether `who` may name `path`: theirs within the lifetime, or one of the page's own files."""
        path = os.path.normpath(path)
        with self._lock:
            added = self._by_visitor.get(who, {}).get(path)
        if added is not None and time.monotonic() - added <= self.lifetime:
            return True
        return path in {os.path.normpath(p) for p in self.kept()}

    def expire(self) -> None:
        """Forgets what is older than the lifetime, and rewrites the ledger file with the files still there."""
        cutoff = time.monotonic() - self.lifetime
        with self._lock:
            for who in list(self._by_visitor):
                files = self._by_visitor[who]
                for path in [p for p, added in files.items() if added < cutoff]:
                    del files[path]
                if not files:
                    del self._by_visitor[who]
            try:
                listed = _ledger_paths(self.path)
            except OSError:
                return
            alive = [p for p in dict.fromkeys(listed) if os.path.lexists(p)]
            if not alive:
                self.path.unlink(missing_ok=True)
                return
            temporary = self.path.with_suffix(".tmp")
            try:
                temporary.write_text("".join(json.dumps(p) + "\n" for p in alive), encoding="utf-8")
                os.replace(temporary, self.path)
            except OSError:
                log.exception("the ledger of the page's files could not be rewritten")

    def remove(self) -> None:
        """Removes every file the ledger lists and the ledger itself (at exit)."""
        with self._lock:
            _remove_listed(self.path, self.folder)
            self._by_visitor.clear()


def _ledger_paths(ledger: Path) -> list[str]:
    paths = []
    for line in ledger.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            path = json.loads(line)
        except ValueError:
            continue
        if isinstance(path, str):
            paths.append(path)
    return paths


def _remove_listed(ledger: Path, folder: Path) -> int:
    """Removes the files `ledger` lists that lie inside `folder` (links not followed), their folders once
    empty, and the ledger; returns how many files."""
    try:
        listed = _ledger_paths(ledger)
    except OSError:
        return 0
    root, removed = os.path.realpath(folder), 0
    for path in dict.fromkeys(listed):
        real = os.path.realpath(os.path.dirname(path))
        if not (real + os.sep).startswith(root + os.sep) or real == root:
            continue
        try:
            os.remove(path)
            removed += 1
        except OSError:
            pass
        try:
            os.rmdir(os.path.dirname(path))  # only if empty
        except OSError:
            pass
    ledger.unlink(missing_ok=True)
    return removed


def sweep_dead_ledgers(folder: str | Path) -> int:
    """Removes what the ledgers of processes that no longer run list (a process killed before it could clean
    up); returns how many files."""
    removed = 0
    for ledger in Path(folder).glob(f"{LEDGER_PREFIX}*.txt"):
        pid = ledger.stem.removeprefix(LEDGER_PREFIX)
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            removed += _remove_listed(ledger, Path(folder))
    return removed


def sweep_old_uploads(folder: str | Path, lifetime: float) -> int:
    """Removes the uploads (Gradio's content-named folders) older than `lifetime` seconds, and those folders
    once empty; returns how many files."""
    now, removed = time.time(), 0
    for entry in _folders(Path(folder)):
        if not _HASH_FOLDER.match(entry.name):
            continue
        for file in Path(entry.path).iterdir():
            try:
                if file.is_file() and not file.is_symlink() and now - file.lstat().st_ctime > lifetime:
                    file.unlink()
                    removed += 1
            except OSError:
                continue
        try:
            os.rmdir(entry.path)
        except OSError:
            pass
    return removed
