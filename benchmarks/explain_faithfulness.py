"""How faithful each way of drawing "where the model looked" is, by a deletion test on the fixture model.

    python benchmarks/explain_faithfulness.py

For every fixture image and three prompts: a map over the 14 x 14 patches of the 224 crop, by each method;
then the quarter of patches the map ranks highest (what it says raised the score most) is set to the mean image
(normalised pixels 0) and the score's drop measured, against the mean drop over 16 random quarters. A faithful
map's quarter lowers the score more than a random one. Methods: gradient x input; SmoothGrad (gradient x input
averaged over 8 noisy copies, sigma 0.15 of the pixel range); integrated gradients from the mean image in 2,
4, 8 and 16 steps (`judges.explain.patch_map`, which the package uses with `STEPS`); and a random map. Prints
a table and one JSON object (also --json). On the tiny fixture model this measures the method, not ImageReward's
full-size weights, which cannot be downloaded here.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

QUARTER_DRAWS = 16


def patches(attribution: torch.Tensor, patch: int) -> np.ndarray:
    side = attribution.shape[-1] // patch
    return attribution.view(side, patch, side, patch).sum((1, 3)).detach().numpy()


def gradient_x_input(model, tokens, x: torch.Tensor, patch: int) -> np.ndarray:
    y = x.clone().requires_grad_(True)
    with torch.enable_grad():
        model.score_gard(tokens.input_ids, tokens.attention_mask, y).sum().backward()
    return patches((y.grad[0] * x[0]).sum(0), patch)


def smoothgrad(model, tokens, x: torch.Tensor, patch: int, copies: int = 8, sigma: float = 0.15) -> np.ndarray:
    generator = torch.Generator().manual_seed(0)
    spread = sigma * float(x.max() - x.min())
    noisy = (x + spread * torch.randn((copies, *x.shape[1:]), generator=generator)).requires_grad_(True)
    ids, mask = tokens.input_ids.expand(copies, -1), tokens.attention_mask.expand(copies, -1)
    with torch.enable_grad():
        model.score_gard(ids, mask, noisy).sum().backward()
    return patches((noisy.grad.mean(0) * x[0]).sum(0), patch)


def masked(x: torch.Tensor, chosen: np.ndarray, patch: int) -> torch.Tensor:
    y = x.clone()
    grid = x.shape[-1] // patch
    for k in chosen:
        r, c = divmod(int(k), grid)
        y[:, :, r * patch : (r + 1) * patch, c * patch : (c + 1) * patch] = 0
    return y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=3)
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "runs" / "explain_faithfulness.json"))
    args = ap.parse_args()

    import imagereward
    from imagereward.images.reading import normalize
    from imagereward.judges.explain import STEPS, patch_map
    from imagereward.model.tokenizer import encode_prompt
    from originals import EXPECTED, PARITY, image_path

    model = imagereward.load(str(PARITY), device="cpu")
    patch = model.config.vision.patch_size
    prompts = [p for p in EXPECTED["prompts"] if p.strip()][: args.prompts]
    rng = np.random.default_rng(0)
    methods = {
        "gradient x input": lambda t, px, x: gradient_x_input(model, t, x, patch),
        "SmoothGrad (8 copies)": lambda t, px, x: smoothgrad(model, t, x, patch),
        **{
            f"integrated gradients, {k} steps": (lambda k: lambda t, px, x: patch_map(model, t, px, patch, k))(k)
            for k in (2, 4, 8, 16)
        },
        "random map": lambda t, px, x: rng.standard_normal((x.shape[-1] // patch,) * 2),
    }
    drops: dict[str, list[float]] = {name: [] for name in methods}
    random_drops: list[float] = []
    seconds: dict[str, float] = {name: 0.0 for name in methods}
    for name in EXPECTED["images"]:
        pixels = model.preprocessing.load(str(image_path(name)))
        x = normalize(pixels)[None]
        for prompt in prompts:
            tokens = encode_prompt(prompt)

            def score(y: torch.Tensor) -> float:
                with torch.no_grad():
                    return float(model.score_gard(tokens.input_ids, tokens.attention_mask, y)[0, 0])

            base = score(x)
            cells = (x.shape[-1] // patch) ** 2
            quarter = cells // 4
            draws = [rng.permutation(cells)[:quarter] for _ in range(QUARTER_DRAWS)]
            random_drops.append(float(np.mean([base - score(masked(x, d, patch)) for d in draws])))
            for method, make in methods.items():
                start = time.perf_counter()
                heat = make(tokens, pixels, x)
                seconds[method] += time.perf_counter() - start
                top = np.argsort(-np.asarray(heat).ravel())[:quarter]
                drops[method].append(base - score(masked(x, top, patch)))
    baseline = np.array(random_drops)
    report = {
        "model": "tests/fixtures/parity (tiny)",
        "images": len(EXPECTED["images"]),
        "prompts": len(prompts),
        "package_steps": STEPS,
        "random_quarter_mean_drop": float(baseline.mean()),
        "methods": {
            method: {
                "mean_drop": float(np.mean(d)),
                "better_than_random": float(np.mean(np.array(d) > baseline)),
                "seconds_per_map": seconds[method] / len(d),
            }
            for method, d in drops.items()
        },
    }
    print(f"{len(baseline)} cases ({report['images']} images x {report['prompts']} prompts); the score's drop when a")
    print(f"quarter of the patches is set to the mean image (a random quarter: {baseline.mean():+.3f} on average)\n")
    print(f"{'method':34} {'mean drop':>10} {'beats random':>13} {'ms/map':>7}")
    for method, r in report["methods"].items():
        print(
            f"{method:34} {r['mean_drop']:+10.3f} {100 * r['better_than_random']:12.0f}% "
            f"{1000 * r['seconds_per_map']:7.1f}"
        )
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=1))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
