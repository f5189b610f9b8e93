"""What every judge is: its record (`JudgeSpec`), the machinery all judges share (`Judge`), and the original's
API of the baselines (`Baseline`).

A judge (ImageReward, CLIP, BLIP, Aesthetic, PickScore, HPSv2.1) is an `nn.Module` that mixes in `Judge` and says
only what differs, in hooks: how it reads a prompt (`tokenize`), how decoded pixels become features
(`features_from_pixels`), how features and a prompt become scores (`scores_from_features`) and, where it can,
how a score that came out inf or NaN is computed again (`rescore`: ImageReward's float32 copy of the weights
where float16 overflowed). `Judge` does the rest: features cached by content, batches, decoding ahead of the
model (`decoding.Decoder`), one result per input.

Which verb to use:

- `score(prompt, image or images)`, `inference_rank(prompt, images)`: the original's API and return types.
- `rewards(prompt, images)`: the scores of many inputs, batched; the first input that fails raises.
- `try_rewards(prompt, images)`: the same, with an input's error in its place.
- `results(prompt, images)`: `Scored(score, dtype)` or the error per input (which precision scored it).
- `score_decoded(prompt, decoded, names)`: the device half, for pixels decoded elsewhere (a server that
  decodes on the CPU and scores on a GPU worker, several judges on one decoding).
- `score_pairs(prompts, decoded)`: one prompt per image (bulk scoring, reward servers).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, NamedTuple, Sequence

import torch
from torch import nn

from ..errors import ImageError, NonFiniteRewardError
from ..images import reading as imgs
from ..images.decoding import Decoded, Decoder, Decoding, as_batch, fill_repeats, first_occurrences
from ..images.reading import ImageInput
from ..images.transforms import ORIGINAL_224, Preprocessing
from .cache import EmbeddingCache
from .reading import Reading, ignoring, reading
from .sources import Weights

DEFAULT_BATCH_SIZE = 32
DEFAULT_CACHE_SIZE = 256
# A job of files this many batches long decodes in worker processes by default on CUDA.
PROCESS_DECODE_BATCHES = 4


@dataclass(frozen=True)
class JudgeSpec:
    """One judge, written once in its own module (as open_clip's `_pcfg` keeps a model's weights and its
    preprocessing together); `judges.specs()` reads them, and every table, loader and page text comes from them.

    Attributes:
        name: how `load_judge`, the command line and the evaluation name it (`available_judges()`).
        label: how tables, the page and the API name its scores (`score_<label>`).
        load: `load(device=None, dtype=None, download_root=None)` -> the judge (ImageReward's also takes
            `weights=`, a registry name or a path).
        fetch: `fetch(download_root)` puts its files into `download_root` (or the Hugging Face cache).
        preprocessing: how its original prepares an image (known before the judge is loaded: bulk scoring
            decodes in other processes than the judges').
        meaning: what its score means, for people reading a table of them.
        weights: where its files come from, as data (`sources.WeightsFile` by URL, `sources.HubFile` of a hub
            repo), in the order its `fetch` returns them; `sources.fetch_file` gets any of them.
        prompt_tokens: how many tokens of a prompt it reads, start and end included (0: it ignores the prompt).
        paper_accuracy: its preference accuracy in ImageReward's Table 2 (percent), where the paper gives one.
        choice: its "choice" among images scored together, where its original defines one (PickScore's
            softmax).
        primary: the package's own judge (`imagereward.load`), which ranks on the page; the others are
            `load_score`'s.
        benchmark_dtype: the precision the original's `test-benchmark.py` runs it in on every device ("fp32",
            "fp16"), where the original benchmarks it; `imagereward benchmark` runs it so by default.
        differentiable: it has a gradient path from a generator's pixels to its score (`score_gard`,
            `differentiable_rewards`), so reward-feedback training can use it.
    """

    name: str
    label: str
    load: Callable[..., Judge]
    fetch: Callable[[str | Path | None], object]
    preprocessing: Preprocessing
    meaning: str
    weights: tuple[Weights, ...]
    prompt_tokens: int
    paper_accuracy: float | None = None
    choice: Callable[[Sequence[float]], list[float]] | None = None
    primary: bool = False
    benchmark_dtype: str | None = None
    differentiable: bool = False

    @property
    def files(self) -> tuple[str, ...]:
        """The files it reads, by name (from `weights`)."""
        return tuple(dict.fromkeys(w.filename for w in self.weights))


class Scored(NamedTuple):
    """One image's score and the precision that computed it (float32 where float16 overflowed on it)."""

    score: float
    dtype: torch.dtype

    @property
    def reward(self) -> float:
        """The score, under the original's word for it."""
        return self.score

    @property
    def precision(self) -> str:
        """The dtype's name as result rows write it: `float16`, `float32`."""
        return str(self.dtype).removeprefix("torch.")


Result = Scored | ImageError


class Judge:
    """Batching, the feature cache and decoding ahead of the model, for a judge that is also an `nn.Module`.

    Attributes:
        spec: the judge's record.
        name: the name it was loaded by (a registry name, or the path of its weights).
        batch_size: images per forward pass.
        embedding_cache: image features by content (`embedding_cache.resize(0)` disables it).
        decode_processes: worker processes for decoding files: `None` (default) uses them on CUDA for jobs of at
            least `PROCESS_DECODE_BATCHES` batches of files, where decoding threads cannot keep up with the GPU;
            0 never; N uses N workers for any job of two files or more. Other jobs decode in threads.
        decoder: the `decoding.Decoder` its batched scoring uses: its own, made on first use and shut down by
            `close()` (or a `with` block), or a shared one assigned to it (which its owner closes).
    """

    spec: ClassVar[JudgeSpec]
    preprocessing: Preprocessing = ORIGINAL_224
    non_finite_reason = "its score is not a finite number; the weights may hold inf or NaN"
    # What `tokenize` returns, accepted as it is where a prompt is expected (None: only strings).
    tokens_type: type | None = None

    def _init_judge(
        self, name: str, batch_size: int = DEFAULT_BATCH_SIZE, cache_size: int = DEFAULT_CACHE_SIZE
    ) -> None:
        self.name = name
        self.batch_size = batch_size
        self.embedding_cache = EmbeddingCache(cache_size)
        self.decode_processes: int | None = None
        self._decoder: Decoder | None = None
        self._owns_decoder = False

    # ------------------------------------------------------------------------------ what a judge says
    @property
    def device(self) -> torch.device:
        raise NotImplementedError

    @property
    def dtype(self) -> torch.dtype:
        raise NotImplementedError

    def tokenize(self, prompt: str) -> Any:
        """One prompt as the judge reads it."""
        raise NotImplementedError

    def accepts(self, tokens: Any) -> bool:
        """Whether `tokens` are this judge's own tokens (made by its `tokenize`)."""
        return self.tokens_type is not None and isinstance(tokens, self.tokens_type)

    def features_from_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """Decoded pixels (N, 3, S, S) on the device (uint8, or float32 for the letterbox) -> one feature tensor
        per image (N, ...), what the cache keeps."""
        raise NotImplementedError

    def scores_from_features(self, tokens: Any, features: torch.Tensor) -> torch.Tensor:
        """Features (N, ...) and one tokenized prompt -> scores (N,) float32 on the CPU."""
        raise NotImplementedError

    def prompt_pieces(self, text: str) -> list[str]:
        """`text`'s prompt tokens as this judge tokenizes it, as strings (no start or end token): what `reading`
        splits the prompt with."""
        raise NotImplementedError

    def reading(self, prompt: str) -> Reading:
        """How much of `prompt` this judge reads, split where its tokenizer stops (`reading.Reading`)."""
        if self.spec.prompt_tokens == 0:
            return ignoring(prompt)
        return reading(prompt, self.prompt_pieces, self.spec.prompt_tokens - 2)  # less the start and end tokens

    def pair_scores(self, prompts: Sequence[str], features: torch.Tensor) -> list[float]:
        """One score per row of `features`, each with its own prompt: one pass per distinct prompt (a judge
        that can batch different prompts together overrides this)."""
        rows_of: dict[str, list[int]] = {}
        for k, prompt in enumerate(prompts):
            rows_of.setdefault(prompt, []).append(k)
        out = [0.0] * len(prompts)
        for prompt, rows in rows_of.items():
            for k, score in zip(rows, self.scores_from_features(self.prompt_tokens(prompt), features[rows]).tolist()):
                out[k] = score
        return out

    def rescore(self, tokens: Any, decoded: Sequence[Decoded]) -> list[Scored] | None:
        """Scores computed again for images whose score came out inf or NaN, in a safer precision; None where
        the judge has none (then they are `NonFiniteRewardError`s)."""
        return None

    def _apply(self, fn, recurse=True):  # type: ignore[no-untyped-def]
        # Moving or casting the judge invalidates the features made before.
        self.embedding_cache.clear()
        return super()._apply(fn, recurse)  # type: ignore[misc]

    # ---------------------------------------------------------------------------------------- decoding
    @property
    def decoder(self) -> Decoder:
        if self._decoder is None:
            self._decoder, self._owns_decoder = Decoder(), True
        return self._decoder

    @decoder.setter
    def decoder(self, shared: Decoder) -> None:
        self.close()
        self._decoder, self._owns_decoder = shared, False

    def close(self) -> None:
        """Shuts down the decoding threads and processes of the judge's own decoder (not a shared one)."""
        if self._decoder is not None and self._owns_decoder:
            self._decoder.close()

    def __enter__(self) -> Judge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def decode(self, images: Sequence[ImageInput], names: Sequence[str]) -> list[Decoding]:
        """Decodes and preprocesses every input as this judge reads it (the CPU half of scoring); a file given
        several times is decoded once."""
        return self.decoder.decode(images, names, [self.preprocessing])[self.preprocessing]

    def _processes_for(self, images: Sequence[ImageInput], batch_size: int) -> int:
        """How many decoding processes a job asks for (0: threads; see `decode_processes`)."""
        if self.decode_processes is not None:
            return self.decode_processes
        cores = os.cpu_count() or 1
        long_job = len(images) >= PROCESS_DECODE_BATCHES * batch_size
        return min(32, cores) if self.device.type == "cuda" and cores >= 4 and long_job else 0

    # ----------------------------------------------------------------------------------------- scoring
    def prompt_tokens(self, prompt: Any) -> Any:
        """`prompt` tokenized (a string), or as it is when it is already this judge's tokens (`accepts`).

        Raises:
            TypeError: anything else (e.g. a list of prompts: one prompt at a time).
        """
        if self.accepts(prompt):
            return prompt
        if not isinstance(prompt, str):
            raise TypeError(f"score one prompt at a time: `prompt` must be a string, got {type(prompt).__name__}")
        return self.tokenize(prompt)

    def rewards(self, prompt: str, images: Sequence[ImageInput], batch_size: int | None = None) -> list[float]:
        """Scores of `images` for one prompt, in input order; the first image that fails raises.

        Args:
            prompt: one prompt.
            images: paths, PIL images, encoded bytes, file objects or uint8 arrays (`images.reading`).
            batch_size: images per forward pass (default `self.batch_size`).

        Returns:
            One score per image.

        Raises:
            ImageError: an input could not be read or scored (named, with the reason).
        """
        results = self.try_rewards(prompt, images, batch_size)
        for result in results:
            if isinstance(result, ImageError):
                raise result
        return results  # type: ignore[return-value]

    def try_rewards(
        self,
        prompt: str,
        images: Sequence[ImageInput],
        batch_size: int | None = None,
        names: Sequence[str] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> list[float | ImageError]:
        """Like `rewards`, but an image that cannot be read or scored gives its `ImageError` in its place and
        the others are still scored.

        Args:
            names: how to name the images in errors (default: their paths, or their type and position).
            progress: called with the number of images done, as they are done.

        Returns:
            A score or an `ImageError` per image, in input order.
        """
        return [
            r.score if isinstance(r, Scored) else r
            for r in self.results(prompt, images, batch_size=batch_size, names=names, progress=progress)
        ]

    def results(
        self,
        prompt: Any,
        images: Sequence[ImageInput],
        batch_size: int | None = None,
        names: Sequence[str] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> list[Result]:
        """Scores with their precision: images decoded ahead of the model (`decoder`), a file given several
        times decoded and scored once.

        Args:
            prompt: one prompt, or this judge's tokens of one (`tokenize`).
            images, batch_size, names, progress: as `try_rewards`.

        Returns:
            `Scored(score, dtype)` or `ImageError` per input, in input order.
        """
        tokens = self.prompt_tokens(prompt)
        names = list(names) if names is not None else [imgs.describe(image, i) for i, image in enumerate(images)]
        size = check_batch_size(batch_size or self.batch_size)
        out: list[Result | None] = [None] * len(images)
        _, repeats = first_occurrences(images)
        processes = self._processes_for(images, size)
        batches = self.decoder.batches(images, names, self.preprocessing, size, processes, reuse_buffers=True)
        for indices, decoded in batches:
            scored = self.score_decoded(tokens, decoded, [names[i] for i in indices], batch_size=len(decoded))
            for i, result in zip(indices, scored):
                out[i] = result
            if progress is not None:
                progress(len(decoded))
        fill_repeats(out, repeats, names)
        if progress is not None and repeats:
            progress(len(repeats))
        return out  # type: ignore[return-value]

    @torch.inference_mode()
    def score_decoded(
        self, prompt: Any, decoded: Sequence[Decoding | ImageError], names: Sequence[str], batch_size: int | None = None
    ) -> list[Result]:
        """Scores of decoded images (the device half of scoring); errors pass through in their place. A score
        that is not finite is computed again where the judge can (`rescore`), else it is a
        `NonFiniteRewardError` named from `names`.

        Args:
            prompt: one prompt, or this judge's tokens of one.
            decoded: pixels as this judge's `preprocessing` makes them (`Decoder`), or errors.
            names: one name per item, for errors.
            batch_size: images per forward pass (default `self.batch_size`).

        Returns:
            `Scored` or `ImageError` per item, in order.
        """
        tokens = self.prompt_tokens(prompt)
        size = check_batch_size(batch_size or self.batch_size)
        out: list[Result] = list(decoded)  # type: ignore[arg-type]
        for start in range(0, len(decoded), size):
            good = [i for i in range(start, min(start + size, len(decoded))) if isinstance(decoded[i], Decoded)]
            if good:
                features = self.image_features([decoded[i] for i in good])  # type: ignore[misc]
                for i, score in zip(good, self.scores_from_features(tokens, features).tolist()):
                    out[i] = Scored(score, self.dtype)
        return self._finite(lambda rows: tokens, out, decoded, names)

    @torch.inference_mode()
    def score_pairs(
        self, prompts: Sequence[str], decoded: Sequence[Decoded], names: Sequence[str] | None = None
    ) -> list[Result]:
        """One score per (prompt, image) pair, prompts differing from pair to pair: one image-encoder pass for
        all the images, then the prompts' part (`pair_scores`). A score that is not finite is computed again
        where the judge can, else it is a `NonFiniteRewardError`.

        Args:
            prompts: one prompt per image.
            decoded: the images, decoded as this judge's `preprocessing` makes them.
            names: one name per pair, for errors (default `pair N`).

        Returns:
            `Scored` or `NonFiniteRewardError` per pair, in order.

        Raises:
            ValueError: not as many prompts as images.
        """
        if len(prompts) != len(decoded):
            raise ValueError(f"{len(prompts)} prompts for {len(decoded)} images; give one prompt per image")
        names = list(names) if names is not None else [f"pair {k + 1}" for k in range(len(decoded))]
        scores = self.pair_scores(prompts, self.image_features(decoded)) if decoded else []
        out: list[Result] = [Scored(s, self.dtype) for s in scores]
        return self._finite(lambda k: self.prompt_tokens(prompts[k]), out, decoded, names)

    def _finite(
        self, tokens_of: Callable[[int], Any], out: list[Result], decoded: Sequence[Any], names: Sequence[str]
    ) -> list[Result]:
        """`out` with every non-finite score rescored (grouped by prompt tokens) or named as an error."""
        for k in [k for k, r in enumerate(out) if isinstance(r, Scored) and not math.isfinite(r.score)]:
            again = self.rescore(tokens_of(k), [decoded[k]])
            out[k] = again[0] if again else out[k]
            if not math.isfinite(out[k].score):  # type: ignore[union-attr]
                out[k] = NonFiniteRewardError(names[k], self.non_finite_reason)
        return out

    @torch.inference_mode()
    def image_features(self, decoded: Sequence[Decoded]) -> torch.Tensor:
        """Per-image features (N, ...) of decoded images, from the cache where possible (a picture given
        several times is encoded once)."""
        found = {d.key: self.embedding_cache.get(d.key) for d in decoded}
        missing = {d.key: d.pixels for d in decoded if found[d.key] is None}
        if missing:
            batch = as_batch(list(missing.values()))  # decoding processes' shared rows: no copy
            if self.device.type == "cuda" and batch._base is None:
                batch = batch.pin_memory()
            features = self.features_from_pixels(batch.to(self.device, non_blocking=True))
            caching = self.embedding_cache.max_entries > 0
            for j, key in enumerate(missing):
                found[key] = features[j]
                if caching:  # a clone, so that one cached image does not keep its whole batch alive
                    self.embedding_cache.put(key, features[j].clone() if len(missing) > 1 else features[j])
        return torch.stack([found[d.key] for d in decoded])  # type: ignore[misc]


class Baseline(Judge, nn.Module):
    """A judge with the original's baseline API (`CLIPScore`, `BLIPScore`, `AestheticScore` in `image-reward`
    1.5), whose return types are kept: `score(prompt, path)` is a float; `score(prompt, list)` is what
    `inference_rank` gives as rewards, a list (a float for a list of one); `inference_rank(prompt, [one])` is
    `(1, float)`, because the original squeezes its (1, 1) result to a scalar."""

    def __init__(self, name: str, batch_size: int = DEFAULT_BATCH_SIZE, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        nn.Module.__init__(self)
        self._init_judge(name, batch_size, cache_size)

    def score(self, prompt: str, image_path: ImageInput | Sequence[ImageInput]) -> float | list[float]:
        """The score of one image (a float), or the rewards of `inference_rank` for a list."""
        if isinstance(image_path, list):
            return self.inference_rank(prompt, image_path)[1]
        return self.rewards(prompt, [image_path])[0]

    def inference_rank(
        self, prompt: str, generations_list: Sequence[ImageInput]
    ) -> tuple[list[int], list[float]] | tuple[int, float]:
        """`(ranking, rewards)` as the original returns them (1-based ranks; `(1, reward)` for one image)."""
        rewards = self.rewards(prompt, generations_list)
        if len(rewards) == 1:
            return 1, rewards[0]
        return ranks_from_rewards(rewards), rewards

    def differentiable_rewards(self, prompts: str | Sequence[str], images: torch.Tensor) -> torch.Tensor:
        """Scores with gradients to `images`, for reward-feedback training of a generator: the judge's own
        preprocessing on the tensor (`images.transforms.tensor_pixels`: the letterbox exactly; a resize-and-crop
        exactly when the images are the judge's size, else within Pillow's rounding), its network, its score.
        Works with the weights frozen.

        Args:
            prompts: one prompt for every image, or one per image.
            images: float (B, 3, H, W) in [0, 1], e.g. a VAE's output.

        Returns:
            (B,) float32 scores.

        Raises:
            ValueError: a judge with no gradient path (the reason given), images that are not a float
                (B, 3, H, W) tensor, or not one prompt per image.
        """
        from ..images.transforms import tensor_pixels

        spec = getattr(type(self), "spec", None)
        if spec is None or not spec.differentiable:
            raise ValueError(
                f"{self.name} has no differentiable path: its score is not computed from the image's pixels with "
                "gradients here (`judges.specs()` says which judges have one)"
            )
        batch = images.shape[0] if isinstance(images, torch.Tensor) and images.ndim == 4 else None
        prompts = [prompts] * (batch or 1) if isinstance(prompts, str) else list(prompts)
        if batch is not None and len(prompts) != batch:
            raise ValueError(f"{len(prompts)} prompts for {batch} images; give one prompt, or one per image")
        features = self.features_with_grad(tensor_pixels(images, self.preprocessing))
        return torch.cat([self.scores_with_grad(self.tokenize(p), features[k : k + 1]) for k, p in enumerate(prompts)])


def check_batch_size(size: int) -> int:
    """Raises: ValueError: not a whole number >= 1."""
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"batch_size must be a whole number >= 1, got {size!r}")
    return size


def ranks_from_rewards(rewards: Sequence[float]) -> list[int]:
    """1-based rank of each reward, best first, as the original's `inference_rank` computes it (two
    `torch.sort`s)."""
    values = torch.tensor(list(rewards), dtype=torch.float32)
    _, order = torch.sort(values, dim=0, descending=True)
    _, ranks = torch.sort(order, dim=0)
    return (ranks + 1).tolist()
