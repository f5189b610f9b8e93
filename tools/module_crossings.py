"""How many of the package's modules one page request and one `imagereward score` call pass through, how often a
call crosses from one module to another, how often it climbs back up the layers, and how often it returns to a
module it had left (a profiler's count of Python calls, in every thread, the decoding threads included).

    IMAGEREWARD_MODEL=tests/fixtures/parity python tools/module_crossings.py [out.json]

A crossing is a call whose caller and callee are both in the project (`imagereward.*` or `app`) and in
different modules; a return is not counted. A climb is a crossing into a higher layer (`LAYERS`: the front ends
above the ranking and rows, above the judges, above the images and the network, above the errors). A return to
a module already left is a crossing into a module that is already on the call stack below its caller (page ->
request -> page: the request calls back into the page).

The page request is the page's own handler (`Page.score`, the button's event) on two of the examples' images; the
command is `imagereward score --prompt P IMAGE...` on the same images. Each runs once to warm up; then the
image-feature caches are cleared and the decoding threads started anew inside the counted run (threads that
exist before it are not profiled), and the command's model is the one the warm-up loaded (loading is not a
request's path).
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

# Top to bottom: a call may go down or stay; a call up is a climb.
LAYERS = (
    ("app",),
    ("imagereward.app.page", "imagereward.app.agents"),  # the page's front door, above the request's steps
    ("imagereward.app", "imagereward.cli", "imagereward.bulk", "imagereward.evaluation", "imagereward.__main__"),
    ("imagereward.ranking", "imagereward.rows"),
    ("imagereward.judges",),
    ("imagereward.images", "imagereward.model"),
    ("imagereward.errors", "imagereward"),
)


def _ours(module: str | None) -> bool:
    return bool(module) and (module == "app" or module.startswith("imagereward"))


def layer(module: str) -> int:
    """The layer of a module (0 the top), by the longest matching prefix in `LAYERS`."""
    best, found = -1, len(LAYERS) - 1
    for k, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, found = len(prefix), k
    return found


class Crossings:
    """Counts calls between the project's modules while active (`sys.setprofile` here and in every thread
    started meanwhile)."""

    def __init__(self) -> None:
        self.pairs: Counter[tuple[str, str]] = Counter()
        self.climbs: Counter[tuple[str, str]] = Counter()
        self.returns: Counter[tuple[str, str]] = Counter()
        self.modules: set[str] = set()
        self._lock = threading.Lock()

    def _profile(self, frame, event, arg):  # type: ignore[no-untyped-def]
        if event != "call" or frame.f_back is None:
            return
        callee, caller = frame.f_globals.get("__name__"), frame.f_back.f_globals.get("__name__")
        if not _ours(callee):
            return
        with self._lock:
            self.modules.add(callee)
        if not _ours(caller) or caller == callee:
            return
        below, back = [], frame.f_back
        while back is not None and back.f_globals.get("__name__") == caller:
            back = back.f_back
        while back is not None:
            module = back.f_globals.get("__name__")
            if _ours(module):
                below.append(module)
            back = back.f_back
        with self._lock:
            self.pairs[(caller, callee)] += 1
            if layer(callee) < layer(caller):
                self.climbs[(caller, callee)] += 1
            if callee in below:
                self.returns[(caller, callee)] += 1

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
            "climbs": sum(self.climbs.values()),
            "returns_to_a_module_left": sum(self.returns.values()),
            "module_list": sorted(self.modules),
            "pairs": {f"{a} -> {b}": n for (a, b), n in self.pairs.most_common()},
            "climb_pairs": {f"{a} -> {b}": n for (a, b), n in self.climbs.most_common()},
            "return_pairs": {f"{a} -> {b}": n for (a, b), n in self.returns.most_common()},
        }


def main() -> None:
    os.environ.setdefault("IMAGEREWARD_MODEL", str(ROOT / "tests" / "fixtures" / "parity"))
    os.environ.setdefault("IMAGEREWARD_JUDGES", "none")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import app  # noqa: E402  (builds the page; the model is loaded here, before counting)
    from imagereward import cli, judges
    from imagereward.images.decoding import Decoder

    loaded: dict[tuple, object] = {}
    load_judge = judges.load_judge

    def once(name: str, **options: object) -> object:  # the command's judge, loaded by the warm-up only
        key = (name, tuple(sorted(options.items())))
        if key not in loaded:
            loaded[key] = load_judge(name, **options)
        return loaded[key]

    judges.load_judge = once  # type: ignore[assignment]  (the command imports it when it runs)

    def fresh() -> None:
        """Empty caches, and decoders whose threads start inside the counted run."""
        app.PAGE.loaded.model.embedding_cache.clear()
        app.PAGE.decoder.close()
        app.PAGE.decoder = Decoder()
        for judge in loaded.values():
            judge.embedding_cache.clear()  # type: ignore[attr-defined]
            judge.close()  # type: ignore[attr-defined]  (its decoder is made anew on first use)

    images = [str(ROOT / "examples" / "images" / n) for n in sorted(os.listdir(ROOT / "examples" / "images"))[:2]]
    prompt = "a photograph of a cat"
    gallery = [(p, None) for p in images]
    command = ["score", "--model", os.environ["IMAGEREWARD_MODEL"], "--device", "cpu", "-q", "--prompt", prompt]
    results = {}
    for label, run in (
        ("page request", lambda: app.PAGE.score(prompt, gallery, [], None)),
        ("imagereward score", lambda: cli.main([*command, *images])),
    ):
        with redirect_stdout(io.StringIO()):
            run()  # warm-up: first-use loading is not a request's path
            fresh()
            with Crossings() as counted:
                run()
        results[label] = counted.report()
    for label, r in results.items():
        print(
            f"{label}: {r['modules']} modules, {r['crossings']} calls between modules ({r['distinct_pairs']} pairs), "
            f"{r['climbs']} climbs back up, {r['returns_to_a_module_left']} returns to a module already left"
        )
        print("   ", ", ".join(r["module_list"]))
        for kind in ("climb_pairs", "return_pairs"):
            if r[kind]:
                print(f"    {kind.replace('_', ' ')}: {r[kind]}")
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
