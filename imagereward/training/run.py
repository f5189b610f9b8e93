"""A training run: the original's loop (`train.py`) around `RewardTrainer.step`, with the held-out check built in.

- The pairs' prompts are split (`heldout.split_by_prompt`, seeded); the held-out pairs are never trained on and
  their prompts are written to `heldout_prompts.json`.
- Each epoch the training pairs come in an order drawn from a generator seeded with `seed + epoch` (a resumed run
  meets them in the same order); batches of `batch_size`, the last one partial (as the original's DataLoader);
  an optimizer step every `accumulation_steps` of them, on one learning-rate schedule over the whole run.
- Before training, every `eval_every` optimizer steps (if set) and after each epoch, the held-out pairs are
  scored: the model's agreement and pairwise loss, beside the untuned model's (the first evaluation) and every
  other judge's (scored once). The best held-out loss is kept in `output_dir` (`ImageReward.pt`,
  `med_config.json`), as the original keeps its best validation loss; after `patience` evaluations without a
  better one, the run stops. Without a held-out set the last weights are saved.
- `output_dir/state.pt` holds what resuming needs (the trainable weights, Adam, the counters, the RNG, the
  evaluations so far), written every `checkpoint_every` steps and after each epoch; `resume=True` continues
  from it, ending where an unbroken run ends.
- `log.jsonl`: each optimizer step's loss, accuracy and learning rate, and each evaluation; `report.json` and
  the printed table: the held-out agreement before, during and after, beside the other judges.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ..errors import InputError
from .heldout import Score, score_judge, score_rewards, split_by_prompt, table
from .pairs import Pair
from .schedule import schedule_steps
from .trainer import RewardTrainer

STATE = "state.pt"


@dataclass
class RunResult:
    """The run's outcome: where the model is, each evaluation, the other judges' scores, why it stopped."""

    output_dir: Path
    evaluations: list[Score]
    judges: list[Score]
    stopped: str
    train_pairs: int
    heldout_pairs: int
    skipped: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "output_dir": str(self.output_dir),
            "train_pairs": self.train_pairs,
            "heldout_pairs": self.heldout_pairs,
            "stopped": self.stopped,
            "evaluations": [s.as_dict() for s in self.evaluations],
            "judges": [s.as_dict() for s in self.judges],
            "skipped": self.skipped,
        }

    def table(self) -> str:
        untuned = [Score("untuned", s.agreed, s.total, s.loss, s.step) for s in self.evaluations[:1]]
        best = min(self.evaluations[1:], key=lambda s: s.loss if s.loss is not None else math.inf, default=None)
        rows = untuned + (
            [Score(f"trained (best, step {best.step})", best.agreed, best.total, best.loss)] if best else []
        )
        return table(rows + list(self.judges))


def check_output(output_dir: str | Path, resume: bool) -> None:
    """Refuses, before any model loads, an output folder a new run would overwrite, or a resume with nothing
    to resume.

    Raises:
        InputError: the sentence saying what to do.
    """
    path = Path(output_dir)
    if resume:
        if not (path / STATE).is_file():
            raise InputError(f"--resume: {path} holds no {STATE} to resume from")
    elif path.exists() and any(path.iterdir()):
        raise InputError(f"{path} exists and is not empty: pass --resume to continue its run, or give a new folder")


def train(
    trainer: RewardTrainer,
    pairs: Sequence[Pair],
    output_dir: str | Path,
    judges: dict[str, Any] | None = None,
    resume: bool = False,
    progress: Callable[[int], None] | None = None,
    trackers: Sequence[Any] = (),
    say: Callable[[str], None] | None = None,
) -> RunResult:
    """Runs the training (see the module doc) and returns its result.

    Raises:
        InputError: too few pairs to train on, or nothing to resume.
    """
    config = trainer.config
    output_dir = Path(output_dir)
    train_pairs, heldout = split_by_prompt(pairs, config.heldout, config.seed)
    if not train_pairs:
        raise InputError(f"{len(pairs)} pairs leave none to train on once {config.heldout:.0%} of prompts are held out")
    batches = math.ceil(len(train_pairs) / config.batch_size)
    trainer.schedule_total = config.total_steps or schedule_steps(config, batches)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "heldout_prompts.json").write_text(
        json.dumps(sorted({p.prompt for p in heldout}), indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    state: dict[str, Any] = {"epoch": 0, "batch": 0, "evaluations": [], "best": math.inf, "since_best": 0}
    if resume:
        saved = torch.load(output_dir / STATE, map_location="cpu", weights_only=False)
        trainer.load_state_dict(saved["trainer"])
        torch.set_rng_state(saved["rng"])
        state = saved["run"]
    evaluations = [Score(**s) for s in state["evaluations"]]
    judge_scores = [score_judge(name, judge, heldout) for name, judge in (judges or {}).items()] if heldout else []
    skipped: list[str] = []
    for tracker in trackers:
        tracker.store_init_configuration(
            {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in config.as_dict().items()}
        )

    def evaluate() -> bool:
        """Scores the held-out pairs; saves the model when its loss is the best so far; True to stop."""
        if not heldout:
            return False
        rewards, missed = trainer.evaluate(heldout)
        skipped.extend(m for m in missed if m not in skipped)
        score = score_rewards("trained" if evaluations else "untuned", rewards, trainer.steps)
        evaluations.append(score)
        state["evaluations"] = [vars(s) for s in evaluations]
        _log(output_dir, {"evaluation": score.as_dict()})
        for tracker in trackers:
            tracker.log(
                {"heldout/loss": score.loss or 0.0, "heldout/agreement": score.share or 0.0}, step=trainer.steps
            )
        if say is not None:
            say(
                f"held out, step {trainer.steps}: agreement {score.share:.1%} ({score.agreed}/{score.total}), loss {score.loss:.4f}"
            )
        if len(evaluations) > 1 and score.loss is not None and score.loss < state["best"]:
            state["best"], state["since_best"] = score.loss, 0
            trainer.save(output_dir)
        elif len(evaluations) > 1:
            state["since_best"] += 1
        return config.patience is not None and state["since_best"] >= config.patience

    stopped = "every epoch ran"
    if not evaluations:
        evaluate()
    done = False
    while state["epoch"] < config.epochs and not done:
        epoch = state["epoch"]
        order = torch.randperm(len(train_pairs), generator=torch.Generator().manual_seed(config.seed + epoch)).tolist()
        for b in range(state["batch"], batches):
            chosen = [train_pairs[i] for i in order[b * config.batch_size : (b + 1) * config.batch_size]]
            out = trainer.step(chosen)
            skipped.extend(s for s in out.skipped if s not in skipped)
            state["batch"] = b + 1
            if not out.stepped:
                continue
            line = {
                "step": trainer.steps,
                "epoch": epoch,
                "loss": out.loss.item(),
                "accuracy": out.accuracy,
                "lr": out.lr,
            }
            _log(output_dir, line)
            for tracker in trackers:
                tracker.log(
                    {"train/loss": line["loss"], "train/accuracy": out.accuracy, "lr": out.lr}, step=trainer.steps
                )
            if progress is not None:
                progress(1)
            if config.eval_every and trainer.steps % config.eval_every == 0 and evaluate():
                done, stopped = True, f"no better held-out loss in {config.patience} evaluations"
                break
            if config.checkpoint_every and trainer.steps % config.checkpoint_every == 0:
                _save_state(trainer, state, output_dir)
        if done:
            break
        state["epoch"], state["batch"] = epoch + 1, 0
        if not config.eval_every and evaluate():
            done, stopped = True, f"no better held-out loss in {config.patience} evaluations"
        _save_state(trainer, state, output_dir)
    if not heldout:
        trainer.save(output_dir)
    trainer.model.eval()
    for tracker in trackers:
        tracker.finish()
    result = RunResult(output_dir, evaluations, judge_scores, stopped, len(train_pairs), len(heldout), skipped)
    (output_dir / "report.json").write_text(json.dumps(result.as_dict(), indent=1) + "\n", encoding="utf-8")
    return result


def _save_state(trainer: RewardTrainer, state: dict[str, Any], output_dir: Path) -> None:
    """`state.pt`, written whole then renamed, so a crash never leaves half a state."""
    temporary = output_dir / (STATE + ".tmp")
    torch.save({"trainer": trainer.state_dict(), "rng": torch.get_rng_state(), "run": dict(state)}, temporary)
    temporary.replace(output_dir / STATE)


def _log(output_dir: Path, line: dict[str, Any]) -> None:
    with open(output_dir / "log.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")


def trackers_for(names: str | None, logging_dir: str | Path) -> list[Any]:
    """accelerate's trackers by name ("tensorboard", "wandb", ..., comma-separated), writing under
    `logging_dir`.

    Raises:
        InputError: an unknown name (the known ones listed), or a tracker whose package is not installed.
    """
    if not names:
        return []
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS

    out = []
    for name in [n.strip() for n in names.split(",") if n.strip()]:
        if name not in LOGGER_TYPE_TO_CLASS:
            raise InputError(f"--report-to {name}: use one of {', '.join(LOGGER_TYPE_TO_CLASS)}")
        try:
            out.append(LOGGER_TYPE_TO_CLASS[name]("imagereward-train", logging_dir=str(logging_dir)))
        except (ImportError, ModuleNotFoundError) as e:
            raise InputError(
                f"--report-to {name} needs its package ({e}); install it, e.g. pip install {name}"
            ) from None
    return out
