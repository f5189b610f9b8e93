"""Prompts tokenized as the original ReFL tokenizes them: Stable Diffusion's `CLIPTokenizer` in its slow form
(transformers 4's `tokenization_clip.py`), which cleans the text with `ftfy.fix_text`, collapses whitespace and
lower-cases it before CLIP's byte-level BPE; and the reward model's BERT tokens (35, with their mask).

transformers 5's `CLIPTokenizer` has no slow form and skips ftfy: full-width punctuation, mojibake and other
unusual text tokenize differently there. This reads the pipeline's own `vocab.json` and `merges.txt` and runs the
slow tokenizer's algorithm, so ids equal the original's for any text.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import torch

# The slow CLIPTokenizer's pre-tokenization (transformers 4, `tokenization_clip.py`), case-insensitive.
PATTERN = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
MAX_LENGTH = 77


@lru_cache(maxsize=1)
def _byte_encoder() -> dict[int, str]:
    """GPT-2's reversible map of bytes to printable characters (`bytes_to_unicode`)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(printable, map(chr, chars)))


def clean(text: str) -> str:
    """The slow tokenizer's cleaning: `ftfy.fix_text`, whitespace collapsed, lower case."""
    import ftfy
    import regex

    return regex.sub(r"\s+", " ", ftfy.fix_text(text)).strip().lower()


class ClipTokens:
    """A Stable Diffusion pipeline's tokenizer (its folder's `vocab.json`, `merges.txt`), as the slow
    `CLIPTokenizer` encodes: `<|startoftext|>`, at most 75 tokens, `<|endoftext|>`, padded to 77 with the pad
    token (the tokenizer's config; `<|endoftext|>` by default)."""

    def __init__(self, folder: str | Path) -> None:
        import regex

        folder = Path(folder)
        self.vocab: dict[str, int] = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
        merges = (folder / "merges.txt").read_text(encoding="utf-8").strip().split("\n")[1 : 49152 - 256 - 2 + 1]
        self.ranks = {tuple(m.split()): k for k, m in enumerate(merges)}
        config = folder / "tokenizer_config.json"
        settings = json.loads(config.read_text(encoding="utf-8")) if config.is_file() else {}
        self.max_length = int(settings.get("model_max_length", MAX_LENGTH))
        self.bos = self.vocab[_content(settings.get("bos_token", "<|startoftext|>"))]
        self.eos = self.vocab[_content(settings.get("eos_token", "<|endoftext|>"))]
        self.pad = self.vocab[_content(settings.get("pad_token", "<|endoftext|>"))]
        self.unk = self.vocab.get(_content(settings.get("unk_token", "<|endoftext|>")), self.eos)
        self.pattern = regex.compile(PATTERN, regex.IGNORECASE)
        self.cache: dict[str, str] = {"<|startoftext|>": "<|startoftext|>", "<|endoftext|>": "<|endoftext|>"}

    def bpe(self, token: str) -> str:
        if token in self.cache:
            return self.cache[token]
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        pairs = set(zip(word, word[1:]))
        if not pairs:
            return token + "</w>"
        while True:
            bigram = min(pairs, key=lambda pair: self.ranks.get(pair, float("inf")))
            if bigram not in self.ranks:
                break
            first, second = bigram
            merged: list[str] = []
            i = 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                except ValueError:
                    merged.extend(word[i:])
                    break
                merged.extend(word[i:j])
                i = j
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = tuple(merged)
            if len(word) == 1:
                break
            pairs = set(zip(word, word[1:]))
        out = " ".join(word)
        self.cache[token] = out
        return out

    def tokens(self, text: str) -> list[int]:
        """The text's BPE ids, without the start and end markers."""
        encoder = _byte_encoder()
        ids: list[int] = []
        for piece in self.pattern.findall(clean(text)):
            piece = "".join(encoder[b] for b in piece.encode("utf-8"))
            ids += [self.vocab.get(t, self.unk) for t in self.bpe(piece).split(" ")]
        return ids

    def __call__(self, prompts: Sequence[str]) -> torch.Tensor:
        """(B, 77) ids: `padding="max_length", truncation=True, max_length=77`, as ReFL's dataset transform."""
        rows = []
        for prompt in prompts:
            ids = [self.bos, *self.tokens(prompt)[: self.max_length - 2], self.eos]
            rows.append(ids + [self.pad] * (self.max_length - len(ids)))
        return torch.tensor(rows, dtype=torch.long)


def _content(token: object) -> str:
    return token["content"] if isinstance(token, dict) else str(token)


def reward_tokens(prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """The reward model's (B, 35) ids and attention mask, as ReFL's dataset transform makes them
    (`blip.tokenizer(text, padding='max_length', truncation=True, max_length=35)`)."""
    from ..model.tokenizer import encode_prompt

    tokens = [encode_prompt(p) for p in prompts]
    return torch.cat([t.input_ids for t in tokens]), torch.cat([t.attention_mask for t in tokens])
