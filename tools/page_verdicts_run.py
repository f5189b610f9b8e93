"""The whole loop the judge's training closes, on the tiny model: the page (the real server, a store of verdicts)
takes a person's verdicts through its `/verdict` API, as its buttons send them; the store is exported as the
page's download lays it out; `imagereward train` fine-tunes the tiny model on the pairs, holding out a share of
the prompts, and prints the agreement before and after.

    python tools/page_verdicts_run.py OUT_DIR

The "person" has one consistent taste: of each pair, the more colourful image (mean HSV saturation) is preferred,
a tie when the two are within 2%. 72 verdicts over the first 12 benchmark prompts, pairs drawn (seeded) from the
parity images and the examples. On a tiny random model the agreement says only that the loop learns a consistent
taste, not how ImageReward would.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))


def colour(path: Path) -> float:
    import numpy as np
    from PIL import Image

    return float(np.asarray(Image.open(path).convert("RGB").convert("HSV"))[..., 1].mean()) / 255


def main() -> None:
    from gradio_client import Client, handle_file

    from appserver import running_app
    from imagereward.benchmark import load_prompts
    from originals import PARITY

    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    images = sorted((PARITY / "images").glob("*"))[:9] + sorted((ROOT / "examples" / "images").glob("*.jpg"))
    prompts = [p.prompt for p in load_prompts()[:12]]
    rng = random.Random(7)
    env = {
        "IMAGEREWARD_MODEL": str(PARITY),
        "IMAGEREWARD_JUDGES": "none",
        "IMAGEREWARD_PROXY_HOPS": "1",  # each prompt's verdicts come from a visitor of its own
        "IMAGEREWARD_VERDICTS_DB": str(out / "verdicts.db"),
    }
    given = []
    with running_app(out, **env) as url:
        for k, prompt in enumerate(prompts):
            client = Client(url, verbose=False, headers={"X-Forwarded-For": f"198.51.100.{k + 1}"})
            for _ in range(6):
                a, b = rng.sample(images, 2)
                ca, cb = colour(a), colour(b)
                verdict = "tie" if abs(ca - cb) < 0.02 else ("a" if ca > cb else "b")
                answer = client.predict(
                    prompt, handle_file(str(a)), handle_file(str(b)), verdict, [], [], api_name="/verdict"
                )
                given.append((verdict, bool(answer.get("stored"))))
    print(
        json.dumps(
            {"verdicts": len(given), "stored": sum(s for _, s in given), "ties": sum(v == "tie" for v, _ in given)}
        )
    )
    cli = [sys.executable, "-m", "imagereward"]
    subprocess.run([*cli, "verdicts", "export", str(out / "verdicts.db"), "--out", str(out / "export")], check=True)
    train = [
        *cli,
        "train",
        str(out / "export" / "pairs.jsonl"),
        "--model",
        str(PARITY),
        "--output-dir",
        str(out / "judge"),
    ]
    train += ["--epochs", "10", "--lr", "1e-4", "--batch-size", "8", "--accumulation-steps", "1", "--heldout", "0.25"]
    subprocess.run([*train, "--device", "cpu", "-q"], check=True)


if __name__ == "__main__":
    main()
