"""The ORIGINAL image-reward 1.5's differentiable path, timed; run with the reference env's Python.

    $REFENV/bin/python benchmarks/_original_gradients.py --reference ../shared/reference --checkpoint DIR \
        --images images.npy --prompt "..." --repeat 3 [--autocast bf16] [--grads out.npy]

As ReFL (`ImageReward/ReFL.py`) uses it: the original's own `load`, the weights frozen (`requires_grad_(False)`),
ReFL's tensor preprocessing (`Resize(224, BICUBIC)`, `CenterCrop(224)`, `Normalize`) on images in [0, 1], the BLIP
tokenizer as ReFL calls it, `score_gard`, and `relu(2 - rewards).mean()` back-propagated to the images. Times
forward + backward (min of --repeat after a warm-up); prints one JSON object; with --grads saves the images'
gradient of the last run.
"""

import argparse
import json
import os
import sys
import time

from _original_worker import rss_mb  # the same env's Python, the same folder


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reference", required=True)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--images", required=True, help="a .npy of float32 (B, 3, H, W) in [0, 1]")
    ap.add_argument("--prompt", required=True)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--autocast", default=None, choices=["bf16"])
    ap.add_argument("--grads", default=None)
    args = ap.parse_args()
    sys.dont_write_bytecode = True
    sys.path.insert(0, os.path.abspath(args.reference))
    import _refcommon as C

    RM = C.import_imagereward()
    C.patch_tokenizer_source(C.VOCAB_PATH)
    import numpy as np
    import torch
    from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Normalize, Resize

    model = RM.load(
        os.path.join(args.checkpoint, "ImageReward.pt"),
        device="cpu",
        med_config=os.path.join(args.checkpoint, "med_config.json"),
    )
    model.requires_grad_(False)
    # ReFL.py's `_transform()`, verbatim
    preprocess = Compose(
        [
            Resize(224, interpolation=InterpolationMode.BICUBIC),
            CenterCrop(224),
            Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
        ]
    )
    images = torch.from_numpy(np.load(args.images))
    tokens = model.blip.tokenizer(
        [args.prompt] * len(images), padding="max_length", truncation=True, max_length=35, return_tensors="pt"
    )
    loaded_rss = rss_mb("VmRSS")

    def step():
        x = images.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.autocast == "bf16"):
            rewards = model.score_gard(tokens.input_ids, tokens.attention_mask, preprocess(x))
        loss = torch.relu(-rewards + 2).mean()
        loss.backward()
        return x.grad, rewards

    step()  # warm-up
    times = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        grad, rewards = step()
        times.append(time.perf_counter() - t)
    if args.grads:
        np.save(args.grads, grad.float().numpy())
    out = {
        "impl": "original",
        "autocast": args.autocast or "fp32",
        "batch": len(images),
        "seconds": min(times),
        "all_seconds": times,
        "rewards": rewards.float().flatten().tolist(),
        "rss_after_load_mb": loaded_rss,
        "peak_rss_mb": rss_mb(),
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
