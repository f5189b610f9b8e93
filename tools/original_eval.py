"""Runs the ORIGINAL `image-reward` 1.5 on a test set in the test.json format, as its `test.py` does
(`model.inference_rank(prompt, paths)` per item), and writes `test_<scorer>.json`. Makes the fixture
`tests/fixtures/eval-four/`: what `imagereward eval` must reproduce with the tiny models.

Run in the reference env (../shared/reference), one scorer per process (the harness patches are global):

    REFENV=~/.cache/imagereward-refenv
    for s in ImageReward-v1.0 CLIP BLIP Aesthetic; do
      $REFENV/bin/python tools/original_eval.py --scorer $s --out tests/fixtures/eval-four
    done
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "tests", "fixtures")
sys.path.insert(0, os.path.join(HERE, "..", "..", "shared", "reference"))

import _refcommon as C  # noqa: E402


def patch_tiny_imagereward() -> tuple[str, str]:
    """The harness's patches for the tiny ImageReward (`tests/fixtures/parity/`); its checkpoint and med_config."""
    d = os.path.join(FIXTURES, "parity")
    cfg = json.load(open(os.path.join(d, "config.json")))
    v = cfg["vision"]
    C.patch_tokenizer_source(os.path.join(d, C.VOCAB_FILE_NAME))
    C.patch_create_vit(v["width"], v["depth"], v["heads"])
    C.patch_mlp_input_size(cfg["head"]["input_size"])
    return os.path.join(d, "ImageReward.pt"), os.path.join(d, "med_config.json")


def patch_tiny_baselines() -> str:
    """The harness's patches for the tiny baselines (`tests/fixtures/parity-baselines/`); a download root holding
    a copy of their files (the original writes a Hugging Face cache into its download root)."""
    d = os.path.join(FIXTURES, "parity-baselines")
    root = tempfile.mkdtemp()
    for name in os.listdir(d):
        if os.path.isfile(os.path.join(d, name)):
            shutil.copy(os.path.join(d, name), root)
    v = json.load(open(os.path.join(d, "vision_config.json")))
    C.patch_tokenizer_source(os.path.join(d, "bert-base-uncased-vocab.txt"))
    C.patch_create_vit(v["width"], v["depth"], v["heads"])
    C.patch_clip_checkpoint_resolution()
    return root


def load(scorer: str):
    RM = C.import_imagereward()
    if scorer == "ImageReward-v1.0":
        checkpoint, med_config = patch_tiny_imagereward()
        return RM.load(checkpoint, device="cpu", med_config=med_config)
    return RM.load_score(scorer, device="cpu", download_root=patch_tiny_baselines())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scorer", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    test_json = os.path.join(args.out, "test.json")
    images_dir = os.path.join(FIXTURES, "parity-baselines")
    items = json.load(open(test_json, encoding="utf-8"))
    model = load(args.scorer)
    results = []
    for item in items:
        paths = [os.path.join(images_dir, g) for g in item["generations"]]
        ranking, rewards = model.inference_rank(item["prompt"], paths)
        results.append({"id": item["id"], "prompt": item["prompt"], "ranking": ranking, "rewards": rewards})
    with open(os.path.join(args.out, f"test_{args.scorer}.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1, ensure_ascii=False)


if __name__ == "__main__":
    main()
