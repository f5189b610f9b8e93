"""The page as one object, and its one front door: each event of the page, the `/score` and `/explain` APIs,
and what the agents' tools and `/score_pairs` ask for are one `Page` method each, which returns what that event
shows (Gradio's values and updates, in the order its docstring gives; `app.py` wires the components in that
order).

Inside, a request goes down the layers once: its files admitted (`intake`), its steps (`scoring`, `pairs`,
`explanations`), the model's work through the page's device functions (`device`: `spaces.GPU` on ZeroGPU),
then what is shown (`view`), answered (`answers`) or taken away (`downloads`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import gradio as gr

from ..errors import ImageLoadError, InputError
from ..images.decoding import Decoder
from ..judges import primary
from ..judges.explain import Explanation
from ..model.tokenizer import MAX_PROMPT_CHARS
from ..ranking import Ranking, check_prompt
from ..verdicts import VERDICTS, Verdict, agreement, next_pairs, pair_key
from ..verdicts.pairs import now
from ..verdicts.store import Image, StoreRefusal, VerdictStore
from . import view
from .answers import api_response
from .device import device_function
from .downloads import write_downloads, write_tables, write_verdicts
from .explanations import (
    ExplainRequest,
    ExplanationCache,
    explain_duration,
    explain_on_device,
    prepare_explanations,
    write_overlay,
)
from .files import Downloads
from .host import Visitors
from .intake import NOT_UPLOADED, Roots, gallery_paths
from .judge_pool import JudgePool
from .model_compare import finish_comparison, prepare_comparison
from .pairs import PairCall, PairScores, pair_answer, pairs_duration, prepare_pairs, refused_call, score_pair_calls
from .remote import Receiver
from .scoring import (
    Request,
    Scores,
    chosen_judges,
    finish,
    gpu_duration,
    plan_prompts,
    prepare_request,
    score_prepared,
)
from .settings import MAX_UPLOAD_MB, LoadedModel, Settings, load_for_serving, warm_up, weights_name

PRIMARY = primary().label
# What the comparison shows: A's and B's pickers, the two images, the sentence, the "why" toggle and its box.
COMPARE_OUTPUTS = 7
# What an example sets (its cache cannot hold component updates): the first of `Page.score`'s outputs.
EXAMPLE_OUTPUTS = 9
UNAVAILABLE = "Scoring is unavailable: the model could not be loaded."


class Page:
    """One page: build it once per process.

    Args:
        settings: the page's settings (`Settings.from_env()`).
        roots: the only folders a request may name files in (Gradio's uploads, the examples).
        upload_folder: where the downloads are written (Gradio's upload folder, which serves them as they are).
        loaded: the model (default: loaded from `settings`, warmed up).
        visitors: who sends a request (`host.Visitors`; the store of verdicts counts each visitor's share).
    """

    def __init__(
        self,
        settings: Settings,
        roots: Sequence[str | Path],
        upload_folder: str | Path,
        loaded: LoadedModel | None = None,
        visitors: Visitors | None = None,
    ) -> None:
        self.settings = settings
        self.roots = Roots(roots)
        self.loaded = loaded or load_for_serving(settings)
        if self.loaded.model is not None and not settings.zero_gpu:
            warm_up(self.loaded.model)
        # The judges a visitor may add, loaded on first use; on ZeroGPU all at start.
        self.judges = JudgePool(settings.judges, settings.device, settings.dtype, settings.download_root)
        if settings.zero_gpu and self.loaded.model is not None:
            self.judges.preload()
        self.downloads = Downloads(upload_folder, settings.file_lifetime)
        self.decoder = Decoder()  # a request decodes in threads: forking a web server's process is best avoided
        self.explanations = ExplanationCache()
        self.receiver = Receiver(
            self.downloads, MAX_UPLOAD_MB * 2**20, settings.url_timeout, settings.trusted_url_hosts
        )
        self.visitors = visitors or Visitors(settings.proxy_hops)
        # Verdicts kept on the server only when the operator asks (`IMAGEREWARD_VERDICTS_DB`).
        self.store = (
            VerdictStore(settings.verdicts_db, settings.verdicts_per_hour, settings.verdicts_max_bytes)
            if settings.verdicts_db
            else None
        )
        # The device boundary, declared once per kind of request (`device`).
        self.score_on_device = device_function(self._score_device, gpu_duration, settings.zero_gpu)
        self.explain_on_device = device_function(self._explain_device, explain_duration, settings.zero_gpu)
        self.pairs_on_device = device_function(self._pairs_device, pairs_duration, settings.zero_gpu)

    @property
    def model_name(self) -> str:
        """The ranking judge's name in result rows: its weights' registry name, or its folder's name."""
        return weights_name(self.settings.model)

    def _score_device(self, request: Request) -> Scores:
        return score_prepared(self.loaded.model, request, self.judges)  # type: ignore[arg-type]

    def _explain_device(self, request: ExplainRequest) -> list[Explanation]:
        return explain_on_device(self.loaded.model, request)  # type: ignore[arg-type]

    def _pairs_device(self, calls: list[PairCall]) -> list[PairScores]:
        return score_pair_calls(self.loaded.model, calls, self.judges)  # type: ignore[arg-type]

    # =========================================================================== the page's events
    def banner(self) -> str:
        """The line under the title: the model, or that scoring is unavailable."""
        if self.loaded.error:
            return "⚠️ **Scoring is unavailable right now:** the model could not be loaded. This is for the page's operator to fix."
        return f"Model: **{self.loaded.label}**"

    def about(self) -> str:
        """The page's "what the score means" and limits."""
        s = self.settings
        return view.about(s.judges, s.max_images, f"{MAX_UPLOAD_MB}mb", s.file_lifetime)

    def score(self, prompt: str, images: Any, judges: Any = None, order_by: Any = None) -> tuple:
        """ "Score and rank": every prompt ranked, the first shown, its comparison at #1 against #2; problems are
        one sentence in a notice, and the outputs keep what they showed.

        Returns:
            (status, Best, Best's line, the ranked gallery, the table, the downloads, the agreement line, what
            the judges read, the prompt shown, the rank matrix, the comparison's `COMPARE_OUTPUTS`, "Also judge
            with", "Order by", the prompt picker, each prompt's view).
        """
        try:
            rankings, notes = self.rank(prompt, images, judges)
        except InputError as e:
            gr.Warning(str(e))
            return (
                (gr.skip(),) * (EXAMPLE_OUTPUTS + 1 + COMPARE_OUTPUTS)
                + self.judge_choices(judges, order_by)
                + (
                    gr.skip(),
                    gr.skip(),
                )
            )
        for note in notes:
            gr.Warning(note)
        page = view.shown(rankings, self.loaded.label, order_by)
        # Each prompt's own view, for switching to it (the first is the one shown).
        downloads = self.write_downloads(rankings, notes)
        tables = Tables(rankings, list(notes), downloads[0], downloads[1])
        views = {p: replace(view.shown([(p, r)], self.loaded.label, order_by), tables=tables) for p, r in rankings}
        pick = gr.update(choices=list(views), value=rankings[0][0], visible=len(views) > 1)
        if page.matrix is not None:
            grid = gr.update(value=page.matrix[1], headers=page.matrix[0], visible=True)
        else:
            grid = gr.update(visible=False)
        return (
            page.status,
            page.winner,
            page.winner_text,
            page.gallery,
            page.table,
            [str(p) for p in downloads],
            page.agreement,
            page.reading,
            page.prompt,
            grid,
            *self._first_comparison(page.compared),
            *self.judge_choices(judges, order_by),
            pick,
            views,
        )

    def score_example(self, prompt: str, images: Any) -> tuple:
        """An example's scoring: the first `EXAMPLE_OUTPUTS` of `score`'s outputs."""
        return self.score(prompt, images)[:EXAMPLE_OUTPUTS]

    def switch_prompt(self, views: Any, chosen: str | None, order_by: str | None) -> tuple:
        """Best, the gallery, the table, what the judges read and the comparison, for one prompt of the request
        shown (nothing is scored again).

        Returns:
            (Best, Best's line, the ranked gallery, the table, what the judges read, the prompt shown, the
            comparison's `COMPARE_OUTPUTS`).
        """
        if not isinstance(views, dict) or chosen not in views:
            return (gr.skip(),) * (6 + COMPARE_OUTPUTS)
        shown = views[chosen]
        gallery, table_value = shown.gallery, shown.table
        if order_by and order_by != PRIMARY:
            frame = _frame(shown.table)
            gallery, table_value, _, _ = view.reordered(shown.gallery, frame, order_by, self.roots)
        return (
            shown.winner,
            shown.winner_text,
            gallery,
            table_value,
            shown.reading,
            shown.prompt,
            *self._first_comparison(shown.compared),
        )

    def judge_choices(self, judges: Any = None, order_by: Any = None) -> tuple:
        """ "Also judge with" and "Order by", offering only the judges not known to be unavailable (those are
        named in the box's line instead), keeping what the visitor chose among the others."""
        offered, unavailable = self.offered_judges()
        chosen = [j for j in judges if j in offered] if isinstance(judges, list) else []
        return (
            gr.update(choices=offered, value=chosen, info=view.judges_info(self.settings.judges, unavailable)),
            # With no other judge left, ordering has one choice: not shown.
            gr.update(
                choices=[PRIMARY, *offered], value=order_by if order_by in offered else PRIMARY, visible=bool(offered)
            ),
        )

    def start_compare(self, ranked: Any, table: Any) -> tuple:
        """The comparison of the ranking the page shows, at #1 against #2 (after a cached example)."""
        return self._first_comparison(view.shown_rows(ranked, table, self.roots))

    def reorder(self, ranked: Any, table: Any, order_by: str | None) -> tuple:
        """The gallery, the table, Best and its line of the ranking shown, in the chosen judge's order (nothing
        is scored again)."""
        gallery, table_value, best, line = view.reordered(ranked, table, order_by or PRIMARY, self.roots)
        return gallery, table_value, best if best is not None else gr.skip(), line or gr.skip()

    def compare(self, ranked: Any, table: Any, name_a: str | None, name_b: str | None) -> tuple:
        """The two chosen images side by side, and the model's preference probability between them."""
        return self._compared(view.shown_rows(ranked, table, self.roots), name_a, name_b)

    def why(self, ranked: Any, table: Any, prompt_shown: str, name_a: Any, name_b: Any, on: bool) -> tuple:
        """With the toggle on: the compared images with what drove their scores drawn over them, and the words
        that mattered (the winner's too when it is neither); off: the images as they are.

        Returns:
            (Best, A, B, the words box).
        """
        rows = view.shown_rows(ranked, table, self.roots)
        by_name = {r["name"]: r for r in rows}
        if not rows or name_a not in by_name or name_b not in by_name:
            return (gr.skip(),) * 4
        best = max(rows, key=lambda r: r["score"])
        plain = (best["path"], by_name[name_a]["path"], by_name[name_b]["path"], "")
        if not on:
            return plain
        chosen = list({r["name"]: r for r in (by_name[name_a], by_name[name_b], best)}.values())
        try:
            explained, refused = self.explain(prompt_shown, [r["path"] for r in chosen], [r["name"] for r in chosen])
        except InputError as e:
            gr.Warning(str(e))
            return plain
        for e in refused:
            gr.Warning(f"{e.name} could not be explained: {e.reason}.")
        pictures = self.write_overlays(explained)
        return (
            best["path"],  # "Best" stays the picture itself; the map is drawn over A and B
            pictures.get(by_name[name_a]["path"], by_name[name_a]["path"]),
            pictures.get(by_name[name_b]["path"], by_name[name_b]["path"]),
            view.why_html([(name, explanation) for name, _, explanation in explained]),
        )

    def why_after_pick(self, ranked: Any, table: Any, prompt_shown: str, name_a: Any, name_b: Any, on: bool) -> tuple:
        """After a new pick: the explanation of the new pair if the toggle is on (else nothing changes)."""
        if not on:
            return (gr.skip(),) * 4
        return self.why(ranked, table, prompt_shown, name_a, name_b, on)

    def fill_prompt(self, prompt: str, images: Any) -> Any:
        """Fills an empty prompt box from the prompt the dropped images carry (A1111, ComfyUI, InvokeAI,
        Fooocus, NovelAI metadata); with several different prompts, leaves it empty and says that each image
        will be ranked against its own."""
        if isinstance(prompt, str) and prompt.strip():
            return gr.skip()
        prompts = self.embedded_prompts(images)
        if len(prompts) == 1:
            return prompts[0]
        if prompts:
            gr.Info(
                f"These images carry {len(prompts)} different prompts: leave the prompt empty to rank each against its own."
            )
        return gr.skip()

    def _first_comparison(self, rows: list[dict[str, Any]]) -> tuple:
        names = [r["name"] for r in rows]
        if not names:
            return gr.update(choices=[], value=None), gr.update(choices=[], value=None), None, None, "", False, ""
        second = names[1] if len(names) > 1 else names[0]
        return (
            gr.update(choices=names, value=names[0]),
            gr.update(choices=names, value=second),
            *self._compared(rows, names[0], second),
            False,  # "why" off: a new comparison shows the images as they are
            "",
        )

    @staticmethod
    def _compared(rows: list[dict[str, Any]], name_a: str | None, name_b: str | None) -> tuple:
        by_name = {r["name"]: r for r in rows}
        if name_a not in by_name or name_b not in by_name:
            return None, None, ""
        a, b = by_name[name_a], by_name[name_b]
        return a["path"], b["path"], view.compare_text(name_a, a["score"], name_b, b["score"])

    # ===================================================================== a person's verdicts
    def verdict(
        self,
        choice: str,
        given: Any,
        ranked: Any,
        table: Any,
        prompt_shown: str,
        name_a: Any,
        name_b: Any,
        views: Any = None,
        request: gr.Request | None = None,
    ) -> tuple:
        """A visitor's verdict on the pair compared (`choice`: `verdicts.VERDICTS`): kept in their browser
        (`given`, the verdicts so far), in the store when the operator keeps one, the agreement redrawn, the
        comparison moved on to the most informative pair left (`verdicts.next_pairs`), and the request's CSV and
        JSON downloads rewritten in place to say which images have verdicts (`views`: the request shown).

        Returns:
            (the verdicts so far, the agreement table, the verdict line, A's and B's pickers, A, B, the compare
            sentence, the "why" toggle and its box).
        """
        unchanged = (gr.skip(),) * (3 + COMPARE_OUTPUTS)
        earlier, kept = _verdicts_kept(given)
        try:
            verdict, rows, files = self._verdict(choice, earlier, ranked, table, prompt_shown, name_a, name_b)
        except InputError as e:
            gr.Warning(str(e))
            return unchanged
        _, note = self._keep(verdict, files, request)
        pairs = [*earlier, verdict]
        state = [*kept, verdict.as_dict()]  # the browser's rows as they came (checked), and the new one
        self._count_verdicts(views, pairs)
        judges = list(rows[0]["scores"])
        judged = {pair_key(v.a, v.b) for v in pairs if v.prompt == verdict.prompt}
        scores = {j: {r["name"]: r["scores"].get(j) for r in rows} for j in judges}
        left = next_pairs([r["name"] for r in rows], scores, PRIMARY, judged)
        table_html = view.agreement_html(agreement(pairs, _judges_of(pairs)), len(left))
        line = view.verdict_line(verdict, len(left)) + (f" {note}" if note else "")
        if not left:
            return state, table_html, line, *(gr.skip(),) * COMPARE_OUTPUTS
        a, b = left[0]
        names = [r["name"] for r in rows]
        return (
            state,
            table_html,
            line,
            gr.update(choices=names, value=a),
            gr.update(choices=names, value=b),
            *self._compared(rows, a, b),
            False,  # the new pair as it is; "why" off
            "",
        )

    def _verdict(
        self, choice: Any, earlier: list[Verdict], ranked: Any, table: Any, prompt: Any, name_a: Any, name_b: Any
    ) -> tuple[Verdict, list[dict[str, Any]], list[Image]]:
        text = _verdict_prompt(choice, prompt)
        if len(earlier) >= MAX_VERDICTS:
            raise InputError(
                f"You have given {MAX_VERDICTS:,} verdicts, the most this page keeps in your browser: download "
                "them, then clear them to go on."
            )
        rows = view.shown_rows(ranked, table, self.roots)
        by_name = {r["name"]: r for r in rows}
        if name_a not in by_name or name_b not in by_name:
            raise InputError("Pick images A and B of the ranking shown (only your own uploads can be judged).")
        a, b = by_name[name_a], by_name[name_b]
        files = [_image(a["path"]), _image(b["path"])]
        if name_a == name_b or files[0].sha256 == files[1].sha256:
            raise InputError("A and B are the same image: pick two different images to judge.")
        scores = {j: [a["scores"].get(j), b["scores"].get(j)] for j in a["scores"]}
        verdict = Verdict(
            text, name_a, name_b, choice, scores, files[0].sha256, files[1].sha256, self.model_name, now()
        )
        return verdict, rows, files

    def _count_verdicts(self, views: Any, pairs: Sequence[Verdict]) -> None:
        """The request's CSV and JSON rewritten with how many verdicts name each image (`downloads.write_tables`)."""
        tables = next((v.tables for v in views.values() if getattr(v, "tables", None)), None) if views else None
        if not isinstance(tables, Tables):
            return
        counts: dict[tuple[str, str], int] = {}
        for pair in pairs:
            for name in (pair.a, pair.b):
                counts[(pair.prompt, name)] = counts.get((pair.prompt, name), 0) + 1
        try:
            write_tables(tables.rankings, self.model_name, tables.csv, tables.json, tables.notes, counts)
        except OSError:  # the downloads are gone (older than their lifetime): nothing to say it in
            return

    def _keep(self, verdict: Verdict, images: Sequence[Image], request: Any) -> tuple[bool, str | None]:
        """A verdict into the operator's store, when there is one: (kept, why not)."""
        if self.store is None:
            return False, None
        visitor = self.store.visitor_key(self.visitors.of_request(request)) if request is not None else "-"
        try:
            self.store.add(visitor, verdict, images)
        except StoreRefusal as e:
            return False, str(e)
        return True, None

    def verdicts_shown(self, given: Any) -> str:
        """The agreement table of the verdicts a visitor's browser kept (after a reload)."""
        pairs = _verdicts_in(given)
        return view.agreement_html(agreement(pairs, _judges_of(pairs))) if pairs else ""

    def verdict_downloads(self, given: Any, ranked: Any, table: Any) -> Any:
        """The visitor's verdicts to take away: the pairs file, and a zip of it with the images it names that
        the ranking shown still has."""
        pairs = _verdicts_in(given)
        if not pairs:
            gr.Warning("No verdicts yet: judge a pair first.")
            return gr.skip()
        images = {}
        for row in view.shown_rows(ranked, table, self.roots):
            try:
                images[_image(row["path"]).sha256] = Path(row["path"])
            except InputError:
                continue
        return [str(p) for p in write_verdicts(pairs, images, self.downloads.new_folder())]

    def forget_verdicts(self) -> tuple:
        """Clears the verdicts the visitor's browser keeps (their downloads are theirs)."""
        return [], "", ""

    def verdict_api(
        self,
        prompt: str,
        image_a: Any,
        image_b: Any,
        verdict: str,
        judges: list[str] | None = None,
        pairs: Any = None,
        request: gr.Request | None = None,
    ) -> dict[str, Any]:
        """Records a person's verdict on two images for a prompt (`verdict`: "a", "b", "tie" or "both_bad"),
        scored with the page's checks and limits by ImageReward and any offered `judges`; kept in the server's
        store when its operator keeps one. `pairs`: the caller's earlier pairs (as this returns them), for the
        agreement over all of them. Returns {"pair": the verdict as a preference pair (prompt, a, b, their
        sha256, verdict, chosen, rejected, scores: {judge: [A, B]}, model, time), "agreement": [{"judge",
        "prompt" (null: all), "agreement", "interval", "counts" ("agreed/total"), "agreed", "total", "ties",
        "both_bad"}], "stored": whether the server kept it, "note": why not, when it keeps verdicts}."""
        try:
            return self._verdict_api(prompt, image_a, image_b, verdict, judges, pairs, request)
        except InputError as e:
            raise gr.Error(str(e), print_exception=False) from None

    def _verdict_api(
        self, prompt: Any, image_a: Any, image_b: Any, choice: Any, judges: Any, given: Any, request: Any
    ) -> dict[str, Any]:
        text = _verdict_prompt(choice, prompt)
        earlier = _verdicts_in(given)
        if isinstance(given, list) and len(given) > MAX_VERDICTS:
            raise InputError(f"Send at most {MAX_VERDICTS:,} earlier pairs; keep the rest in your pairs file.")
        files = [f.get("path") if isinstance(f, dict) else f for f in (image_a, image_b)]
        rankings, _ = self.rank(text, files, judges or [])
        ranking = rankings[0][1]
        if ranking.failures:
            why = "; ".join(f"{e.name}: {e.reason}" for e in ranking.failures)
            raise InputError(f"Both images are needed for a verdict: {why}.")
        by_source = {str(item.source): item for item in ranking.ranked}
        sent = [os.path.normpath(f) if isinstance(f, str) else f for f in files]
        a, b = (by_source.get(f) for f in sent) if len(by_source) == 2 else (None, None)
        if a is None or b is None:
            raise InputError("A and B are the same file: send two different images.")
        images = [_image(str(a.source)), _image(str(b.source))]
        if images[0].sha256 == images[1].sha256:
            raise InputError("A and B are the same image: send two different images.")
        scores = {PRIMARY: [a.score, b.score]}
        for judge in ranking.judges[1:]:
            scores[judge] = [a.scores.get(judge), b.scores.get(judge)]
        verdict = Verdict(
            text, a.name, b.name, choice, scores, images[0].sha256, images[1].sha256, self.model_name, now()
        )
        stored, note = self._keep(verdict, images, request)
        rows = agreement([*earlier, verdict], _judges_of([*earlier, verdict]))
        return {"pair": verdict.as_dict(), "agreement": [r.as_dict() for r in rows], "stored": stored, "note": note}

    # ================================================================================== the APIs
    def compare_models(self, zip_file: Any, judges: Any = None) -> tuple[str, str, list[str] | None]:
        """ "Compare models": a zip of generations laid out as the original benchmark lays them out, scored by
        ImageReward and `judges` (`model_compare`); a problem is one sentence in the status.

        Returns:
            (the status, the report as HTML, its files: report.html, summary.json, summary.md, the original's
            result files as a zip).
        """
        try:
            if self.loaded.model is None:
                raise InputError(UNAVAILABLE)
            extra = chosen_judges(judges, self.settings.judges)
            if zip_file is None:
                raise InputError("Drop a zip of generations first: one folder per model, <id>_<k>.png inside.")
            try:
                path = self.roots.allowed(zip_file, "the zip", NOT_UPLOADED)
            except ImageLoadError as e:
                raise InputError(f"The zip could not be taken: {e.reason}") from None
            comparison = prepare_comparison(
                path,
                self.downloads.new_folder(),
                self.loaded.model,
                extra,
                self.settings,
                self.receiver,
                self.judges,
                self.decoder,
            )
            live = [c.problem is None and any(s is not None for s in c.slots) for c in comparison.calls]
            scored = iter(self.pairs_on_device([c for c, on in zip(comparison.calls, live) if on]) if any(live) else [])
            done = finish_comparison(comparison, [next(scored) if on else PairScores() for on in live])
        except InputError as e:
            return f"⚠️ {e}", "", None
        return done.status, done.html, done.files

    def score_api(self, prompt: str, images: Any, judges: Any = None) -> dict[str, Any]:
        """Scores images for a prompt. Returns {"ranked": [rows] best first (rank, image, name, score, precision,
        model; with other judges score_<judge>, rank_<judge>, choice_PickScore, and "scores", "ranks", "choices" by
        judge), "skipped": [{name, reason}], "notes": [...], "model": str, "seconds": float}; with other judges
        (`judges`: any of the offered ones) also "judges" and "agreement" ({judge: {"same", "pairs"}}); with several
        prompts (one per line, or each image's own when the prompt is empty) that of the first, and "by_prompt":
        [{"prompt", ...the same keys}] for all of them."""
        try:
            return self.api(prompt, images, judges)
        except InputError as e:
            raise gr.Error(str(e), print_exception=False) from None

    def explain_endpoint(self, prompt: str, image: Any) -> dict[str, Any]:
        """Why ImageReward gives one image its score for a prompt (an estimate of what drove it). Returns {"name",
        "model", "prompt", "score", "read", "unread", "tokens_read", "tokens_total", "words": [{"word", "start",
        "end", "delta"}] (each read word's effect: the score with it less the score without it), "heatmap": 14 x 14
        (per patch of the 224 crop, what raised (positive) or lowered the score), "crop_box": [left, top, right,
        bottom] of the crop in the image's pixels, "image_size": [width, height]}."""
        try:
            return self.explain_api(prompt, image)
        except InputError as e:
            raise gr.Error(str(e), print_exception=False) from None

    # ===================================================================== the work, plain values
    def rank(self, prompt_text: Any, images: Any, judges: Any) -> tuple[list[tuple[str, Ranking]], list[str]]:
        """Every prompt of a request ranked, and the notes to show.

        Raises:
            InputError: scoring is unavailable, or nothing could be scored; the message says why.
        """
        if self.loaded.model is None:
            raise InputError(UNAVAILABLE)
        extra = chosen_judges(judges, self.settings.judges)
        request = prepare_request(
            self.loaded.model, prompt_text, images, self.roots, self.settings, extra, self.judges, self.decoder
        )
        return finish(request, self.score_on_device(request))

    def api(self, prompt_text: Any, images: Any, judges: Any) -> dict[str, Any]:
        """The `/score` API's answer (see `answers.api_response`); with several prompts that of the first, and
        `"by_prompt"` for every one.

        Raises:
            InputError: as `rank`.
        """
        rankings, notes = self.rank(prompt_text, images, judges)
        label, model = self.loaded.label, self.model_name
        first_prompt, first = rankings[0]
        response = api_response(first, notes, label, first_prompt, model)
        if len(rankings) > 1:
            response["by_prompt"] = [{"prompt": p, **api_response(r, [], label, p, model)} for p, r in rankings]
        return response

    def explain(
        self, prompt: Any, files: Sequence[Any], names: Sequence[str] | None = None
    ) -> tuple[list[tuple[str, str, Explanation]], list[ImageLoadError]]:
        """Why ImageReward gave each image its score for `prompt` (`explanations` says how a request is
        checked): explanations computed before are reused.

        Returns:
            ((name, path on the server, explanation) of each image explained, the images refused).

        Raises:
            InputError: scoring is unavailable, no prompt, or too many images.
        """
        if self.loaded.model is None:
            raise InputError("Explanations are unavailable: the model could not be loaded.")
        request, refused = prepare_explanations(
            self.loaded.model, prompt, files, self.roots, self.settings, names, self.explanations
        )
        todo = ExplainRequest(request.prompt, [item for item in request.items if item.known is None])
        computed = iter(self.explain_on_device(todo) if todo.items else [])  # the device sees only what is new
        found = [item.known if item.known is not None else next(computed) for item in request.items]
        done = []
        for item, explanation in zip(request.items, found):
            self.explanations.put(request.prompt, item.path, explanation)  # type: ignore[arg-type]
            done.append((item.name, item.path, explanation))
        return done, refused

    def explain_api(self, prompt: Any, image: Any) -> dict[str, Any]:
        """The `/explain` API's answer: `Explanation.as_dict` of one image, with its `name` and the `model`.

        Raises:
            InputError: as `explain`, or the image was refused (the message names it and says why).
        """
        if isinstance(image, dict):
            image = image.get("path")
        done, refused = self.explain(prompt, [image])
        if refused:
            raise InputError(f"{refused[0].name} could not be explained: {refused[0].reason}.")
        name, _, explanation = done[0]
        return {"name": name, "model": self.loaded.label, **explanation.as_dict()}

    def score_pairs(self, prompts: Sequence[Any], images: Sequence[Any], judges: Sequence[Any]) -> list[dict[str, Any]]:
        """The `/score_pairs` answers of calls Gradio batched together (one prompt list, image list and judge
        list per call): each call checked and decoded on its own, all scored in one device call, each call's
        rows in its own order (`pairs.pair_answer`). A call that cannot be taken answers with its `error`; the
        others are still scored."""
        start = time.perf_counter()
        calls = []
        for call_prompts, call_images, call_judges in zip(prompts, images, judges):
            if self.loaded.model is None:
                calls.append(refused_call(UNAVAILABLE))
                continue
            try:
                extra = chosen_judges(call_judges, self.settings.judges)
            except InputError as e:
                calls.append(refused_call(str(e)))
                continue
            calls.append(
                prepare_pairs(
                    self.loaded.model,
                    call_prompts,
                    call_images,
                    self.roots,
                    self.settings,
                    self.receiver,
                    extra,
                    self.judges,
                    self.decoder,
                )
            )
        live = [c.problem is None and any(s is not None for s in c.slots) for c in calls]
        todo = [c for c, on in zip(calls, live) if on]
        scored = iter(self.pairs_on_device(todo) if todo else [])
        seconds = time.perf_counter() - start
        return [
            pair_answer(c, next(scored) if on else PairScores(), self.model_name, self.loaded.label, seconds, len(todo))
            for c, on in zip(calls, live)
        ]

    def write_downloads(
        self, rankings: list[tuple[str, Ranking]], notes: Sequence[str] = ()
    ) -> tuple[Path, Path, Path]:
        """A request's CSV, JSON (with its notes and what was skipped) and zip, in a new folder of the page's
        downloads."""
        return write_downloads(rankings, self.model_name, self.downloads.new_folder(), notes=notes)

    def write_overlays(self, explained: list[tuple[str, str, Explanation]]) -> dict[str, str]:
        """The picture of each explanation (the crop box and the map over the image), by path on the server."""
        folder = self.downloads.new_folder()
        pictures = {}
        for name, path, explanation in explained:
            try:
                pictures[path] = str(write_overlay(path, explanation, folder, name))
            except ImageLoadError:
                continue
        return pictures

    def embedded_prompts(self, images: Any) -> list[str]:
        """The distinct prompts the images carry in their files (none if they carry none)."""
        try:
            groups, _, _ = plan_prompts("", gallery_paths(images)[: self.settings.max_images], self.roots)
        except InputError:
            return []
        return [g.prompt for g in groups]

    def offered_judges(self) -> tuple[list[str], dict[str, str]]:
        """The judges still offered (those not known to be unavailable), and why each other one is not."""
        unavailable = self.judges.unavailable()
        return [j for j in self.settings.judges if j not in unavailable], unavailable

    def close(self) -> None:
        """Shuts the page's decoding threads, its judges and its store of verdicts down."""
        self.decoder.close()
        self.judges.close()
        if self.store is not None:
            self.store.close()


def _frame(table: dict[str, Any]) -> Any:
    import pandas as pd

    return pd.DataFrame(table["data"], columns=table["headers"])


# The verdicts one visitor's browser keeps at most (each is a few hundred bytes).
MAX_VERDICTS = 2000


def _verdicts_in(given: Any) -> list[Verdict]:
    """The verdicts a browser sent back (its own to shape: anything that is not a verdict is left out)."""
    return _verdicts_kept(given)[0]


def _verdicts_kept(given: Any) -> tuple[list[Verdict], list[dict[str, Any]]]:
    """The verdicts a browser sent back, and the rows they came as (the last `MAX_VERDICTS`)."""
    verdicts, rows = [], []
    for row in given if isinstance(given, list) else []:
        try:
            verdicts.append(Verdict.from_dict(row))
        except (ValueError, TypeError, AttributeError):
            continue
        rows.append(row)
    return verdicts[-MAX_VERDICTS:], rows[-MAX_VERDICTS:]


def _verdict_prompt(choice: Any, prompt: Any) -> str:
    """The prompt of a verdict whose value is one of `VERDICTS`.

    Raises:
        InputError: an unknown verdict, no prompt, or one over what the page reads.
    """
    if choice not in VERDICTS:
        raise InputError(f"A verdict is one of {', '.join(VERDICTS)}; {str(choice)[:40]!r} is not.")
    text = check_prompt(prompt)
    if len(text) > MAX_PROMPT_CHARS:
        raise InputError(f"The prompt is over the {MAX_PROMPT_CHARS:,} characters this page reads: shorten it.")
    return text


def _judges_of(pairs: Sequence[Verdict]) -> list[str]:
    """The judges the verdicts carry scores of, the ranking judge first."""
    return [PRIMARY, *(j for j in dict.fromkeys(j for p in pairs for j in p.scores) if j != PRIMARY)]


def _image(path: str) -> Image:
    """An image of the ranking shown, read for its hash (and the store).

    Raises:
        InputError: it is no longer on the server.
    """
    try:
        return Image(Path(path).read_bytes(), Path(path).suffix.lower())
    except OSError:
        raise InputError(
            "This image is no longer on the server (uploads are kept a while only): score again."
        ) from None


@dataclass(frozen=True)
class Tables:
    """A request's rankings and the CSV and JSON written of them (rewritten when verdicts name its images)."""

    rankings: list[tuple[str, Ranking]]
    notes: list[str]
    csv: Path
    json: Path
