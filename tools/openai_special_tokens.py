"""Tokenizes prompts that hold CLIP's special strings (and other edge cases) with OpenAI's own `clip.tokenize`
(its `simple_tokenizer.py`, loaded without torchvision), writing `tests/fixtures/parity-baselines/special_tokens.json`:
what the CLIP and Aesthetic baselines must read. Run in the reference env (../shared/reference):

    ~/.cache/imagereward-refenv/bin/python tools/openai_special_tokens.py
"""

from __future__ import annotations

import importlib.util
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "parity-baselines", "special_tokens.json")
PROMPTS = [
    "a cat <|endoftext|> and a dog",
    "<|startoftext|>a red fox",
    "a <end_of_text> b <start_of_text>",
    "A <|EndOfText|> upper-case special",
    "tabs\tand\x1cseparators\x1fhere",
    "fish &amp;amp; chips &lt;3",
]


def main() -> None:
    path = os.path.join(os.path.dirname(importlib.util.find_spec("clip").origin), "simple_tokenizer.py")
    spec = importlib.util.spec_from_file_location("openai_simple_tokenizer", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tokenizer = module.SimpleTokenizer()
    sot, eot = tokenizer.encoder["<|startoftext|>"], tokenizer.encoder["<|endoftext|>"]
    cases = []
    for prompt in PROMPTS:
        ids = [sot, *tokenizer.encode(prompt), eot][:77]
        ids[-1] = eot
        cases.append({"prompt": prompt, "input_ids": ids + [0] * (77 - len(ids))})
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump({"made_by": "tools/openai_special_tokens.py (OpenAI clip 1.0.1)", "cases": cases}, f, indent=1)


if __name__ == "__main__":
    main()
