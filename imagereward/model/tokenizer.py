"""BLIP's tokenizer: BERT uncased WordPiece plus `[DEC]` (bos, id 30522) and `[ENC]` (id 30523), added
exactly as the original's `init_tokenizer` adds them. The vocab ships inside this package, so building
the tokenizer never touches the network.

The model reads 35 tokens, so a prompt is tokenized once, and only as far as needed: a prefix that ends at
a whitespace character tokenizes to a prefix of the whole prompt's tokens (BERT splits words at whitespace
before WordPiece), so the shortest such prefix that already holds more than 35 tokens gives exactly the
original's padded and truncated ids. The prefix grows from 512 characters and stops at `MAX_PROMPT_CHARS`,
which bounds the work a prompt of any length can cause.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Callable

import torch
from transformers import BertTokenizer

from .config import MAX_PROMPT_TOKENS

VOCAB_FILE = "bert-base-uncased-vocab.txt"

# At most this many characters of a prompt are ever tokenized (only prompts whose first 35 tokens are
# spread over more characters than this, e.g. runs of thousands of spaces, are read differently).
MAX_PROMPT_CHARS = 32_768
_FIRST_WINDOW = 512

# Characters BERT's normaliser turns into a plain space (never removes): safe places to cut a prompt.
_CUT_CHARS = frozenset(" \t\n\r")


@lru_cache(maxsize=1)
def get_tokenizer() -> BertTokenizer:
    """The tokenizer, built once per process from the bundled vocab."""
    text = resources.files("imagereward").joinpath("vocab", VOCAB_FILE).read_text(encoding="utf-8")
    vocab = {token: i for i, token in enumerate(text.split("\n")) if token}
    tokenizer = BertTokenizer(vocab=vocab, do_lower_case=True)
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    tokenizer.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    return tokenizer


@dataclass(frozen=True)
class PromptTokens:
    """One prompt, tokenized as the model reads it.

    Attributes:
        input_ids: (1, 35) int64, `[CLS]` + the first 33 tokens + `[SEP]`, padded with 0.
        attention_mask: (1, 35) int64.
        length: tokens the prompt takes untruncated, `[CLS]` and `[SEP]` included, as far as it was read.
        complete: whether the whole prompt was read (else `length` counts a prefix and the prompt is longer).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    length: int
    complete: bool

    @property
    def truncated(self) -> bool:
        """Whether the model reads only part of the prompt."""
        return self.length > MAX_PROMPT_TOKENS

    def as_dict(self) -> dict[str, torch.Tensor]:
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask}


def clean_prompt(prompt: str) -> str:
    """The prompt with lone UTF-16 surrogates (which no encoder accepts) replaced by U+FFFD, a character
    the tokenizer drops; surrogate pairs become the character they encode."""
    if not any(0xD800 <= ord(c) <= 0xDFFF for c in prompt):
        return prompt
    return prompt.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def cut_at_whitespace(prompt: str, limit: int) -> str:
    """The prompt up to its last whitespace character before `limit` (or cut at `limit` if it has none)."""
    if len(prompt) <= limit:
        return prompt
    for i in range(limit, max(0, limit - 4096), -1):
        if prompt[i] in _CUT_CHARS or unicodedata.category(prompt[i]) == "Zs":
            return prompt[:i]
    return prompt[:limit]


def read_enough(prompt: str, encode: Callable[[str], list[int]], limit: int) -> tuple[list[int], bool]:
    """`encode` of the shortest prefix of `prompt` that holds more than `limit` ids, or of the whole prompt;
    and whether it was the whole prompt. A prefix cut at whitespace encodes to a prefix of the whole prompt's
    ids, so the prefix grows from 512 characters (x4 each time) and at most `MAX_PROMPT_CHARS` are read: a
    10 MB prompt costs what its first words cost."""
    window = _FIRST_WINDOW
    while True:
        prefix = cut_at_whitespace(prompt, window)
        complete = len(prefix) == len(prompt)
        ids = encode(clean_prompt(prefix))
        if complete or len(ids) > limit or window >= MAX_PROMPT_CHARS:
            return ids, complete
        window = min(window * 4, MAX_PROMPT_CHARS)


def prompt_pieces(text: str) -> list[str]:
    """`text`'s word-pieces (as strings: `##ing`), no [CLS] or [SEP]."""
    return get_tokenizer().tokenize(clean_prompt(text))


def encode_prompt(prompt: str) -> PromptTokens:
    """Tokenizes one prompt as the original does (pad and truncate to 35), reading at most
    `MAX_PROMPT_CHARS` characters of it.

    Raises:
        TypeError: `prompt` is not a string.
    """
    if not isinstance(prompt, str):
        raise TypeError(f"a prompt must be a string, got {type(prompt).__name__}")
    tokenizer = get_tokenizer()
    ids, complete = read_enough(
        prompt, lambda text: tokenizer(text, truncation=False)["input_ids"], MAX_PROMPT_TOKENS
    )  # [CLS] ... [SEP]
    kept = ids if len(ids) <= MAX_PROMPT_TOKENS else ids[: MAX_PROMPT_TOKENS - 1] + [tokenizer.sep_token_id]
    padding = MAX_PROMPT_TOKENS - len(kept)
    input_ids = torch.tensor([kept + [tokenizer.pad_token_id] * padding], dtype=torch.int64)
    attention_mask = torch.tensor([[1] * len(kept) + [0] * padding], dtype=torch.int64)
    return PromptTokens(input_ids, attention_mask, len(ids), complete)


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
    encoded = [encode_prompt(p) for p in prompts]
    return {
        "input_ids": torch.cat([e.input_ids for e in encoded]),
        "attention_mask": torch.cat([e.attention_mask for e in encoded]),
    }
