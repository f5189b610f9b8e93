"""Command line: `imagereward score` ranks images for a prompt; `imagereward explain` says why one image gets
its score; `imagereward eval` reproduces the paper's Table 2 (preference accuracy on the 466-prompt test set);
`imagereward bulk` scores a dataset; `imagereward verdicts` reports how often each judge agrees with people's
verdicts and exports a store of them. Also `python -m imagereward ...`."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence, TextIO

from .errors import ImageError, ImageLoadError, ImageRewardError, InputError
from .images.formats import IMAGE_EXTENSIONS

if TYPE_CHECKING:  # the commands import the judges (torch, timm, transformers) when they run, not for `--help`
    from .judges import Judge
    from .ranking import Ranking

FORMATS = ("table", "json", "jsonl", "csv")


@dataclass
class Group:
    """One prompt and its images, as given on the command line or on one line of --prompts-file."""

    prompt: str
    images: list[str]
    missing: list[ImageError] = field(default_factory=list)


def collect_images(sources: Sequence[str], base: Path | None = None) -> tuple[list[str], list[ImageError]]:
    """Expands folders (recursively, sorted) to their image files; files are kept whatever their extension.
    Paths that do not exist and folders that cannot be read are returned as errors."""
    found: list[str] = []
    missing: list[ImageError] = []
    for source in sources:
        path = Path(source).expanduser()
        if base is not None and not path.is_absolute():
            path = base / path
        if path.is_dir():
            files, unreadable = _walk(path)
            found.extend(files)
            missing.extend(unreadable)
        elif path.exists():
            found.append(str(path))
        else:
            missing.append(ImageLoadError(str(path), "file not found"))
    return found, missing


def _walk(folder: Path) -> tuple[list[str], list[ImageError]]:
    """Image files under `folder`, sorted, and the sub-folders that could not be listed."""
    files: list[str] = []
    unreadable: list[ImageError] = []

    def report(error: OSError) -> None:
        why = "permission denied" if isinstance(error, PermissionError) else (error.strerror or str(error))
        unreadable.append(ImageLoadError(str(error.filename or folder), f"folder could not be read ({why})"))

    for root, dirs, names in os.walk(folder, onerror=report):
        dirs.sort()
        files.extend(os.path.join(root, n) for n in names if Path(n).suffix.lower() in IMAGE_EXTENSIONS)
    return sorted(files), unreadable


def read_prompts_file(path: Path) -> list[Group]:
    """JSONL, one `{"prompt": "...", "images": ["file or folder", ...]}` per line; relative paths are taken
    from the file's own folder.

    Raises:
        InputError: a line that is not such an object, naming the file, the line and the field.
    """
    groups = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{where}: not valid JSON ({e})") from e
        if not isinstance(entry, dict):
            raise InputError(
                f'{where}: expected an object {{"prompt": "...", "images": [...]}}, got {type(entry).__name__}'
            )
        prompt, sources = entry.get("prompt"), entry.get("images")
        if not isinstance(prompt, str):
            raise InputError(f'{where}: field "prompt" must be a string, got {type(prompt).__name__}')
        if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
            raise InputError(
                f'{where}: field "images" must be a list of file or folder paths (strings), '
                f"got {type(sources).__name__}"
            )
        images, missing = collect_images(sources, base=path.parent)
        groups.append(Group(prompt, images, missing))
    return groups


def embedded_groups(images: list[str], missing: list[ImageError]) -> list[Group]:
    """Without --prompt: each image is scored against the prompt its file carries (`metadata.embedded_prompt`),
    one group per distinct prompt, in order of first appearance; files without one are reported."""
    from .images.metadata import embedded_prompt

    by_prompt: dict[str, Group] = {}
    unprompted: list[ImageError] = []
    for path in images:
        found = embedded_prompt(path)
        if found is None:
            unprompted.append(
                ImageLoadError(
                    path,
                    "no --prompt given, and the file carries no prompt (A1111, ComfyUI, InvokeAI, Fooocus or NovelAI metadata)",
                )
            )
        else:
            by_prompt.setdefault(found.prompt, Group(found.prompt, [])).images.append(path)
    groups = list(by_prompt.values())
    if not groups:
        raise InputError(
            "give --prompt: none of the images carries its prompt in its metadata "
            f"({len(images)} image file{'s' if len(images) != 1 else ''} looked at)"
        )
    groups[0].missing.extend(missing + unprompted)
    return groups


def open_output(target: str) -> tuple[TextIO, Path]:
    """A temporary file beside `target`, opened for writing before any scoring, so that a destination that
    cannot be written fails at once; `commit_output` moves it into place.

    Raises:
        InputError: the destination's folder does not exist, is not writable, or `target` is a folder.
    """
    path = Path(target).expanduser()
    if path.is_dir():
        raise InputError(f"--output {target}: is a folder; give a file path")
    try:
        handle = tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", newline="", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
        )
    except PermissionError as e:
        raise InputError(f"--output {target}: permission denied, cannot write in {path.parent}") from e
    except FileNotFoundError as e:
        raise InputError(f"--output {target}: the folder {path.parent} does not exist") from e
    except OSError as e:
        raise InputError(f"--output {target}: cannot be written ({e.strerror or e})") from e
    return handle, path


def commit_output(handle: TextIO, target: Path) -> None:
    handle.close()
    os.replace(handle.name, target)


def write_results(
    results: list[tuple[Group, Ranking | None, list[ImageError]]], fmt: str, out: TextIO, model: str
) -> None:
    """Writes every group's result rows best first in `fmt` (see FORMATS; `rows.result_row`'s columns, the
    image's path under `image`); `model` names the ranking judge."""
    from .rows import columns, result_rows, write_csv

    if fmt == "json":
        payload = [
            {
                "prompt": g.prompt,
                "results": result_rows(r, g.prompt, model) if r else [],
                "errors": [{"image": e.name, "reason": e.reason} for e in errors],
            }
            for g, r, errors in results
        ]
        json.dump(payload, out, indent=1, ensure_ascii=False)
        out.write("\n")
    elif fmt == "jsonl":
        for group, ranking, _ in results:
            for row in result_rows(ranking, group.prompt, model) if ranking else []:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
    elif fmt == "csv":
        judges = next((r.judges for _, r, _ in results if r is not None), [])
        rows = (row for g, r, _ in results for row in (result_rows(r, g.prompt, model) if r else []))
        write_csv(out, columns(judges[1:]), rows, lineterminator="\n")
    else:
        for k, (group, ranking, _) in enumerate(results):
            if len(results) > 1:
                out.write(("\n" if k else "") + f"prompt: {group.prompt}\n")
            judges = ranking.judges if ranking else []
            out.write(f"{'rank':>4}  " + "".join(f"{j[:12]:>12}  " for j in judges or ["score"]) + "image\n")
            for r in ranking.ranked if ranking else []:
                values = [r.scores.get(j) for j in judges] if judges else [r.score]
                cells = "".join(f"{'-' if v is None else f'{v:.4f}':>12}  " for v in values)
                out.write(f"{r.rank:>4}  {cells}{r.name}\n")


def cmd_score(args: argparse.Namespace) -> int:
    if args.prompts_file:
        groups = read_prompts_file(Path(args.prompts_file))
    else:
        if not args.images:
            raise InputError("give at least one image or folder (and --prompt), or --prompts-file")
        images, missing = collect_images(args.images)
        groups = [Group(args.prompt, images, missing)] if args.prompt is not None else embedded_groups(images, missing)
    output = open_output(args.output) if args.output else None
    try:
        return _score_groups(args, groups, output)
    finally:
        if output is not None and not output[0].closed:
            output[0].close()
            os.unlink(output[0].name)


def _score_groups(args: argparse.Namespace, groups: list[Group], output: tuple[TextIO, Path] | None) -> int:
    from tqdm import tqdm

    from .ranking import rank_images, rank_with_judges

    judges = _load_judges(args)
    model = judges[0]
    model_name = _model_name(args, model)
    total = sum(len(g.images) for g in groups)
    bar = tqdm(total=total, unit="img", file=sys.stderr, disable=args.quiet or not sys.stderr.isatty() or total < 2)
    results = []
    for group in groups:
        errors = list(group.missing)
        ranking = None
        try:
            if len(judges) > 1:
                ranking = rank_with_judges(judges, group.prompt, group.images, group.images, progress=bar.update)
                for judge, error in ranking.judge_failures:
                    print(f"imagereward: {judge} could not score {error.name}: {error.reason}", file=sys.stderr)
            else:
                ranking = rank_images(
                    model,
                    group.prompt,
                    group.images,
                    names=group.images,
                    batch_size=args.batch_size,
                    progress=bar.update,
                )
            errors += ranking.failures
        except InputError as e:
            errors += e.failures
            if not e.failures:
                print(f"imagereward: prompt {group.prompt!r}: {e}", file=sys.stderr)
        for error in errors:
            print(f"imagereward: skipped {error.name}: {error.reason}", file=sys.stderr)
        results.append((group, ranking, errors))
    bar.close()
    if output is not None:
        write_results(results, args.format, output[0], model_name)
        commit_output(*output)
    else:
        write_results(results, args.format, sys.stdout, model_name)
    return 0 if any(r for _, r, _ in results) else 1


def cmd_explain(args: argparse.Namespace) -> int:
    """Why ImageReward gives one image its score (`ImageReward.explain`): what it read, each read word's effect,
    the map of what raised or lowered the score; the map drawn over the image into `--out`."""
    from .images.reading import open_image
    from .judges import primary
    from .judges.explain import overlay

    model = _load_judge(args, primary().name)
    explanation = model.explain(args.prompt, args.image)  # type: ignore[attr-defined]
    if args.out:
        with open_image(args.image) as image:
            overlay(image, explanation).save(args.out)
    if args.format == "json":
        answer = {"image": args.image, "model": _model_name(args, model), **explanation.as_dict()}
        print(json.dumps(answer, ensure_ascii=False))
        return 0
    reading = explanation.reading
    print(f"{args.image}: score {explanation.score:.4f} ({model.spec.label}, {_model_name(args, model)})")
    counts = "all" if not reading.unread else f"{reading.tokens_read} of"
    print(f"{model.spec.label} read {counts} {reading.tokens_total}{'' if reading.complete else '+'} tokens:")
    print(f"  read:   {reading.read}")
    if reading.unread:
        print(f"  unread: {reading.unread[:400]}{'…' if len(reading.unread) > 400 else ''}")
    print("each read word's effect on the score (the score with it, less the score without it):")
    for word in explanation.word_effects:
        shown = word.text if not word.partial else f"{word.text[: word.read]}[{word.text[word.read :]}]"
        print(f"  {word.delta:+8.4f}  {shown}")
    left, top, right, bottom = explanation.crop_box
    heat = explanation.heatmap
    r, c = divmod(int(heat.argmax()), heat.shape[1])
    lr, lc = divmod(int(heat.argmin()), heat.shape[1])
    print(
        f"where it looked: the {model.preprocessing.size} x {model.preprocessing.size} crop "
        f"({left:.0f}, {top:.0f}) to ({right:.0f}, {bottom:.0f}) of the {explanation.image_size[0]} x "
        f"{explanation.image_size[1]} image, in {heat.shape[0]} x {heat.shape[1]} patches; the patch that raised "
        f"the score most: row {r + 1}, column {c + 1} ({heat.max():+.4f}); lowered it most: row {lr + 1}, column "
        f"{lc + 1} ({heat.min():+.4f})"
    )
    if args.out:
        print(f"the map over the image: {args.out} (red raised the score, blue lowered it; outside the box unseen)")
    print("(an estimate of what drove the score, not a proof)")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from . import evaluation

    data = Path(args.data_dir)
    if args.download:
        test_json, images_dir = evaluation.download_test_set(data)
        evaluation.download_weights(args.judges, args.download_root)
    else:
        test_json = Path(args.test_json) if args.test_json else data / "test.json"
        images_dir = Path(args.images_dir) if args.images_dir else data / "test_images"
    items = evaluation.read_test_set(test_json)
    if not images_dir.is_dir():
        raise InputError(f"images folder not found: {images_dir} (use --images-dir, or --download when online)")
    out_dir = Path(args.output_dir) if args.output_dir else test_json.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    table = []
    for name in args.judges:
        judge = _load_judge(args, name)
        bar = tqdm(
            total=len(items), desc=name, unit="prompt", file=sys.stderr, disable=args.quiet or not sys.stderr.isatty()
        )
        try:
            results = evaluation.evaluate(judge, items, images_dir, progress=bar.update)
        except ImageError as e:
            raise InputError(f"{e}; every image of the test set must be readable (check --images-dir)") from e
        finally:
            bar.close()
        target = out_dir / f"test_{name}.json"
        target.write_text(json.dumps(results, indent=4, ensure_ascii=False), encoding="utf-8")
        accuracy = evaluation.pairwise_accuracy([i["ranking"] for i in items], [r["rewards"] for r in results])
        table.append((name, accuracy, target))
    print(f"{'judge':>16}  {'accuracy':>8}  {'paper':>6}  results")
    for name, accuracy, target in table:
        paper = evaluation.paper_accuracy(name)
        print(f"{name:>16}  {100 * accuracy:7.2f}%  {f'{paper:.2f}%' if paper else '':>6}  {target}")
    return 0


def _load_judge(args: argparse.Namespace, name: str, dtype: str | None = None) -> Judge:
    """A judge by name (`judges.load_judge`); ImageReward is the weights `--model` names; in `dtype` when
    `--dtype` is not given.

    Raises:
        InputError: an unknown name (the message lists the judges).
    """
    from .judges import available_judges, load_judge, spec

    try:
        found = spec(name)
    except ValueError:
        raise InputError(f"unknown judge {name!r}; available: {', '.join(available_judges())}") from None
    options = {"download_root": args.download_root, "device": args.device, "dtype": args.dtype or dtype}
    if found.primary:
        options["weights"] = args.model
    judge = load_judge(found.name, **options)
    if getattr(args, "batch_size", None):
        judge.batch_size = args.batch_size
    return judge


def _load_judges(args: argparse.Namespace) -> list[Judge]:
    from .judges import primary

    names = list(dict.fromkeys(args.judge or [primary().name]))
    return [_load_judge(args, name) for name in names]


def _model_name(args: argparse.Namespace, judge: Judge) -> str:
    """The ranking judge as the rows name it: ImageReward by its weights (`--model`: a registry name, or a
    path's last part), any other judge by its name."""
    return Path(args.model).name if judge.spec.primary else judge.spec.name


def cmd_bulk(args: argparse.Namespace) -> int:
    from .bulk import bulk_score, require_ray

    require_ray()
    summary = bulk_score(
        args.inputs,
        args.output,
        prompt=args.prompt,
        model=args.model,
        judges=args.judge or (),
        device=args.device,
        dtype=args.dtype,
        batch_size=args.batch_size,
        actors=args.actors,
        download_root=args.download_root,
        progress=not args.quiet,
    )
    if args.quiet:
        print(f"imagereward bulk: {summary.line()}", file=sys.stderr)
    return 0


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


class JudgesHelp(argparse.HelpFormatter):
    """Help whose `{judges}`, `{primary}`, `{label}` and `{differentiable}` are filled in from the judges' registry only when that
    help is shown: reading the registry imports the judges (torch, timm, transformers), which `imagereward
    --help` does not need."""

    def _expand_help(self, action: argparse.Action) -> str:
        text = super()._expand_help(action)
        if not any(key in text for key in ("{judges}", "{primary}", "{label}", "{differentiable}")):
            return text
        from .judges import available_judges, primary, specs

        names = {
            "{judges}": ", ".join(available_judges()),
            "{primary}": primary().name,
            "{label}": primary().label,
            "{differentiable}": ", ".join(s.name for s in specs() if s.differentiable and not s.primary),
        }
        for key, value in names.items():
            text = text.replace(key, value)
        return text


def fill_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """The defaults that come from the judges' registry (ImageReward's published weights), once a command runs."""
    if getattr(args, "model", "") is None or getattr(args, "judges", "") is None:
        from .judges import primary

        if getattr(args, "model", "") is None:
            args.model = primary().name
        if getattr(args, "judges", "") is None:
            args.judges = [primary().name]
    return args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imagereward", description="Score images by human preference (ImageReward).", formatter_class=JudgesHelp
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_judges_parser)

    def model_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--model",
            default=None,
            help="{label}'s weights: a registry name, or a checkpoint file or folder (default {primary})",
        )
        p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: CUDA if available)")
        p.add_argument(
            "--dtype", default=None, choices=["fp32", "fp16", "bf16"], help="default fp32 on CPU, fp16 on CUDA"
        )
        p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
        p.add_argument(
            "--download-root",
            help="folder holding (or receiving) the weights under the original's file names "
            "(default: the Hugging Face cache for ImageReward, ~/.cache/ImageReward for the baselines)",
        )

    score = sub.add_parser("score", help="rank images (files or folders) for a prompt")
    score.add_argument("images", nargs="*", help="image files or folders (walked recursively)")
    score.add_argument(
        "--prompt",
        "-p",
        help="the prompt the images were generated from (default: the prompt each file carries in its metadata, "
        "as A1111, ComfyUI, InvokeAI, Fooocus and NovelAI write it; one ranking per prompt)",
    )
    score.add_argument(
        "--prompts-file", help='JSONL of {"prompt": ..., "images": [...]}, many groups in one model load'
    )
    score.add_argument("--batch-size", type=positive_int, default=None, help="images per forward pass (default 32)")
    score.add_argument(
        "--judge",
        "--scorer",
        dest="judge",
        action="append",
        metavar="NAME",
        help="a judge to score with (repeatable: one column each; the first ranks); one of {judges} (default "
        "{primary}, the weights --model names); --scorer is the same",
    )
    score.add_argument("--format", "-f", choices=FORMATS, default="table")
    score.add_argument("--output", "-o", help="write results here instead of standard output")
    model_options(score)
    score.set_defaults(func=cmd_score)

    explain = sub.add_parser("explain", help="why one image gets its score: the words read, their effects, the map")
    explain.add_argument("prompt", help="the prompt")
    explain.add_argument("image", help="the image file")
    explain.add_argument("--out", help="write the map drawn over the image here (PNG, JPEG, WEBP by extension)")
    explain.add_argument("--format", "-f", choices=["text", "json"], default="text")
    model_options(explain)
    explain.set_defaults(func=cmd_explain)

    ev = sub.add_parser("eval", help="the paper's Table 2: pairwise preference accuracy on the test set")
    ev.add_argument("--data-dir", default="data", help="holds test.json and test_images/ (default: data)")
    ev.add_argument("--test-json", help="the test set in the original's test.json format")
    ev.add_argument("--images-dir", help="folder the test set's image paths are relative to")
    ev.add_argument("--output-dir", help="where test_<judge>.json go (default: beside test.json)")
    ev.add_argument(
        "--judges",
        "--scorers",
        dest="judges",
        nargs="+",
        default=None,
        help="judges to evaluate (default {primary}); available: {judges}; --scorers is the same",
    )
    ev.add_argument(
        "--download",
        action="store_true",
        help="fetch test.json, test_images.zip and the chosen baselines' weights first (needs network)",
    )
    ev.add_argument("--batch-size", type=positive_int, default=None, help="images per forward pass (default 32)")
    model_options(ev)
    ev.set_defaults(func=cmd_eval)

    bulk = sub.add_parser(
        "bulk",
        help="score a dataset with Ray Data (manifests, folders, WebDataset shards) into Parquet; resumable",
    )
    bulk.add_argument(
        "inputs",
        nargs="+",
        help="manifests (.parquet, .csv, .jsonl with columns prompt, image, optional id), folders of images "
        "(with --prompt) or WebDataset shards (uncompressed .tar)",
    )
    bulk.add_argument("--output", "-o", required=True, help="the Parquet dataset (a folder) to write; rerun to resume")
    bulk.add_argument("--prompt", "-p", help="the prompt of a folder's images (and of manifest rows without one)")
    bulk.add_argument("--batch-size", type=positive_int, default=None, help="images per model call (256 GPU, 32 CPU)")
    bulk.add_argument("--actors", type=positive_int, default=None, help="model actors (default: one per GPU, or 1)")
    bulk.add_argument(
        "--judge",
        "--scorer",
        dest="judge",
        action="append",
        metavar="NAME",
        help="a judge (repeatable; the first gives `score`); one of {judges}; --scorer is the same",
    )
    model_options(bulk)
    bulk.set_defaults(func=cmd_bulk)

    bench = sub.add_parser(
        "benchmark",
        help="rank generative models by the judges: the original's test-benchmark.py, with win rates and intervals",
        description="Generations laid out as the original's benchmark lays them out: IMAGES_DIR/<model>/<id>_<k>.png "
        "(any accepted image extension), k = 0 .. n-1 for each prompt id of the prompt list (default: the "
        "original's 100 prompts); n = the files in the model's folder // the prompts, as the original counts. Per "
        "judge, a model's score is the mean over prompts of the mean over its generations, and the original's "
        "result files are written (<judge>-benchmark-results.json, <judge>/<judge>-benchmark-<model>-result.json); "
        "beside them summary.json, summary.md and report.html (plots, the win-rate matrix, the best and worst "
        "prompts with thumbnails): 95% intervals and win rates between models (bootstrap over prompts), each "
        "judge's ranking, where judges disagree. A missing or unreadable generation is named and its prompt left "
        "out of that model's figure. At scale: --write-manifest, imagereward bulk, then --from-scores. Without --dtype each judge runs in the precision the "
        "original's benchmark runs it in on every device: ImageReward and BLIP in fp32, CLIP and Aesthetic in fp16 "
        "(on the CPU too); the others in their default.",
    )
    bench.add_argument("--images-dir", help="one folder per generative model, <id>_<k>.png inside")
    bench.add_argument("--prompts", help='the prompt list, JSON [{"id", "prompt"}] (default the original\'s 100)')
    bench.add_argument("--generators", help="the models to rank, comma-separated (default: every folder)")
    bench.add_argument(
        "--judge",
        "--benchmark",
        dest="judge",
        action="append",
        metavar="NAME",
        help="a judge besides ImageReward (repeatable, or comma-separated); one of {judges}",
    )
    bench.add_argument("--output-dir", default="benchmark/results", help="where the results go (default: %(default)s)")
    bench.add_argument("--bootstrap", type=positive_int, default=1000, help="bootstrap samples (default 1000)")
    bench.add_argument("--seed", type=int, default=0, help="the bootstrap's seed (default 0)")
    bench.add_argument("--human-ranking", help="the models best first by people, comma-separated: Spearman's rho")
    bench.add_argument(
        "--verdicts",
        help="people's verdicts on pairs (the page's pairs file, JSONL): their win rates beside the judges'",
    )
    bench.add_argument(
        "--from-scores",
        nargs="+",
        metavar="PARQUET",
        help="summarise bulk's output (its folder or files) instead of scoring: rows whose image ends "
        "<model>/<id>_<k>.<ext>; --images-dir then only shows thumbnails",
    )
    bench.add_argument(
        "--write-manifest",
        metavar="FILE",
        help="write the generations of --images-dir as bulk's input (.parquet, .csv or .jsonl, in or above "
        "--images-dir) and stop",
    )
    bench.add_argument("--batch-size", type=positive_int, default=None, help="images per forward pass (default 32)")
    model_options(bench)
    bench.set_defaults(func=cmd_benchmark)

    refl = sub.add_parser(
        "refl",
        help="fine-tune a Stable Diffusion (1.x, 2.x, XL, 3) or Flux pipeline so that ImageReward prefers its images (ReFL)",
        description="The original ReFL trainer (ImageReward/ReFL.py), step for step, on today's diffusers: DDPM over "
        "40 steps without guidance, one late step trained through the VAE and ImageReward's differentiable reward, "
        "loss relu(2 - reward) * grad-scale, AdamW, clipping. SDXL as the original's ReFL_SDXL.py conditions it; "
        "Stable Diffusion 3 and Flux by flow matching (the clean estimate x_t - sigma * v). Writes a diffusers folder (or a "
        "LoRA adapter; and checkpoint-<step> folders, log.jsonl) into --output-dir. Needs the training extra: pip "
        "install -e .[train]. Every check (the pipeline folder, the prompts, the output folder, the judges) runs "
        "before any model loads.",
    )
    refl.add_argument(
        "pipeline",
        help="a diffusers folder or hub id: Stable Diffusion (e.g. CompVis/stable-diffusion-v1-4), SDXL, SD3 or Flux",
    )
    refl.add_argument(
        "--prompts",
        help='the prompts: the original\'s [{"text", ...}], a JSON list of strings or a .txt file, one a line '
        "(default the original's 10,000)",
    )
    refl.add_argument("--output-dir", required=True, help="where the tuned pipeline and the checkpoints go")
    refl.add_argument(
        "--reward", help="ImageReward's weights: a registry name, checkpoint or folder (default the published)"
    )
    refl.add_argument("--max-steps", type=positive_int, default=100, help="optimizer steps (default %(default)s)")
    refl.add_argument("--learning-rate", type=float, default=1e-5, help="AdamW's (default %(default)s)")
    refl.add_argument("--grad-scale", type=float, default=1e-3, help="the loss's factor (default %(default)s)")
    refl.add_argument("--train-batch-size", type=positive_int, default=2, help="prompts a micro-step (default 2)")
    refl.add_argument(
        "--gradient-accumulation-steps", type=positive_int, default=4, help="micro-steps an optimizer step (default 4)"
    )
    refl.add_argument("--max-grad-norm", type=float, default=1.0, help="gradient clipping (default %(default)s)")
    refl.add_argument("--mixed-precision", choices=["no", "fp16", "bf16"], default="no")
    refl.add_argument("--checkpointing-steps", type=positive_int, default=100, help="steps between saved states")
    refl.add_argument("--seed", type=int, default=None, help="makes the run reproducible")
    refl.add_argument(
        "--lora-rank",
        type=positive_int,
        default=None,
        help="train LoRA adapters of this rank only, and save the adapter",
    )
    refl.add_argument("--gradient-checkpointing", action="store_true", help="less memory, the same gradients")
    refl.add_argument("--use-ema", action="store_true", help="save the moving average of the weights")
    refl.add_argument(
        "--pretrain-data",
        help='images with captions ({"text", "image"} rows, JSON or JSONL): alternate each update with the '
        "paper's pretraining (denoising) loss on them",
    )
    refl.add_argument("--pretrain-weight", type=float, default=1.0, help="the pretraining loss's weight (default 1)")
    refl.add_argument(
        "--validate-every",
        type=positive_int,
        default=None,
        help="generate the validation prompts every N steps (and before the first and after the last), score them "
        "with every --validation-judge, save a grid and log it; warns when the trained reward rises while another "
        "judge falls",
    )
    refl.add_argument(
        "--validation-judge",
        action="append",
        metavar="NAME",
        help="a judge besides the trained reward for validation (repeatable); one of {judges}",
    )
    refl.add_argument(
        "--validation-prompts", help="the validation prompts, as --prompts (default the original benchmark's first 4)"
    )
    refl.add_argument("--download-root", help="where the validation judges' weights are (as the other commands)")
    refl.add_argument(
        "--report-to",
        help="accelerate's trackers for the loss, reward, gradient norm and validations: tensorboard, wandb, all "
        "(installed separately); written under OUTPUT_DIR/logs",
    )
    refl.add_argument(
        "--guidance-scale",
        type=float,
        default=1.0,
        help="classifier-free guidance in the rollout (1: none, the original); for Flux, its embedded guidance",
    )
    refl.add_argument(
        "--draft-k",
        type=positive_int,
        default=None,
        help="DRaFT-K: gradients through the rollout's last K steps, the final image rewarded (default: ReFL's one late step)",
    )
    refl.add_argument(
        "--resolution",
        type=positive_int,
        default=None,
        help="the generated images' side in pixels (default: 512 for Stable Diffusion 1.x/2.x, as the original; "
        "the model's own for SDXL and SD3)",
    )
    refl.add_argument(
        "--extra-reward",
        action="append",
        metavar="NAME=WEIGHT",
        help="another reward in the loss, weighted (repeatable): ImageReward weights (a hinge, as the trained "
        "reward's) or a judge with a gradient path (its score): {differentiable}",
    )
    refl.add_argument("--device", default=None, help="cpu, or the accelerator's (default: CUDA if available)")
    refl.add_argument(
        "--resume", action="store_true", help="continue the run in --output-dir from its latest checkpoint"
    )
    refl.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    refl.set_defaults(func=cmd_refl)

    fit = sub.add_parser(
        "train",
        help="fine-tune ImageReward on preference pairs (the original's recipe), with a held-out agreement check",
        description="Fine-tunes an ImageReward checkpoint on preference pairs by the original training code's recipe "
        "(train/ of THUDM/ImageReward: pairs from rankings, the pairwise loss, the lower 70% of both encoders "
        "frozen, Adam, cosine decay), holding out a share of the prompts to measure agreement before, during "
        "and after, beside the untuned model and other judges. Writes ImageReward.pt and med_config.json (the "
        "best held-out loss) into --output-dir, which imagereward.load, the page (IMAGEREWARD_MODEL) and every "
        "command read, with log.jsonl, report.json and state.pt (resume). Every input is checked before the "
        "model loads.",
    )
    fit.add_argument(
        "data",
        nargs="+",
        help="preference pairs: the original's ranking file (.json), the page's verdicts (pairs.jsonl), or a "
        "Parquet table (a file, a folder, or hf://owner/dataset: prompt/chosen/rejected, Pick-a-Pic, HPDv2)",
    )
    fit.add_argument("--output-dir", required=True, help="where the trained model, its log and report go")
    fit.add_argument("--image-base", help="the folder a ranking file's image names are relative to (default: its own)")
    fit.add_argument("--model", default=None, help="the checkpoint to start from: a registry name or a folder")
    fit.add_argument(
        "--lr", type=float, default=1e-5, help="Adam's learning rate (default %(default)s, the original's)"
    )
    fit.add_argument("--warmup", type=float, default=0.0, help="warm-up share of the steps (default 0)")
    fit.add_argument("--schedule", choices=["cosine", "linear", "constant"], default="cosine")
    fit.add_argument("--epochs", type=positive_int, default=10, help="(default %(default)s)")
    fit.add_argument("--batch-size", type=positive_int, default=16, help="pairs a micro-batch (default 16)")
    fit.add_argument("--accumulation-steps", type=positive_int, default=4, help="micro-batches a step (default 4)")
    fit.add_argument("--fix-rate", type=float, default=0.7, help="the share of both encoders frozen (default 0.7)")
    fit.add_argument("--no-dropout", action="store_true", help="train without the original's dropout")
    fit.add_argument("--lora-rank", type=positive_int, default=None, help="LoRA adapters on both encoders instead")
    fit.add_argument("--mixed-precision", choices=["no", "bf16", "fp16"], default="no")
    fit.add_argument("--cache-features", action="store_true", help="cache the frozen ViT blocks' output per image")
    fit.add_argument("--heldout", type=float, default=0.1, help="the share of prompts held out (default 0.1)")
    fit.add_argument(
        "--patience", type=positive_int, default=None, help="stop after N evaluations without a better held-out loss"
    )
    fit.add_argument(
        "--eval-every", type=positive_int, default=None, help="evaluate every N steps too (default: each epoch)"
    )
    fit.add_argument("--seed", type=int, default=1234, help="the split, the order and dropout (default %(default)s)")
    fit.add_argument(
        "--judge",
        action="append",
        metavar="NAME",
        help="another judge scored on the held-out pairs beside the model (repeatable); one of {judges}",
    )
    fit.add_argument("--download-root", help="where the judges' weights are (as the other commands)")
    fit.add_argument("--report-to", help="accelerate's trackers: tensorboard, wandb, ... (under OUTPUT_DIR/logs)")
    fit.add_argument("--device", default=None, help="cpu, cuda, ... (default: CUDA if available)")
    fit.add_argument("--resume", action="store_true", help="continue the run in --output-dir")
    fit.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    fit.set_defaults(func=cmd_train)

    verdicts = sub.add_parser(
        "verdicts", help="people's verdicts on pairs: how often each judge agrees; export a store"
    )
    what = verdicts.add_subparsers(dest="verdicts_command", required=True, parser_class=_judges_parser)
    report = what.add_parser("report", help="the agreement table of a store or a pairs file (JSONL)")
    report.add_argument("source", help="a store (IMAGEREWARD_VERDICTS_DB, SQLite) or a pairs file (.jsonl)")
    report.add_argument("--format", "-f", choices=["table", "json"], default="table")
    report.set_defaults(func=cmd_verdicts_report)
    export = what.add_parser("export", help="a store's verdicts as pairs.jsonl and images/, as the page's download")
    export.add_argument("store", help="the store (SQLite)")
    export.add_argument("--out", required=True, help="the folder to write pairs.jsonl and images/ into")
    export.set_defaults(func=cmd_verdicts_export)
    return parser


def cmd_benchmark(args: argparse.Namespace) -> int:
    """`imagereward benchmark` (see its --help): the original's figures and files, the summary and the report."""
    from .benchmark import load_prompts, models_in, original_dtype, run_benchmark, summarize, write_summary
    from .benchmark.original_files import markdown_table
    from .benchmark.report import write_report

    if args.images_dir is None and not args.from_scores:
        raise InputError("give --images-dir (the generations) or --from-scores (bulk's output)")
    if args.images_dir is not None and not Path(args.images_dir).is_dir():
        raise InputError(f"{args.images_dir} is not a folder: give the folder holding one folder per model")
    prompts = load_prompts(args.prompts)
    models = [m.strip() for m in args.generators.split(",") if m.strip()] if args.generators else None
    if args.write_manifest:
        return _write_benchmark_manifest(args, prompts, models)
    if args.from_scores:
        bench = _bench_from_scores(args, models)
    else:
        models = models or models_in(args.images_dir)
        requested = [n.strip() for j in (args.judge or []) for n in j.split(",") if n.strip()]
        names = dict.fromkeys([_primary_name(), *requested])
        judges = [(name, _load_judge(args, name, original_dtype(name))) for name in names]
        with tqdm_bar(args.quiet) as bar:
            bench = run_benchmark(args.images_dir, judges, prompts, models, progress=bar.update)
    human = [m.strip() for m in args.human_ranking.split(",")] if args.human_ranking else None
    verdicts = _benchmark_verdicts(args, bench) if args.verdicts else None
    summary = summarize(bench, args.bootstrap, args.seed, human, verdicts)
    write_summary(bench, args.output_dir, summary)
    report = write_report(bench, summary, args.output_dir, args.images_dir)
    for table in bench.tables.values():
        print(markdown_table(table))
        for m, model in enumerate(table.models):
            gone = [*table.missing[m], *table.unreadable[m]]
            if gone:
                covered = table.prompts_covered(model)
                print(f"  {model}: {covered} of {len(table.prompts)} prompts covered; left out: {', '.join(gone[:10])}")
        print()
    print(
        f"the original's result files, summary.json, summary.md and {report.name} in {args.output_dir}", file=sys.stderr
    )
    return 0


def _primary_name() -> str:
    from .judges import primary

    return primary().name


def tqdm_bar(quiet: bool):  # noqa: ANN201 - tqdm's bar
    from tqdm import tqdm

    return tqdm(unit="img", file=sys.stderr, disable=quiet or not sys.stderr.isatty())


def _write_benchmark_manifest(args: argparse.Namespace, prompts: list, models: list[str] | None) -> int:
    from .benchmark import models_in
    from .benchmark.bulk_scores import write_manifest

    if args.images_dir is None:
        raise InputError("--write-manifest lists the generations of --images-dir: give it")
    n = write_manifest(args.images_dir, prompts, models or models_in(args.images_dir), args.write_manifest)
    print(
        f"{n} generations in {args.write_manifest}: score them with imagereward bulk {args.write_manifest} "
        "--output SCORES, then imagereward benchmark --from-scores SCORES",
        file=sys.stderr,
    )
    return 0


def _bench_from_scores(args: argparse.Namespace, models: list[str] | None):  # noqa: ANN202 - a Benchmark
    from .benchmark import Benchmark, load_prompts
    from .benchmark.bulk_scores import read_bulk_scores

    found = read_bulk_scores(args.from_scores, load_prompts(args.prompts) if args.prompts else None)
    if found.unplaced:
        print(
            f"{found.unplaced} of {found.rows} rows are not <model>/<id>_<k> generations and are not counted, "
            f"e.g. {', '.join(found.unplaced_examples)}",
            file=sys.stderr,
        )
    if found.other_prompts:
        print(f"{found.other_prompts} rows are of prompts not in {args.prompts} and are not counted", file=sys.stderr)
    if not found.tables:
        raise InputError(f"no scores in {', '.join(args.from_scores)}")
    tables = found.tables
    if models:
        tables = {j: t.only(models) for j, t in tables.items()}
    first = next(iter(tables.values()))
    return Benchmark(first.prompts, first.models, tables)


def _benchmark_verdicts(args: argparse.Namespace, bench):  # noqa: ANN001, ANN202 - Benchmark, HumanVerdicts
    from .benchmark.human_wins import generation_hashes, human_wins
    from .verdicts import read_pairs

    if args.images_dir is None:
        raise InputError("--verdicts matches the verdicts' images to the generations of --images-dir: give it")
    try:
        verdicts = list(read_pairs(args.verdicts))
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read the verdicts: {e}") from None
    return human_wins(verdicts, generation_hashes(args.images_dir, bench.models), bench.models)


def _verdicts_of(source: str) -> list:
    from .verdicts import read_pairs
    from .verdicts.store import stored_verdicts

    path = Path(source)
    if not path.is_file():
        raise InputError(f"{source} is not a file: give a store (SQLite) or a pairs file (.jsonl)")
    with open(path, "rb") as f:
        sqlite = f.read(16) == b"SQLite format 3\x00"
    return list(stored_verdicts(path) if sqlite else read_pairs(path))


def cmd_verdicts_report(args: argparse.Namespace) -> int:
    """The agreement of each judge with the verdicts (`verdicts.agreement`): overall, then per prompt."""
    from .verdicts import agreement, report

    rows = agreement(_verdicts_of(args.source))
    if args.format == "json":
        print(json.dumps([r.as_dict() for r in rows], indent=1, ensure_ascii=False))
    else:
        print(report(rows))
    return 0


def cmd_verdicts_export(args: argparse.Namespace) -> int:
    """A store's verdicts and images, as the page's download lays them out (`verdicts.store.export`)."""
    from .verdicts.store import export

    if not Path(args.store).is_file():
        raise InputError(f"{args.store} is not a file: give the store (IMAGEREWARD_VERDICTS_DB)")
    count, images = export(args.store, args.out)
    print(f"{count} verdicts and {images} images written to {args.out}", file=sys.stderr)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """`imagereward train` (see its --help): every input read and checked, then the run, then its report."""
    from .training import RewardTrainer, TrainConfig
    from .training.pairs import merge, read_any
    from .training.run import check_output, trackers_for, train

    found = merge(read_any(path, args.image_base) for path in args.data)
    for sentence in found.skipped:
        print(f"imagereward train: left out: {sentence}", file=sys.stderr)
    if not found.pairs:
        raise InputError("no preference pair to train on in " + ", ".join(args.data))
    judges = list(dict.fromkeys(args.judge or []))
    if judges:
        from .judges import spec

        for name in judges:
            try:
                spec(name)
            except ValueError as e:
                raise InputError(str(e)) from None
    check_output(args.output_dir, args.resume)
    try:
        config = TrainConfig.original(
            lr=args.lr,
            warmup=args.warmup,
            schedule=args.schedule,
            epochs=args.epochs,
            batch_size=args.batch_size,
            accumulation_steps=args.accumulation_steps,
            fix_rate=args.fix_rate,
            dropout=not args.no_dropout,
            lora_rank=args.lora_rank,
            mixed_precision=args.mixed_precision,
            cache_features=args.cache_features,
            heldout=args.heldout,
            patience=args.patience,
            eval_every=args.eval_every,
            seed=args.seed,
        )
    except ValueError as e:
        raise InputError(str(e)) from None
    trackers = trackers_for(args.report_to, Path(args.output_dir) / "logs")

    def say(sentence: str) -> None:
        print(f"imagereward train: {sentence}", file=sys.stderr)

    from .judges import load_judge
    from .judges.imagereward import WEIGHTS, load

    torch_seed(args.seed)
    model = load(args.model or WEIGHTS, device=args.device, dtype="float32")
    others = {name: load_judge(name, device=args.device, download_root=args.download_root) for name in judges}
    trainer = RewardTrainer(model, config, total_steps=1, warn=say)
    with tqdm_bar(args.quiet) as bar:
        bar.unit = "step"
        result = train(trainer, found.pairs, args.output_dir, others, args.resume, bar.update, trackers, say)
    print(result.table())
    print(f"the trained model (best held-out loss), log.jsonl and report.json in {result.output_dir}", file=sys.stderr)
    return 0


def torch_seed(seed: int) -> None:
    """Seeds torch (dropout) as the original's `init_seeds`."""
    import torch

    torch.manual_seed(seed)


def cmd_refl(args: argparse.Namespace) -> int:
    """`imagereward refl` (see its --help): every input checked first, then the original's run."""
    try:
        from .refl import ReFLConfig, ReFLTrainer, load_prompts
        from .refl.run import check_output, train
        from .refl.trainer import pipeline_folder
    except ImportError as e:
        raise InputError(f"ReFL needs the training extra ({e.name} is missing): pip install -e .[train]") from None
    prompts = load_prompts(args.prompts)
    pretrain: list = []
    if args.pretrain_data:
        from .refl.pretrain_data import load_pretrain_data

        pretrain, skipped = load_pretrain_data(args.pretrain_data)
        for sentence in skipped:
            print(f"imagereward refl: left out: {sentence}", file=sys.stderr)
    validation_prompts = None
    if args.validate_every:
        from .benchmark import load_prompts as benchmark_prompts
        from .judges import spec

        for name in args.validation_judge or []:
            try:
                spec(name)
            except ValueError as e:
                raise InputError(str(e)) from None
        validation_prompts = (
            load_prompts(args.validation_prompts)
            if args.validation_prompts
            else [p.prompt for p in benchmark_prompts()[:4]]
        )
    extra = _extra_rewards(args.extra_reward or [])
    check_output(args.output_dir, args.resume)
    folder = pipeline_folder(args.pipeline)
    latent_size = None
    if args.resolution is not None:
        from .refl.families import vae_scale

        scale = vae_scale(folder)
        if args.resolution % scale:
            raise InputError(f"--resolution {args.resolution}: give a multiple of {scale}, the VAE's scale factor")
        latent_size = args.resolution // scale
    config = ReFLConfig.original(
        learning_rate=args.learning_rate,
        grad_scale=args.grad_scale,
        max_grad_norm=args.max_grad_norm,
        train_batch_size=args.train_batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        max_train_steps=args.max_steps,
        checkpointing_steps=args.checkpointing_steps,
        seed=args.seed,
        lora_rank=args.lora_rank,
        gradient_checkpointing=args.gradient_checkpointing,
        use_ema=args.use_ema,
        guidance_scale=args.guidance_scale,
        draft_k=args.draft_k,
        pretrain_loss=bool(args.pretrain_data),
        pretrain_loss_weight=args.pretrain_weight,
        latent_size=latent_size,
    )
    logs = Path(args.output_dir) / "logs"
    rewards = {}
    for name, weight in extra:
        rewards[_extra_reward(name, args)] = weight
    trainer = ReFLTrainer(
        folder,
        args.reward,
        config,
        device=args.device,
        extra_rewards=rewards,
        log_with=args.report_to,
        logging_dir=logs,
    )
    plan = None
    if validation_prompts is not None:
        from .judges import load_judge, spec
        from .refl.run import ValidationPlan

        judges = {_primary_name(): trainer.reward}
        for name in dict.fromkeys(args.validation_judge or []):
            if not spec(name).primary:  # the trained reward validates itself
                judges[name] = load_judge(name, device=args.device, download_root=args.download_root)
        plan = ValidationPlan(validation_prompts, judges, _primary_name(), args.validate_every, args.seed or 0)

    def warn(sentence: str) -> None:
        print(f"imagereward refl: {sentence}", file=sys.stderr)

    with tqdm_bar(args.quiet) as bar:
        bar.unit, bar.total = "step", config.max_train_steps
        out = train(trainer, prompts, args.output_dir, args.resume, bar.update, pretrain, plan, warn)
    print(f"the tuned pipeline, its checkpoints and log.jsonl in {out}", file=sys.stderr)
    return 0


def _extra_rewards(values: Sequence[str]) -> list[tuple[str, float]]:
    """`--extra-reward NAME=WEIGHT` values, checked before any model loads.

    Raises:
        InputError: not NAME=WEIGHT, or a judge with no gradient path (the sentence names those that have one).
    """
    from .judges import no_gradient_path, spec

    out = []
    for value in values:
        name, _, weight = value.rpartition("=")
        try:
            number = float(weight)
        except ValueError:
            number = None
        if not name or number is None:
            raise InputError(f"--extra-reward {value!r}: write NAME=WEIGHT, e.g. PickScore=0.5")
        try:
            found = spec(name)
        except ValueError:
            found = None  # ImageReward weights: a registry name or a path, as --reward
        if found is not None and not found.differentiable:
            raise InputError(f"--extra-reward {found.name}: {no_gradient_path(found.name)}")
        out.append((name, number))
    return out


def _extra_reward(name: str, args: argparse.Namespace) -> object:
    """A judge by name, loaded from --download-root; ImageReward weights as given (the trainer loads them)."""
    from .judges import load_judge, spec

    try:
        found = spec(name)
    except ValueError:
        return name
    if found.primary:
        return name
    return load_judge(found.name, device="cpu", download_root=args.download_root)


def _judges_parser(**kwargs: object) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(formatter_class=JudgesHelp, **kwargs)  # type: ignore[arg-type]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(fill_defaults(args))
    except (ImageRewardError, OSError, ValueError) as e:
        print(f"imagereward: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
