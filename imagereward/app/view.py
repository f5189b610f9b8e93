"""What the page shows of a ranking, and reading it back: captions, the table (written and read back here, so
that its columns are named in one place), the winner, the pairwise preference probability, the status line,
and the page's texts (the judges' line, the About text). Plain Python values, so that these stay testable; the
API's JSON is `answers`, the downloads `downloads`.

The gallery and table a page shows come back from the client when the visitor reorders or compares: only
files inside the allowed roots are kept (`shown_rows`, `reordered`).
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..errors import ImageError, ImageLoadError
from ..images.reading import FORMATS_TEXT, MAX_IMAGE_PIXELS, MAX_RESIZE_FACTOR
from ..judges import primary, spec
from ..model.config import REWARD_STD
from ..ranking import Ranking
from .intake import Roots, gallery_paths

# The ranking judge's columns say whose rank and score they are, as the other judges' do (`judge_headers`).
RANK_COLUMN, SCORE_COLUMN = f"{primary().label} rank", f"{primary().label} score"
TABLE_COLUMNS = [RANK_COLUMN, "image", SCORE_COLUMN, "precision"]


def caption(rank: int, score: float, name: str | None = None, judge: str | None = None) -> str:
    """Gallery caption and alt text, e.g. `#1 · 1.23 · cat.png`; by another judge than the ranking's own,
    `#1 · CLIP 0.54 · cat.png`."""
    by = f"{judge} " if judge and judge != primary().label else ""
    return f"#{rank} · {by}{score:.2f}" + (f" · {name}" if name else "")


def gallery_items(ranking: Ranking, judge: str | None = None) -> list[tuple[Any, str]]:
    """(image, caption) pairs best first by `judge` (default the ranking's own), for `gr.Gallery`."""
    items = []
    for item in ranking.ordered_by(judge or ""):
        if judge and item.ranks:
            rank, score = item.ranks.get(judge), item.scores.get(judge)
            items.append((item.source, caption(rank, score, item.name, judge) if rank else f"not scored · {item.name}"))
        else:
            items.append((item.source, caption(item.rank, item.score, item.name)))
    return items


# ------------------------------------------------------------------------------------------- the table
def judge_headers(judge: str) -> list[str]:
    """What the table shows of another judge: its score and rank, and its choice where it has one (PickScore:
    the probability, in %, that it picks this image among those scored together)."""
    return [f"{judge} score", f"{judge} rank", *([f"{judge} choice %"] if spec(judge).choice else [])]


def table_headers(judges: Sequence[str]) -> list[str]:
    """The table's columns: ImageReward's rank, image, score, precision; then each other judge's (see
    `judge_headers`)."""
    return [*TABLE_COLUMNS, *(h for j in judges[1:] for h in judge_headers(j))]


def table_rows(ranking: Ranking, judge: str | None = None) -> list[list[Any]]:
    """Rows of (rank, image name, score rounded to 4 decimals, precision[, each other judge's score, rank and
    choice]), in `judge`'s order (default the ranking's own)."""
    rows = []
    for item in ranking.ordered_by(judge or ""):
        row = [item.rank, item.name, round(item.score, 4), item.precision]
        for other in ranking.judges[1:]:
            score = item.scores.get(other)
            row += [None if score is None else round(score, 4), item.ranks.get(other)]
            if spec(other).choice:
                choice = item.choices.get(other)
                row.append(None if choice is None else round(100 * choice, 2))
        rows.append(row)
    return rows


def table_value(ranking: Ranking, judge: str | None = None) -> dict[str, Any]:
    """The table as `gr.Dataframe` takes it: headers and rows (see `table_headers`, `table_rows`)."""
    return {"headers": table_headers(ranking.judges), "data": table_rows(ranking, judge)}


def _number(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def _shown(ranked: Any, table: Any, roots: Roots | Sequence[str | Path]) -> list[tuple[str, dict[str, Any]]]:
    """(path, table record) of each image shown, read back from the client; only files inside `roots` kept."""
    if hasattr(table, "columns") and hasattr(table, "values"):  # a DataFrame, as Gradio gives the table back
        columns = [str(c) for c in table.columns]
        records = [dict(zip(columns, row)) for row in table.values.tolist()]
    else:
        records = []
    roots = Roots.of(roots)
    rows = []
    for k, (path, record) in enumerate(zip(gallery_paths(ranked), records)):
        try:
            rows.append((roots.allowed(path, f"image {k + 1}"), record))
        except ImageLoadError:
            continue
    return rows


def shown_rows(ranked: Any, table: Any, roots: Roots | Sequence[str | Path]) -> list[dict[str, Any]]:
    """The ranking a page shows, read back from its gallery (images, best first) and table: `{"name", "score",
    "path", "scores"}` per image (`scores`: every judge's, by label)."""
    rows = []
    for path, record in _shown(ranked, table, roots):
        score = _number(record.get(SCORE_COLUMN))
        if "image" in record and score is not None:
            # every judge's score the table shows (`<judge> score`), the ranking judge's first
            scores = {str(k)[: -len(" score")]: _number(v) for k, v in record.items() if str(k).endswith(" score")}
            rows.append({"name": str(record["image"]), "score": score, "path": path, "scores": scores})
    return rows


def reordered(
    ranked: Any, table: Any, judge: str, roots: Roots | Sequence[str | Path]
) -> tuple[list, dict[str, Any], str | None, str]:
    """The shown gallery and table in `judge`'s order: by its rank column (images it could not score last),
    captions showing its rank and score (and its name, for another judge than the ranking's own); and its best
    image with the line saying so.

    Returns:
        (gallery items, table value with headers and rows, the best image's path, its line).
    """
    headers = [str(h) for h in getattr(table, "columns", [])]
    score_col, rank_col = judge_headers(judge)[:2]
    rows = _shown(ranked, table, roots)
    rows.sort(key=lambda row: (_number(row[1].get(rank_col)) is None, _number(row[1].get(rank_col)) or 0))
    gallery = []
    for path, record in rows:
        rank, score = _number(record.get(rank_col)), _number(record.get(score_col))
        name = str(record.get("image", ""))
        gallery.append(
            (path, caption(int(rank), score, name, judge) if rank and score is not None else f"not scored · {name}")
        )
    data = [
        [None if isinstance(v, float) and math.isnan(v) else v for v in (r.get(h) for h in headers)] for _, r in rows
    ]
    best = next(((path, r) for path, r in rows if _number(r.get(rank_col)) == 1), None)
    if best is None:
        return gallery, {"headers": headers, "data": data}, None, ""
    line = best_line(str(best[1].get("image", "")), _number(best[1].get(score_col)) or 0.0, judge)
    return gallery, {"headers": headers, "data": data}, best[0], line


# -------------------------------------------------------------------------------------------- the text
def agreement_text(ranking: Ranking) -> str:
    """One line: for each other judge, the share of image pairs it orders as ImageReward does."""
    parts = []
    for judge, (same, pairs) in ranking.agreement().items():
        share = f" ({100 * same / pairs:.0f}%)" if pairs else ""
        parts.append(f"{judge} {same} of {pairs} pair{'s' if pairs != 1 else ''}{share}")
    if not parts:
        return ""
    return f"**Agreement with {ranking.judges[0]}** (pairs of images ordered the same way): " + " · ".join(parts)


def winner_text(ranking: Ranking) -> str:
    """E.g. `**#1 · cat.png** — score 1.23`."""
    best = ranking.ranked[0]
    return best_line(best.name, best.score)


def best_line(name: str, score: float, judge: str | None = None) -> str:
    """The line under "Best": `**#1 · cat.png** — score 1.23`, or by another judge `**#1 by CLIP · cat.png** —
    CLIP score 0.54`."""
    if judge and judge != primary().label:
        return f"**#1 by {judge} · {name}** — {judge} score {score:.2f}"
    return f"**#1 · {name}** — score {score:.2f}"


def preference_probability(score_a: float, score_b: float) -> float:
    """P(people prefer A to B) as the model predicts it. ImageReward was trained with a pairwise
    (Bradley-Terry) loss on its raw output, and the published score is (raw - mean) / std, so
    P = sigmoid(std * (score_a - score_b))."""
    return 1.0 / (1.0 + math.exp(-REWARD_STD * (score_a - score_b)))


def compare_text(name_a: str, score_a: float, name_b: str, score_b: float) -> str:
    """One sentence: which of the two the model expects people to prefer, and how strongly."""
    p = preference_probability(score_a, score_b)
    if name_a == name_b:
        return f"Pick two different images to compare ({name_a} is on both sides)."
    how = f"P = sigmoid({REWARD_STD:.4f} × score difference), the pairwise model {primary().label} was trained with"
    if score_a == score_b:
        return f"The model sees no difference between **{name_a}** and **{name_b}** (both score {score_a:.2f}; {how})."
    a, b = (name_a, score_a), (name_b, score_b)
    (better, s_better), (worse, s_worse), q = (a, b, p) if p > 0.5 else (b, a, 1 - p)
    return (
        f"The model expects people to prefer **{better}** to **{worse}** with probability **{100 * q:.0f}%** "
        f"(scores {s_better:.2f} vs {s_worse:.2f}; {how})."
    )


def status_line(ranking: Ranking, model_label: str) -> str:
    """E.g. `Scored 8 images with ImageReward-v1.0 on cuda (float16) and CLIP in 45 ms.`"""
    n = len(ranking.ranked)
    took = f"{ranking.seconds * 1000:.0f} ms" if ranking.seconds < 10 else f"{ranking.seconds:.1f} s"
    judges = ", ".join(ranking.judges[1:])
    label = f"{model_label}{' and ' + judges if judges else ''}"
    return f"Scored {n} image{'s' if n != 1 else ''} with {label} in {took}.{skipped_line(ranking.failures)}"


# Skipped images the status line names with their reasons; the rest are counted (the JSON download has all).
NAMED_SKIPPED = 4


def skipped_line(failures: Sequence[ImageError]) -> str:
    """` Skipped 2 that could not be scored: bad.png (not an image in an accepted format …); big.png (…).`:
    each skipped image by name with its reason (the first `NAMED_SKIPPED`), or nothing."""
    if not failures:
        return ""
    named = "; ".join(f"{e.name} ({e.reason})" for e in failures[:NAMED_SKIPPED])
    more = len(failures) - NAMED_SKIPPED
    rest = f"; and {more} more (all of them in the JSON download)" if more > 0 else ""
    return f" Skipped {len(failures)} that could not be scored: {named}{rest}."


def status_line_many(rankings: list[tuple[str, Ranking]], model_label: str) -> str:
    """The status of one or several prompts: e.g. `Scored 8 images against 3 prompts with … in 120 ms: the
    first prompt took 80 ms, each other 20 ms (the images' embeddings came from the cache).`"""
    if len(rankings) == 1:
        return status_line(rankings[0][1], model_label)
    first, rest = rankings[0][1], [r for _, r in rankings[1:]]
    total = sum(r.seconds for _, r in rankings)
    images = len({item.name for _, r in rankings for item in r.ranked})
    failures = list({e.name: e for _, r in rankings for e in r.failures}.values())
    return (
        f"Scored {images} image{'s' if images != 1 else ''} against {len(rankings)} prompts with {model_label} in "
        f"{total * 1000:.0f} ms: the first prompt took {first.seconds * 1000:.0f} ms, each other "
        f"{1000 * sum(r.seconds for r in rest) / len(rest):.0f} ms on average (images seen before come from the "
        f"embedding cache).{skipped_line(failures)}"
    )


def matrix(rankings: list[tuple[str, Ranking]]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the rank matrix of several prompts: one row per image (in first appearance), one
    column per prompt, cells `#rank · score` (empty where the image was not scored against that prompt)."""
    names: list[str] = []
    cells: dict[tuple[str, int], str] = {}
    for column, (_, ranking) in enumerate(rankings):
        for item in ranking.ranked:
            if item.name not in names:
                names.append(item.name)
            cells[(item.name, column)] = caption(item.rank, item.score)
    headers = ["image", *(prompt if len(prompt) <= 60 else prompt[:59] + "…" for prompt, _ in rankings)]
    return headers, [[name, *(cells.get((name, c), "") for c in range(len(rankings)))] for name in names]


@dataclass(frozen=True)
class Shown:
    """What the page shows of a request, in its own words: the status line, the winner (its image and line),
    the gallery and table in the chosen judge's order, the agreement line, and the rank matrix of several
    prompts (None for one); `compared` is the shown ranking as `shown_rows` reads it back; `prompt` the prompt
    shown, and `reading` what each judge read of it (`reading_html`)."""

    status: str
    winner: Any
    winner_text: str
    gallery: list[tuple[Any, str]]
    table: dict[str, Any]
    agreement: str
    matrix: tuple[list[str], list[list[str]]] | None
    compared: list[dict[str, Any]]
    prompt: str
    reading: str
    # The request's downloads as written (shared by its prompts' views), for saying which images have verdicts.
    tables: Any = None


def shown(rankings: list[tuple[str, Ranking]], label: str, order_by: str | None) -> Shown:
    """What the page shows of `rankings` (the first prompt's, and the matrix of all), ordered by `order_by`
    (any judge of the ranking; else ImageReward)."""
    first_prompt, ranking = rankings[0]
    judge = order_by if order_by in ranking.judges else primary().label
    note = f" (for the first prompt, “{first_prompt[:60]}”)" if len(rankings) > 1 else ""
    best = ranking.ranked[0]
    # The status is the live region screen readers announce: it names the winner too.
    announced = f" Best: {best.name} ({best.score:.2f}){note}."
    return Shown(
        status=status_line_many(rankings, label) + announced,
        winner=ranking.ranked[0].source,
        winner_text=winner_text(ranking) + note,
        gallery=gallery_items(ranking, judge),
        table=table_value(ranking, judge),
        agreement=agreement_text(ranking),
        matrix=matrix(rankings) if len(rankings) > 1 else None,
        compared=[{"name": r.name, "score": r.score, "path": r.source} for r in ranking.ordered_by(judge)],
        prompt=first_prompt,
        reading=reading_html(ranking),
    )


# ------------------------------------------------------------------------------ what the judges read
# Characters of the unread part the page shows at most.
UNREAD_SHOWN = 400


def reading_html(ranking: Ranking) -> str:
    """Under the prompt: the part each judge read plain, the part it never read greyed, and how many tokens it
    read ("ImageReward read 33 of 58 tokens"); one block per way of reading (judges that read the prompt alike
    share one). Empty when no judge's reading is known."""
    groups: dict[tuple[str, int, int], list[str]] = {}
    for judge, r in ranking.readings.items():
        if not r.ignored:
            groups.setdefault((r.read, r.tokens_read, r.tokens_total), []).append(judge)
    blocks = []
    for (read, tokens_read, tokens_total), judges in groups.items():
        r = ranking.readings[judges[0]]
        unread = (
            r.unread
            if len(r.unread) <= UNREAD_SHOWN
            else f"{r.unread[:UNREAD_SHOWN]}… ({len(r.unread) - UNREAD_SHOWN:,} more characters)"
        )
        who = _names(judges)
        total = f"{tokens_total:,}{'' if r.complete else '+'}"
        counts = (
            f"{who} read all {total} tokens of the prompt"
            if not r.unread
            else f"{who} read {tokens_read} of {total} tokens; the greyed part did not count"
        )
        text = f'<span class="read">{html.escape(read)}</span><span class="unread">{html.escape(unread)}</span>'
        blocks.append(
            f'<div class="reading"><p class="read-counts">{html.escape(counts)}</p><p class="read-text">{text}</p></div>'
        )
    ignored = [j for j, r in ranking.readings.items() if r.ignored]
    if ignored:
        blocks.append(f'<p class="read-counts">{html.escape(_names(ignored))} ignores the prompt.</p>')
    return "".join(blocks)


def _names(labels: Sequence[str]) -> str:
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]


def prompt_read(ranking: Ranking) -> dict[str, dict[str, Any]]:
    """The API's `prompt_read`: what each judge read, by label: `{read, unread, tokens_read, tokens_total,
    complete, ignored}`."""
    return {judge: r.as_dict() for judge, r in ranking.readings.items()}


# ------------------------------------------------------------------------------------- why this score
# The chips' hues (raised: green, lowered: red), mixed with white by how much the word moved the score, under
# dark text: at least 6:1 in either theme.
RAISED, LOWERED = (22, 163, 74), (220, 38, 38)


def _tint(hue: tuple[int, int, int], share: float) -> str:
    t = 0.12 + 0.48 * share
    return "#" + "".join(f"{round(255 * (1 - t) + c * t):02x}" for c in hue)


def word_chips(explanation: Any) -> str:
    """The read words as chips coloured by their effect on one image's score (green raised it, red lowered
    it; the stronger the deeper), each with its number; of a word read in part, the unread rest greyed."""
    strongest = max((abs(w.delta) for w in explanation.word_effects), default=0.0) or 1.0
    chips = []
    for w in explanation.word_effects:
        colour = _tint(RAISED if w.delta >= 0 else LOWERED, min(1.0, abs(w.delta) / strongest))
        text = html.escape(w.text[: w.read]) + (
            f'<span class="unread">{html.escape(w.text[w.read :])}</span>' if w.partial else ""
        )
        effect = "raised" if w.delta >= 0 else "lowered"
        title = f"{w.text}: {effect} the score by {abs(w.delta):.3f}" + (" (read in part)" if w.partial else "")
        chips.append(
            f'<span class="chip" style="background:{colour}" title="{html.escape(title)}">{text}'
            f"<small>{w.delta:+.2f}</small></span>"
        )
    return "".join(chips)


def why_html(explained: Sequence[tuple[str, Any]]) -> str:
    """The comparison's explanation: for each image (A, B, then the winner if it is neither), its score and its
    words as chips; for A and B, the words that favour each over the other most; and what the numbers mean."""
    from ..judges.explain import favouring

    parts = ['<div class="why">']
    for name, explanation in explained:
        parts.append(
            f'<p class="why-image"><b>{html.escape(name)}</b> · score {explanation.score:.2f}</p>'
            f'<p class="chips">{word_chips(explanation)}</p>'
        )
    if len(explained) >= 2 and explained[0][0] != explained[1][0]:
        (name_a, a), (name_b, b) = explained[:2]
        for (name, first), (other, second) in (((name_a, a), (name_b, b)), ((name_b, b), (name_a, a))):
            best = [(w, d, mine, yours) for w, d, mine, yours in favouring(first, second, effects=True) if d > 0]
            if best:
                words = ", ".join(
                    f"<b>{html.escape(w)}</b> {d:+.2f} ({mine:+.2f} on {html.escape(name)}, "
                    f"{yours:+.2f} on {html.escape(other)})"
                    for w, d, mine, yours in best
                )
                parts.append(
                    f'<p class="favour">Words that favour {html.escape(name)} over {html.escape(other)} most (the '
                    f"word's effect on {html.escape(name)} less its effect on {html.escape(other)}): {words}</p>"
                )
    parts.append(
        '<p class="why-legend" aria-label="How to read the map">The map over A and B: '
        '<span class="swatch raised"></span> raised the score <span class="swatch lowered"></span> lowered it; '
        "the dimmed border lies outside the square the model sees.</p>"
        '<p class="why-note">A word\'s number: the score with the word, less the score without it (exact). The '
        "map over each image: which patches of the square the model sees raised (red) or lowered (blue) its "
        "score, by integrated gradients: an estimate of what drove the score, not a proof.</p></div>"
    )
    return "".join(parts)


def read_examples(folder: Path) -> list[list[Any]]:
    """`examples/examples.json` as rows of [prompt, [image paths]] for `gr.Examples`."""
    entries = json.loads((folder / "examples.json").read_text(encoding="utf-8"))
    return [[e["prompt"], [str(folder / "images" / name) for name in e["images"]]] for e in entries]


# ----------------------------------------------------------------------------------- the page's texts
def judges_info(judges: Sequence[str], unavailable: dict[str, str] | None = None) -> str:
    """The "Also judge with" box's line, from the judges' records: the paper's baselines and the others among
    `judges`; then the judges found `unavailable`, which are no longer offered."""
    unavailable = unavailable or {}
    offered = [spec(j) for j in judges if j not in unavailable]
    baselines = [s.label for s in offered if s.paper_accuracy is not None]
    newer = [s.label for s in offered if s.paper_accuracy is None]
    parts = [f"the paper's baselines ({', '.join(baselines)})"] if baselines else []
    parts += [f"newer judges ({', '.join(newer)})"] if newer else []
    line = " and ".join(parts) + ", side by side" if parts else ""
    if unavailable:
        gone = ", ".join(unavailable)
        line += f"{'. ' if line else ''}Unavailable right now (their weights could not be loaded): {gone}"
    return line


def about(judges: Sequence[str], max_images: int, max_upload: str, file_lifetime: int) -> str:
    """The page's "what the score means" and limits, from the judges' records and the settings."""
    main = primary()
    others = " ".join(f"{spec(j).label}: {spec(j).meaning}." for j in judges)
    return f"""
**What the score means.** {main.label} ([Xu et al., 2023](https://arxiv.org/abs/2304.05977)) predicts which
image people would prefer for a prompt, trained on 137k expert comparisons. Its score is {main.meaning}
(normalised: higher is better). Compare images *for the same prompt*; a score on its own says little.

**Limits.** The model reads only the first {main.prompt_tokens} tokens of the prompt (about
{main.prompt_tokens * 3 // 4} words) and sees each image at {main.preprocessing.size}x{main.preprocessing.size}
pixels, centre-cropped, so fine detail and the edges of wide images do not count. Up to
{max_images} images per request, {FORMATS_TEXT}, each at most {max_upload.upper()},
{MAX_IMAGE_PIXELS / 1e6:.1f} million pixels and {MAX_RESIZE_FACTOR} times as long as it is wide (or the other way
round); uploads are kept {file_lifetime // 60} minutes.

**Other judges.** Tick them to see their scores and ranks beside {main.label}'s, and order the gallery by any of
them; the agreement line counts the pairs of images each orders as {main.label} does. {others}
"""


WHY_LABEL = "Why these scores: what the model read, which words mattered, where it looked (an estimate)"


# ------------------------------------------------------------------------------------------ verdicts
AGREEMENT_MEANS = (
    "How often each judge scored higher the image you preferred (your ties and “both bad” apart), with a 95% "
    "interval: a few verdicts give a wide one."
)


def agreement_html(rows: Sequence[Any], pairs_left: int | None = None) -> str:
    """The agreement table (`verdicts.agreement` rows, overall then per prompt) as a small HTML table that fits a
    phone, with the line saying what it means and how many pairs are left."""
    if not rows:
        return ""
    lines = [f'<p class="agreement-means">{html.escape(AGREEMENT_MEANS)}</p>']
    prompt: object = False
    for row in rows:
        if row.prompt != prompt:
            if prompt is not False:
                lines.append("</tbody></table>")
            prompt = row.prompt
            title = "All prompts" if row.prompt is None else f"Prompt: {row.prompt[:80]}"
            lines.append(f'<table class="agreement-table"><caption>{html.escape(title)}</caption>')
            lines.append("<thead><tr><th>judge</th><th>agrees</th><th>95% interval</th><th>of</th></tr></thead><tbody>")
        share = f"{row.share:.0%}" if row.share is not None else "–"
        low, high = row.interval
        interval = f"{low:.0%}–{high:.0%}" if row.total else "–"
        apart = [f"{row.ties} tie{'s' * (row.ties != 1)}"] * bool(row.ties)
        apart += [f"{row.both_bad} both bad"] * bool(row.both_bad)
        extra = f" (+{', '.join(apart)})" if apart else ""
        lines.append(
            f"<tr><td>{html.escape(row.judge)}</td><td>{share}</td><td>{interval}</td>"
            f"<td>{row.counts}{html.escape(extra)}</td></tr>"
        )
    lines.append("</tbody></table>")
    if pairs_left is not None:
        lines.append(
            f'<p class="pairs-left">{pairs_left} pair{"s" * (pairs_left != 1)} of this ranking left to judge.</p>'
        )
    return "".join(lines)


VERDICT_WORDS = {"a": "you preferred {a}", "b": "you preferred {b}", "tie": "a tie", "both_bad": "both bad"}


def verdict_line(verdict: Any, pairs_left: int) -> str:
    """What the page says after a verdict: what was recorded, and what comes next."""
    said = VERDICT_WORDS[verdict.verdict].format(a=verdict.a, b=verdict.b)
    nxt = "the next pair is shown" if pairs_left else "every pair of this ranking is judged"
    return f"Recorded: {said} ({verdict.a} vs {verdict.b}); {nxt}."


# The verdict buttons: (verdict, label); app.js gives them their keys.
VERDICT_BUTTONS = (("a", "I prefer A (A)"), ("b", "I prefer B (B)"), ("tie", "Tie (T)"), ("both_bad", "Both bad (X)"))


def collection_note(store: str | None) -> str:
    """What a visitor is told, above the verdict buttons, of where their verdicts go."""
    if store:
        return (
            "Your call (keys A or ←, B or →, T, X). **Your verdicts are kept on this server** (with the two images "
            "each names) for the page's operator to study or train judges on; they also stay in your browser and "
            "your download."
        )
    return (
        "Your call (keys A or ←, B or →, T, X): your verdicts stay in your browser and your download; nothing of "
        "them is kept on this server."
    )


def compare_models_help(most: int) -> str:
    """What "Compare models" takes and gives."""
    return (
        "Rank generative models by their generations, as ImageReward's benchmark does: a zip with one folder per "
        "model, each holding `<id>_<k>.png` (the prompt's id, the generation's number: `005695-0057_0.png`), and "
        'optionally `prompts.json` (`[{"id": ..., "prompt": ...}]`; without it, the original benchmark\'s 100 '
        f"prompts). At most {most} generations and 20 MB. Each model's score is the mean over prompts of the mean "
        "over its generations, with a 95% interval; win rates count the prompts where one model beats the other. "
        "For a whole benchmark, run `imagereward benchmark` on your machine."
    )
