"""How many of the package's modules one page request and one `imagereward score` call pass through, and how
often a call crosses from one module to another (a profiler's count of Python calls, in every thread).

    IMAGEREWARD_MODEL=tests/fixtures/parity python tools/module_crossings.py

A crossing is a call whose caller and callee are both in the project (`imagereward.*` or `app`) and in
different modules; a return is not counted. The page request is the page's own handler (`app.py`
`score_and_compare`) on two of the examples' images; the command is `imagereward score --prompt P IMAGE...`
on the same images. Both run once to warm up, then once counted.
"""

from __future__ import annotations

import io
import json
import os
import sys
import threading
from collections import Counter
from contextlib import redirect_stdout
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _ours(module: str | None) -> bool:
    return bool(module) and (module == "app" or module.startswith("imagereward"))


class Crossings:
    """Counts calls between the project's modules while active (`sys.setprofile` in every thread)."""

    def __init__(self) -> None:
        self.pairs: Counter[tuple[str, str]] = Counter()
        self.modules: set[str] = set()
        self._lock = threading.Lock()

    def _profile(self, frame, event, arg):  # type: ignore[no-untyped-def]
        if event != "call" or frame.f_back is None:
            return
        callee, caller = frame.f_globals.get("__name__"), frame.f_back.f_globals.get("__name__")
        if _ours(callee):
            with self._lock:
                self.modules.add(callee)
                if _ours(caller) and caller != callee:
                    self.pairs[(caller, callee)] += 1

    def __enter__(self) -> Crossings:
        threading.setprofile(self._profile)
        sys.setprofile(self._profile)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.setprofile(None)
        threading.setprofile(None)  # type: ignore[arg-type]

    def report(self) -> dict:
        return {
            "modules": len(self.modules),
            "crossings": sum(self.pairs.values()),
            "distinct_pairs": len(self.pairs),
            "module_list": sorted(self.modules),
            "pairs": {f"{a} -> {b}": n for (a, b), n in self.pairs.most_common()},
        }


def main() -> None:
    os.environ.setdefault("IMAGEREWARD_MODEL", str(ROOT / "tests" / "fixtures" / "parity"))
    os.environ.setdefault("IMAGEREWARD_JUDGES", "none")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import app  # noqa: E402  (builds the page; the model is loaded here, before counting)
    from imagereward import cli

    images = [str(ROOT / "examples" / "images" / n) for n in sorted(os.listdir(ROOT / "examples" / "images"))[:2]]
    prompt = "a photograph of a cat"
    gallery = [(p, None) for p in images]
    results = {}
    for label, run in (
        ("page request", lambda: app.score_and_compare(prompt, gallery, [], None)),
        (
            "imagereward score",
            lambda: cli.main(
                [
                    "score",
                    "--model",
                    os.environ["IMAGEREWARD_MODEL"],
                    "--device",
                    "cpu",
                    "-q",
                    "--prompt",
                    prompt,
                    *images,
                ]
            ),
        ),
    ):
        with redirect_stdout(io.StringIO()):
            run()  # warm-up: first-use loading is not a request's path
            with Crossings() as counted:
                run()
        results[label] = counted.report()
    for label, r in results.items():
        print(f"{label}: {r['modules']} modules, {r['crossings']} calls between modules ({r['distinct_pairs']} pairs)")
        print("   ", ", ".join(r["module_list"]))
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
