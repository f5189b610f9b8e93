"""CLIP's byte-level BPE tokenizer (`simple_tokenizer.py`), in the two flavours the judges' originals use.

Both read the same 49,408-entry vocabulary (`bpe_simple_vocab_16e6.txt.gz`, shipped inside the open_clip wheel:
no hub call) and clean a prompt the same way (`ftfy.fix_text`, `html.unescape` twice, whitespace runs
collapsed with `regex`'s `\\s+`, lower case). They differ in the literal strings that become the start and end
ids (49406, 49407) when they appear *inside* a prompt:

- `OPENAI`: OpenAI's `clip.tokenize` (the CLIP and Aesthetic baselines): `<|startoftext|>` / `<|endoftext|>`.
- `OPEN_CLIP`: the open_clip tokenizer HPSv2 vendors: `<start_of_text>` / `<end_of_text>`.

(open_clip 3.x's own `SimpleTokenizer` has the second flavour's strings but collapses whitespace with
`str.split`, which also splits at the ASCII separators U+001C..U+001F; the originals do not.)
"""

from __future__ import annotations

import html
import threading
from typing import NamedTuple

import ftfy
import regex
import torch

from ..model.tokenizer import read_enough

CONTEXT_LENGTH = 77
_WORDS = r"""|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


class Flavour(NamedTuple):
    """The literal strings a prompt may contain that become the start and end ids."""

    start: str
    end: str


OPENAI = Flavour("<|startoftext|>", "<|endoftext|>")
OPEN_CLIP = Flavour("<start_of_text>", "<end_of_text>")


def clean(text: str) -> str:
    """`whitespace_clean(basic_clean(text)).lower()` of the originals."""
    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return regex.sub(r"\s+", " ", text).strip().lower()


class BpeTokenizer:
    """CLIP's BPE with one flavour's special strings; `encode` gives the ids of a cleaned prompt (no start or
    end id around them)."""

    def __init__(self, flavour: Flavour) -> None:
        from open_clip.tokenizer import SimpleTokenizer

        base = SimpleTokenizer(context_length=CONTEXT_LENGTH)
        self.sot_token_id, self.eot_token_id = base.sot_token_id, base.eot_token_id
        self._bpe = base.bpe
        self._byte_encoder = base.byte_encoder
        self._encoder = {k: v for k, v in base.encoder.items() if k not in OPEN_CLIP}
        self._encoder[flavour.start], self._encoder[flavour.end] = self.sot_token_id, self.eot_token_id
        base.cache = {flavour.start: flavour.start, flavour.end: flavour.end}
        specials = f"{regex.escape(flavour.start)}|{regex.escape(flavour.end)}"
        self._pattern = regex.compile(specials + _WORDS, regex.IGNORECASE)
        self._lock = threading.Lock()  # the BPE's cache is a plain dict shared by the threads that tokenize

    def encode(self, text: str) -> list[int]:
        return [self._encoder[piece] for piece in self.pieces(text)]

    def pieces(self, text: str) -> list[str]:
        """`text`'s BPE pieces (as the vocabulary spells them: byte-level, `</w>` ending a word)."""
        out: list[str] = []
        with self._lock:
            for token in self._pattern.findall(clean(text)):
                token = "".join(self._byte_encoder[b] for b in token.encode("utf-8"))
                out.extend(self._bpe(token).split(" "))
        return out


class BpeTokens(NamedTuple):
    """One prompt as CLIP reads it: `ids` (1, 77) int64 zero-padded (`tokenize(p, truncate=True)`),
    `length` the tokens the prompt takes untruncated (start and end included) as far as it was read, whether
    the whole prompt was read, and the flavour that made them (OpenAI's CLIP and HPSv2's open_clip number the
    same text alike but for their end tokens, so each judge takes only its own)."""

    ids: torch.Tensor
    length: int
    complete: bool
    flavour: Flavour


_TOKENIZERS: dict[Flavour, BpeTokenizer] = {}
_TOKENIZERS_LOCK = threading.Lock()


def tokenizer(flavour: Flavour) -> BpeTokenizer:
    with _TOKENIZERS_LOCK:
        if flavour not in _TOKENIZERS:
            _TOKENIZERS[flavour] = BpeTokenizer(flavour)
        return _TOKENIZERS[flavour]


def bpe_tokens(prompt: str, flavour: Flavour) -> BpeTokens:
    """`tokenize(prompt, truncate=True)` of the flavour's original, reading at most `MAX_PROMPT_CHARS`
    characters: a prefix cut at whitespace tokenizes to a prefix of the whole prompt's tokens, so the prefix
    grows from 512 characters until it holds more than 77 tokens or is the whole prompt.

    Raises:
        TypeError: `prompt` is not a string.
    """
    if not isinstance(prompt, str):
        raise TypeError(f"a prompt must be a string, got {type(prompt).__name__}")
    bpe = tokenizer(flavour)
    ids, complete = read_enough(prompt, bpe.encode, CONTEXT_LENGTH - 2)  # start and end ids come around them
    row = [bpe.sot_token_id, *ids, bpe.eot_token_id][:CONTEXT_LENGTH]
    row[-1] = bpe.eot_token_id
    padded = torch.zeros(1, CONTEXT_LENGTH, dtype=torch.int64)
    padded[0, : len(row)] = torch.tensor(row)
    return BpeTokens(padded, len(ids) + 2, complete, flavour)
