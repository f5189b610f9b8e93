"""What each judge read of a prompt: `read + unread` is the prompt, the judge's input from `read` alone is its input
from the whole prompt, and one character less of `read` is not (the split is where its tokenizer stops)."""

from __future__ import annotations

import pytest
import torch

from imagereward.judges import load_score
from originals import BASELINES, JUDGES, PARITY

LONG = (
    "a very detailed photograph of an unbelievably fluffy cat sitting on a wooden porch at sunset, golden hour "
    "lighting, 85mm lens, bokeh, award winning, trending on artstation, highly detailed fur, sharp focus, "
    "masterpiece, best quality, ultra realistic, 8k"
)
PROMPTS = [
    "a cat",
    LONG,
    LONG * 3,
    "Café crème brûlée, " * 20,  # accents (BERT strips them), capitals
    "超高清 的 猫 " * 40,  # CJK: BERT splits every character
    "unbelievably " * 40,  # the limit inside a long word's pieces
    "a <|endoftext|> b [SEP] c " * 30,  # the special strings some originals honour inside a prompt
    "x" * 40_000,  # one word past what is ever tokenized
    "word " * 10_000,  # longer than is ever tokenized, cut at a space
]
ROOTS = {"CLIP": BASELINES, "BLIP": BASELINES, "Aesthetic": BASELINES, "PickScore": JUDGES / "pickscore"}
ROOTS["HPSv2.1"] = JUDGES / "hpsv2"


@pytest.fixture(scope="module")
def judges(tiny_model) -> dict:
    return {"ImageReward": tiny_model, **{n: load_score(n, device="cpu", download_root=r) for n, r in ROOTS.items()}}


def ids(judge, text: str) -> list[int]:
    tokens = judge.tokenize(text)
    if hasattr(tokens, "input_ids"):
        return tokens.input_ids[0].tolist()
    return tokens.ids[0].tolist() if isinstance(tokens.ids, torch.Tensor) else list(tokens.ids)


@pytest.mark.parametrize("name", ["ImageReward", "CLIP", "BLIP", "PickScore", "HPSv2.1"])
@pytest.mark.parametrize("prompt", PROMPTS, ids=lambda p: f"{p[:12]}..{len(p)}")
def test_the_split_is_where_the_judge_stops_reading(judges: dict, name: str, prompt: str) -> None:
    judge = judges[name]
    r = judge.reading(prompt)
    assert r.read + r.unread == prompt
    limit = judge.spec.prompt_tokens - 2
    assert r.tokens_read == min(limit, r.tokens_total) and r.complete == (len(prompt) <= 32_768)
    assert ids(judge, r.read) == ids(judge, prompt)  # the judge reads nothing past `read`
    if r.tokens_total > limit:
        assert ids(judge, r.read[:-1]) != ids(judge, prompt)  # and all of it
    assert judge.prompt_pieces(r.read)[:limit] == judge.prompt_pieces(prompt)[:limit]


def test_a_short_prompt_is_read_whole_and_the_counts_are_the_tokens(judges: dict) -> None:
    r = judges["ImageReward"].reading("a photograph of a cat")
    assert (r.read, r.unread, r.tokens_read, r.tokens_total) == ("a photograph of a cat", "", 5, 5)
    long = judges["ImageReward"].reading(LONG)
    assert long.tokens_read == 33 and long.tokens_total == 59 and long.unread.startswith(" award winning")
    clip = judges["CLIP"].reading(LONG * 2)
    assert clip.tokens_read == 75 and clip.read.endswith("lighting, 8") and clip.unread.startswith("5mm lens")


def test_the_aesthetic_predictor_reads_nothing(judges: dict) -> None:
    r = judges["Aesthetic"].reading(LONG)
    assert r.ignored and (r.read, r.unread, r.tokens_read) == ("", LONG, 0)


def test_reading_is_the_tiny_model_own_too() -> None:
    import imagereward

    model = imagereward.load(str(PARITY), device="cpu")
    assert model.reading(LONG) == imagereward.load_score("BLIP", device="cpu", download_root=BASELINES).reading(LONG)
