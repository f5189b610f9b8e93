"""The benchmark as one self-contained HTML file a person would rather read than JSON: per judge, each model's
score with its 95% interval, the win-rate matrix as a heat map, the spread of its prompts' scores; the best and
worst prompts of each model with their generations as thumbnails; where judges disagree; people's win rates
beside the judges' when verdicts were given. Plots are matplotlib's (PNG), images and all inlined, so the file
opens anywhere offline; every plot's numbers are also in a table beside it.
"""

from __future__ import annotations

import base64
import html
import io
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:
    from . import Benchmark
    from .table import JudgeTable

THUMBNAIL = 160  # px, the longer side
EXTREMES = 3  # best and worst prompts shown per model
SHOWN_GENERATIONS = 4  # thumbnails per prompt
# Scoped to the report's element, so that the page can show the same report inside itself.
STYLE = """
.ir-report{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:16px;color:#1b1b1b;
background:#fff;box-sizing:border-box;overflow-wrap:anywhere}
.ir-report h1{font-size:1.5em}.ir-report h2{margin-top:2em;border-bottom:1px solid #ccc}
.ir-report h3{margin-top:1.4em}.ir-report table{border-collapse:collapse;margin:.6em 0}
.ir-report td,.ir-report th{border:1px solid #ccc;padding:3px 8px;text-align:right}
.ir-report th:first-child,.ir-report td:first-child{text-align:left}.ir-report .plot{max-width:100%;height:auto}
.ir-report .thumbs img{width:96px;height:auto;margin:2px;border:1px solid #999}.ir-report .note{color:#444}
.ir-report .prompt{margin:.4em 0 .8em}.ir-report .scroll{overflow-x:auto}
"""


def _png(figure: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _figures():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def score_plot(judge: str, order: Sequence[str], models: dict[str, Any]) -> str:
    """Each model's score with its 95% interval, best on top (a PNG data URI)."""
    plt = _figures()
    figure, axes = plt.subplots(figsize=(7, 0.5 * len(order) + 1.2))
    y = np.arange(len(order))[::-1]
    scores = np.array([models[m]["score"] for m in order])
    intervals = np.array([models[m]["interval"] for m in order], dtype=float)
    error = np.abs(np.stack([scores - intervals[:, 0], intervals[:, 1] - scores]))
    axes.errorbar(scores, y, xerr=np.nan_to_num(error), fmt="o", color="#1f5fa8", capsize=4)
    axes.set_yticks(y, list(order))
    axes.set_xlabel(f"{judge} score (mean over prompts), 95% interval")
    axes.grid(axis="x", alpha=0.3)
    return _png(figure)


def win_matrix(table: JudgeTable, win_rates: Sequence[dict[str, Any]]) -> np.ndarray:
    """matrix[i, j]: the share of prompts where model i beats model j (NaN on the diagonal or without data)."""
    index = {m: k for k, m in enumerate(table.models)}
    matrix = np.full((len(table.models),) * 2, np.nan)
    for w in win_rates:
        if w["prompt_win_rate"] is not None:
            matrix[index[w["a"]], index[w["b"]]] = w["prompt_win_rate"]
            matrix[index[w["b"]], index[w["a"]]] = 1 - w["prompt_win_rate"]
    return matrix


def heat_map(judge: str, models: Sequence[str], matrix: np.ndarray) -> str:
    """The win-rate matrix as a heat map, each cell labelled (a PNG data URI)."""
    plt = _figures()
    size = 1.0 + 0.75 * len(models)
    figure, axes = plt.subplots(figsize=(size + 1.5, size))
    image = axes.imshow(matrix, vmin=0, vmax=1, cmap="RdBu")
    for i in range(len(models)):
        for j in range(len(models)):
            if not np.isnan(matrix[i, j]):
                dark = abs(matrix[i, j] - 0.5) > 0.3
                axes.text(j, i, f"{100 * matrix[i, j]:.0f}%", ha="center", va="center", color="w" if dark else "k")
    axes.set_xticks(range(len(models)), list(models), rotation=45, ha="right")
    axes.set_yticks(range(len(models)), list(models))
    axes.set_xlabel("against")
    axes.set_title(f"{judge}: share of prompts the row's model wins")
    figure.colorbar(image, ax=axes, fraction=0.046)
    return _png(figure)


def spread_plot(table: JudgeTable, order: Sequence[str]) -> str:
    """The spread of each model's prompt means (box plots, best model on top; a PNG data URI)."""
    plt = _figures()
    figure, axes = plt.subplots(figsize=(7, 0.5 * len(order) + 1.2))
    data = [table.means[table.index(m)][table.covered[table.index(m)]] for m in order][::-1]
    axes.boxplot([d if d.size else [np.nan] for d in data], orientation="horizontal", tick_labels=list(order)[::-1])
    axes.set_xlabel(f"{table.judge}: each prompt's mean over its generations")
    axes.grid(axis="x", alpha=0.3)
    return _png(figure)


def thumbnail(path: Path) -> str | None:
    """A small JPEG of a generation as a data URI (None if it cannot be read); each file encoded once, whichever
    judges show it (the cache knows a file by its path, size and modification time)."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return _thumbnail(path, stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=1024)
def _thumbnail(path: Path, size: int, mtime_ns: int) -> str | None:
    from ..images.reading import open_image

    try:
        image = open_image(path)
        image.thumbnail((THUMBNAIL, THUMBNAIL))
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="JPEG", quality=80)
    except Exception:  # noqa: BLE001 - an unreadable generation shows no thumbnail; the report goes on
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def _generation_files(images_dir: Path | None, model: str, prompt_id: str) -> list[Path]:
    if images_dir is None or not (images_dir / model).is_dir():
        return []
    from ..images.formats import IMAGE_EXTENSIONS

    files = []
    for k in range(SHOWN_GENERATIONS):
        for suffix in sorted(IMAGE_EXTENSIONS, key=lambda s: s != ".png"):
            candidate = images_dir / model / f"{prompt_id}_{k}{suffix}"
            if candidate.is_file():
                files.append(candidate)
                break
    return files


def _e(value: Any) -> str:
    return html.escape(str(value))


def _number(value: float | None, digits: int = 4) -> str:
    return "–" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.{digits}f}"


def _percent(value: float | None) -> str:
    return "–" if value is None or np.isnan(value) else f"{100 * value:.1f}%"


def extremes_html(table: JudgeTable, images_dir: Path | None) -> str:
    """Each model's best and worst prompts by the judge, with their generations as thumbnails."""
    parts = []
    for model in table.models:
        m = table.index(model)
        covered = np.flatnonzero(table.covered[m])
        if not covered.size:
            continue
        order = covered[np.argsort(-table.means[m, covered], kind="stable")]
        best = order[:EXTREMES]
        worst = order[::-1][: min(EXTREMES, order.size - best.size)]  # never a best prompt again
        parts.append(f"<h3>{_e(model)}</h3>")
        for title, chosen in (("best", best), ("worst", worst)):
            parts.append(f"<p><b>Its {title} prompts</b></p>")
            for p in chosen:
                prompt = table.prompts[p]
                thumbs = []
                for file in _generation_files(images_dir, model, prompt.id):
                    uri = thumbnail(file)
                    if uri:
                        alt = f"{model}'s generation {file.stem} for: {prompt.prompt}"
                        thumbs.append(f'<img src="{uri}" alt="{_e(alt)}">')
                parts.append(
                    f'<div class="prompt">{_number(float(table.means[m, p]))} · <code>{_e(prompt.id)}</code> '
                    f'{_e(prompt.prompt)}<div class="thumbs">{"".join(thumbs)}</div></div>'
                )
    if images_dir is None:
        parts.insert(0, '<p class="note">Give --images-dir to see the generations beside their prompts.</p>')
    return "\n".join(parts)


def render(bench: Benchmark, summary: dict[str, Any], images_dir: str | Path | None = None) -> str:
    """The report (see the module doc) as one HTML document."""
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>Benchmark of {len(bench.models)} models</title></head><body style='margin:0'>"
        f"{render_fragment(bench, summary, images_dir)}</body></html>"
    )


def render_fragment(bench: Benchmark, summary: dict[str, Any], images_dir: str | Path | None = None) -> str:
    """The report's content with its scoped style, for a page to show inside itself."""
    folder = Path(images_dir) if images_dir is not None else None
    judges = summary["judges"]
    b = summary["bootstrap"]
    out = [
        f"<style>{STYLE}</style><div class='ir-report'>",
        f"<h1>Benchmark: {len(bench.models)} models, {summary['prompts']} prompts, {len(judges)} judges</h1>",
        f"<p class='note'>A model's score is the mean over prompts of the mean over its generations (the original "
        f"<code>test-benchmark.py</code>'s figure). Intervals are 95%, by bootstrap over prompts ({b['samples']} "
        f"draws, seed {b['seed']}). A prompt counts for A against B when A's mean beats B's; ties apart.</p>",
        "<h2>Rankings</h2><div class='scroll'><table><tr><th>judge</th>"
        + "".join(f"<th>#{k + 1}</th>" for k in range(len(bench.models)))
        + "".join("<th>Spearman with people</th>" for _ in [0] if "human_ranking" in summary)
        + "</tr>",
    ]
    for name, row in judges.items():
        cells = "".join(f"<td>{_e(m)}</td>" for m in row["ranking"])
        rho = f"<td>{_number(row.get('spearman_with_human'), 2)}</td>" if "human_ranking" in summary else ""
        out.append(f"<tr><td>{_e(name)}</td>{cells}{rho}</tr>")
    out.append("</table></div>")
    if "human_ranking" in summary:
        out.append(f"<p>People's ranking: {_e(', '.join(summary['human_ranking']))}</p>")
    if summary["disagreements"]:
        items = "".join(
            f"<li>{_e(d['judges'][0])} puts {_e(d['models'][0])} above {_e(d['models'][1])}; "
            f"{_e(d['judges'][1])} the other way</li>"
            for d in summary["disagreements"]
        )
        out.append(f"<h3>Where judges disagree</h3><ul>{items}</ul>")
    else:
        out.append("<p>Every judge orders the models alike.</p>")
    if "human_verdicts" in summary:
        out.append(_human_html(summary, judges))
    for k, (name, table) in enumerate(bench.tables.items()):
        out.append(_judge_html(name, table, judges[name], folder, first=k == 0))
    out.append("</div>")
    return "\n".join(out)


def _judge_html(name: str, table: JudgeTable, row: dict[str, Any], folder: Path | None, first: bool) -> str:
    order = row["ranking"]
    models = row["models"]
    parts = [f"<h2>{_e(name)}</h2>"]
    parts.append(
        f'<img class="plot" src="{score_plot(name, order, models)}" alt="{_e(name)}: each model\'s score with its '
        f'95% interval, best on top (the table below gives the numbers)">'
    )
    parts.append(
        "<div class='scroll'><table><tr><th>model</th><th>score</th><th>95% interval</th><th>prompts covered</th><th>left out</th></tr>"
    )
    for model in order:
        r = models[model]
        gone = [*r["missing"], *r["unreadable"]]
        left = f"{len(gone)}: {_e(', '.join(gone[:5]))}{' …' if len(gone) > 5 else ''}" if gone else "none"
        low, high = r["interval"]
        parts.append(
            f"<tr><td>{_e(model)}</td><td>{_number(r['score'])}</td><td>{_number(low)} – {_number(high)}</td>"
            f"<td>{r['prompts_covered']}</td><td>{left}</td></tr>"
        )
    parts.append("</table></div>")
    matrix = win_matrix(table, row["win_rates"])
    parts.append(
        f'<img class="plot" src="{heat_map(name, table.models, matrix)}" alt="{_e(name)}: the win-rate matrix, '
        "the share of prompts each row's model wins against each column's (the table below gives the numbers)\">"
    )
    parts.append(
        "<div class='scroll'><table><tr><th>A</th><th>B</th><th>A wins (prompts)</th><th>95% interval</th>"
        "<th>wins / losses / ties</th><th>A wins (generations)</th></tr>"
    )
    for w in row["win_rates"]:
        low, high = w["interval"]
        parts.append(
            f"<tr><td>{_e(w['a'])}</td><td>{_e(w['b'])}</td><td>{_percent(w['prompt_win_rate'])}</td>"
            f"<td>{_percent(low)} – {_percent(high)}</td><td>{w['wins']} / {w['losses']} / {w['ties']}</td>"
            f"<td>{_percent(w['generation_win_rate'])}</td></tr>"
        )
    parts.append("</table></div>")
    parts.append(
        f'<img class="plot" src="{spread_plot(table, order)}" alt="{_e(name)}: the spread of each model\'s prompt '
        'scores as box plots">'
    )
    parts.append(
        f"<details{' open' if first else ''}><summary>Best and worst prompts by {_e(name)}</summary>"
        f"{extremes_html(table, folder)}</details>"
    )
    return "\n".join(parts)


def _human_html(summary: dict[str, Any], judges: dict[str, Any]) -> str:
    h = summary["human_verdicts"]
    names = list(judges)
    head = "".join(f"<th>{_e(n)}</th>" for n in names)
    rows = []
    for pair in h["pairs"]:
        cells = []
        for n in names:
            w = next((w for w in judges[n]["win_rates"] if {w["a"], w["b"]} == {pair["a"], pair["b"]}), None)
            rate = None if w is None or w["prompt_win_rate"] is None else w["prompt_win_rate"]
            if w is not None and rate is not None and w["a"] != pair["a"]:
                rate = 1 - rate
            cells.append(f"<td>{_percent(rate)}</td>")
        low, high = pair["interval"]
        rows.append(
            f"<tr><td>{_e(pair['a'])} over {_e(pair['b'])}</td><td>{_percent(pair['win_rate'])} "
            f"({_percent(low)} – {_percent(high)})</td><td>{pair['a_wins']} / {pair['b_wins']}</td>"
            f"<td>{pair['ties']} / {pair['both_bad']}</td>{''.join(cells)}</tr>"
        )
    note = (
        f"{h['not_in_benchmark']} verdicts were on images that are not this benchmark's generations, "
        f"{h['same_model']} on two generations of one model; they are not counted."
    )
    return (
        "<h2>People's verdicts</h2><p class='note'>From the page's verdicts on pairs: the share of decided verdicts "
        "preferring the first model's image, with its 95% Wilson interval, beside each judge's prompt win rate.</p>"
        f"<div class='scroll'><table><tr><th>pair</th><th>people</th><th>wins</th><th>ties / both bad</th>{head}"
        f"</tr>{''.join(rows)}</table></div><p class='note'>{note}</p>"
    )


def write_report(
    bench: Benchmark, summary: dict[str, Any], output_dir: str | Path, images_dir: str | Path | None = None
) -> Path:
    """`report.html` in `output_dir` (see `render`); returns its path."""
    path = Path(output_dir) / "report.html"
    path.write_text(render(bench, summary, images_dir), encoding="utf-8")
    return path
