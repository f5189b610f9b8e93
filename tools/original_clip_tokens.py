"""Records what the ORIGINAL ReFL's tokenizer makes of unusual prompts: transformers 4's slow `CLIPTokenizer` (with
ftfy), as `ImageReward/ReFL.py` loads it (`CLIPTokenizer.from_pretrained(<pipeline>, subfolder="tokenizer")`), on
the ReFL fixture's tiny pipeline; and the reward model's BERT tokens. Run in the reference env:

    $REFENV/bin/python tools/original_clip_tokens.py tests/fixtures/refl/pipeline tests/fixtures/refl/unusual_tokens.json
"""

import json
import sys

from transformers import CLIPTokenizer

PROMPTS = [
    "Ｆｕｌｌ－ｗｉｄｔｈ，ＰＵＮＣＴＵＡＴＩＯＮ！ａｎｄ　ｓｐａｃｅｓ",
    "mojibake: cafÃ© Ã  la crÃ¨me",
    "HTML &amp; entities &lt;b&gt;bold&lt;/b&gt;",
    "   tabs\tand\nnew lines   and  double  spaces ",
    "accents: naïve façade, Ångström, Ωmega",
    "emoji 🌉🚀 and CJK 山水画, 初音ミク",
    "don't won't it's we'll they're I'd",
    "<|endoftext|> in the middle <|startoftext|>",
    "numbers 1234567890 and 3.14, 2nd-place",
    "a" * 300,
]


def main():
    folder, out = sys.argv[1], sys.argv[2]
    tokenizer = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer")
    assert tokenizer.fix_text is not None, "ftfy must be installed: the original's tokenizer uses it"
    rows = []
    for prompt in PROMPTS:
        ids = tokenizer(prompt, max_length=tokenizer.model_max_length, padding="max_length", truncation=True).input_ids
        rows.append({"prompt": prompt, "clip_input_ids": ids})
    json.dump(
        {"tokenizer": "transformers slow CLIPTokenizer with ftfy", "rows": rows},
        open(out, "w"),
        indent=1,
        ensure_ascii=False,
    )


if __name__ == "__main__":
    main()
