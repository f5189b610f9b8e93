"""The paper's Table 2 protocol (the original's `test.py`): rank each prompt's generations with a judge,
then count pairwise agreement with the human ranking.

Counting follows the original's `acc()` exactly: for every pair (i, j) of one prompt's images, a pair whose
human ranks are equal is skipped; otherwise it counts, and it is right only when the rewards order the two
strictly the way people did (equal rewards count as wrong; a NaN reward makes the original's comparisons all
false, so that pair is not counted either). Ranks are 1 for the best.
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol, Sequence

from .judges import spec
from .judges.base import ranks_from_rewards

# Where the test set is published: test.json in the original's GitHub repository, the images on the hub.
TEST_JSON_URL = "https://raw.githubusercontent.com/THUDM/ImageReward/main/data/test.json"
TEST_IMAGES_REPO = "THUDM/ImageReward"
TEST_IMAGES_FILE = "test_images.zip"


def paper_accuracy(judge: str) -> float | None:
    """The paper's Table 2 accuracy on this test set for a judge (percent), where it gives one."""
    return spec(judge).paper_accuracy


@dataclass(frozen=True)
class PairCounts:
    correct: int
    total: int


def pairwise_counts(human_ranking: Sequence[float], rewards: Sequence[float]) -> PairCounts:
    """Pairs of one prompt's images on which the rewards agree with the human ranking (see module doc)."""
    if len(human_ranking) != len(rewards):
        raise ValueError(f"{len(human_ranking)} human ranks but {len(rewards)} rewards")
    correct = total = 0
    n = len(human_ranking)
    for i in range(n):
        for j in range(i + 1, n):
            if human_ranking[i] == human_ranking[j] or math.isnan(rewards[i]) or math.isnan(rewards[j]):
                continue  # tied people, or a NaN reward: the original's comparisons count neither
            total += 1
            people_prefer_i = human_ranking[i] < human_ranking[j]
            if (rewards[i] > rewards[j]) if people_prefer_i else (rewards[i] < rewards[j]):
                correct += 1
    return PairCounts(correct, total)


def pairwise_accuracy(human_rankings: Iterable[Sequence[float]], rewards: Iterable[Sequence[float]]) -> float:
    """The original's `acc()`: correct pairs over counted pairs, pooled over all prompts."""
    correct = total = 0
    for ranking, reward in zip(human_rankings, rewards, strict=True):
        counts = pairwise_counts(ranking, reward)
        correct += counts.correct
        total += counts.total
    return correct / total if total else float("nan")


class Rewards(Protocol):
    """What the protocol needs of a judge: its scores of one prompt's images."""

    def rewards(self, prompt: str, images: Sequence[Any]) -> list[float]: ...


def read_test_set(path: str | Path) -> list[dict[str, Any]]:
    """The original's `test.json`: a list of {id, prompt, generations, ranking}."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"test set not found: {path} (use --download, or pass --test-json)")
    items = json.loads(path.read_text(encoding="utf-8"))
    for k, item in enumerate(items):
        missing = {"id", "prompt", "generations", "ranking"} - set(item)
        if missing:
            raise ValueError(f"{path}: item {k} lacks {sorted(missing)}; expected the original's test.json format")
        if len(item["generations"]) != len(item["ranking"]):
            raise ValueError(
                f"{path}: item {item['id']} has {len(item['generations'])} images but {len(item['ranking'])} ranks"
            )
    return items


def evaluate(
    judge: Rewards,
    items: Sequence[dict[str, Any]],
    images_dir: str | Path,
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """Ranks every item's generations; returns rows in the original's `test_<model>.json` format."""
    images_dir = Path(images_dir)
    results = []
    for item in items:
        paths = [str(images_dir / g) for g in item["generations"]]
        rewards = judge.rewards(item["prompt"], paths)
        ranking = ranks_from_rewards(rewards)  # as `inference_rank` ranks, and a list for one image too
        results.append({"id": item["id"], "prompt": item["prompt"], "ranking": ranking, "rewards": rewards})
        if progress:
            progress(1)
    return results


def download_weights(judges: Sequence[str], download_root: str | Path | None) -> None:
    """Fetches the chosen judges' files into `download_root` (ImageReward's, PickScore's and HPSv2.1's into the
    Hugging Face cache when `download_root` is None)."""
    for name in judges:
        spec(name).fetch(download_root)


def download_test_set(folder: str | Path) -> tuple[Path, Path]:
    """Fetches test.json (GitHub) and test_images.zip (hub repo THUDM/ImageReward) into `folder` and
    unpacks the images. Needs network access; already present files are kept.

    Returns:
        (path of test.json, folder of the images).
    """
    import urllib.request

    from huggingface_hub import hf_hub_download

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    test_json = folder / "test.json"
    if not test_json.is_file():
        with urllib.request.urlopen(TEST_JSON_URL, timeout=60) as response:
            test_json.write_bytes(response.read())
    images = folder / "test_images"
    if not images.is_dir():
        archive = hf_hub_download(TEST_IMAGES_REPO, TEST_IMAGES_FILE, local_dir=str(folder))
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(folder)
    return test_json, images
