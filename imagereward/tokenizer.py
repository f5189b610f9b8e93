"""BLIP's tokenizer: BERT uncased WordPiece plus `[DEC]` (bos, id 30522) and `[ENC]` (id 30523), added
exactly as the original's `init_tokenizer` adds them. The vocab ships inside this package, so building
the tokenizer never touches the network."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import torch
from transformers import BertTokenizer

from .config import MAX_PROMPT_TOKENS

VOCAB_FILE = "bert-base-uncased-vocab.txt"


@lru_cache(maxsize=1)
def get_tokenizer() -> BertTokenizer:
    """The tokenizer, built once per process from the bundled vocab."""
    text = resources.files("imagereward").joinpath("vocab", VOCAB_FILE).read_text(encoding="utf-8")
    vocab = {token: i for i, token in enumerate(text.split("\n")) if token}
    tokenizer = BertTokenizer(vocab=vocab, do_lower_case=True)
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    tokenizer.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    return tokenizer


def tokenize(prompts: str | list[str]) -> dict[str, torch.Tensor]:
    """Prompts -> `input_ids` and `attention_mask`, each (N, 35) int64, padded and truncated as the original.

    Args:
        prompts: one prompt or a list of them.

    Returns:
        A dict with `input_ids` and `attention_mask`.
    """
    if isinstance(prompts, str):
        prompts = [prompts]
    if not all(isinstance(p, str) for p in prompts):
        raise TypeError(f"prompts must be strings, got {[type(p).__name__ for p in prompts]}")
    out = get_tokenizer()(
        prompts, padding="max_length", truncation=True, max_length=MAX_PROMPT_TOKENS, return_tensors="pt"
    )
    return {"input_ids": out["input_ids"], "attention_mask": out["attention_mask"]}


def count_tokens(prompt: str) -> int:
    """Tokens the prompt takes untruncated, [CLS] and [SEP] included (the model reads at most 35)."""
    return len(get_tokenizer()(prompt, truncation=False)["input_ids"])
