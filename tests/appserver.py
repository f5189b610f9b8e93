"""Starts the real app (`python app.py`) on 127.0.0.1 in its own process group, for browser and API tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
# The process id of each running app, by its base URL (for tests that read the server's memory), and the process.
PIDS: dict[str, int] = {}
PROCESSES: dict[str, subprocess.Popen] = {}


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
        PROCESSES[url] = proc
        yield url
    finally:
        PIDS.pop(url, None)
        PROCESSES.pop(url, None)
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except ProcessLookupError:  # it had exited (the error above says why)
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


_FUNCTIONS: dict[str, dict[str, int]] = {}  # each page's function indices by API name


def page_call(
    url: str,
    name: str,
    data: list,
    headers: dict[str, str] | None = None,
    timeout: float = 300,
    times: dict[str, float] | None = None,
    joined_event: threading.Event | None = None,
    logs: list[str] | None = None,
    session: str | None = None,
) -> tuple[str, object]:
    """Calls one of the page's handlers as the page's own script does, whatever its API visibility (the
    queue's join with its function index and a session, the answer from the session's event stream): how a
    hostile client still reaches a private handler. Returns ("complete", the outputs), ("error", Gradio's
    error payload), or (the HTTP status, the refusal's detail) when the call was not admitted; ("unavailable",
    None) for a name the page does not have. `times` gets when the call started and completed (monotonic); `joined_event` is set once the queue has answered the
    join (admitted or refused), so a test can order its calls' admission; `logs` gets the notices the call showed
    (`gr.Warning`, `gr.Info`), in order; `session`: the page's session to call in (default a new one), as one
    page's calls share one (its components' updated choices are that session's)."""
    import json
    import uuid

    import httpx

    if url not in _FUNCTIONS:  # a page's functions do not change while it runs: its config is read once
        config = httpx.get(f"{url}config", timeout=30).json()
        _FUNCTIONS[url] = {d.get("api_name"): d["id"] for d in reversed(config["dependencies"])}
    fn_index = _FUNCTIONS[url].get(name)
    if fn_index is None:
        return "unavailable", None
    session = session or uuid.uuid4().hex
    body = {"data": data, "fn_index": fn_index, "session_hash": session, "event_data": None, "trigger_id": None}
    joined = httpx.post(f"{url}gradio_api/queue/join", json=body, headers=headers, timeout=60)
    if joined_event is not None:
        joined_event.set()
    if joined.status_code != 200:
        return str(joined.status_code), joined.json().get("detail")
    with httpx.stream(
        "GET", f"{url}gradio_api/queue/data?session_hash={session}", headers=headers, timeout=timeout
    ) as s:
        for line in s.iter_lines():
            if not line.startswith("data: "):
                continue
            message = json.loads(line.removeprefix("data: "))
            if logs is not None and message.get("msg") == "log":
                logs.append(str(message.get("log")))
            if times is not None and message.get("msg") in ("process_starts", "process_completed"):
                times[message["msg"]] = time.monotonic()
            if message.get("msg") == "process_completed":
                output = message.get("output") or {}
                return ("complete", output.get("data")) if message.get("success") else ("error", output)
    return "closed", None
