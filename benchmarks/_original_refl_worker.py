"""Times the ORIGINAL ReFL trainer (`ImageReward/ReFL.py` of image-reward 1.5) on a pipeline; run with the reference
env's Python (torch linked first on PYTHONPATH by the caller, so that both sides run the same torch).

    $REFENV/bin/python benchmarks/_original_refl_worker.py --pipeline DIR --prompts prompts.json --steps 3 \
        [--gradient-checkpointing] [--batch 2]

The trainer's own file runs unmodified: `ReFL.parse_args()`, `ReFL.Trainer(pipeline, prompts, args)`,
`trainer.train(args)`. Its names are replaced from outside, as the parity fixture's harness did: `RM.load` returns
the tiny reward model (the harness's three tiny-model patches), and `Accelerator` accepts the `logging_dir=` that
accelerate 0.20 removed (without it the original cannot start). Each optimizer step's end is timed at
`lr_scheduler.step()`. Prints one JSON object: the step times and the peak resident memory (VmHWM).
"""

import argparse
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# the reference harness (_refcommon.py): ../shared/reference here, the GPU kit's copy on a lent machine
sys.path.insert(0, os.environ.get("IMAGEREWARD_REFERENCE") or os.path.join(HERE, "..", "..", "shared", "reference"))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))


def peak_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pipeline", required=True)
    ap.add_argument("--prompts", required=True)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--gradient-checkpointing", action="store_true")
    ap.add_argument("--batch", type=int, default=2)
    args = ap.parse_args()
    import _refcommon as C
    from original_eval import patch_tiny_imagereward

    RM = C.import_imagereward()
    checkpoint, med_config = patch_tiny_imagereward()
    import torch
    from accelerate import Accelerator as Accelerate
    from accelerate.utils import ProjectConfiguration

    if args.threads:
        torch.set_num_threads(args.threads)
    from ImageReward import ReFL

    class Loader:
        def load(self, name, device="cpu", **kwargs):
            return RM.load(checkpoint, device=device, med_config=med_config)

    def Accelerator(logging_dir=None, project_config=None, **kwargs):  # noqa: N802 - the original's name
        project_config = project_config or ProjectConfiguration()
        project_config.logging_dir = logging_dir
        return Accelerate(project_config=project_config, **kwargs)

    ReFL.RM, ReFL.Accelerator = Loader(), Accelerator
    out = tempfile.mkdtemp()
    argv = [
        "--seed",
        "1234",
        "--train_batch_size",
        str(args.batch),
        "--gradient_accumulation_steps",
        "1",
        "--max_train_steps",
        str(args.steps),
        "--learning_rate",
        "0.001",
        "--grad_scale",
        "1000.0",
        "--max_grad_norm",
        "1.0",
        "--mixed_precision",
        "no",
        "--output_dir",
        os.path.join(out, "out"),
        "--cache_dir",
        os.path.join(out, "c"),
        "--checkpointing_steps",
        "100000",
    ]
    if args.gradient_checkpointing:
        argv.append("--gradient_checkpointing")
    sys.argv = ["refl", *argv]
    parsed = ReFL.parse_args()
    trainer = ReFL.Trainer(args.pipeline, args.prompts, parsed)
    marks = []
    step = trainer.lr_scheduler.step

    def timed_step(*a, **k):
        marks.append(time.perf_counter())
        return step(*a, **k)

    trainer.lr_scheduler.step = timed_step
    start = time.perf_counter()
    trainer.train(parsed)
    times = [b - a for a, b in zip([start, *marks[:-1]], marks)]
    gpu = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    print(json.dumps({"step_seconds": times, "peak_rss_mb": peak_mb(), "peak_gpu_mb": gpu, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
