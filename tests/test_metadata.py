"""Prompts read from the files generators write: one file made per convention, in the test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from imagereward.images.metadata import EmbeddedPrompt, a1111_prompt, embedded_prompt

A1111 = "a cat on a mat, photograph\nsecond line of the prompt\nNegative prompt: blurry, dog\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1"
COMFY_GRAPH = {
    "3": {"class_type": "KSampler", "inputs": {"positive": ["6", 0], "negative": ["7", 0], "model": ["4", 0]}},
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl.safetensors"}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": ["10", 0], "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry, watermark", "clip": ["4", 1]}},
    "10": {"class_type": "PrimitiveNode", "inputs": {"value": "a red fox in the snow"}},
}


def png(tmp_path: Path, name: str, chunks: dict[str, str]) -> Path:
    info = PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    path = tmp_path / name
    Image.new("RGB", (64, 48), "teal").save(path, pnginfo=info)
    return path


def exif_image(tmp_path: Path, name: str, comment: bytes) -> Path:
    exif = Image.Exif()
    exif[0x8769] = {0x9286: comment}
    path = tmp_path / name
    Image.new("RGB", (64, 48), "teal").save(path, exif=exif)
    return path


@pytest.mark.parametrize(
    "chunks, expected",
    [
        (
            {"parameters": A1111},
            EmbeddedPrompt("a cat on a mat, photograph\nsecond line of the prompt", "AUTOMATIC1111"),
        ),
        (
            {"parameters": "just a prompt\nSteps: 30, Sampler: DPM++ 2M"},
            EmbeddedPrompt("just a prompt", "AUTOMATIC1111"),
        ),
        ({"prompt": json.dumps(COMFY_GRAPH), "workflow": "{}"}, EmbeddedPrompt("a red fox in the snow", "ComfyUI")),
        (
            {"invokeai_metadata": json.dumps({"positive_prompt": "a lighthouse at dusk", "negative_prompt": "x"})},
            EmbeddedPrompt("a lighthouse at dusk", "InvokeAI"),
        ),
        (
            {"sd-metadata": json.dumps({"image": {"prompt": [{"prompt": "an old map", "weight": 1.0}]}})},
            EmbeddedPrompt("an old map", "InvokeAI"),
        ),
        ({"Dream": '"a castle on a hill" -s 50 -S 42'}, EmbeddedPrompt("a castle on a hill", "InvokeAI")),
        (
            {
                "parameters": json.dumps(
                    {"prompt": "a bowl of ramen", "negative_prompt": "", "fooocus_scheme": "fooocus"}
                )
            },
            EmbeddedPrompt("a bowl of ramen", "Fooocus"),
        ),
        (
            {
                "Software": "NovelAI",
                "Description": "1girl, cherry blossoms",
                "Comment": json.dumps({"prompt": "1girl, cherry blossoms, masterpiece", "uc": "lowres"}),
            },
            EmbeddedPrompt("1girl, cherry blossoms, masterpiece", "NovelAI"),
        ),
        ({"Software": "NovelAI", "Description": "a quiet street"}, EmbeddedPrompt("a quiet street", "NovelAI")),
    ],
    ids=[
        "a1111",
        "a1111-no-negative",
        "comfyui",
        "invokeai",
        "invokeai-legacy",
        "invokeai-dream",
        "fooocus",
        "novelai",
        "novelai-description",
    ],
)
def test_each_generators_png(tmp_path: Path, chunks: dict, expected: EmbeddedPrompt) -> None:
    assert embedded_prompt(png(tmp_path, "g.png", chunks)) == expected


@pytest.mark.parametrize("suffix", [".jpg", ".webp"])
@pytest.mark.parametrize("encoding", ["utf-16-be", "utf-16-le"])
def test_a1111_in_exif_user_comment(tmp_path: Path, suffix: str, encoding: str) -> None:
    path = exif_image(tmp_path, f"g{suffix}", b"UNICODE\x00" + A1111.encode(encoding))
    assert embedded_prompt(path) == EmbeddedPrompt(
        "a cat on a mat, photograph\nsecond line of the prompt", "AUTOMATIC1111"
    )


def test_ascii_user_comment(tmp_path: Path) -> None:
    path = exif_image(tmp_path, "g.jpg", b"ASCII\x00\x00\x00" + b"a small boat\nSteps: 12")
    assert embedded_prompt(path) == EmbeddedPrompt("a small boat", "AUTOMATIC1111")


def test_comfyui_without_a_sampler_takes_the_first_text_encoder(tmp_path: Path) -> None:
    graph = {"1": {"class_type": "CLIPTextEncode", "inputs": {"text": "a glass of water"}}}
    assert embedded_prompt(png(tmp_path, "g.png", {"prompt": json.dumps(graph)})) == EmbeddedPrompt(
        "a glass of water", "ComfyUI"
    )


@pytest.mark.parametrize(
    "chunks",
    [
        {},
        {"parameters": ""},
        {"prompt": "not json"},
        {"prompt": json.dumps({"1": {"class_type": "KSampler", "inputs": {"positive": ["1", 0]}}})},  # a loop
        {"prompt": json.dumps([1, 2, 3])},
        {"invokeai_metadata": "{broken"},
        {"Comment": json.dumps({"prompt": "not from NovelAI"})},
    ],
    ids=["none", "empty", "not-json", "self-loop", "not-a-graph", "broken-json", "comment-alone"],
)
def test_no_prompt_or_malformed_metadata_gives_none(tmp_path: Path, chunks: dict) -> None:
    assert embedded_prompt(png(tmp_path, "g.png", chunks)) is None


def test_files_that_are_not_accepted_images_give_none(tmp_path: Path) -> None:
    eps = tmp_path / "x.png"
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n")
    assert embedded_prompt(eps) is None
    assert embedded_prompt(tmp_path / "missing.png") is None


def test_an_open_pil_image_is_read_too(tmp_path: Path) -> None:
    with Image.open(png(tmp_path, "g.png", {"parameters": A1111})) as image:
        assert embedded_prompt(image).source == "AUTOMATIC1111"


def test_a1111_prompt_keeps_a_prompt_without_settings() -> None:
    assert a1111_prompt("only words") == "only words"
    assert a1111_prompt("two\nlines") == "two\nlines"
