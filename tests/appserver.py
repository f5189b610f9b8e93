"""Starts the real app (`python app.py`) on 127.0.0.1 in its own process group, for browser and API tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
# The process id of each running app, by its base URL (for tests that read the server's memory).
PIDS: dict[str, int] = {}


def peak_memory_mb(pid: int) -> float:
    """The peak resident memory of a process so far (VmHWM), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmHWM for process {pid}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(tmp_dir: Path, **env_overrides: str) -> Iterator[str]:
    """Yields the base URL of a freshly started app; stops it (and its children) afterwards."""
    port = free_port()
    env = {
        **os.environ,
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_OFFLINE": "1",
        "GRADIO_TEMP_DIR": str(tmp_dir / "gradio"),
        "GRADIO_EXAMPLES_CACHE": str(tmp_dir / "examples-cache"),
        "HF_HOME": str(tmp_dir / "hf"),
        **env_overrides,
    }
    log = open(tmp_dir / f"app-{port}.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"app exited with {proc.returncode}: {(tmp_dir / f'app-{port}.log').read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"app did not answer on {url}: {(tmp_dir / f'app-{port}.log').read_text()}")
            time.sleep(0.5)
        PIDS[url] = proc.pid
        yield url
    finally:
        PIDS.pop(url, None)
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except ProcessLookupError:  # it had exited (the error above says why)
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
