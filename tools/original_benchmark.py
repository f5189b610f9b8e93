"""Runs the ORIGINAL benchmark, `test-benchmark.py` of THUDM/ImageReward, on generations laid out as it reads
them, with the tiny test models; makes the fixture `tests/fixtures/benchmark-three/` that `imagereward benchmark`
must reproduce (per-model means and the result files).

Run in the reference env (../shared/reference), one judge per process (the harness patches are global), with
the original script's path (a checkout of THUDM/ImageReward):

    REFENV=~/.cache/imagereward-refenv
    $REFENV/bin/python tools/original_benchmark.py --make-images
    for j in ImageReward-v1.0 CLIP BLIP Aesthetic; do
      $REFENV/bin/python tools/original_benchmark.py --script ORIGINAL/test-benchmark.py --judge $j \
        --torch-from .venv/lib/python3.11/site-packages
    done

The original's script runs CLIP and Aesthetic's CLIP tower in float16 on the CPU (it passes `torch.device("cpu")`,
and its baselines test `device == "cpu"`). Float16 on the CPU rounds as torch's release and the CPU's kernels do:
the original's own CLIP features move by 2e-3 between torch 2.8 and 2.13, and between oneDNN's AVX512-FP16
kernels and the others. So every judge is run with the torch the tests pin (`--torch-from`: the project's
virtualenv's site-packages; the reference env's other packages stay its own), and CLIP and Aesthetic with the
kernels pinned (`PINNED_KERNELS`: oneDNN off, ATen's AVX2 kernels), the same on every x86 CPU the tests run on;
`tests/test_benchmark.py` runs this package pinned alike.

The only patches are the harness's (`_refcommon`: the tokenizer's vocab file, the tiny ViT's and head's dims, CLIP's
file without its hash check) and where `RM.load("ImageReward-v1.0")` finds its weights (the tiny checkpoint): the
script's own scoring, means and files run unmodified.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "tests", "fixtures")
OUT = os.path.join(FIXTURES, "benchmark-three")
MODELS = ("alpha", "beta", "gamma")
PER_PROMPT = 2
sys.path.insert(0, os.path.join(HERE, "..", "..", "shared", "reference"))
PINNED_KERNELS = {"ATEN_CPU_CAPABILITY": "avx2"}  # and torch.backends.mkldnn.enabled = False
HALF_ON_CPU = ("CLIP", "Aesthetic")  # the judges the original's benchmark runs in float16 on the CPU
TORCH_PACKAGES = ("torch", "torchgen", "functorch", "torchvision", "torchvision.libs", "nvidia", "triton")


def rerun_with_torch_from(site_packages: str) -> None:
    """This command again, importing torch and torchvision from another virtualenv's site-packages (links to
    those packages alone, first on PYTHONPATH) and the rest from this one's."""
    links = tempfile.mkdtemp()
    for name in os.listdir(site_packages):
        if name in TORCH_PACKAGES or name.startswith(("torch-", "torchvision-")):
            os.symlink(os.path.abspath(os.path.join(site_packages, name)), os.path.join(links, name))
    argv = [a for a in sys.argv if a != "--torch-from" and a != site_packages]
    os.execve(sys.executable, [sys.executable, *argv], {**os.environ, "PYTHONPATH": links})


def make_images() -> None:
    """Four of the original's prompts, and two generations of each by three 'models' (small pictures drawn from
    a seed: shapes of different colours and sizes, so that the judges tell them apart)."""
    import numpy as np
    from PIL import Image, ImageDraw

    prompts = json.load(open(os.path.join(HERE, "..", "imagereward", "benchmark", "benchmark-prompts.json")))[:4]
    os.makedirs(OUT, exist_ok=True)
    json.dump(prompts, open(os.path.join(OUT, "prompts.json"), "w"), indent=1)
    rng = np.random.default_rng(2026)
    for m, model in enumerate(MODELS):
        folder = os.path.join(OUT, "generations", model)
        os.makedirs(folder, exist_ok=True)
        for item in prompts:
            for k in range(PER_PROMPT):
                image = Image.new("RGB", (96, 96), tuple(int(c) for c in rng.integers(0, 256, 3)))
                draw = ImageDraw.Draw(image)
                for _ in range(2 + m):
                    x, y = (int(v) for v in rng.integers(0, 80, 2))
                    size = int(rng.integers(10, 40))
                    draw.ellipse((x, y, x + size, y + size), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
                image.save(os.path.join(folder, f"{item['id']}_{k}.png"))


def load_script(path: str):
    """The original script as a module (its `if __name__ == "__main__"` block does not run)."""
    import types

    module = types.ModuleType("original_test_benchmark")
    module.__file__ = path
    exec(compile(open(path).read(), path, "exec"), module.__dict__)
    return module


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--make-images", action="store_true")
    parser.add_argument("--script", help="the original's test-benchmark.py")
    parser.add_argument("--judge")
    parser.add_argument("--torch-from", help="the site-packages to import torch and torchvision from")
    args = parser.parse_args()
    if args.make_images:
        make_images()
        return
    if args.torch_from:
        rerun_with_torch_from(args.torch_from)
    if args.judge in HALF_ON_CPU:
        os.environ.update(PINNED_KERNELS)
    import _refcommon as C
    import torch

    torch.backends.mkldnn.enabled = args.judge not in HALF_ON_CPU
    print(
        f"{args.judge}: torch {torch.__version__}, oneDNN {'on' if torch.backends.mkldnn.enabled else 'off'}, "
        f"ATen kernels {torch.backends.cpu.get_cpu_capability()}"
    )
    from original_eval import patch_tiny_baselines, patch_tiny_imagereward

    RM = C.import_imagereward()
    root = tempfile.mkdtemp()
    if args.judge == "ImageReward-v1.0":
        checkpoint, med_config = patch_tiny_imagereward()
        original_load = RM.load

        def load(name, device, download_root=None):  # where the published weights are: the tiny checkpoint
            assert name == "ImageReward-v1.0"
            return original_load(checkpoint, device=device, med_config=med_config)

        RM.load = load
    else:
        root = patch_tiny_baselines()
    script = load_script(args.script)
    script.RM = RM
    script.rm_path = root  # the script reads its download root from a module global
    script.test_benchmark(
        argparse.Namespace(
            prompts_path=os.path.join(OUT, "prompts.json"),
            result_dir=os.path.join(OUT, "results"),
            img_dir=os.path.join(OUT, "generations"),
            model=",".join(MODELS),
            benchmark=args.judge,
            rm_path=root,
            gpu_id=None,
        )
    )


if __name__ == "__main__":
    main()
