"""ReFL, step for step the original trainer: the fixture `tests/fixtures/refl/` is what the original `ReFL.py`
computed on a tiny Stable Diffusion with the tiny reward model (two optimizer steps, every random draw recorded),
checked here as its README suggests, within the tolerances it sets (at least 5x its float32 noise floor): each
step teacher-forced, the optimizer alone fed the stored gradients, both steps chained, and the tokenizers."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("accelerate")

from imagereward.errors import InputError  # noqa: E402
from imagereward.refl import ReFLConfig, ReFLTrainer, load_prompts  # noqa: E402
from imagereward.refl.tokens import ClipTokens, reward_tokens  # noqa: E402
from originals import FIXTURES, PARITY  # noqa: E402

REFL = FIXTURES / "refl"
STEPS = json.loads((REFL / "steps.json").read_text())
ARRAYS = np.load(REFL / "steps.npz")
NOISE = np.load(REFL / "noise_state.npz")
PROMPTS = [p["text"] for p in json.loads((REFL / "prompts.json").read_text())]
TOL = STEPS["recommended_tolerances"]
LR = STEPS["args"]["learning_rate"]
SHAPE = (2, 4, 64, 64)


def config() -> ReFLConfig:
    """The fixture's run: the original's defaults but for these flags (steps.json -> trainer_argv)."""
    a = STEPS["args"]
    return ReFLConfig.original(
        learning_rate=a["learning_rate"],
        grad_scale=a["grad_scale"],
        max_grad_norm=a["max_grad_norm"],
        train_batch_size=a["train_batch_size"],
        gradient_accumulation_steps=a["gradient_accumulation_steps"],
        max_train_steps=a["max_train_steps"],
        seed=a["seed"],
    )


@pytest.fixture
def trainer():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the fixture was recorded (more threads move float32 round-off)
    try:
        yield ReFLTrainer(REFL / "pipeline", PARITY, config(), device="cpu")
    finally:
        torch.set_num_threads(threads)


def generator_before(step: int) -> torch.Generator:
    """torch's generator as it stood before `step`'s first draw: the recorded state, advanced by the draws of
    the steps before (the initial latents, then one noise tensor per DDPM step up to the trained one)."""
    g = torch.Generator().set_state(torch.from_numpy(NOISE["torch_rng_state"]))
    for k in range(step):
        for _ in range(1 + STEPS["steps"][k]["mid_timestep"] + 1):
            torch.randn(SHAPE, generator=g)
    return g


def rel_to_max(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


def tolerance(name: str, chained: bool = False) -> float:
    """The fixture's recommended tolerance (steps.json -> recommended_tolerances), per step or chained."""
    return float(TOL["chained" if chained else "per_step"][name])


def load_weights(trainer: ReFLTrainer, prefix: str) -> None:
    unet = trainer.accelerator.unwrap_model(trainer.unet)
    with torch.no_grad():
        for name, p in unet.named_parameters():
            p.copy_(torch.from_numpy(ARRAYS[f"{prefix}/{name}"]))


def adamw_after_step0(trainer: ReFLTrainer) -> None:
    """AdamW's state after step 0, as the fixture's README gives it: one step of clipped gradients c0 * g0."""
    unet = trainer.accelerator.unwrap_model(trainer.unet)
    c0 = STEPS["steps"][0]["clip_coefficient"]
    optimizer = trainer.optimizer.optimizer
    for name, p in unet.named_parameters():
        g = torch.from_numpy(ARRAYS[f"s0/grad/{name}"]) * c0
        optimizer.state[p] = {
            "step": torch.tensor(1.0),
            "exp_avg": (1 - 0.9) * g,
            "exp_avg_sq": (1 - 0.999) * g * g,
        }


def check_step(trainer: ReFLTrainer, k: int, out, chained: bool = False) -> None:
    step, rec = STEPS["steps"][k], out.record
    assert out.mid_timestep == step["mid_timestep"]
    assert np.array_equal(rec["initial_latents"].numpy(), ARRAYS[f"s{k}/initial_latents"])  # the draws, exactly
    for name in ("encoder_hidden_states", "latents_mid", "noise_pred_mid", "pred_original_sample"):
        assert rel_to_max(rec[name], ARRAYS[f"s{k}/{name}"]) <= tolerance(f"{name}_rel_to_max", chained), name
    if f"s{k}/reward_pixels" in ARRAYS:
        assert rel_to_max(rec["reward_pixels"], ARRAYS[f"s{k}/reward_pixels"]) <= tolerance(
            "reward_pixels_rel_to_max", chained
        )
    assert np.abs(out.rewards.numpy() - ARRAYS[f"s{k}/rewards"]).max() <= tolerance("rewards_abs", chained)
    assert abs(out.loss.item() / float(ARRAYS[f"s{k}/loss"]) - 1) <= tolerance("loss_rel", chained)
    assert abs(out.grad_norm / float(ARRAYS[f"s{k}/grad_norm"]) - 1) <= tolerance("grad_norm_rel", chained)
    names = STEPS["unet_parameters"]
    assert [n[0] for n in names] == list(rec["grad"])  # the optimizer's order
    worst = max(rel_to_max(g, ARRAYS[f"s{k}/grad/{n}"]) for n, g in rec["grad"].items())
    assert worst <= tolerance("grad_rel_to_tensor_max_worst", chained)
    unet = trainer.accelerator.unwrap_model(trainer.unet)
    off = [np.abs(p.detach().numpy() - ARRAYS[f"s{k}/weights_after/{n}"]) / LR for n, p in unet.named_parameters()]
    assert max(float(o.max()) for o in off) <= tolerance("weights_abs_max_in_lr", chained)
    fraction = sum(int((o > 0.01).sum()) for o in off) / sum(o.size for o in off)
    assert fraction <= tolerance("weights_fraction_off_by_more_than_1e-2_lr", chained)


@pytest.mark.parametrize("k", [0, 1])
def test_each_step_teacher_forced_is_the_original_s(trainer: ReFLTrainer, k: int) -> None:
    step = STEPS["steps"][k]
    if k == 1:
        load_weights(trainer, "s0/weights_after")
        adamw_after_step0(trainer)
    prompts = [PROMPTS[i] for i in step["prompt_indices"]]
    out = trainer.step(prompts, step["mid_timestep"], generator_before(k), record=True)
    check_step(trainer, k, out)


def test_both_steps_chained_are_the_original_s(trainer: ReFLTrainer) -> None:
    """One generator from the recorded state through both steps: the draws continue from step to step as the
    original's global stream does, each step's variance noise equal to the recorded (by SHA-256)."""
    g = generator_before(0)
    for k, step in enumerate(STEPS["steps"]):
        state = g.get_state()
        out = trainer.step([PROMPTS[i] for i in step["prompt_indices"]], step["mid_timestep"], g, record=True)
        check_step(trainer, k, out, chained=True)
        replay = torch.Generator().set_state(state)
        torch.randn(SHAPE, generator=replay)  # the initial latents
        draws = torch.stack([torch.randn(SHAPE, generator=replay) for _ in range(step["mid_timestep"])])
        assert tuple(draws.shape) == tuple(NOISE[f"s{k}/variance_noise_shape"])
        digest = hashlib.sha256(draws.numpy().tobytes()).digest()
        assert np.frombuffer(digest, dtype=np.uint8).tolist() == NOISE[f"s{k}/variance_noise_sha256"].tolist()


@pytest.mark.parametrize("k", [0, 1])
def test_the_optimizer_alone_fed_the_stored_gradients(trainer: ReFLTrainer, k: int) -> None:
    """Clipping (max_norm / (norm + 1e-6)) and AdamW (decoupled weight decay, bias correction, eps) on the
    stored gradients: tight, so Adam instead of AdamW, another epsilon or no bias correction would fail."""
    if k == 1:
        load_weights(trainer, "s0/weights_after")
        adamw_after_step0(trainer)
    unet = trainer.accelerator.unwrap_model(trainer.unet)
    for name, p in unet.named_parameters():
        p.grad = torch.from_numpy(ARRAYS[f"s{k}/grad/{name}"]).clone()
    norm = float(trainer.accelerator.clip_grad_norm_(trainer.unet.parameters(), trainer.config.max_grad_norm))
    trainer.optimizer.step()
    assert abs(norm / float(ARRAYS[f"s{k}/grad_norm"]) - 1) <= float(TOL["optimizer_only"]["grad_norm_rel"])
    worst = max(
        np.abs(p.detach().numpy() - ARRAYS[f"s{k}/weights_after/{n}"]).max() for n, p in unet.named_parameters()
    )
    assert worst <= float(TOL["optimizer_only"]["weights_abs_max"])


def test_prompts_tokenize_as_the_original_s_slow_clip_tokenizer() -> None:
    """Both tokenizers on every fixture prompt, and the CLIP tokenizer on unusual text (full-width punctuation,
    mojibake, HTML entities, whitespace, markers) as the original's slow `CLIPTokenizer` with ftfy makes it
    (recorded in the reference env), where transformers 5's tokenizer differs."""
    clip = ClipTokens(REFL / "pipeline" / "tokenizer")
    for prompt, expected in zip(PROMPTS, STEPS["prompt_tokens"]):
        assert clip([prompt])[0].tolist() == expected["clip_input_ids"]
        ids, mask = reward_tokens([prompt])
        assert ids[0].tolist() == expected["blip_input_ids"] and mask[0].tolist() == expected["blip_attention_mask"]
    unusual = json.loads((REFL / "unusual_tokens.json").read_text())["rows"]
    for row in unusual:
        assert clip([row["prompt"]])[0].tolist() == row["clip_input_ids"], row["prompt"]
    from transformers import CLIPTokenizer

    fast = CLIPTokenizer.from_pretrained(REFL / "pipeline" / "tokenizer")
    differs = [
        r
        for r in unusual
        if fast(r["prompt"], max_length=77, padding="max_length", truncation=True).input_ids != r["clip_input_ids"]
    ]
    assert differs, "transformers' own tokenizer now matches the original's: the slow tokenizer here may go"


def test_a_step_replays_and_bad_input_is_one_sentence(trainer: ReFLTrainer, tmp_path) -> None:
    """`out.replay()` makes the same step again from the same weights and optimizer state; the trained step is
    drawn from [30, 39] with the seed; bad input names what to fix."""
    unet = trainer.accelerator.unwrap_model(trainer.unet)
    start = {n: p.detach().clone() for n, p in unet.named_parameters()}
    out = trainer.step(PROMPTS[:2], generator=torch.Generator().manual_seed(5))
    assert 30 <= out.mid_timestep <= 39
    again = ReFLTrainer(REFL / "pipeline", PARITY, config(), device="cpu")
    assert again.random.randint(30, 39) == out.mid_timestep  # the seed's draw
    assert all(torch.equal(p, start[n]) for n, p in again.accelerator.unwrap_model(again.unet).named_parameters())
    replayed = again.step(**out.replay())
    assert torch.equal(replayed.rewards, out.rewards) and torch.equal(replayed.loss, out.loss)
    with pytest.raises(InputError, match="list of prompts"):
        trainer.step([])
    with pytest.raises(InputError, match="not a diffusers Stable Diffusion pipeline"):
        ReFLTrainer(tmp_path, PARITY, config())
    with pytest.raises(TypeError, match="unknown ReFL settings"):
        ReFLConfig.original(learning_rat=1e-4)
    saved = trainer.save(tmp_path / "tuned")
    from diffusers import UNet2DConditionModel

    reloaded = UNet2DConditionModel.from_pretrained(saved, subfolder="unet")
    assert all(torch.equal(p, q) for p, q in zip(reloaded.parameters(), unet.parameters()))


def test_the_shipped_prompts_are_the_original_s_and_bad_files_are_named(tmp_path) -> None:
    prompts = load_prompts()
    assert len(prompts) == 10_000 and len(set(prompts)) == 9_803
    assert prompts[0].startswith("brittle, abstract emotion, no faces.")
    assert load_prompts(REFL / "prompts.json") == PROMPTS
    (tmp_path / "p.txt").write_text("a cat\n\n  a dog  \n")
    assert load_prompts(tmp_path / "p.txt") == ["a cat", "a dog"]
    (tmp_path / "bad.json").write_text('{"text": "not a list"}')
    with pytest.raises(InputError, match="not a prompt list"):
        load_prompts(tmp_path / "bad.json")
