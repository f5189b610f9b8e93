"""The original's API shapes, the embedding cache, and per-image errors that keep the good results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import imagereward
from imagereward import ImageLoadError, NonFiniteRewardError
from imagereward.judges.base import ranks_from_rewards
from imagereward.ranking import InputError, rank_images
from originals import EXPECTED, image_path

CASE = EXPECTED["rank"][0]
PATHS = [str(image_path(n)) for n in CASE["images"]]


def test_score_single_is_float_list_is_list(tiny_model) -> None:
    assert isinstance(tiny_model.score(CASE["prompt"], PATHS[0]), float)
    one = tiny_model.score(CASE["prompt"], [PATHS[0]])
    assert isinstance(one, list) and len(one) == 1
    many = tiny_model.score(CASE["prompt"], PATHS)
    np.testing.assert_allclose(many, CASE["rewards"], atol=1e-4, rtol=0)


def test_inference_rank_format(tiny_model) -> None:
    ranking, rewards = tiny_model.inference_rank(CASE["prompt"], PATHS[:3])
    assert sorted(ranking) == [1, 2, 3] and all(isinstance(r, int) for r in ranking)
    assert all(isinstance(r, float) for r in rewards)
    assert ranking[int(np.argmax(rewards))] == 1


def test_ranks_from_rewards() -> None:
    assert ranks_from_rewards([0.1, 2.0, -1.0]) == [2, 1, 3]


def test_pil_images_score_like_paths(tiny_model) -> None:
    pil = [Image.open(p) for p in PATHS[:4]]
    np.testing.assert_allclose(tiny_model.score(CASE["prompt"], pil), CASE["rewards"][:4], atol=1e-4, rtol=0)


def test_bad_image_raises_with_its_name(tiny_model, tmp_path: Path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ImageLoadError, match="broken.png: not an image in an accepted format"):
        tiny_model.score(CASE["prompt"], [PATHS[0], str(bad)])


def test_try_rewards_keeps_the_good_images(tiny_model, tmp_path: Path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 nothing")
    results = tiny_model.try_rewards(CASE["prompt"], [PATHS[0], str(bad), PATHS[1]], batch_size=2)
    assert isinstance(results[1], ImageLoadError) and results[1].name.endswith("broken.jpg")
    np.testing.assert_allclose([results[0], results[2]], CASE["rewards"][:2], atol=1e-4, rtol=0)


def test_cache_skips_the_image_encoder_and_keeps_the_numbers(tiny_model) -> None:
    tiny_model.embedding_cache.clear()
    first = tiny_model.rewards(CASE["prompt"], PATHS)
    calls = []
    handle = tiny_model.visual_encoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        other = EXPECTED["rank"][1]
        again = tiny_model.rewards(other["prompt"], PATHS)
    finally:
        handle.remove()
    assert calls == []
    assert tiny_model.embedding_cache.hits >= len(PATHS)
    np.testing.assert_allclose(again, other["rewards"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(first, CASE["rewards"], atol=1e-4, rtol=0)


def test_cache_is_bounded(tiny_model) -> None:
    tiny_model.embedding_cache.resize(3)
    try:
        tiny_model.rewards(CASE["prompt"], PATHS)
        assert len(tiny_model.embedding_cache) == 3
    finally:
        tiny_model.embedding_cache.resize(256)


def test_prompt_must_be_a_string(tiny_model) -> None:
    with pytest.raises(TypeError, match="one prompt at a time"):
        tiny_model.rewards(["a", "b"], PATHS[:2])


def test_half_precision_stays_close(parity_dir) -> None:
    import imagereward

    model = imagereward.load(str(parity_dir), device="cpu", dtype=torch.bfloat16)
    rewards = model.rewards(CASE["prompt"], PATHS)
    assert np.abs(np.array(rewards) - CASE["rewards"]).max() < 0.1


def test_a_float16_nan_is_rescored_in_float32_and_the_others_kept(parity_dir, monkeypatch) -> None:
    model = imagereward.load(str(parity_dir), device="cpu", dtype="fp16")
    real = model.scores_from_features

    def one_nan(tokens, features):  # the second image of the batch overflows
        out = real(tokens, features).clone()
        out[1] = float("nan")
        return out

    monkeypatch.setattr(model, "scores_from_features", one_nan)
    results = model.results(CASE["prompt"], PATHS[:3], names=["a.png", "b.png", "c.png"])
    assert [r.dtype for r in results] == [torch.float16, torch.float32, torch.float16]
    # float32 from the float16 weights: close to the original's float32 reward
    np.testing.assert_allclose([r.reward for r in results], CASE["rewards"][:3], atol=0.02)
    ranking = rank_images(model, CASE["prompt"], PATHS[:3], names=["a.png", "b.png", "c.png"])
    assert {item.name: item.precision for item in ranking.ranked} == {
        "a.png": "float16",
        "b.png": "float32",
        "c.png": "float16",
    }


def test_a_real_float16_overflow_is_rescored_in_float32(parity_dir) -> None:
    model = imagereward.load(str(parity_dir), device="cpu", dtype="fp16")
    reference = imagereward.load(str(parity_dir), device="cpu")
    with torch.no_grad():  # activations past float16's 65504, weights still finite in float16
        factor = 60_000 / float(reference.visual_encoder.patch_embed.proj.weight.abs().max())
        for m in (model, reference):
            m.visual_encoder.patch_embed.proj.weight.mul_(factor)
    assert torch.isfinite(model.visual_encoder.patch_embed.proj.weight).all()
    results = model.results(CASE["prompt"], PATHS[:2])
    assert all(r.dtype == torch.float32 for r in results), results
    np.testing.assert_allclose([r.reward for r in results], reference.rewards(CASE["prompt"], PATHS[:2]), atol=0.02)


def test_weights_that_are_not_finite_give_named_errors_not_nan_rewards(parity_dir) -> None:
    model = imagereward.load(str(parity_dir), device="cpu", dtype="fp16")
    with torch.no_grad():
        model.visual_encoder.patch_embed.proj.weight.mul_(1e8)  # inf in float16, and so in its float32 copy
    results = model.try_rewards(CASE["prompt"], PATHS[:2])
    assert all(isinstance(r, NonFiniteRewardError) for r in results), results
    assert "even in float32" in str(results[0])
    with pytest.raises(NonFiniteRewardError, match=Path(PATHS[0]).name):
        model.rewards(CASE["prompt"], PATHS[:2])
    with pytest.raises(InputError, match="None of the images could be scored") as caught:
        rank_images(model, CASE["prompt"], PATHS[:2])
    assert "PNG" not in str(caught.value) and len(caught.value.failures) == 2


def test_the_same_file_is_decoded_once(tiny_model, monkeypatch) -> None:
    from imagereward.images import reading as imgs

    calls = []
    real = imgs.load_pixels
    monkeypatch.setattr(imgs, "load_pixels", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    results = tiny_model.results(CASE["prompt"], [PATHS[0]] * 5 + [PATHS[1]])
    assert sorted(calls) == sorted([PATHS[0], PATHS[1]])
    assert len({r.reward for r in results[:5]}) == 1
    np.testing.assert_allclose([results[0].reward, results[5].reward], CASE["rewards"][:2], atol=1e-4)


def test_a_repeated_bad_file_is_named_at_each_place(tiny_model, tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"no")
    results = tiny_model.try_rewards(CASE["prompt"], [str(bad), PATHS[0], str(bad)], names=["x", "y", "z"])
    assert [r.name for r in (results[0], results[2])] == ["x", "z"]


def test_decoding_in_processes_gives_the_same_rewards(parity_dir, tmp_path: Path) -> None:
    model = imagereward.load(str(parity_dir), device="cpu")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"no")
    paths = PATHS + [str(bad)] + PATHS[:3]
    threads = model.try_rewards(CASE["prompt"], paths, batch_size=4)
    model.decode_processes = 2
    model.embedding_cache.resize(0)
    processes = model.try_rewards(CASE["prompt"], paths, batch_size=4)
    assert model.decoder.running["processes"] == 2  # the job did go to worker processes
    assert isinstance(processes[len(PATHS)], ImageLoadError) and processes[len(PATHS)].name.endswith("bad.png")
    good = [i for i in range(len(paths)) if i != len(PATHS)]
    assert [processes[i] for i in good] == [threads[i] for i in good]
    model.close()
    assert model.decoder.running == {"threads": 0, "processes": 0}  # nothing left running


def test_rows_of_one_block_are_batched_without_a_copy() -> None:
    from imagereward.images.decoding import as_batch

    block = torch.arange(5 * 3 * 4 * 4, dtype=torch.uint8).view(5, 3, 4, 4)
    batch = as_batch([block[1], block[2], block[3]])
    assert batch.data_ptr() == block[1].data_ptr() and torch.equal(batch, block[1:4])
    for rows in ([block[1], block[3]], [block[2], block[1]], [torch.zeros(3, 4, 4)]):  # not consecutive rows
        batch = as_batch(rows)
        assert batch._base is None and torch.equal(batch, torch.stack(rows))  # a copy


def test_without_room_in_shared_memory_decoding_stays_in_threads(parity_dir, monkeypatch) -> None:
    import os as os_module

    from imagereward.images import decoding

    model = imagereward.load(str(parity_dir), device="cpu")
    model.decode_processes = 2
    real = os_module.statvfs

    class Full:
        f_bavail, f_frsize = 10, 4096  # 40 kB free

    monkeypatch.setattr(decoding.os, "statvfs", lambda path: Full() if path == "/dev/shm" else real(path))
    assert not decoding.ring_fits(2, model.preprocessing)
    np.testing.assert_allclose(model.rewards(CASE["prompt"], PATHS[:4], batch_size=2), CASE["rewards"][:4], atol=1e-4)
    assert model.decoder.running["processes"] == 0
    model.close()


def test_decoding_modules_import_without_the_models_libraries() -> None:
    """A process that only decodes (bulk scoring's Ray workers) imports neither timm nor transformers, one
    that only reads Parquet row groups not even torch; the package's names still resolve on first use."""
    import subprocess
    import sys

    code = (
        "import sys, imagereward.bulk.inputs; assert 'torch' not in sys.modules;"
        "import imagereward, imagereward.bulk, imagereward.images.transforms;"
        "heavy = [m for m in ('timm', 'transformers', 'open_clip') if m in sys.modules];"
        "assert not heavy, heavy;"
        "from imagereward import load, ImageReward, load_score, available_models;"
        "assert imagereward.load is load and 'timm' in sys.modules and 'load' in dir(imagereward)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        imagereward.nothing  # noqa: B018


def test_a_judge_closed_leaves_nothing_running(parity_dir) -> None:
    """The decoding threads and worker processes a judge started are gone once it is closed (a `with` block)."""
    import multiprocessing

    with imagereward.load(str(parity_dir), device="cpu") as model:
        model.rewards(CASE["prompt"], PATHS[:3])  # threads
        threads = list(model.decoder._pool._threads)
        model.decode_processes = 2
        model.embedding_cache.resize(0)
        model.rewards(CASE["prompt"], PATHS[:4], batch_size=2)  # worker processes
        workers = list(model.decoder._processes._pool._pool)
        assert threads and workers and model.decoder.running == {"threads": 1, "processes": 2}
    assert model.decoder.running == {"threads": 0, "processes": 0}
    assert not any(t.is_alive() for t in threads) and not any(w.is_alive() for w in workers)
    assert not [p for p in multiprocessing.active_children() if p in workers]
