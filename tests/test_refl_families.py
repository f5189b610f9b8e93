"""ReFL on the other pipeline kinds (`imagereward.refl.families`): a tiny SDXL, a tiny Stable Diffusion 3 and a
tiny Flux (flow matching; Flux on packed latents with embedded guidance), built by `tiny_pipelines.py`. The trainer's conditioning is what diffusers' own `encode_prompt`
computes, its rollout is what the pipeline itself generates from the same generator (with and without guidance),
the flow-matching clean estimate is x_t - sigma * v, a step trains, LoRA saves what `load_lora_weights` reads, the tuned
pipeline saves and reloads, and the pretraining loss is flow matching's formula."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("accelerate")

import tiny_pipelines  # noqa: E402

from imagereward.refl import ReFLConfig, ReFLTrainer  # noqa: E402
from originals import PARITY  # noqa: E402

PROMPTS = ["a red cube on a wooden table", "an astronaut riding a horse, oil painting"]
STEPS = 8
CONFIG = ReFLConfig.original(
    num_inference_steps=STEPS,
    mid_timestep_range=(5, 7),
    train_batch_size=2,
    gradient_accumulation_steps=1,
    seed=0,
    latent_size=tiny_pipelines.LATENT,
)
KINDS = ["sdxl", "sd3", "flux"]


@pytest.fixture(scope="module")
def sdxl(tmp_path_factory):
    return tiny_pipelines.sdxl(tmp_path_factory.mktemp("sdxl"))


@pytest.fixture(scope="module")
def sd3(tmp_path_factory):
    return tiny_pipelines.sd3(tmp_path_factory.mktemp("sd3"))


@pytest.fixture(scope="module")
def flux(tmp_path_factory):
    return tiny_pipelines.flux(tmp_path_factory.mktemp("flux"))


def pipeline_of(folder):  # noqa: ANN001, ANN201
    from diffusers import DiffusionPipeline

    sd3 = '"StableDiffusion3Pipeline"' in (folder / "model_index.json").read_text()
    without_t5 = {"text_encoder_3": None, "tokenizer_3": None} if sd3 else {}
    return DiffusionPipeline.from_pretrained(folder, **without_t5).to("cpu")


def params(trainer: ReFLTrainer) -> dict[str, torch.Tensor]:
    model = trainer.accelerator.unwrap_model(trainer.unet)
    return {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("kind", KINDS)
def test_conditioning_is_what_the_pipeline_s_encode_prompt_computes(kind: str, request) -> None:
    folder = request.getfixturevalue(kind)
    trainer = ReFLTrainer(folder, PARITY, CONFIG, device="cpu")
    pipe = pipeline_of(folder)
    with torch.no_grad():
        cond = trainer.family.conditioning(PROMPTS, torch.device("cpu"))
        if kind == "sdxl":
            embeds, _, pooled, _ = pipe.encode_prompt(PROMPTS, do_classifier_free_guidance=False)
            assert torch.equal(cond["added_cond_kwargs"]["text_embeds"], pooled)
            side = tiny_pipelines.LATENT * 2
            assert cond["added_cond_kwargs"]["time_ids"].tolist() == [[side, side, 0, 0, side, side]] * 2
        elif kind == "sd3":
            embeds, _, pooled, _ = pipe.encode_prompt(PROMPTS, PROMPTS, PROMPTS, do_classifier_free_guidance=False)
            assert torch.equal(cond["pooled_projections"], pooled)
        else:
            embeds, pooled, text_ids = pipe.encode_prompt(PROMPTS, PROMPTS)
            assert torch.equal(cond["pooled_projections"], pooled) and torch.equal(cond["txt_ids"], text_ids)
    assert torch.equal(cond["encoder_hidden_states"], embeds)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("guidance", [1.0, 3.0])
def test_the_rollout_is_what_the_pipeline_generates(kind: str, guidance: float, request) -> None:
    """The trainer's rollout (`generate`; the step runs the same loop) against the pipeline's own `__call__`
    from the same generator: the same latents, with guidance (SDXL's zeros for the empty prompt, SD3's encoded
    empty prompt; Flux's embedded guidance) and without."""
    folder = request.getfixturevalue(kind)
    trainer = ReFLTrainer(folder, PARITY, replace(CONFIG, guidance_scale=guidance), device="cpu")
    ours = trainer.generate(PROMPTS, torch.Generator().manual_seed(7))
    side = tiny_pipelines.LATENT * 2
    theirs = pipeline_of(folder)(
        PROMPTS,
        height=side,
        width=side,
        num_inference_steps=STEPS,
        guidance_scale=guidance,
        generator=torch.Generator().manual_seed(7),
        output_type="latent",
    ).images
    packed = (2, (tiny_pipelines.LATENT // 2) ** 2, 16)  # Flux's 2 x 2 patches of 4 channels
    assert ours.shape == (packed if kind == "flux" else (2, 4, tiny_pipelines.LATENT, tiny_pipelines.LATENT))
    assert torch.allclose(ours, theirs, rtol=1e-5, atol=1e-5), (ours - theirs).abs().max()


@pytest.mark.parametrize("kind", KINDS)
def test_a_step_trains_and_the_tuned_pipeline_saves_and_reloads(kind: str, request, tmp_path) -> None:
    folder = request.getfixturevalue(kind)
    trainer = ReFLTrainer(folder, PARITY, CONFIG, device="cpu")
    before = params(trainer)
    out = trainer.step(PROMPTS, generator=torch.Generator().manual_seed(1), record=True)
    assert 5 <= out.mid_timestep <= 7 and torch.isfinite(out.loss) and out.grad_norm > 0
    after = params(trainer)
    assert any(not torch.equal(before[n], after[n]) for n in after)
    rec = out.record
    if kind != "sdxl":  # flow matching's clean estimate, from the trained call's own x_t and velocity
        sigma = trainer.scheduler.sigmas[out.mid_timestep]
        assert torch.allclose(rec["pred_original_sample"], rec["latents_mid"] - sigma * rec["noise_pred_mid"])
    saved = trainer.save(tmp_path / "tuned")
    reloaded = pipeline_of(saved)
    model = reloaded.unet if kind == "sdxl" else reloaded.transformer
    assert all(torch.equal(p.detach(), after[n]) for n, p in model.named_parameters())


@pytest.mark.parametrize("kind", KINDS)
def test_lora_trains_the_adapter_and_the_pipeline_loads_it(kind: str, request, tmp_path) -> None:
    folder = request.getfixturevalue(kind)
    trainer = ReFLTrainer(folder, PARITY, replace(CONFIG, lora_rank=4), device="cpu")
    before = params(trainer)
    trainer.step(PROMPTS, generator=torch.Generator().manual_seed(1))
    after = params(trainer)
    changed = {n for n in after if not torch.equal(before[n], after[n])}
    assert changed and all("lora" in n for n in changed)
    trainer.save(tmp_path / "adapter")
    pipe = pipeline_of(folder)
    pipe.load_lora_weights(tmp_path / "adapter")
    model = pipe.unet if kind == "sdxl" else pipe.transformer
    loaded = {
        n.replace(".default_0", "").replace(".default", ""): p for n, p in model.named_parameters() if "lora" in n
    }
    trained = {n.replace(".default", ""): p for n, p in after.items() if "lora" in n}
    assert loaded.keys() == trained.keys()
    assert all(torch.equal(loaded[n], trained[n]) for n in trained)


def test_sd3_pretraining_loss_is_flow_matching_s(sd3) -> None:
    """Computed here from diffusers' own parts: the VAE's latent sample, shifted and scaled; noise, then a
    training timestep drawn uniformly over the scheduler's, from the generator in that order;
    x_t = (1 - sigma) x + sigma * noise; the MSE of the transformer's velocity to noise - x; and its gradients."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel

    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    vae = AutoencoderKL.from_pretrained(sd3, subfolder="vae")
    scheduler = FlowMatchEulerDiscreteScheduler.from_pretrained(sd3, subfolder="scheduler")
    transformer = SD3Transformer2DModel.from_pretrained(sd3, subfolder="transformer").train()
    with torch.no_grad():
        embeds, _, pooled, _ = pipeline_of(sd3).encode_prompt(
            PROMPTS, PROMPTS, PROMPTS, do_classifier_free_guidance=False
        )
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        x = (vae.encode(images).latent_dist.sample(g) - vae.config.shift_factor) * vae.config.scaling_factor
    noise = torch.randn(x.shape, generator=g)
    index = torch.randint(0, 1000, (2,), generator=g)
    sigma = scheduler.sigmas[index].view(-1, 1, 1, 1)
    noisy = (1 - sigma) * x + sigma * noise
    velocity = transformer(
        hidden_states=noisy,
        timestep=scheduler.timesteps[index],
        encoder_hidden_states=embeds,
        pooled_projections=pooled,
    ).sample
    loss = torch.nn.functional.mse_loss(velocity, noise - x)
    loss.backward()
    trainer = ReFLTrainer(sd3, PARITY, replace(CONFIG, pretrain_loss=True, pretrain_loss_weight=2.0), device="cpu")
    out = trainer.pretrain_step(PROMPTS, images, torch.Generator().manual_seed(3), record=True)
    assert torch.equal(out.record["noise"], noise)
    assert out.loss.item() == pytest.approx(2.0 * loss.item(), rel=1e-6)
    for name, p in transformer.named_parameters():
        assert torch.allclose(out.record["grad"][name], 2.0 * p.grad, rtol=1e-4, atol=1e-7), name


def test_flux_pretraining_loss_is_flow_matching_s_on_packed_latents(flux) -> None:
    """As SD3's, on Flux's packed latents: the VAE's sample shifted and scaled, packed into 2 x 2 patches; the
    transformer called with timestep / 1000, the embedded guidance and the position ids, as the pipeline calls it."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    vae = AutoencoderKL.from_pretrained(flux, subfolder="vae")
    scheduler = FlowMatchEulerDiscreteScheduler.from_pretrained(flux, subfolder="scheduler")
    transformer = FluxTransformer2DModel.from_pretrained(flux, subfolder="transformer").train()
    with torch.no_grad():
        embeds, pooled, text_ids = pipeline_of(flux).encode_prompt(PROMPTS, PROMPTS)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        x = (vae.encode(images).latent_dist.sample(g) - vae.config.shift_factor) * vae.config.scaling_factor
    x = FluxPipeline._pack_latents(x, 2, 4, 16, 16)
    ids = FluxPipeline._prepare_latent_image_ids(2, 8, 8, x.device, x.dtype)
    noise = torch.randn(x.shape, generator=g)
    index = torch.randint(0, 1000, (2,), generator=g)
    sigma = scheduler.sigmas[index].view(-1, 1, 1)
    velocity = transformer(
        hidden_states=(1 - sigma) * x + sigma * noise,
        timestep=scheduler.timesteps[index] / 1000,
        guidance=torch.full([2], 2.0),
        pooled_projections=pooled,
        encoder_hidden_states=embeds,
        txt_ids=text_ids,
        img_ids=ids,
    ).sample
    loss = torch.nn.functional.mse_loss(velocity, noise - x)
    loss.backward()
    config = replace(CONFIG, pretrain_loss=True, guidance_scale=2.0)
    trainer = ReFLTrainer(flux, PARITY, config, device="cpu")
    out = trainer.pretrain_step(PROMPTS, images, torch.Generator().manual_seed(3), record=True)
    assert torch.equal(out.record["noise"], noise)
    assert out.loss.item() == pytest.approx(loss.item(), rel=1e-6)
    for name, p in transformer.named_parameters():
        if p.grad is not None:
            assert torch.allclose(out.record["grad"][name], p.grad, rtol=1e-4, atol=1e-7), name


def test_an_sdxl_step_in_original_mode_draws_the_original_s_latents(sdxl) -> None:
    """The step's first draw is the initial latents (B, 4, side, side) from the generator, as the original's."""
    trainer = ReFLTrainer(sdxl, PARITY, CONFIG, device="cpu")
    out = trainer.step(PROMPTS, mid_timestep=5, generator=torch.Generator().manual_seed(3), record=True)
    expected = torch.randn(
        (2, 4, tiny_pipelines.LATENT, tiny_pipelines.LATENT), generator=torch.Generator().manual_seed(3)
    )
    assert torch.equal(out.record["initial_latents"], expected)
    assert out.mid_timestep == 5


def test_the_command_line_trains_sd3_with_lora_another_judge_and_a_resolution(sd3, judges_root, tmp_path) -> None:
    import json

    from imagereward import cli
    from originals import FIXTURES

    out = tmp_path / "run"
    args = ["refl", str(sd3), "--prompts", str(FIXTURES / "refl" / "prompts.json"), "--output-dir", str(out)]
    args += ["--reward", str(PARITY), "--train-batch-size", "2", "--gradient-accumulation-steps", "1", "--seed", "7"]
    args += ["--device", "cpu", "-q", "--max-steps", "1", "--lora-rank", "4", "--resolution", "16"]
    args += ["--extra-reward", "HPSv2.1=0.5", "--download-root", str(judges_root)]
    assert cli.main(args) == 0
    assert (out / "pytorch_lora_weights.safetensors").is_file()
    lines = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1] and lines[0]["grad_norm"] > 0
