"""Times the ORIGINAL image-reward 1.5 package; run with the reference env's Python (../shared/reference).

    $REFENV/bin/python benchmarks/_original_worker.py --reference ../shared/reference --checkpoint DIR \
        --images a.png b.png ... --sizes 4 16 --repeat 3 [--device cuda]

On a GPU machine without the reference env, `bench_gpu.py --original SITE` runs it with the machine's Python and
SITE (from benchmarks/gpu_kit.sh) first on its path.

Loads with the original's own `ImageReward.load(path, device="cpu", med_config=...)` and scores with its own
`inference_rank` under `torch.no_grad()`, as its README does. The only patch is the reference harness's
tokenizer source (the BERT vocab read from disk instead of the hub). Prints one JSON object.
"""

import argparse
import json
import os
import sys
import time


def rss_mb(field="VmHWM"):
    """Peak (VmHWM) or current (VmRSS) resident memory, MiB; unlike ru_maxrss not inherited across exec."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(field + " not in /proc/self/status")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reference", required=True)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--images", nargs="+", required=True)
    ap.add_argument("--sizes", nargs="+", type=int, default=[4, 16])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--native-torchvision",
        action="store_true",
        help="import torchvision as installed (where it matches torch) before the harness's workaround",
    )
    ap.add_argument("--device", default="cpu", help="cpu or cuda (the original scores one image at a time, fp32)")
    ap.add_argument(
        "--prompt", default="a painting of an ocean with clouds and birds, day time, low depth field effect"
    )
    args = ap.parse_args()
    sys.dont_write_bytecode = True
    sys.path.insert(0, os.path.abspath(args.reference))
    import _refcommon as C

    if args.native_torchvision:
        import torchvision  # noqa: F401
    RM = C.import_imagereward()
    C.patch_tokenizer_source(C.VOCAB_PATH)
    import torch

    base_rss = rss_mb("VmRSS")
    t0 = time.perf_counter()
    model = RM.load(
        os.path.join(args.checkpoint, "ImageReward.pt"),
        device=args.device,
        med_config=os.path.join(args.checkpoint, "med_config.json"),
    )
    load_s = time.perf_counter() - t0
    load_rss = rss_mb()
    with torch.no_grad():
        model.score(args.prompt, args.images[0])
    first_score_s = time.perf_counter() - t0
    out = {
        "impl": "original",
        "dtype": "float32",
        "load_seconds": load_s,
        "load_to_first_score_seconds": first_score_s,
        "rss_before_load_mb": base_rss,
        "peak_rss_after_load_mb": load_rss,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "runs": {},
    }
    # The images its image encoder encodes in the timed runs (the benchmark checks that it is every one).
    encoded = [0]
    hook = model.blip.visual_encoder.register_forward_pre_hook(
        lambda _m, inputs: encoded.__setitem__(0, encoded[0] + int(inputs[0].shape[0]))
    )
    for n in args.sizes:
        paths = [args.images[i % len(args.images)] for i in range(n)]
        times, rewards = [], None
        with torch.no_grad():
            model.inference_rank(args.prompt, paths)  # warm-up
            encoded[0] = 0
            for _ in range(args.repeat):
                t = time.perf_counter()
                _, rewards = model.inference_rank(args.prompt, paths)
                times.append(time.perf_counter() - t)
        out["runs"][str(n)] = {
            "seconds": min(times),
            "all_seconds": times,
            "rewards": rewards,
            "encoded_images": encoded[0],
        }
    hook.remove()
    out["peak_rss_mb"] = rss_mb()
    if args.device.startswith("cuda"):
        out["device"] = torch.cuda.get_device_name(args.device)
        out["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated(args.device) / 2**30
    print(json.dumps(out))


if __name__ == "__main__":
    main()
