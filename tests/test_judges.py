"""The correctness bar for PickScore v1 and HPSv2.1: each computes what its own original code computed for the
same weights (tests/fixtures/parity-judges, made with PickScore's README code on transformers 4.27.3 and with
`hpsv2.score(..., hps_version="v2.1")`; see its READMEs). CPU, float32."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import imagereward
from imagereward.errors import CheckpointError, ImageLoadError, WeightsUnavailableError
from imagereward.images import reading as imgs
from imagereward.images.transforms import LETTERBOX, RGB_RESIZE_CROP, Preprocessing
from imagereward.judges import hps as hps_judge
from imagereward.judges import load_score, sources
from imagereward.judges import pickscore as pick_judge
from imagereward.judges.bpe import OPEN_CLIP, bpe_tokens

ROOT = Path(__file__).parent / "fixtures" / "parity-judges"
PICK, HPS = ROOT / "pickscore", ROOT / "hpsv2"
PICK_EXPECTED = json.loads((PICK / "expected.json").read_text(encoding="utf-8"))
HPS_EXPECTED = json.loads((HPS / "expected.json").read_text(encoding="utf-8"))
PROMPTS: list[str] = json.loads((ROOT / "prompts.json").read_text(encoding="utf-8"))
LAYOUTS = json.loads((ROOT / "full_state_dict_keys.json").read_text(encoding="utf-8"))
SCORE_TOL, PROB_TOL, PIXEL_TOL = 1e-4, 1e-5, 1e-6


def paths(names: list[str]) -> list[str]:
    return [str(ROOT / "images" / n) for n in names]


@pytest.fixture(scope="module")
def pick() -> pick_judge.PickScore:
    return load_score("PickScore", device="cpu", download_root=PICK)


@pytest.fixture(scope="module")
def hps() -> hps_judge.HpsScore:
    return load_score("HPSv2.1", device="cpu", download_root=HPS)


# ------------------------------------------------------------------------------------------------ tokens
@pytest.mark.parametrize("i", range(len(PROMPTS)))
def test_pickscore_tokens_identical(pick, i: int) -> None:
    want = PICK_EXPECTED["tokens"][i]
    tokens = pick.tokenize(PICK_EXPECTED["prompts"][i])
    assert tokens.ids[0].tolist() == want["input_ids"]
    assert len(want["attention_mask"]) == tokens.ids.shape[1] and all(want["attention_mask"])


@pytest.mark.parametrize("i", range(len(PROMPTS)))
def test_hps_tokens_identical(i: int) -> None:
    assert bpe_tokens(HPS_EXPECTED["prompts"][i], OPEN_CLIP).ids[0].tolist() == HPS_EXPECTED["tokens"][i]


def test_the_two_tokenizers_differ_where_the_originals_do(pick) -> None:
    """PickScore's fast tokenizer keeps `&amp;` and reads `<|endoftext|>` as the end id; HPSv2's open_clip
    unescapes HTML and reads `<end_of_text>` as the end id."""
    assert (
        pick.tokenize("fish &amp; chips").ids[0].tolist() != bpe_tokens("fish & chips", OPEN_CLIP).ids[0, :6].tolist()
    )
    assert pick.tokenize("a <|endoftext|> b").ids[0].tolist()[2] == 49407
    assert bpe_tokens("a <end_of_text> b", OPEN_CLIP).ids[0].tolist()[2] == 49407
    assert bpe_tokens("a <|endoftext|> b", OPEN_CLIP).ids[0].tolist()[2] != 49407


def test_a_huge_prompt_is_read_only_as_far_as_needed(pick) -> None:
    words = "a red fox in the snow " * 200_000  # 4.4 MB
    tokens = pick.tokenize(words)
    assert not tokens.complete and tokens.length > 77 and tokens.ids.shape == (1, 77)
    assert tokens.ids.tolist() == pick.tokenize(words[:2000]).ids.tolist()
    assert bpe_tokens(words, OPEN_CLIP).ids.tolist() == bpe_tokens(words[:2000], OPEN_CLIP).ids.tolist()


# ----------------------------------------------------------------------------------------- preprocessing
@pytest.mark.parametrize("name", PICK_EXPECTED["images"])
def test_pickscore_preprocessing_matches(name: str) -> None:
    want = np.load(PICK / "preprocess.npz")[name]
    ours = imgs.normalize(Preprocessing(RGB_RESIZE_CROP, 224).load(str(ROOT / "images" / name)))
    np.testing.assert_allclose(ours.numpy(), want, rtol=0, atol=PIXEL_TOL)


@pytest.mark.parametrize("name", HPS_EXPECTED["images"])
def test_hps_preprocessing_matches(name: str) -> None:
    """Equal wherever the original can score; RGBA: the original's RGB channels; a long side of exactly 224:
    the original's unpadded picture, centred in zero padding (normalised)."""
    want = np.load(HPS / "preprocess.npz")[name]
    ours = imgs.normalize(Preprocessing(LETTERBOX, 224).load(str(ROOT / "images" / name))).numpy()
    assert ours.shape == (3, 224, 224)
    if want.shape[0] == 4:
        want = want[:3]
    if want.shape != ours.shape:
        top = (224 - want.shape[1]) // 2
        np.testing.assert_allclose(ours[:, top : top + want.shape[1]], want, rtol=0, atol=PIXEL_TOL)
        padding = imgs.normalize(torch.zeros(3, 1, 1)).numpy()
        np.testing.assert_allclose(ours[:, :top], np.broadcast_to(padding, (3, top, 224)), rtol=0, atol=PIXEL_TOL)
        return
    np.testing.assert_allclose(ours, want, rtol=0, atol=PIXEL_TOL)


def test_the_originals_failures_are_the_images_scored_differently() -> None:
    assert sorted(HPS_EXPECTED["image_errors"]) == ["04_rgba_alpha_400.png", "13_longest224_224x160.png"]
    assert not PICK_EXPECTED["image_errors"]


# ------------------------------------------------------------------------------------ features and scores
def test_pickscore_features_match(pick) -> None:
    features = np.load(PICK / "features.npz")
    names = PICK_EXPECTED["scored_images"]
    ours = pick.image_features(pick.decode(paths(names), names)).numpy()
    for k, name in enumerate(names):
        np.testing.assert_allclose(ours[k], features[f"image_embeds/{name}"], rtol=0, atol=1e-6)
    for i, prompt in enumerate(PICK_EXPECTED["prompts"]):
        text = pick.text_features(pick.tokenize(prompt))[0].numpy()
        np.testing.assert_allclose(text, features[f"text_embeds/{i}"], rtol=0, atol=1e-6)


@pytest.mark.parametrize("i", range(len(PROMPTS)))
def test_every_pickscore_score_and_probability_matches(pick, i: int) -> None:
    names = PICK_EXPECTED["scored_images"]
    scores = pick.rewards(PICK_EXPECTED["prompts"][i], paths(names))
    want = [PICK_EXPECTED["scores"][i][n] for n in names]
    # Scores are x logit_scale.exp() (100): the tolerance is on that scale, as the fixture's README says.
    np.testing.assert_allclose(scores, want, rtol=0, atol=SCORE_TOL * PICK_EXPECTED["logit_scale_exp"])
    assert np.argsort(scores).tolist() == np.argsort(want).tolist()  # smallest gap 0.002: rankings exact
    probs = pick.probabilities(PICK_EXPECTED["prompts"][i], paths(names))
    np.testing.assert_allclose(probs, [PICK_EXPECTED["probs"][i][n] for n in names], rtol=0, atol=PROB_TOL)
    two = pick.probabilities(PICK_EXPECTED["prompts"][i], paths(names[:2]))
    np.testing.assert_allclose(two, [PICK_EXPECTED["probs_first_two"][i][n] for n in names[:2]], atol=PROB_TOL)


@pytest.mark.parametrize("i", range(len(PROMPTS)))
def test_every_hps_score_matches(hps, i: int) -> None:
    names = HPS_EXPECTED["scored_images"]
    scores = hps.rewards(HPS_EXPECTED["prompts"][i], paths(names))
    np.testing.assert_allclose(scores, [HPS_EXPECTED["scores"][i][n] for n in names], rtol=0, atol=SCORE_TOL)


def test_hps_single_image_is_the_originals(hps) -> None:
    case = HPS_EXPECTED["single_path_call"]
    assert abs(hps.score(PROMPTS[0], str(ROOT / "images" / case["image"])) - case["path"]) <= SCORE_TOL


def test_hps_scores_what_the_original_cannot(hps) -> None:
    """RGBA is scored as its RGB; a 224x160 picture is letterboxed: the same as the RGB file / a padded copy."""
    rgba = ROOT / "images" / "04_rgba_alpha_400.png"
    rgb = imgs.open_image(str(rgba)).convert("RGB")
    assert hps.rewards(PROMPTS[0], [str(rgba)]) == pytest.approx(hps.rewards(PROMPTS[0], [rgb]), abs=1e-6)
    wide = hps.rewards(PROMPTS[0], [str(ROOT / "images" / "13_longest224_224x160.png")])[0]
    assert np.isfinite(wide)


def test_hps_in_decoding_processes_scores_as_in_threads(hps) -> None:
    names = HPS_EXPECTED["scored_images"]
    threads = hps.rewards(PROMPTS[1], paths(names))
    hps.embedding_cache.clear()
    hps.decode_processes = 2
    try:
        processes = hps.rewards(PROMPTS[1], paths(names))
    finally:
        hps.decode_processes = None
        hps.embedding_cache.clear()
    assert processes == pytest.approx(threads, abs=1e-7)


def test_a_bad_image_is_an_error_in_its_place(pick, hps, tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    for judge in (pick, hps):
        results = judge.try_rewards(PROMPTS[0], [paths(["01_rgb_structured_512.png"])[0], str(broken)])
        assert isinstance(results[0], float) and isinstance(results[1], ImageLoadError)


def test_return_types_are_the_baselines(pick) -> None:
    one = paths(["01_rgb_structured_512.png"])
    assert isinstance(pick.score(PROMPTS[0], one[0]), float)
    assert pick.inference_rank(PROMPTS[0], one)[0] == 1
    ranks, rewards = pick.inference_rank(PROMPTS[0], paths(PICK_EXPECTED["scored_images"][:3]))
    assert sorted(ranks) == [1, 2, 3] and len(rewards) == 3


# ------------------------------------------------------------------------------------ full-size layouts
# (every judge's full-size layout loads strictly, and names a changed key: tests/test_layouts.py)
def test_pickscore_accepts_files_with_and_without_position_ids(full_layout) -> None:
    state = full_layout.state("PickScore")
    without = {k: v for k, v in state.items() if not k.endswith("position_ids")}
    model = full_layout.build("PickScore", without)
    assert model.text_model.embeddings.position_ids.shape == (1, 77)
    unknown = dict(state, **{"text_model.extra": torch.empty(1, device="meta")})
    with pytest.raises(CheckpointError, match=r"text_model\.extra"):
        full_layout.build("PickScore", unknown)


def test_pickscore_settings_it_does_not_reproduce_are_named(tmp_path: Path) -> None:
    config = json.loads((PICK / "laion-CLIP-ViT-H-14-laion2B-s32B-b79K" / "preprocessor_config.json").read_text())
    (tmp_path / "p.json").write_text(json.dumps(dict(config, resample=2)))
    with pytest.raises(CheckpointError, match="resample 2"):
        pick_judge.read_image_processing(tmp_path / "p.json")


def test_hps_float32_checkpoint_scores_as_float16_one(tmp_path: Path, hps) -> None:
    """The public fixture stores float16; a float32 file of the same values gives the same scores."""
    state = torch.load(HPS / "HPS_v2.1_compressed.pt", map_location="cpu", weights_only=True)["state_dict"]
    torch.save({"state_dict": {k: v.float() for k, v in state.items()}}, tmp_path / hps_judge.SPEC.files[0])
    shutil.copy(HPS / hps_judge.HPS_CONFIG, tmp_path / hps_judge.HPS_CONFIG)
    judge = load_score("HPSv2.1", device="cpu", download_root=tmp_path)
    names = HPS_EXPECTED["scored_images"][:3]
    assert judge.rewards(PROMPTS[0], paths(names)) == pytest.approx(hps.rewards(PROMPTS[0], paths(names)), abs=1e-7)


# -------------------------------------------------------------------------------------------- the hub
HUB_SCRIPT = """
import sys
from imagereward.judges import hps, pickscore
from imagereward.errors import WeightsUnavailableError
try:
    model_dir, processor_dir = pickscore.fetch(None)
    weights, config = hps.fetch(None)
except WeightsUnavailableError as e:
    print("UNAVAILABLE:", e)
    sys.exit(3)
print("FOUND", model_dir, processor_dir, weights, config)
"""


def _run_offline(hf_home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
    env.pop("HF_HUB_CACHE", None)
    return subprocess.run([sys.executable, "-c", HUB_SCRIPT], env=env, capture_output=True, text=True, timeout=300)


def test_the_hub_files_resolve_through_the_offline_cache(hub_cache) -> None:
    model = hub_cache.add(
        "yuvalkirstain/PickScore_v1",
        {f: PICK / "yuvalkirstain-PickScore_v1" / f for f in ("config.json", "model.safetensors")},
    )
    processor_files = ("tokenizer.json", "preprocessor_config.json")
    processor = hub_cache.add(
        "laion/CLIP-ViT-H-14-laion2B-s32B-b79K",
        {f: PICK / "laion-CLIP-ViT-H-14-laion2B-s32B-b79K" / f for f in processor_files},
    )
    weights = hub_cache.add("xswu/HPSv2", {hps_judge.SPEC.files[0]: HPS / hps_judge.SPEC.files[0]})
    result = _run_offline(hub_cache.home)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == [
        "FOUND",
        str(model),
        str(processor),
        str(weights / hps_judge.SPEC.files[0]),
        "None",
    ]
    judge = pick_judge.load_pickscore(model, processor, torch.device("cpu"), torch.float32)
    name = PICK_EXPECTED["scored_images"][0]
    assert judge.score(PROMPTS[0], paths([name])[0]) == pytest.approx(PICK_EXPECTED["scores"][0][name], abs=1e-2)


def test_offline_without_the_files_says_what_to_do(hub_cache) -> None:
    (hub_cache.home / "hub").mkdir(parents=True)
    result = _run_offline(hub_cache.home)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "yuvalkirstain/PickScore_v1" in result.stdout and "HF_HUB_OFFLINE" in result.stdout


def test_a_download_root_missing_a_file_names_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    shutil.copytree(PICK, tmp_path / "pick")
    (tmp_path / "pick" / "laion-CLIP-ViT-H-14-laion2B-s32B-b79K" / "tokenizer.json").unlink()
    with pytest.raises(WeightsUnavailableError, match="tokenizer.json"):
        load_score("PickScore", device="cpu", download_root=tmp_path / "pick")


def test_the_hub_calls_are_the_originals(tmp_path: Path, monkeypatch) -> None:
    """What `hpsv2.score` downloads (the fixture's `download_calls`), and PickScore's two repos: only their
    small files and the model's weights."""
    calls = []

    def fake(repo_id, filename, **kwargs):  # type: ignore[no-untyped-def]
        calls.append([repo_id, filename])
        folder = PICK / repo_id.replace("/", "-") if "xswu" not in repo_id else HPS
        return str(folder / filename)

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake)
    hps_judge.fetch(None)
    assert calls == HPS_EXPECTED["download_calls"]["hf_hub_download"]
    calls.clear()
    pick_judge.fetch(None)
    assert calls == [
        ["yuvalkirstain/PickScore_v1", "config.json"],
        ["yuvalkirstain/PickScore_v1", "model.safetensors"],
        ["laion/CLIP-ViT-H-14-laion2B-s32B-b79K", "tokenizer.json"],
        ["laion/CLIP-ViT-H-14-laion2B-s32B-b79K", "preprocessor_config.json"],
    ]


def test_load_judge_and_the_lists_know_both() -> None:
    assert {"PickScore", "HPSv2.1"} <= set(imagereward.available_judges())
    assert {"PickScore", "HPSv2.1"} <= set(imagereward.available_scores())
    with pytest.raises(ValueError, match="HPSv2.1"):
        load_score("HPSv2")


@pytest.mark.parametrize("name, folder, tolerance", [("PickScore", PICK, 0.5), ("HPSv2.1", HPS, 0.01)])
def test_half_precision_runs_close_to_float32(name: str, folder: Path, tolerance: float) -> None:
    """bfloat16 on the CPU takes the half-precision path CUDA's float16 takes (weights cast, norms and
    PickScore's logit scale kept in float32): within a small fraction of the scores' spread (seen: 0.16 of
    9.3 for PickScore, 0.0025 of 0.064 for HPSv2.1)."""
    images = paths(HPS_EXPECTED["scored_images"][:6])
    full = load_score(name, device="cpu", download_root=folder).rewards(PROMPTS[1], images)
    half = load_score(name, device="cpu", download_root=folder, dtype="bf16")
    assert half.dtype == torch.bfloat16
    assert max(abs(a - b) for a, b in zip(full, half.rewards(PROMPTS[1], images))) <= tolerance


def test_the_space_preloads_the_files_the_judges_fetch() -> None:
    """README's front matter names exactly the hub files the judges' records say they read (`preload_from_hub`:
    every `HubFile`, by repo) and each judge's own hub repo (`models`: the repo of its first hub file)."""
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    front = readme.split("---")[1]
    block = front.split("preload_from_hub:")[1].split("\n", 1)[1]
    preload = {}
    for line in block.splitlines():
        if not line.startswith("  - "):
            break
        repo, files = line[4:].split()
        preload[repo] = files.split(",")
    wanted: dict[str, list[str]] = {}
    for spec in imagereward.judges.specs():
        for file in spec.weights:
            if isinstance(file, sources.HubFile) and file.filename not in wanted.setdefault(file.repo.repo_id, []):
                wanted[file.repo.repo_id].append(file.filename)
    assert preload == wanted
    models = []
    for line in front.split("models:")[1].split("\n")[1:]:
        if not line.startswith("  - "):
            break
        models.append(line[4:])
    hub_weights = [[w for w in s.weights if isinstance(w, sources.HubFile)] for s in imagereward.judges.specs()]
    assert models == list(dict.fromkeys(files[0].repo.repo_id for files in hub_weights if files))
