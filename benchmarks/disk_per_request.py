"""Bytes a page request leaves on the server's disk, right after it and once the files' lifetime is over.

    python benchmarks/disk_per_request.py [--app-dir DIR] [--requests 20] [--lifetime 5]

Starts the app in `--app-dir` (default this checkout; give another checkout, e.g. `git worktree add /tmp/old
<commit>`, to measure an older version) with the tiny model and a private temp folder, sends `--requests`
page requests (`score_and_compare`, the page's own handler: two new uploaded images each, and the page's
CSV / JSON / zip downloads), and reports per request the bytes uploaded and the bytes on disk in Gradio's
upload folder and in the system temp folder (where older versions wrote their downloads), then again after
`--lifetime` + 2 sweeps (an older version, which ignores IMAGEREWARD_FILE_LIFETIME, keeps them for an hour).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--app-dir", default=str(ROOT))
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--lifetime", type=int, default=5)
    parser.add_argument("--json")
    args = parser.parse_args()
    import test_app_limits as requests_of

    import appserver

    appserver.ROOT = Path(args.app_dir)
    sources = [requests_of.image_path(n) for n in requests_of.CASE["images"][:2]]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        system_temp = tmp / "system-temp"
        system_temp.mkdir()
        env = {
            "IMAGEREWARD_MODEL": str(requests_of.PARITY),
            "IMAGEREWARD_JUDGES": "none",
            "IMAGEREWARD_FILE_LIFETIME": str(args.lifetime),
            "TMPDIR": str(system_temp),
        }
        with appserver.running_app(tmp, **env) as url:
            cache = tmp / "gradio"
            start_bytes = folder_bytes(cache) + folder_bytes(system_temp)
            uploaded = 0
            for k in range(args.requests):
                copies = [requests_of.distinct_copy(s, tmp / f"r{k}-{j}.png", k) for j, s in enumerate(sources)]
                uploaded += sum(c.stat().st_size for c in copies)
                data = ["a cat", requests_of.items([requests_of.upload(url, c) for c in copies]), [], "ImageReward"]
                event, _ = requests_of.call(url, "score_and_compare", data)
                assert event == "complete"
                for c in copies:
                    c.unlink()
            after = {"upload folder": folder_bytes(cache), "system temp": folder_bytes(system_temp)}
            time.sleep(args.lifetime + 2 * max(1, args.lifetime // 10) + 1)
            later = {"upload folder": folder_bytes(cache), "system temp": folder_bytes(system_temp)}
    n = args.requests
    report = {
        "app": args.app_dir,
        "uploaded_per_request": uploaded / n,
        "page_files_at_start": start_bytes,
        "right_after_per_request": {
            k: (v - (start_bytes if k == "upload folder" else 0)) / n for k, v in after.items()
        },
        f"after_{args.lifetime}s_per_request": {
            k: (v - (start_bytes if k == "upload folder" else 0)) / n for k, v in later.items()
        },
    }
    total = sum(report["right_after_per_request"].values())
    print(f"uploaded {report['uploaded_per_request'] / 1e3:.0f} kB per request")
    for key in ("right_after_per_request", f"after_{args.lifetime}s_per_request"):
        parts = ", ".join(f"{k} {v / 1e3:.0f} kB" for k, v in report[key].items())
        print(f"{key.replace('_', ' ')}: {parts}")
    print(f"left right after: {total / report['uploaded_per_request']:.2f}x the uploaded bytes")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
