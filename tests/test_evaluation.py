"""Table 2's accuracy: hand-worked cases, agreement with the original's acc() rule on random rankings with
ties on both sides, and `imagereward eval` end to end on a small test set in the original's format."""

from __future__ import annotations

import json
import math
import random
import shutil
from pathlib import Path

import pytest

from imagereward import cli, evaluation
from imagereward.evaluation import pairwise_accuracy, pairwise_counts
from originals import EXPECTED, PARITY


@pytest.mark.parametrize(
    "human, rewards, correct, total",
    [
        ([1, 2, 3], [3.0, 2.0, 1.0], 3, 3),  # all pairs agree
        ([1, 2, 3], [1.0, 2.0, 3.0], 0, 3),  # all reversed
        ([1, 1, 2], [0.5, 0.2, 0.1], 2, 2),  # tied people: pair (0, 1) not counted
        ([1, 2], [0.3, 0.3], 0, 1),  # tied rewards count as wrong
        ([2, 1], [0.3, 0.3], 0, 1),
        ([1, 2, 5, 3], [0.9, 0.1, 0.2, 0.5], 4, 6),  # ranks need not be contiguous
        ([1, 1, 1], [0.1, 0.2, 0.3], 0, 0),  # nothing to compare
        ([1, 2], [math.nan, 0.0], 0, 0),  # a NaN reward: the original counts neither way
    ],
)
def test_hand_worked_cases(human, rewards, correct, total) -> None:
    counts = pairwise_counts(human, rewards)
    assert (counts.correct, counts.total) == (correct, total)


def test_pooled_over_prompts_not_averaged() -> None:
    assert pairwise_accuracy([[1, 2], [1, 2, 3]], [[1.0, 0.0], [1.0, 2.0, 3.0]]) == pytest.approx(1 / 4)


def original_acc(score_sample: list[dict], target_sample: list[dict]) -> float:
    """The branch structure of the original test.py's acc(), restated: for i < j, when people rank i below
    j, the pair counts and is right iff reward_i < reward_j (>= counts as wrong); when people rank i above
    j, right iff reward_i > reward_j (<= wrong); equal human ranks add nothing."""
    total = right = 0.0
    for human_item, model_item in zip(score_sample, target_sample):
        ranks, rewards = human_item["ranking"], model_item["rewards"]
        for i in range(len(ranks)):
            for j in range(i + 1, len(ranks)):
                if ranks[i] > ranks[j]:
                    if rewards[i] >= rewards[j]:
                        total += 1
                    elif rewards[i] < rewards[j]:
                        total += 1
                        right += 1
                elif ranks[i] < ranks[j]:
                    if rewards[i] > rewards[j]:
                        total += 1
                        right += 1
                    elif rewards[i] <= rewards[j]:
                        total += 1
    return right / total


@pytest.mark.parametrize("seed", range(20))
def test_agrees_with_the_original_rule_on_random_rankings(seed: int) -> None:
    rng = random.Random(seed)
    humans, models = [], []
    for _ in range(rng.randint(1, 30)):
        n = rng.randint(2, 9)
        humans.append({"ranking": [rng.randint(1, 4) for _ in range(n)]})  # ties among people
        models.append({"rewards": [rng.choice([-1.0, 0.0, 0.5, 1.0]) for _ in range(n)]})  # ties in rewards
    if all(len(set(h["ranking"])) == 1 for h in humans):
        humans[0]["ranking"][0] = 5
    want = original_acc(humans, models)
    got = pairwise_accuracy([h["ranking"] for h in humans], [m["rewards"] for m in models])
    assert got == want


def make_test_set(folder: Path) -> tuple[Path, list[dict]]:
    """Three prompts over the parity images, in the original's test.json layout (images under part-*/)."""
    items = []
    for k, case in enumerate(EXPECTED["rank"][:3]):
        names = case["images"][k : k + 5]
        generations = []
        for name in names:
            rel = f"part-00000{k}/images/{name}"
            (folder / "test_images" / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(PARITY / "images" / name, folder / "test_images" / rel)
            generations.append(rel)
        ranking = [1, 2, 2, 4, 3]  # a human tie included
        items.append({"id": f"00000{k}-0001", "prompt": case["prompt"], "generations": generations, "ranking": ranking})
    test_json = folder / "test.json"
    test_json.write_text(json.dumps(items, ensure_ascii=False))
    return test_json, items


def test_eval_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    test_json, items = make_test_set(tmp_path)
    code = cli.main(["eval", "--data-dir", str(tmp_path), "--model", str(PARITY), "--device", "cpu", "--quiet"])
    assert code == 0
    out = json.loads((tmp_path / "test_ImageReward-v1.0.json").read_text())
    assert [set(r) for r in out] == [{"id", "prompt", "ranking", "rewards"}] * 3
    want_rewards = []
    for k, (item, row) in enumerate(zip(items, out)):
        case = EXPECTED["rank"][k]
        want = case["rewards"][k : k + 5]
        want_rewards.append(want)
        assert row["id"] == item["id"] and row["prompt"] == item["prompt"]
        assert max(abs(a - b) for a, b in zip(row["rewards"], want)) <= 1e-4
        assert sorted(row["ranking"]) == [1, 2, 3, 4, 5]
    accuracy = pairwise_accuracy([i["ranking"] for i in items], want_rewards)
    assert f"{100 * accuracy:7.2f}%" in capsys.readouterr().out


def test_eval_missing_image_is_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    test_json, items = make_test_set(tmp_path)
    missing = tmp_path / "test_images" / items[1]["generations"][2]
    missing.unlink()
    code = cli.main(["eval", "--data-dir", str(tmp_path), "--model", str(PARITY), "--device", "cpu", "--quiet"])
    assert code == 2
    assert f"{missing}: file not found" in capsys.readouterr().err


def test_eval_unknown_scorer_lists_the_available(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    make_test_set(tmp_path)
    assert cli.main(["eval", "--data-dir", str(tmp_path), "--scorers", "CLIPS"]) == 2
    assert "unknown judge 'CLIPS'; available: ImageReward-v1.0, CLIP, BLIP, Aesthetic" in capsys.readouterr().err


FOUR = Path(__file__).parent / "fixtures" / "eval-four"
BASELINES = Path(__file__).parent / "fixtures" / "parity-baselines"


def test_eval_with_all_four_scorers_gives_the_originals_accuracies(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Table 2 on a small set with the tiny models: rewards, rankings and accuracies equal those of the
    original's `inference_rank` on the same set (tests/fixtures/eval-four, made by tools/original_eval.py)."""
    scorers = ["ImageReward-v1.0", "CLIP", "BLIP", "Aesthetic"]
    args = ["eval", "--test-json", str(FOUR / "test.json"), "--images-dir", str(BASELINES)]
    args += ["--output-dir", str(tmp_path), "--model", str(PARITY), "--download-root", str(BASELINES)]
    assert cli.main([*args, "--device", "cpu", "--quiet", "--scorers", *scorers]) == 0
    printed = capsys.readouterr().out
    humans = json.loads((FOUR / "test.json").read_text())
    for scorer in scorers:
        original = json.loads((FOUR / f"test_{scorer}.json").read_text())
        ours = json.loads((tmp_path / f"test_{scorer}.json").read_text())
        for mine, theirs in zip(ours, original, strict=True):
            assert mine["ranking"] == theirs["ranking"]
            assert max(abs(a - b) for a, b in zip(mine["rewards"], theirs["rewards"], strict=True)) <= 1e-4
        want = original_acc(humans, original)
        assert pairwise_accuracy([h["ranking"] for h in humans], [r["rewards"] for r in ours]) == want
        line = next(line for line in printed.splitlines() if line.split()[:1] == [scorer])
        assert f"{100 * want:7.2f}%" in line and f"{evaluation.paper_accuracy(scorer):.2f}%" in line


def test_download_fetches_both_parts_and_unpacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--download with the network replaced: test.json from its URL, test_images.zip from the hub repo."""
    import io
    import urllib.request
    import zipfile

    import huggingface_hub

    from imagereward import evaluation

    source = tmp_path / "source"
    source.mkdir()
    _, items = make_test_set(source)
    archive = tmp_path / "test_images.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted((source / "test_images").rglob("*.*")):
            zf.write(path, path.relative_to(source).as_posix())
    calls = []

    def fake_urlopen(url, timeout=None):
        calls.append(url)
        return io.BytesIO((source / "test.json").read_bytes())

    def fake_hf_hub_download(repo_id, filename, local_dir=None, **kwargs):
        calls.append((repo_id, filename))
        target = Path(local_dir) / filename
        target.write_bytes(archive.read_bytes())
        return str(target)

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_hf_hub_download)
    data = tmp_path / "data"
    test_json, images = evaluation.download_test_set(data)
    assert calls == [evaluation.TEST_JSON_URL, ("THUDM/ImageReward", "test_images.zip")]
    assert evaluation.read_test_set(test_json) == items
    assert all((images / g).is_file() for item in items for g in item["generations"])
    evaluation.download_test_set(data)  # a second call finds everything and fetches nothing
    assert len(calls) == 2


JUDGES_DIR = Path(__file__).parent / "fixtures" / "parity-judges"
# A small test set on the images both modern judges' originals can score, in the test.json format; the
# "human" rankings are data (1 = best, ties allowed), as the real set's are.
MODERN_ITEMS = [
    (
        0,
        ["01_rgb_structured_512.png", "02_landscape_640x480.jpg", "03_portrait_300x700.webp", "05_palette_360x240.gif"],
        [2, 1, 3, 3],
    ),
    (
        1,
        [
            "06_gray_L_256x320.png",
            "07_bilevel_1_333x250.png",
            "08_cmyk_420x300.jpg",
            "09_gray16_I16_300x200.png",
            "10_tiny_7x5.png",
        ],
        [1, 4, 2, 3, 5],
    ),
    (6, ["11_panorama_2000x150.png", "12_exif_orientation6_398x300.jpg", "14_roundhalf_448x301.png"], [3, 1, 2]),
]


def test_eval_of_pickscore_and_hps_gives_the_accuracies_of_their_originals_scores(
    tmp_path: Path, judges_root: Path, capsys: pytest.CaptureFixture
) -> None:
    """`imagereward eval --scorers ImageReward-v1.0 PickScore HPSv2.1` end to end with the tiny models: each
    modern judge's rewards are its original's (tests/fixtures/parity-judges/*/expected.json) and its
    accuracy is the one computed from the original's scores."""

    prompts = json.loads((JUDGES_DIR / "prompts.json").read_text(encoding="utf-8"))
    items = [
        {"id": f"item-{k}", "prompt": prompts[i], "generations": [f"images/{n}" for n in names], "ranking": human}
        for k, (i, names, human) in enumerate(MODERN_ITEMS)
    ]
    (tmp_path / "test.json").write_text(json.dumps(items), encoding="utf-8")
    scorers = ["ImageReward-v1.0", "PickScore", "HPSv2.1"]
    args = ["eval", "--test-json", str(tmp_path / "test.json"), "--images-dir", str(JUDGES_DIR)]
    args += [
        "--output-dir",
        str(tmp_path),
        "--model",
        str(PARITY),
        "--download-root",
        str(judges_root),
    ]
    assert cli.main([*args, "--device", "cpu", "--quiet", "--scorers", *scorers]) == 0
    printed = capsys.readouterr().out
    for scorer, folder in (("PickScore", "pickscore"), ("HPSv2.1", "hpsv2")):
        scores = json.loads((JUDGES_DIR / folder / "expected.json").read_text(encoding="utf-8"))["scores"]
        originals = [[scores[i][n] for n in names] for i, names, _ in MODERN_ITEMS]
        ours = json.loads((tmp_path / f"test_{scorer}.json").read_text())
        tolerance = 1e-4 * (100 if scorer == "PickScore" else 1)  # PickScore's scores are x100
        for mine, theirs in zip(ours, originals, strict=True):
            assert max(abs(a - b) for a, b in zip(mine["rewards"], theirs, strict=True)) <= tolerance
        want = pairwise_accuracy([h for _, _, h in MODERN_ITEMS], originals)
        assert pairwise_accuracy([h for _, _, h in MODERN_ITEMS], [r["rewards"] for r in ours]) == want
        line = next(line for line in printed.splitlines() if line.split()[:1] == [scorer])
        assert f"{100 * want:7.2f}%" in line
    assert (tmp_path / "test_ImageReward-v1.0.json").is_file()
