"""What the page leaves on disk: downloads folders named by their creation time and removed once their
lifetime is over, those of dead processes swept at start, and Gradio's tracked files removed by the janitor
even while uploads keep coming."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace


def test_download_folders_are_removed_once_their_lifetime_is_over(tmp_path: Path) -> None:
    import os
    import time

    from imagereward.app.files import Downloads

    downloads = Downloads(tmp_path, lifetime=600)
    past = time.time() - 601
    old = downloads.root / f"{past:.0f}-a-request"  # named by its creation time, as `new_folder` names them
    old.mkdir(parents=True)
    (old / "rankings.csv").write_text("x")
    emptied = tmp_path / ("ab" * 20)  # a folder Gradio made for an upload it has since removed
    emptied.mkdir()
    os.utime(emptied, (past, past))
    kept = tmp_path / ("cd" * 20)
    kept.mkdir()
    (kept / "upload.png").write_bytes(b"x")
    os.utime(kept, (past, past))
    recent = downloads.new_folder()
    new = downloads.new_folder()
    assert not old.exists() and not emptied.exists() and kept.is_dir()
    assert recent.is_dir() and new.is_dir() and recent != new
    downloads.remove()
    assert not downloads.root.exists()


def test_the_downloads_of_a_process_that_is_gone_are_swept_at_start(tmp_path: Path) -> None:
    import os
    import subprocess

    from imagereward.app.files import PREFIX, Downloads

    gone = subprocess.Popen(["true"])
    gone.wait()  # its pid now names no process
    dead, alive = tmp_path / f"{PREFIX}{gone.pid}", tmp_path / f"{PREFIX}{os.getppid()}"
    for folder in (dead, alive):
        (folder / "req").mkdir(parents=True)
        (folder / "req" / "ranked_images.zip").write_bytes(b"x" * 100)
    downloads = Downloads(tmp_path)
    assert not dead.exists() and alive.is_dir() and downloads.root.name == f"{PREFIX}{os.getpid()}"


def test_the_janitor_sweeps_gradios_files_while_uploads_add_to_them(tmp_path: Path) -> None:
    """Gradio 6.31's own sweep iterates its live set of uploads in a thread while uploads add to it; the
    `RuntimeError` that raises ends its loop for good. The janitor's sweep iterates copies: it removes every
    expired file (not the examples the page keeps) however many uploads arrive meanwhile."""
    import os

    from imagereward.app.files import expire_tracked

    old = time.time() - 100
    files = []
    for k in range(2000):
        files.append(str(tmp_path / f"upload{k}.png"))
        Path(files[-1]).write_bytes(b"x")
        os.utime(files[-1], (old, old))  # ctime is not settable: the age check below uses a negative age
    example = str(tmp_path / "example.jpg")
    Path(example).write_bytes(b"x")
    uploads = set(files) | {example}
    blocks = SimpleNamespace(blocks={0: SimpleNamespace(keep_in_cache={example})}, temp_file_sets=[uploads])
    stop = threading.Event()

    def upload() -> None:
        for k in range(50_000):  # names only, added while the sweeps run
            if stop.is_set():
                return
            uploads.add(str(tmp_path / f"new{k}.png"))

    adder = threading.Thread(target=upload)
    adder.start()
    try:
        removed = sum(expire_tracked(blocks, -1.0) for _ in range(5))
    finally:
        stop.set()
        adder.join()
    assert removed == 2000 and not any(Path(f).exists() for f in files) and Path(example).exists()
    assert example in uploads and not (set(files) & uploads)
