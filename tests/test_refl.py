"""ReFL, step for step the original trainer: the fixture `tests/fixtures/refl/` is what the original `ReFL.py`
computed on a tiny Stable Diffusion with the tiny reward model (two optimizer steps, every random draw recorded),
checked here as its README suggests, within the tolerances it sets (at least 5x its float32 noise floor): each
step teacher-forced, the optimizer alone fed the stored gradients, both steps chained, and the tokenizers."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import replace

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
    assert random.randint(30, 39) == out.mid_timestep  # the seed's first draw, as the original's `set_seed` gives
    assert all(torch.equal(p, start[n]) for n, p in again.accelerator.unwrap_model(again.unet).named_parameters())
    replayed = again.step(**out.replay())
    assert torch.equal(replayed.rewards, out.rewards) and torch.equal(replayed.loss, out.loss)
    with pytest.raises(InputError, match="list of prompts"):
        trainer.step([])
    with pytest.raises(InputError, match="is not a diffusers pipeline: it has no model_index.json"):
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


# ------------------------------------------------------------------------------------------ the command line
def refl_args(out, *more: str) -> list[str]:
    args = ["refl", str(REFL / "pipeline"), "--prompts", str(REFL / "prompts.json"), "--output-dir", str(out)]
    args += ["--reward", str(PARITY), "--train-batch-size", "2", "--gradient-accumulation-steps", "1", "--seed", "7"]
    return args + ["--learning-rate", "0.001", "--grad-scale", "1000", "--device", "cpu", "-q", *more]


def test_bad_input_is_one_sentence_before_any_model_loads(tmp_path, capsys, monkeypatch) -> None:
    from imagereward import cli
    from imagereward.refl import trainer

    monkeypatch.setattr(trainer.ReFLTrainer, "__init__", lambda *a, **k: pytest.fail("a model loaded"))
    (tmp_path / "not-a-pipeline").mkdir()
    (tmp_path / "kandinsky").mkdir()
    (tmp_path / "kandinsky" / "model_index.json").write_text('{"_class_name": "KandinskyPipeline"}')
    bad_prompts = tmp_path / "prompts.json"
    bad_prompts.write_text('{"prompts": ["a"]}')
    taken = tmp_path / "taken"
    (taken / "something").mkdir(parents=True)
    cases = [
        (["refl", str(tmp_path / "not-a-pipeline"), "--output-dir", str(tmp_path / "o1")], "not a diffusers pipeline"),
        (
            ["refl", str(tmp_path / "kandinsky"), "--output-dir", str(tmp_path / "o4")],
            "holds a KandinskyPipeline pipeline; ReFL trains StableDiffusionPipeline, StableDiffusionXLPipeline, "
            "StableDiffusion3Pipeline, FluxPipeline pipelines",
        ),
        (
            refl_args(tmp_path / "o2")[:2] + ["--prompts", str(bad_prompts), "--output-dir", str(tmp_path / "o2")],
            "not a prompt list",
        ),
        (refl_args(taken), "exists and is not empty: pass --resume"),
        (
            refl_args(tmp_path / "o5", "--extra-reward", "BLIP=1"),
            "--extra-reward BLIP: BLIP has no differentiable path",
        ),
        (refl_args(tmp_path / "o6", "--extra-reward", "PickScore"), "write NAME=WEIGHT, e.g. PickScore=0.5"),
        (refl_args(tmp_path / "o7", "--resolution", "100"), "--resolution 100: give a multiple of 8"),
        (refl_args(tmp_path / "o3", "--resume"), "holds no checkpoint"),
    ]
    for args, sentence in cases:
        assert cli.main(args) == 2
        assert sentence in capsys.readouterr().err


def test_a_run_resumed_from_its_checkpoint_ends_where_an_unbroken_run_ends(tmp_path) -> None:
    """Three optimizer steps straight, against two then a resume for the third: the same weights, bit for bit
    (accelerate's state: the UNet, AdamW's moments, the schedule and every RNG; the batches' order by epoch)."""
    from diffusers import UNet2DConditionModel

    from imagereward import cli

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert cli.main(refl_args(tmp_path / "straight", "--max-steps", "3", "--checkpointing-steps", "2")) == 0
        assert cli.main(refl_args(tmp_path / "broken", "--max-steps", "2", "--checkpointing-steps", "2")) == 0
        assert (
            cli.main(refl_args(tmp_path / "broken", "--max-steps", "3", "--checkpointing-steps", "2", "--resume")) == 0
        )
    finally:
        torch.set_num_threads(threads)
    straight = UNet2DConditionModel.from_pretrained(tmp_path / "straight", subfolder="unet")
    resumed = UNet2DConditionModel.from_pretrained(tmp_path / "broken", subfolder="unet")
    start = UNet2DConditionModel.from_pretrained(REFL / "pipeline", subfolder="unet")
    assert all(torch.equal(a, b) for a, b in zip(straight.parameters(), resumed.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(straight.parameters(), start.parameters()))
    logged = [json.loads(line) for line in (tmp_path / "broken" / "log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in logged] == [1, 2, 3]
    straight_log = [json.loads(line) for line in (tmp_path / "straight" / "log.jsonl").read_text().splitlines()]
    assert [row["loss"] for row in logged] == [row["loss"] for row in straight_log]
    assert sorted(p.name for p in (tmp_path / "broken").glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-3"]


# ----------------------------------------------------------------------------------- the switches the original lacks
def unet_of(trainer: ReFLTrainer):
    return trainer.accelerator.unwrap_model(trainer.unet)


def one_step(trainer: ReFLTrainer, seed: int = 0, record: bool = False):
    return trainer.step(PROMPTS[:2], mid_timestep=35, generator=torch.Generator().manual_seed(seed), record=record)


def test_lora_trains_only_the_adapter_and_saves_what_load_lora_weights_reads(tmp_path) -> None:
    import re

    from diffusers import StableDiffusionPipeline

    trainer = ReFLTrainer(REFL / "pipeline", PARITY, replace(config(), lora_rank=4), device="cpu")
    unet = unet_of(trainer)
    before = {n: p.detach().clone() for n, p in unet.named_parameters()}
    one_step(trainer)
    changed = [n for n, p in unet.named_parameters() if not torch.equal(p, before[n])]
    assert changed and all(".lora_" in n for n in changed)
    assert all(torch.equal(p, before[n]) for n, p in unet.named_parameters() if ".lora_" not in n)
    saved = trainer.save(tmp_path / "lora")
    assert [p.name for p in saved.iterdir()] == ["pytorch_lora_weights.safetensors"]
    pipe = StableDiffusionPipeline.from_pretrained(REFL / "pipeline", safety_checker=None)
    pipe.load_lora_weights(saved)

    def adapters(model) -> dict:
        return {re.sub(r"\.default(_\d+)?\.", ".", n): p for n, p in model.named_parameters() if ".lora_" in n}

    trained, loaded = adapters(unet), adapters(pipe.unet)
    assert trained.keys() == loaded.keys() and all(torch.equal(trained[k], loaded[k]) for k in trained)


def test_gradient_checkpointing_gives_the_same_step() -> None:
    plain = one_step(ReFLTrainer(REFL / "pipeline", PARITY, config(), device="cpu"), record=True)
    checkpointed = ReFLTrainer(REFL / "pipeline", PARITY, replace(config(), gradient_checkpointing=True), device="cpu")
    again = one_step(checkpointed, record=True)
    assert torch.allclose(again.loss, plain.loss, rtol=1e-6)
    assert all(
        torch.allclose(again.record["grad"][n], g, rtol=1e-5, atol=1e-8) for n, g in plain.record["grad"].items()
    )


def test_ema_saves_the_moving_average_of_the_weights(tmp_path) -> None:
    """diffusers' EMAModel as the original's --use_ema: after two steps the average is 2/11 of the first step's
    weights and 9/11 of the second's (its decay min(0.9999, (1 + n) / (10 + n)) at its second update)."""
    from diffusers import UNet2DConditionModel

    trainer = ReFLTrainer(REFL / "pipeline", PARITY, replace(config(), use_ema=True), device="cpu")
    unet = unet_of(trainer)
    one_step(trainer, 0)
    first = [p.detach().clone() for p in unet.parameters()]
    one_step(trainer, 1)
    second = [p.detach().clone() for p in unet.parameters()]
    saved = UNet2DConditionModel.from_pretrained(trainer.save(tmp_path / "ema"), subfolder="unet")
    for w1, w2, got in zip(first, second, saved.parameters()):
        assert torch.allclose(got, 2 / 11 * w1 + 9 / 11 * w2, atol=1e-6)
    assert any(not torch.equal(got, w2) for w2, got in zip(second, saved.parameters()))


BF16_STEP = """
import sys, torch
from dataclasses import replace
sys.path.insert(0, "tests")
from test_refl import PROMPTS, REFL, PARITY, config
from imagereward.refl import ReFLTrainer
trainer = ReFLTrainer(REFL / "pipeline", PARITY, replace(config(), mixed_precision="bf16"), device="cpu")
out = trainer.step(PROMPTS[:2], mid_timestep=35, generator=torch.Generator().manual_seed(0))
assert trainer.vae.dtype == torch.bfloat16 and next(trainer.reward.parameters()).dtype == torch.bfloat16
assert torch.isfinite(out.loss) and out.grad_norm is not None and out.grad_norm > 0, out
print("bf16 step", out.loss.item(), out.rewards.tolist())
"""


def test_a_bf16_step_runs_with_the_frozen_parts_in_bf16() -> None:
    """In a process of its own: accelerate keeps one precision per process (a second trainer with another is
    refused with a sentence, below)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", BF16_STEP], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and "bf16 step" in done.stdout, done.stderr[-3000:]


def test_another_precision_in_the_same_process_is_one_sentence() -> None:
    ReFLTrainer(REFL / "pipeline", PARITY, config(), device="cpu")
    with pytest.raises(InputError, match="start a new Python process"):
        ReFLTrainer(REFL / "pipeline", PARITY, replace(config(), mixed_precision="bf16"), device="cpu")


def test_the_pretraining_loss_is_its_formula_and_its_weight_scales_it(tmp_path) -> None:
    """The paper's pretraining loss, computed here from diffusers' own parts: the VAE's latent sample x its
    scaling factor, then noise and timesteps drawn from the same generator in that order, `add_noise`, the UNet
    on the CLIP states, the MSE to the noise; its gradient, and the weight multiplying both."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel

    images = torch.rand(2, 3, 512, 512, generator=torch.Generator().manual_seed(1)) * 2 - 1
    texts = PROMPTS[:2]
    pipe = REFL / "pipeline"
    vae = AutoencoderKL.from_pretrained(pipe, subfolder="vae")
    scheduler = DDPMScheduler.from_pretrained(pipe, subfolder="scheduler")
    text_encoder = CLIPTextModel.from_pretrained(pipe, subfolder="text_encoder")
    unet = UNet2DConditionModel.from_pretrained(pipe, subfolder="unet").train()
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        latents = vae.encode(images).latent_dist.sample(g) * vae.config.scaling_factor
        hidden = text_encoder(ClipTokens(pipe / "tokenizer")(texts))[0]
    noise = torch.randn(latents.shape, generator=g)
    t = torch.randint(0, 1000, (2,), generator=g)
    loss = torch.nn.functional.mse_loss(
        unet(scheduler.add_noise(latents, noise, t), t, encoder_hidden_states=hidden).sample, noise
    )
    loss.backward()
    expected = {n: p.grad for n, p in unet.named_parameters()}
    for weight in (1.0, 2.5):
        trainer = ReFLTrainer(
            pipe, PARITY, replace(config(), pretrain_loss=True, pretrain_loss_weight=weight), device="cpu"
        )
        out = trainer.pretrain_step(texts, images, torch.Generator().manual_seed(3), record=True)
        assert torch.equal(out.record["timesteps"], t) and torch.equal(out.record["noise"], noise)
        assert out.loss.item() == pytest.approx(weight * loss.item(), rel=1e-6)
        for name, grad in out.record["grad"].items():
            assert torch.allclose(grad, weight * expected[name], rtol=1e-4, atol=1e-7), name


def test_pretraining_data_names_each_row_it_leaves_out(tmp_path) -> None:
    from PIL import Image

    from imagereward.refl.pretrain_data import load_pretrain_data, pretrain_images

    Image.new("RGB", (600, 400), (200, 30, 30)).save(tmp_path / "a.png")
    rows = [{"text": "a red square", "image": "a.png"}, {"text": "gone", "image": "missing.png"}, {"caption": "x"}]
    (tmp_path / "data.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    pairs, skipped = load_pretrain_data(tmp_path / "data.jsonl")
    assert pairs == [("a red square", tmp_path / "a.png")]
    assert "row 2: no image missing.png" in skipped[0] and "row 3: not" in skipped[1]
    pixels = pretrain_images([tmp_path / "a.png"], 64)
    assert pixels.shape == (1, 3, 64, 64) and pixels.min() >= -1 and pixels.max() <= 1
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(InputError, match="list of"):
        load_pretrain_data(tmp_path / "bad.json")


# ------------------------------------------------------------------------------------ watching for reward hacking
def test_a_rising_reward_with_a_falling_judge_is_named() -> None:
    from imagereward.refl.validation import Validation, hacking

    first = Validation(0, {"ImageReward": 0.1, "CLIP": 0.30, "BLIP": 0.2}, {})
    now = Validation(50, {"ImageReward": 0.6, "CLIP": 0.25, "BLIP": 0.3}, {})
    (sentence,) = hacking(first, now, "ImageReward")
    assert "ImageReward rose by +0.5000 since step 0 while CLIP fell by -0.0500" in sentence
    assert hacking(first, Validation(50, {"ImageReward": 0.0, "CLIP": 0.1, "BLIP": 0.1}, {}), "ImageReward") == []


def test_validation_scores_the_same_prompts_with_every_judge_and_saves_grids(tmp_path, judges_root) -> None:
    from PIL import Image

    from imagereward import cli

    prompts = tmp_path / "validation.txt"
    prompts.write_text("a red apple\na city at night\n")
    args = refl_args(tmp_path / "out", "--max-steps", "1", "--validate-every", "1", "--validation-judge", "CLIP")
    args += [
        "--validation-judge",
        "Aesthetic",
        "--validation-prompts",
        str(prompts),
        "--download-root",
        str(judges_root),
    ]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert cli.main(args) == 0
    finally:
        torch.set_num_threads(threads)
    rows = [json.loads(line) for line in (tmp_path / "out" / "validation.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1]
    for row in rows:
        assert list(row["means"]) == ["ImageReward-v1.0", "CLIP", "Aesthetic"]
        assert all(len(v) == 2 for v in row["scores"].values()) and isinstance(row["warnings"], list)
    grid = Image.open(tmp_path / "out" / "validation" / "step-1.png")
    assert grid.size[0] == 2 * 192
    assert rows[0]["scores"]["ImageReward-v1.0"] != rows[1]["scores"]["ImageReward-v1.0"]  # the model moved


def count_unet_calls(trainer: ReFLTrainer) -> list[int]:
    calls: list[int] = []
    unet_of(trainer).register_forward_hook(lambda module, args, output: calls.append(args[0].shape[0]))
    return calls


def test_classifier_free_guidance_in_the_rollout_is_its_formula() -> None:
    """guidance_scale 1 (the original) makes one conditional call a step; another scale one call on the
    unconditional and conditional states together, combined as uncond + scale * (cond - uncond)."""
    trainer = ReFLTrainer(REFL / "pipeline", PARITY, replace(config(), guidance_scale=3.0), device="cpu")
    calls = count_unet_calls(trainer)
    out = one_step(trainer)
    assert calls == [4] * 36 and torch.isfinite(out.loss)  # 35 steps without gradients and the trained one
    latents = torch.randn(2, 4, 64, 64, generator=torch.Generator().manual_seed(0))
    t = trainer.scheduler.timesteps[10]
    hidden = trainer.text_encoder(trainer.tokenizer(PROMPTS[:2]))[0]
    uncond = trainer.text_encoder(trainer.tokenizer(["", ""]))[0]
    with torch.no_grad():
        guided = trainer._noise(latents, t, {"encoder_hidden_states": hidden}, {"encoder_hidden_states": uncond})
        free = unet_of(trainer)(latents, t, encoder_hidden_states=uncond).sample
        conditional = unet_of(trainer)(latents, t, encoder_hidden_states=hidden).sample
    assert torch.allclose(guided, free + 3.0 * (conditional - free), atol=1e-5)


def test_draft_k_runs_the_rollout_to_its_end_with_gradients_through_its_last_k_steps() -> None:
    trainer = ReFLTrainer(REFL / "pipeline", PARITY, replace(config(), draft_k=2), device="cpu")
    calls = count_unet_calls(trainer)
    grads_seen: list[bool] = []
    unet_of(trainer).register_forward_hook(lambda m, a, o: grads_seen.append(o.sample.requires_grad))
    out = trainer.step(PROMPTS[:2], generator=torch.Generator().manual_seed(0), record=True)
    assert len(calls) == 40 and grads_seen == [False] * 38 + [True] * 2
    assert out.mid_timestep == 38 and out.grad_norm > 0 and torch.isfinite(out.loss)
    assert any(g.abs().sum() > 0 for g in out.record["grad"].values())
    with pytest.raises(ValueError, match="draft_k 41"):
        replace(config(), draft_k=41)


def test_several_rewards_add_their_weighted_hinges_and_a_judge_without_a_differentiable_path_is_refused() -> None:
    """A second ImageReward (here the same tiny one) with weight 0.5: the loss and every gradient 1.5 times the
    single reward's; PickScore, which has no exact differentiable path here, refused with the reason."""
    plain = one_step(ReFLTrainer(REFL / "pipeline", PARITY, config(), device="cpu"), record=True)
    both = ReFLTrainer(REFL / "pipeline", PARITY, config(), device="cpu", extra_rewards={str(PARITY): 0.5})
    twice = one_step(both, record=True)
    assert twice.loss.item() == pytest.approx(1.5 * plain.loss.item(), rel=1e-6)
    worst = max(rel_to_max(twice.record["grad"][n], 1.5 * g) for n, g in plain.record["grad"].items())
    assert worst <= 1e-4, (
        worst
    )  # float32 round-off of two passes (the fixture: 1e-3 for gradients); a wrong weight is 33% off
    with pytest.raises(
        InputError,
        match="BLIP cannot be a training reward: BLIP has no differentiable path.*"
        "the judges that have one: ImageReward-v1.0, CLIP, PickScore, HPSv2.1",
    ):
        ReFLTrainer(REFL / "pipeline", PARITY, config(), device="cpu", extra_rewards={"BLIP": 1.0})


def test_another_judge_adds_its_weighted_score_through_its_differentiable_path(judges_root) -> None:
    """ImageReward plus PickScore at weight 0.5: the loss is ImageReward's hinge minus 0.5 x grad_scale x the
    mean PickScore of the step's decoded images (through PickScore's own gradient path), and the gradients
    change; the same judge as a loaded object or by name."""
    from imagereward.judges import load_judge

    judge = load_judge("PickScore", download_root=judges_root, device="cpu")
    plain = one_step(ReFLTrainer(REFL / "pipeline", PARITY, config(), device="cpu"), record=True)
    both = ReFLTrainer(REFL / "pipeline", PARITY, config(), device="cpu", extra_rewards={judge: 0.5})
    out = one_step(both, record=True)
    image = both.decode(out.record["pred_original_sample"])
    with torch.no_grad():
        picked = judge.differentiable_rewards(PROMPTS[:2], image)
    expected = plain.loss.item() - 0.5 * config().grad_scale * picked.mean().item()
    assert out.loss.item() == pytest.approx(expected, rel=1e-6)
    assert max(rel_to_max(out.record["grad"][n], g) for n, g in plain.record["grad"].items()) > 1e-3


def test_each_step_and_validation_goes_to_the_trackers(tmp_path, judges_root) -> None:
    """accelerate's trackers (here one of its GeneralTracker, recording) get the config, each optimizer step's
    loss, reward and gradient norm, and each validation's means."""
    from accelerate.tracking import GeneralTracker

    from imagereward.refl.run import ValidationPlan, train

    class Recorder(GeneralTracker):
        name, requires_logging_directory = "recorder", False

        def __init__(self) -> None:
            super().__init__()
            self.config, self.logged = None, []

        @property
        def tracker(self):  # noqa: ANN201
            return self

        def store_init_configuration(self, values) -> None:  # noqa: ANN001
            self.config = values

        def log(self, values, step=None, **kwargs) -> None:  # noqa: ANN001
            self.logged.append((step, dict(values)))

    recorder = Recorder()
    trainer = ReFLTrainer(
        REFL / "pipeline", PARITY, replace(config(), max_train_steps=2), device="cpu", log_with=[recorder]
    )
    plan = ValidationPlan(["a red apple"], {"ImageReward-v1.0": trainer.reward}, "ImageReward-v1.0", every=2)
    train(trainer, PROMPTS, tmp_path / "out", validation=plan)
    assert recorder.config["learning_rate"] == config().learning_rate and recorder.config["draft_k"] == "None"
    steps = [(s, sorted(v)) for s, v in recorder.logged]
    assert steps == [
        (0, ["validation/ImageReward-v1.0"]),
        (1, ["grad_norm", "loss", "reward"]),
        (2, ["grad_norm", "loss", "reward"]),
        (2, ["validation/ImageReward-v1.0"]),
    ]
