"""The correctness bar for the Table 2 baselines: CLIP, BLIP and Aesthetic compute what the original
`image-reward` 1.5 computed (`load_score(name).score / inference_rank`) for the same weights
(tests/fixtures/parity-baselines, made with the original; see its README). CPU, float32."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import imagereward
from imagereward.images import reading as imgs
from imagereward.judges import blip as blip_judge
from imagereward.judges import clip as clip_judge
from imagereward.judges import load_score, sources
from imagereward.model.tokenizer import encode_prompt, get_tokenizer

ROOT = Path(__file__).parent / "fixtures" / "parity-baselines"
EXPECTED = json.loads((ROOT / "expected.json").read_text(encoding="utf-8"))
PROMPTS: list[str] = EXPECTED["prompts"]
IMAGES: list[str] = EXPECTED["images"]
PATHS = [str(ROOT / "images" / n) for n in IMAGES]
LAYOUTS = json.loads((ROOT / "full_state_dict_keys.json").read_text(encoding="utf-8"))
NAMES = ("CLIP", "BLIP", "Aesthetic")
SCORE_TOL, PIXEL_TOL, FEATURE_TOL = 1e-4, 1e-6, 1e-5

AESTHETIC_FILE = imagereward.judges.spec("Aesthetic").weights[1]  # LAION's MLP, by URL


@pytest.fixture(scope="module")
def judges() -> dict:
    return {name: load_score(name, device="cpu", download_root=ROOT) for name in NAMES}


# ------------------------------------------------------------------------------------------------ tokens
@pytest.mark.parametrize("case", EXPECTED["tokens"]["clip"], ids=lambda c: f"prompt{c['prompt_index']}")
def test_clip_tokens_identical(case: dict) -> None:
    tokens = clip_judge.clip_tokens(PROMPTS[case["prompt_index"]])
    assert tokens.ids[0].tolist() == case["input_ids"]
    assert tokens.length == case["untruncated_length"]
    assert int(tokens.ids.argmax(-1)) == case["pooled_index"]


@pytest.mark.parametrize("case", EXPECTED["tokens"]["blip"], ids=lambda c: f"prompt{c['prompt_index']}")
def test_blip_tokens_identical(case: dict) -> None:
    tokens = encode_prompt(PROMPTS[case["prompt_index"]])
    assert tokens.input_ids[0].tolist() == case["input_ids"]
    assert tokens.attention_mask[0].tolist() == case["attention_mask"]
    assert get_tokenizer().convert_ids_to_tokens(case["input_ids"]) == case["wordpieces"]


SPECIAL = json.loads((ROOT / "special_tokens.json").read_text(encoding="utf-8"))["cases"]


@pytest.mark.parametrize("case", SPECIAL, ids=lambda c: repr(c["prompt"][:20]))
def test_clip_reads_special_strings_as_openai_does(case: dict) -> None:
    """A literal `<|endoftext|>` in a prompt is OpenAI's end id (open_clip's own tokenizer reads
    `<end_of_text>` instead); ids made by OpenAI's `clip.tokenize` (tools/openai_special_tokens.py)."""
    assert clip_judge.clip_tokens(case["prompt"]).ids[0].tolist() == case["input_ids"]


def test_a_huge_prompt_is_read_only_as_far_as_clip_needs() -> None:
    words = "a red fox in the snow " * 200_000  # 4.4 MB
    tokens = clip_judge.clip_tokens(words)
    assert not tokens.complete and tokens.length > 77
    assert tokens.ids[0].tolist() == clip_judge.clip_tokens(words[:2000]).ids[0].tolist()


# --------------------------------------------------------------------------------- preprocessing, features
@pytest.mark.parametrize("name", IMAGES)
def test_preprocessing_matches(name: str) -> None:
    want = np.load(ROOT / "preprocess.npz")[name]
    with Image.open(ROOT / "images" / name) as image:
        ours = imgs.preprocess(image).numpy()
    np.testing.assert_allclose(ours, want, rtol=0, atol=PIXEL_TOL)


def test_features_match(judges: dict) -> None:
    features = np.load(ROOT / "features.npz")
    clip, blip = judges["CLIP"], judges["BLIP"]
    decoded = clip.decode(PATHS, IMAGES)
    clip_images = clip.image_features(decoded).numpy()
    blip_images = blip.image_features(decoded).numpy()
    for k, name in enumerate(IMAGES):
        np.testing.assert_allclose(clip_images[k], features[f"CLIP/image/{name}"], rtol=0, atol=FEATURE_TOL)
        np.testing.assert_allclose(blip_images[k], features[f"BLIP/image/{name}"], rtol=0, atol=FEATURE_TOL)
    for i, prompt in enumerate(PROMPTS):
        text = clip.tower.text_features(clip_judge.clip_tokens(prompt))[0].numpy()
        np.testing.assert_allclose(text, features[f"CLIP/text/{i}"], rtol=0, atol=FEATURE_TOL)
        text = blip.text_features(encode_prompt(prompt))[0].numpy()
        np.testing.assert_allclose(text, features[f"BLIP/text/{i}"], rtol=0, atol=FEATURE_TOL)


# ------------------------------------------------------------------------------------- scores, rankings
@pytest.mark.parametrize("name", NAMES)
def test_every_score_matches(judges: dict, name: str) -> None:
    judge = judges[name]
    for case in EXPECTED["scores"][name]:
        prompt = PROMPTS[case["prompt_index"]]
        for image, want in case["scores"].items():
            got = judge.score(prompt, str(ROOT / "images" / image))
            assert isinstance(got, float)
            assert abs(got - want) <= SCORE_TOL, f"{name} prompt {case['prompt_index']} {image}: {got} vs {want}"


@pytest.mark.parametrize("name", NAMES)
def test_every_ranking_matches(judges: dict, name: str) -> None:
    judge = judges[name]
    judge.embedding_cache.clear()
    for case in EXPECTED["rank"][name]:
        ranking, rewards = judge.inference_rank(PROMPTS[case["prompt_index"]], PATHS)
        assert ranking == case["ranking"]
        np.testing.assert_allclose(rewards, case["rewards"], rtol=0, atol=SCORE_TOL)


@pytest.mark.parametrize("name", NAMES)
def test_return_types_are_the_originals(judges: dict, name: str) -> None:
    quirks = EXPECTED["quirks"][name]
    judge = judges[name]

    def paths(case: dict) -> list[str]:
        return [str(ROOT / "images" / n) for n in case["images"]]

    one = quirks["inference_rank_one_image"]
    rank, reward = judge.inference_rank(PROMPTS[one["prompt_index"]], paths(one))
    assert type(rank) is int and type(reward) is float and rank == one["returned"][0]
    assert abs(reward - one["returned"][1]) <= SCORE_TOL
    two = quirks["score_with_list_of_two"]
    got = judge.score(PROMPTS[two["prompt_index"]], paths(two))
    assert type(got) is list and np.allclose(got, two["returned"], atol=SCORE_TOL)
    single = quirks["score_with_list_of_one"]
    got = judge.score(PROMPTS[single["prompt_index"]], paths(single))
    assert type(got) is float and abs(got - single["returned"]) <= SCORE_TOL


def test_clip_and_aesthetic_share_one_image_tower_pass(judges: dict, monkeypatch) -> None:
    clip, aesthetic = judges["CLIP"], judges["Aesthetic"]
    assert clip.tower is aesthetic.tower
    clip.embedding_cache.clear()
    calls = []
    real = clip.tower.image_features
    monkeypatch.setattr(clip.tower, "image_features", lambda pixels: calls.append(len(pixels)) or real(pixels))
    decoded = clip.decode(PATHS[:4], IMAGES[:4])
    clip.score_decoded(PROMPTS[0], decoded, IMAGES[:4])
    aesthetic.score_decoded(PROMPTS[0], decoded, IMAGES[:4])
    assert calls == [4]


def test_a_bad_image_is_an_error_in_its_place(judges: dict, tmp_path: Path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    results = judges["BLIP"].try_rewards(PROMPTS[0], [PATHS[0], str(bad)])
    assert isinstance(results[0], float) and isinstance(results[1], imagereward.ImageLoadError)
    assert "broken.png" in str(results[1])


# ------------------------------------------------------------------------------------------ full layouts
# (every judge's full-size layout loads strictly, and names a changed key: tests/test_layouts.py)
def test_full_size_clip_is_vit_l_14(full_layout) -> None:
    model = full_layout.build("CLIP", full_layout.state("CLIP"))
    assert model.visual.conv1.weight.shape == (1024, 3, 14, 14) and len(model.visual.transformer.resblocks) == 24
    assert model.transformer.resblocks[0].attn.num_heads == 12


def test_blip_loads_exactly_the_scorer_keys_of_the_full_file(full_layout) -> None:
    model = full_layout.build("BLIP", full_layout.state("BLIP"))
    assert set(model.state_dict()) == set(LAYOUTS["blip_scorer_keys"]) - {
        k for k in LAYOUTS["blip_scorer_keys"] if "crossattention" in k or k.endswith("position_ids")
    }


def test_the_ignored_blip_keys_are_what_blip_pretraining_adds() -> None:
    full = [e["key"] for e in LAYOUTS["files"]["model_large.pth['model']"]]
    ignored = {k for k in full if blip_judge.is_ignored(k)}
    assert ignored == set(full) - set(LAYOUTS["blip_scorer_keys"]) | {
        k for k in LAYOUTS["blip_scorer_keys"] if "crossattention" in k or k.endswith("position_ids")
    }


# --------------------------------------------------------------------------------- files and download_root
def test_load_score_reads_a_changed_file_and_names_its_key(tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(ROOT, root)
    state = torch.load(root / "sac%2Blogos%2Bava1-l14-linearMSE.pth", weights_only=True)
    del state["layers.7.bias"]
    torch.save(state, root / "sac%2Blogos%2Bava1-l14-linearMSE.pth")
    with pytest.raises(imagereward.CheckpointError, match=r"missing keys \[layers\.7\.bias\]"):
        load_score("Aesthetic", device="cpu", download_root=root)


def test_clip_from_a_plain_state_dict_scores_as_from_the_archive(tmp_path: Path, judges: dict) -> None:
    root = tmp_path / "root"
    root.mkdir()
    torch.save(clip_judge.read_clip_weights(ROOT / "ViT-L-14.pt"), root / "ViT-L-14.pt")
    clip = load_score("CLIP", device="cpu", download_root=root)
    np.testing.assert_allclose(
        clip.rewards(PROMPTS[0], PATHS[:3]), judges["CLIP"].rewards(PROMPTS[0], PATHS[:3]), atol=1e-6
    )


def test_the_torchscript_archive_is_read_without_running_it(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("torch.jit.load must not be called")

    monkeypatch.setattr(torch.jit, "load", refuse)
    tensors = clip_judge.read_clip_weights(ROOT / "ViT-L-14.pt")
    assert tensors["visual.proj"].dtype == torch.float16 and tensors["ln_final.weight"].dtype == torch.float32
    assert len(tensors) == 65


class _Response:
    def __init__(self, data: bytes) -> None:
        self.data, self.offset = data, 0

    def read(self, n: int) -> bytes:
        chunk = self.data[self.offset : self.offset + n]
        self.offset += len(chunk)
        return chunk

    def __enter__(self) -> _Response:
        return self

    def __exit__(self, *exc) -> None:
        return None


def test_a_missing_file_is_downloaded_into_the_root_under_its_original_name(tmp_path: Path, monkeypatch) -> None:
    urls = []
    data = (ROOT / "sac%2Blogos%2Bava1-l14-linearMSE.pth").read_bytes()
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(sources.urllib.request, "urlopen", lambda url, timeout: urls.append(url) or _Response(data))
    path = sources.find_or_download(AESTHETIC_FILE, tmp_path, "Aesthetic")
    assert path == tmp_path / "sac%2Blogos%2Bava1-l14-linearMSE.pth" and path.read_bytes() == data
    assert urls == [AESTHETIC_FILE.url]
    sources.find_or_download(AESTHETIC_FILE, tmp_path, "Aesthetic")
    assert len(urls) == 1  # found the second time, as the original's _download finds it
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_a_download_that_fails_its_checksum_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(sources.urllib.request, "urlopen", lambda url, timeout: _Response(b"tampered"))
    with pytest.raises(imagereward.WeightsUnavailableError, match="SHA-256"):
        sources.find_or_download(clip_judge.SPEC.weights[0], tmp_path, "CLIP")
    assert list(tmp_path.iterdir()) == []


def test_offline_a_missing_file_says_where_to_put_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(sources.urllib.request, "urlopen", lambda *a, **k: pytest.fail("no network when offline"))
    with pytest.raises(imagereward.WeightsUnavailableError) as e:
        load_score("BLIP", device="cpu", download_root=tmp_path)
    assert "model_large.pth" in str(e.value) and str(tmp_path) in str(e.value)


def test_an_unknown_score_names_the_available_ones() -> None:
    with pytest.raises(ValueError, match=r"available scores: \['CLIP', 'BLIP', 'Aesthetic', 'PickScore', 'HPSv2.1'\]"):
        load_score("PickScore2", device="cpu", download_root=ROOT)
    assert imagereward.available_scores() == ["CLIP", "BLIP", "Aesthetic", "PickScore", "HPSv2.1"]
