"""How much of a prompt a judge reads: the exact place its tokenizer stops (ImageReward and BLIP read 33 BERT
word-pieces between their [CLS] and [SEP], CLIP, PickScore and HPSv2.1 75 BPE tokens between start and end).

`read` is the shortest start of the prompt from which the judge gets the same tokens as from the whole prompt,
found with the judge's own tokenizer: a prompt cut after a word tokenizes to a prefix of the whole prompt's
tokens (every tokenizer here splits at whitespace first), so the word the limit falls in is found by bisection
over the word ends, and the place inside it by bisection over its characters (then stepped back while the
tokens stay the same). Everything after `read` did not count.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Callable

from ..model.tokenizer import MAX_PROMPT_CHARS, cut_at_whitespace

_WORD = re.compile(r"\S+")
# Characters of the boundary word tried one at a time, back from where the bisection landed.
_STEP_BACK = 64


@dataclass(frozen=True)
class Reading:
    """How much of a prompt a judge read.

    Attributes:
        read: the start of the prompt the judge read (`read + unread` is the prompt).
        unread: the rest, which did not count.
        tokens_read: the prompt tokens it read (start and end tokens not counted).
        tokens_total: the prompt's tokens, as far as any judge ever tokenizes (`complete`).
        complete: False when the prompt is longer than the `MAX_PROMPT_CHARS` characters ever tokenized.
        ignored: the judge ignores the prompt (the aesthetic predictor).
    """

    read: str
    unread: str
    tokens_read: int
    tokens_total: int
    complete: bool = True
    ignored: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def ignoring(prompt: str) -> Reading:
    """The reading of a judge that ignores the prompt."""
    return Reading("", prompt, 0, 0, True, ignored=True)


def reading(prompt: str, tokens: Callable[[str], list[str]], limit: int) -> Reading:
    """Where a tokenizer that reads `limit` tokens stops in `prompt`.

    Args:
        prompt: the prompt.
        tokens: the judge's tokens of a text (no start or end token), as strings: equal strings, equal ids.
        limit: how many of them the judge reads.

    Returns:
        The split (see `Reading`).
    """
    text = cut_at_whitespace(prompt, MAX_PROMPT_CHARS)
    complete = len(text) == len(prompt)
    everything = tokens(text)
    if len(everything) <= limit:
        return Reading(text, prompt[len(text) :], len(everything), len(everything), complete)
    wanted = everything[:limit]
    window = 512  # the boundary lies in the first whitespace-cut window holding more than `limit` tokens
    while window < len(text) and len(tokens(cut_at_whitespace(text, window))) <= limit:
        window *= 4
    words = [m.span() for m in _WORD.finditer(cut_at_whitespace(text, window))]
    counts: dict[int, int] = {}

    def through(k: int) -> int:  # tokens up to the end of word k (-1: none)
        if k not in counts:
            counts[k] = len(tokens(text[: words[k][1]])) if k >= 0 else 0
        return counts[k]

    low, high = -1, len(words) - 1  # through(low) <= limit < through(high)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if through(middle) <= limit else (low, middle)
    if through(low) == limit:
        end = words[low][1]
    else:

        def enough(i: int) -> bool:  # the judge's tokens of the prompt cut i characters into the word
            return tokens(text[: start + i])[:limit] == wanted

        start, stop = words[high]
        short, long = 0, stop - start  # not enough(short), enough(long)
        while long - short > 1:
            middle = (short + long) // 2
            short, long = (short, middle) if enough(middle) else (middle, long)
        for _ in range(_STEP_BACK):
            if long <= 1 or not enough(long - 1):
                break
            long -= 1
        end = start + long
    return Reading(prompt[:end], prompt[end:], limit, len(everything), complete)
