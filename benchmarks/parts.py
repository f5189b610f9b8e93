"""Where one `inference_rank` call's time goes, per image: decoding and preprocessing, the image encoder, the
text encoder (with its cross-attention to the image), the head, and the rest (glue), on the full-size model.

    python benchmarks/parts.py --sizes 4 16 --dtype fp32
    python benchmarks/parts.py --sizes 4 16 --dtype bf16

Each part timed alone on the same inputs (min of --repeat after a warm-up, the embedding cache off), its
arithmetic counted from the shapes (`checks.gflop_per_image`'s terms) and read against the GEMM peak measured
in the same run. The whole call is timed too; glue is the whole less the parts. Writes
benchmarks/runs/parts_<dtype>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import PROMPT, ROOT, distinct_images, make_checkpoint  # noqa: E402
from machine import describe  # noqa: E402


def best(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", type=int, default=[4, 16])
    ap.add_argument("--dtype", default="fp32")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--checkpoint", default=str(Path.home() / ".cache" / "imagereward-bench"))
    args = ap.parse_args()

    import torch

    import imagereward
    from imagereward.images import reading as imgs
    from imagereward.images.decoding import Decoder

    machine = describe()
    peak = machine["gemm_peak_gflops"]["bf16" if args.dtype == "bf16" else "fp32"]
    ckpt = make_checkpoint(Path(args.checkpoint))
    model = imagereward.load(str(ckpt), device="cpu", dtype=args.dtype)
    model.embedding_cache.resize(0)
    images = distinct_images(max(args.sizes), ckpt)
    cfg = model.config
    tokens = (cfg.vision.image_size // cfg.vision.patch_size) ** 2 + 1
    prompt = model.prompt_tokens(PROMPT)
    report = {"machine": machine, "dtype": args.dtype, "sizes": {}}
    for n in args.sizes:
        paths = images[:n]
        decoder = Decoder()
        try:
            decode_s = best(lambda: decoder.decode(paths, paths, [model.preprocessing]), args.repeat)
            decoded = decoder.decode(paths, paths, [model.preprocessing])[model.preprocessing]
        finally:
            decoder.close()
        pixels = imgs.normalize(torch.stack([d.pixels for d in decoded])).to(model.dtype)
        with torch.inference_mode():
            embeds = model.encode_images(pixels)
            ids = prompt.input_ids.expand(n, -1)
            mask = prompt.attention_mask.expand(n, -1)
            feats = model.encode_text(ids, mask, embeds)
            image_s = best(lambda: model.encode_images(pixels), args.repeat)
            text_s = best(lambda: model.encode_text(ids, mask, embeds), args.repeat)
            head_s = best(lambda: model.forward_head(feats), args.repeat)
        whole_s = best(lambda: model.inference_rank(PROMPT, paths), args.repeat)
        v, t = cfg.vision, cfg.text
        d, mlp, L, H = v.width, int(v.width * v.mlp_ratio), ids.shape[1], t.hidden_size
        image_gflop = n * (2 * (tokens - 1) * 3 * v.patch_size**2 * d
                           + v.depth * (2 * tokens * (4 * d * d + 2 * d * mlp) + 4 * tokens * tokens * d)) / 1e9  # fmt: skip
        text_gflop = n * t.num_hidden_layers * (
            2 * L * 4 * H * H + 4 * L * L * H + 2 * L * 2 * H * H + 2 * tokens * 2 * d * H + 4 * L * tokens * H
            + 2 * L * 2 * H * t.intermediate_size
        ) / 1e9  # fmt: skip
        parts = {
            "decode": {"seconds": decode_s},
            "image_encoder": {"seconds": image_s, "gflop": image_gflop},
            "text_encoder": {"seconds": text_s, "gflop": text_gflop},
            "head": {"seconds": head_s},
        }
        glue = whole_s - decode_s - image_s - text_s - head_s
        for part in parts.values():
            if "gflop" in part:
                part["fraction_of_peak"] = part["gflop"] / part["seconds"] / peak
        report["sizes"][str(n)] = {
            "whole_seconds": whole_s,
            "whole_fraction_of_peak": (image_gflop + text_gflop) / whole_s / peak,
            "parts": parts,
            "glue_seconds": glue,
        }
        print(f"\n{n} images, {args.dtype}: whole {whole_s / n:.3f} s/image, "
              f"{100 * (image_gflop + text_gflop) / whole_s / peak:.0f}% of the {peak:.0f} GFLOP/s peak")  # fmt: skip
        for name, part in parts.items():
            share = f", {100 * part['fraction_of_peak']:.0f}% of peak" if "fraction_of_peak" in part else ""
            print(f"  {name:14} {part['seconds'] / n:.4f} s/image{share}")
        print(f"  {'glue':14} {glue / n:.4f} s/image")
    out = ROOT / "benchmarks" / "runs" / f"parts_{args.dtype}.json"
    out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
