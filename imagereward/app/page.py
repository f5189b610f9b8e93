"""The page as one object: its settings, its model and other judges, the folders a request may name files in,
its downloads, its decoder, and the device call; every handler of the page and its API goes through it.

`app.py` builds one `Page` and wires the UI to it; on ZeroGPU it hands the page its `@spaces.GPU` function as
`on_device`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import ImageLoadError, InputError
from ..images.decoding import Decoder
from ..images.reading import FORMATS_TEXT, MAX_IMAGE_PIXELS, MAX_RESIZE_FACTOR
from ..judges import primary, spec
from ..judges.explain import Explanation
from ..ranking import Ranking, unique_names
from . import view
from .explanations import ExplainRequest, ExplanationCache, explain_on_device, prepare_explanations, write_overlay
from .files import Downloads
from .judge_pool import JudgePool
from .pairs import PairCall, PairScores, pair_answer, prepare_pairs, refused_call, score_pair_calls
from .remote import NOT_SENT, Receiver
from .requests import Request, Scores, chosen_judges, finish, plan_prompts, prepare, score_prepared, too_many_images
from .settings import MAX_UPLOAD_MB, LoadedModel, Settings, display_name, load_for_serving, warm_up


class Page:
    """One page: build it once per process.

    Args:
        settings: the page's settings (`Settings.from_env()`).
        roots: the only folders a request may name files in (Gradio's uploads, the examples).
        upload_folder: where the downloads are written (Gradio's upload folder, which serves them as they are).
        loaded: the model (default: loaded from `settings`, warmed up).
    """

    def __init__(
        self,
        settings: Settings,
        roots: Sequence[str | Path],
        upload_folder: str | Path,
        loaded: LoadedModel | None = None,
    ) -> None:
        self.settings = settings
        self.roots = [str(r) for r in roots]
        self.loaded = loaded or load_for_serving(settings)
        if self.loaded.model is not None and not settings.zero_gpu:
            warm_up(self.loaded.model)
        # The judges a visitor may add, loaded on first use; on ZeroGPU all at start.
        self.judges = JudgePool(settings.judges, settings.device, settings.dtype, settings.download_root)
        if settings.zero_gpu and self.loaded.model is not None:
            self.judges.preload()
        self.downloads = Downloads(upload_folder, settings.file_lifetime)
        self.decoder = Decoder()  # a request decodes in threads: forking a web server's process is best avoided
        self.on_device: Callable[[Request], Scores] = self.score
        self.explanations = ExplanationCache()
        self.on_explain: Callable[[ExplainRequest], list[Explanation]] = self.explain_device
        self.receiver = Receiver(
            self.downloads, MAX_UPLOAD_MB * 2**20, settings.url_timeout, settings.trusted_url_hosts
        )
        self.on_pairs: Callable[[list[PairCall]], list[PairScores]] = self.score_pairs_device

    @property
    def model_name(self) -> str:
        """The ranking judge's name in result rows: its weights' registry name, or its folder's name."""
        return display_name(self.settings.model)

    def score(self, request: Request) -> Scores:
        """The device half of a request (what ZeroGPU runs inside `@spaces.GPU`)."""
        return score_prepared(self.loaded.model, request, self.judges)  # type: ignore[arg-type]

    def explain_device(self, request: ExplainRequest) -> list[Explanation]:
        """The device half of an explanation (what ZeroGPU runs inside `@spaces.GPU`)."""
        return explain_on_device(self.loaded.model, request)  # type: ignore[arg-type]

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
        computed = iter(self.on_explain(todo) if todo.items else [])  # the device sees only what is new
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

    # ------------------------------------------------------------------------- pipelines and agents
    def score_pairs_device(self, calls: list[PairCall]) -> list[PairScores]:
        """The device half of the `/score_pairs` calls batched together (what ZeroGPU runs)."""
        return score_pair_calls(self.loaded.model, calls, self.judges)  # type: ignore[arg-type]

    def score_pairs(self, prompts: Sequence[Any], images: Sequence[Any], judges: Sequence[Any]) -> list[dict[str, Any]]:
        """The `/score_pairs` answers of calls Gradio batched together (one prompt list, image list and judge
        list per call): each call checked and decoded on its own, all scored in one device call, each call's
        rows in its own order (`pairs.pair_answer`). A call that cannot be taken answers with its `error`; the
        others are still scored."""
        start = time.perf_counter()
        calls = []
        for call_prompts, call_images, call_judges in zip(prompts, images, judges):
            if self.loaded.model is None:
                calls.append(refused_call("Scoring is unavailable: the model could not be loaded."))
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
        scored = iter(self.on_pairs(todo) if todo else [])
        seconds = time.perf_counter() - start
        return [
            pair_answer(c, next(scored) if on else PairScores(), self.model_name, self.loaded.label, seconds, len(todo))
            for c, on in zip(calls, live)
        ]

    def received(self, images: Any) -> tuple[Any, list[tuple[str, Path]], list[ImageLoadError]]:
        """An agent's images (URLs or base64 data, see `remote`) on disk: (the receipt, to close when done;
        [(name, path)] of those received; the refused, named), in the order sent.

        Raises:
            InputError: `images` is not a list of at least one image.
        """
        if isinstance(images, str):
            images = [images]
        if not isinstance(images, list) or not images:
            raise InputError(f"Send `images` as a list of at least one image: {NOT_SENT.split('; ', 1)[1]}.")
        images = images[: self.settings.max_images]
        receipt = self.receiver.receive(images)
        got, refused = [], []
        for k, item in enumerate(images):
            if k in receipt.files:
                got.append((receipt.files[k].name, Path(receipt.files[k].path)))
            else:  # refused, or not a URL or data at all (a server path)
                refused.append(receipt.refused.get(k) or ImageLoadError(f"image {k + 1}", NOT_SENT))
        return receipt, got, refused

    def agent_scores(self, prompt: Any, images: Any, judges: Any = None) -> dict[str, Any]:
        """The MCP tool `score_images`: `/score`'s answer for images sent as URLs or data; the images that
        could not be received are in `skipped` (first), with the reason.

        Raises:
            InputError: as `api`, or `images` is not a list.
        """
        return self._agent_scores(prompt, images, judges)[0]

    def _agent_scores(self, prompt: Any, images: Any, judges: Any) -> tuple[dict[str, Any], list[str]]:
        """`agent_scores`, and the names the received images go by, in the order sent."""
        receipt, got, refused = self.received(images)
        with receipt:
            skipped = [{"name": e.name, "reason": e.reason} for e in refused]
            if not got:
                raise InputError(
                    "None of the images could be received: " + "; ".join(f"{s['name']}: {s['reason']}" for s in skipped)
                )
            response = self.api(prompt, [str(path) for _, path in got], judges or [])
        response["skipped"] = skipped + response["skipped"]
        if isinstance(images, list) and len(images) > self.settings.max_images:  # cut before the request saw them
            response["notes"] = [too_many_images(len(images), self.settings.max_images), *response["notes"]]
        return response, unique_names([path.name for _, path in got])

    def agent_compare(self, prompt: Any, image_a: Any, image_b: Any) -> dict[str, Any]:
        """The MCP tool `compare_images`: both scores and P(people prefer A to B) (`view.preference_probability`).

        Raises:
            InputError: no prompt, or A or B could not be received or scored (named, with the reason).
        """
        response, names = self._agent_scores(prompt, [image_a, image_b], None)
        rows = {row["image"]: row for row in response["ranked"]}
        if len(names) != 2 or any(n not in rows for n in names):
            why = "; ".join(f"{s['name']}: {s['reason']}" for s in response["skipped"])
            raise InputError(f"Both images are needed to compare them: {why}.")
        a, b = rows[names[0]], rows[names[1]]
        p = view.preference_probability(a["score"], b["score"])
        return {
            "prompt": a["prompt"],
            "a": {"image": a["image"], "score": a["score"], "precision": a["precision"]},
            "b": {"image": b["image"], "score": b["score"], "precision": b["precision"]},
            "p_a_preferred": p,
            "preferred": "tie" if a["score"] == b["score"] else "a" if p > 0.5 else "b",
            "model": response["model"],
            "notes": response["notes"],
            "prompt_read": response.get("prompt_read", {}),
        }

    def agent_explain(self, prompt: Any, image: Any) -> dict[str, Any]:
        """The MCP tool `explain_image`: `/explain`'s answer for an image sent as a URL or data.

        Raises:
            InputError: as `explain_api`, or the image could not be received.
        """
        receipt, got, refused = self.received([image])
        with receipt:
            if refused:
                raise InputError(f"{refused[0].name} could not be explained: {refused[0].reason}.")
            answer = self.explain_api(prompt, str(got[0][1]))
        answer["name"] = got[0][0]
        return answer

    def judge_choices(self) -> tuple[list[str], dict[str, str]]:
        """The judges still offered (those not known to be unavailable), and why each other one is not."""
        unavailable = self.judges.unavailable()
        return [j for j in self.settings.judges if j not in unavailable], unavailable

    def rank(self, prompt_text: Any, images: Any, judges: Any) -> tuple[list[tuple[str, Ranking]], list[str]]:
        """Every prompt of a request ranked, and the notes to show.

        Raises:
            InputError: scoring is unavailable, or nothing could be scored; the message says why.
        """
        if self.loaded.model is None:
            raise InputError("Scoring is unavailable: the model could not be loaded.")
        extra = chosen_judges(judges, self.settings.judges)
        # The request's three steps from here: the device call is the page's own (no callback handed down).
        request = prepare(
            self.loaded.model, prompt_text, images, self.roots, self.settings, extra, self.judges, self.decoder
        )
        return finish(request, self.on_device(request))

    def api(self, prompt_text: Any, images: Any, judges: Any) -> dict[str, Any]:
        """The `/score` API's answer (see `view.api_response`); with several prompts that of the first, and
        `"by_prompt"` for every one.

        Raises:
            InputError: as `rank`.
        """
        rankings, notes = self.rank(prompt_text, images, judges)
        label, model = self.loaded.label, self.model_name
        first_prompt, first = rankings[0]
        response = view.api_response(first, notes, label, first_prompt, model)
        if len(rankings) > 1:
            response["by_prompt"] = [{"prompt": p, **view.api_response(r, [], label, p, model)} for p, r in rankings]
        return response

    def write_downloads(
        self, rankings: list[tuple[str, Ranking]], notes: Sequence[str] = ()
    ) -> tuple[Path, Path, Path]:
        """A request's CSV, JSON (with its notes and what was skipped) and zip, in a new folder of the page's
        downloads."""
        return view.write_downloads(rankings, self.model_name, self.downloads.new_folder(), notes=notes)

    def embedded_prompts(self, images: Any) -> list[str]:
        """The distinct prompts the images carry in their files (none if they carry none)."""
        from .requests import gallery_paths

        try:
            groups, _, _ = plan_prompts("", gallery_paths(images)[: self.settings.max_images], self.roots)
        except InputError:
            return []
        return [g.prompt for g in groups]

    def judges_info(self, unavailable: dict[str, str] | None = None) -> str:
        """The "Also judge with" box's line, from the judges' records: the paper's baselines and the others;
        then the judges found `unavailable`, which are no longer offered."""
        unavailable = unavailable or {}
        offered = [spec(j) for j in self.settings.judges if j not in unavailable]
        baselines = [s.label for s in offered if s.paper_accuracy is not None]
        newer = [s.label for s in offered if s.paper_accuracy is None]
        parts = [f"the paper's baselines ({', '.join(baselines)})"] if baselines else []
        parts += [f"newer judges ({', '.join(newer)})"] if newer else []
        line = " and ".join(parts) + ", side by side" if parts else ""
        if unavailable:
            gone = ", ".join(unavailable)
            line += f"{'. ' if line else ''}Unavailable right now (their weights could not be loaded): {gone}"
        return line

    def about(self, max_upload: str) -> str:
        """The page's "what the score means" and limits, from the judges' records and the settings."""
        main = primary()
        others = " ".join(f"{spec(j).label}: {spec(j).meaning}." for j in self.settings.judges)
        return f"""
**What the score means.** {main.label} ([Xu et al., 2023](https://arxiv.org/abs/2304.05977)) predicts which
image people would prefer for a prompt, trained on 137k expert comparisons. Its score is {main.meaning}
(normalised: higher is better). Compare images *for the same prompt*; a score on its own says little.

**Limits.** The model reads only the first {main.prompt_tokens} tokens of the prompt (about
{main.prompt_tokens * 3 // 4} words) and sees each image at {main.preprocessing.size}x{main.preprocessing.size}
pixels, centre-cropped, so fine detail and the edges of wide images do not count. Up to
{self.settings.max_images} images per request, {FORMATS_TEXT}, each at most {max_upload.upper()},
{MAX_IMAGE_PIXELS / 1e6:.1f} million pixels and {MAX_RESIZE_FACTOR} times as long as it is wide (or the other way
round); uploads are kept {self.settings.file_lifetime // 60} minutes.

**Other judges.** Tick them to see their scores and ranks beside {main.label}'s, and order the gallery by any of
them; the agreement line counts the pairs of images each orders as {main.label} does. {others}
"""

    def close(self) -> None:
        """Shuts the page's decoding threads and its judges' down."""
        self.decoder.close()
        self.judges.close()
