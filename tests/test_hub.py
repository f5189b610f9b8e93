"""The hub path, offline: a Hugging Face cache laid out as the hub lays it out, HF_HUB_OFFLINE=1, and a
test-only registry entry that points at the tiny model. Run in a subprocess so that huggingface_hub reads
HF_HOME and HF_HUB_OFFLINE from the environment at import, as it does for users."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from originals import PARITY

REPO_ID = "test-org/tiny-imagereward"
COMMIT = "0123456789abcdef0123456789abcdef01234567"

SCRIPT = f"""
import sys, imagereward
from imagereward.model.pretrained import PretrainedWeights, register
register("tiny-test", PretrainedWeights(repo_id="{REPO_ID}"))
try:
    model = imagereward.load("tiny-test", device="cpu", vision_config=sys.argv[1])
except imagereward.WeightsUnavailableError as e:
    print("UNAVAILABLE:", e)
    sys.exit(3)
print("LOADED", model.score(sys.argv[2], sys.argv[3]))
"""


def run_offline(hf_home: Path, expected: dict) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
    env.pop("HF_HUB_CACHE", None)
    case = expected["scores"][0]
    image = PARITY / "images" / expected["images"][0]
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, str(PARITY / "vision_config.json"), case["prompt"], str(image)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_registry_name_resolves_through_the_offline_cache(hub_cache, expected: dict) -> None:
    hub_cache.add(REPO_ID, {name: PARITY / name for name in ("ImageReward.pt", "med_config.json")})
    result = run_offline(hub_cache.home, expected)
    assert result.returncode == 0, result.stdout + result.stderr
    score = float(result.stdout.split("LOADED")[1])
    assert abs(score - expected["scores"][0]["scores"][expected["images"][0]]) <= 1e-4


def test_empty_cache_offline_says_what_to_do(hub_cache, expected: dict) -> None:
    result = run_offline(hub_cache.home, expected)
    assert result.returncode == 3, result.stdout + result.stderr
    message = result.stdout
    assert "ImageReward.pt" in message and REPO_ID in message
    assert "imagereward.load('/path/to/folder')" in message and "HF_HUB_OFFLINE=1" in message


def test_real_registry_entry_points_at_the_published_repo() -> None:
    import imagereward.judges.imagereward  # noqa: F401  (the ImageReward judge registers its weights)
    from imagereward.model.pretrained import _REGISTRY

    spec = _REGISTRY["ImageReward-v1.0"]
    assert (spec.repo_id, spec.weights_file, spec.med_config_file) == (
        "THUDM/ImageReward",
        "ImageReward.pt",
        "med_config.json",
    )


def test_the_command_line_says_which_option_loads_a_folder(hub_cache, tmp_path: Path) -> None:
    """Offline with an empty cache, `imagereward score` names its own option (main: only the Python call)."""
    env = {**os.environ, "HF_HOME": str(hub_cache.home), "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
    env.pop("HF_HUB_CACHE", None)
    (tmp_path / "a.png").write_bytes((PARITY / "images" / sorted(os.listdir(PARITY / "images"))[0]).read_bytes())
    result = subprocess.run(
        [sys.executable, "-m", "imagereward", "score", str(tmp_path), "--prompt", "a cat"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--model /path/to/folder" in result.stderr and "HF_HUB_OFFLINE=1" in result.stderr


def test_an_unreachable_hub_is_given_up_on_at_once(hub_cache, expected: dict) -> None:
    """Not in the cache, not offline, the hub's address refusing connections: one attempt, then the advice
    (main: huggingface_hub's five retries, 23 s, before the same answer; the app's start waited for them)."""
    import socket
    import time

    with socket.socket() as closed:  # a loopback port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    env = {
        **os.environ,
        "HF_HOME": str(hub_cache.home),
        "HF_HUB_OFFLINE": "0",
        "HF_ENDPOINT": f"http://127.0.0.1:{port}",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    env.pop("HF_HUB_CACHE", None)
    start = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            SCRIPT,
            str(PARITY / "vision_config.json"),
            "a cat",
            str(PARITY / "images" / expected["images"][0]),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    seconds = time.perf_counter() - start
    assert result.returncode == 3, result.stdout + result.stderr
    assert f"the hub at http://127.0.0.1:{port} could not be reached" in result.stdout
    assert seconds < 15, seconds  # the imports, and one refused connection
