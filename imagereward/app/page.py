"""The page as one object: its settings, its model and other judges, the folders a request may name files in,
its downloads, its decoder, and the device call; every handler of the page and its API goes through it.

`app.py` builds one `Page` and wires the UI to it; on ZeroGPU it hands the page its `@spaces.GPU` function as
`on_device`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import InputError
from ..images.decoding import Decoder
from ..images.reading import FORMATS_TEXT, MAX_IMAGE_PIXELS, MAX_RESIZE_FACTOR
from ..judges import primary, spec
from ..ranking import Ranking
from . import view
from .files import Downloads
from .judge_pool import JudgePool
from .requests import Request, Scores, chosen_judges, plan_prompts, rank_request, score_prepared
from .settings import LoadedModel, Settings, display_name, load_for_serving, warm_up


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

    @property
    def model_name(self) -> str:
        """The ranking judge's name in result rows: its weights' registry name, or its folder's name."""
        return display_name(self.settings.model)

    def score(self, request: Request) -> Scores:
        """The device half of a request (what ZeroGPU runs inside `@spaces.GPU`)."""
        return score_prepared(self.loaded.model, request, self.judges)  # type: ignore[arg-type]

    def rank(self, prompt_text: Any, images: Any, judges: Any) -> tuple[list[tuple[str, Ranking]], list[str]]:
        """Every prompt of a request ranked, and the notes to show.

        Raises:
            InputError: scoring is unavailable, or nothing could be scored; the message says why.
        """
        if self.loaded.model is None:
            raise InputError("Scoring is unavailable: the model could not be loaded.")
        extra = chosen_judges(judges, self.settings.judges)
        return rank_request(
            self.loaded.model,
            prompt_text,
            images,
            self.roots,
            self.settings,
            extra,
            self.judges,
            self.on_device,
            self.decoder,
        )

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

    def write_downloads(self, rankings: list[tuple[str, Ranking]]) -> tuple[Path, Path, Path]:
        """A request's CSV, JSON and zip, in a new folder of the page's downloads."""
        return view.write_downloads(rankings, self.model_name, self.downloads.new_folder())

    def embedded_prompts(self, images: Any) -> list[str]:
        """The distinct prompts the images carry in their files (none if they carry none)."""
        from .requests import gallery_paths

        try:
            groups, _, _ = plan_prompts("", gallery_paths(images)[: self.settings.max_images], self.roots)
        except InputError:
            return []
        return [g.prompt for g in groups]

    def judges_info(self) -> str:
        """The "Also judge with" box's line, from the judges' records: the paper's baselines and the others."""
        offered = [spec(j) for j in self.settings.judges]
        baselines = [s.label for s in offered if s.paper_accuracy is not None]
        newer = [s.label for s in offered if s.paper_accuracy is None]
        parts = [f"the paper's baselines ({', '.join(baselines)})"] if baselines else []
        parts += [f"newer judges ({', '.join(newer)})"] if newer else []
        return " and ".join(parts) + ", side by side"

    def about(self, max_upload: str) -> str:
        """The page's "what the score means" and limits, from the judges' records and the settings."""
        main = primary()
        others = " ".join(f"{spec(j).label}: {spec(j).meaning}." for j in self.settings.judges)
        return f"""
**What the score means.** {main.label} ([Xu et al., 2023](https://arxiv.org/abs/2304.05977)) predicts which
image people would prefer for a prompt, trained on 137k expert comparisons: {main.meaning}. Scores are
normalised: **0 is an average generation**, higher is better. Compare images *for the same prompt*; a score on
its own says little.

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
