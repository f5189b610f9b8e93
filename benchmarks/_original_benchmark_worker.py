"""Times the ORIGINAL `test-benchmark.py` (THUDM/ImageReward) on one judge; run with the reference env's Python.

    $REFENV/bin/python benchmarks/_original_benchmark_worker.py --reference ../shared/reference \
        --script ORIGINAL/test-benchmark.py --judge CLIP --images DIR --prompts prompts.json --models a,b \
        --checkpoint DIR --root DIR

Runs the script's own `test_benchmark` unmodified; the judge's loading (`RM.load`, `RM.load_score`) is timed apart
and taken out of the scoring time. The only patches are the reference harness's: the BERT vocabulary read from
disk, CLIP's file without its hash check, and where `RM.load("ImageReward-v1.0")` finds its weights (the
checkpoint given). Prints one JSON object: the scoring seconds and each model's score.
"""

import argparse
import json
import os
import sys
import tempfile
import time
import types


def main():
    ap = argparse.ArgumentParser()
    for name in ("reference", "script", "judge", "images", "prompts", "models", "checkpoint", "root"):
        ap.add_argument(f"--{name}", required=True)
    args = ap.parse_args()
    sys.dont_write_bytecode = True
    sys.path.insert(0, os.path.abspath(args.reference))
    import _refcommon as C

    RM = C.import_imagereward()
    C.patch_tokenizer_source(C.VOCAB_PATH)
    C.patch_clip_checkpoint_resolution()
    loading = []
    load, load_score = RM.load, RM.load_score

    def timed_load(name, device, download_root=None):
        t = time.perf_counter()
        model = load(
            os.path.join(args.checkpoint, "ImageReward.pt"),
            device=device,
            med_config=os.path.join(args.checkpoint, "med_config.json"),
        )
        loading.append(time.perf_counter() - t)
        return model

    def timed_load_score(name, device, download_root=None):
        t = time.perf_counter()
        model = load_score(name, device=device, download_root=download_root)
        loading.append(time.perf_counter() - t)
        return model

    RM.load, RM.load_score = timed_load, timed_load_score
    module = types.ModuleType("original_test_benchmark")
    module.__file__ = args.script
    exec(compile(open(args.script).read(), args.script, "exec"), module.__dict__)
    module.RM = RM
    module.rm_path = args.root
    out = tempfile.mkdtemp()
    t = time.perf_counter()
    module.test_benchmark(
        argparse.Namespace(
            prompts_path=args.prompts,
            result_dir=out,
            img_dir=args.images,
            model=args.models,
            benchmark=args.judge,
            rm_path=args.root,
            gpu_id=None,
        )
    )
    total = time.perf_counter() - t
    scores = json.load(open(os.path.join(out, f"{args.judge}-benchmark-results.json")))
    import torch

    print(
        json.dumps(
            {
                "scoring_seconds": total - sum(loading),
                "loading_seconds": sum(loading),
                "scores": scores,
                "torch": torch.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
