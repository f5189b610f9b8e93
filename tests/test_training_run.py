"""Training runs on the tiny model: each input format with a bad row (named, left out), the held-out split that
never leaks a prompt, a run with its report beside another judge, resume ending where an unbroken run ends,
LoRA, the frozen-feature cache (the same rewards, then read from the cache), mixed precision, the command line
checking its inputs before the model loads, and the trained model served by the page."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

import imagereward
from imagereward.errors import InputError
from imagereward.training import RewardTrainer, TrainConfig
from imagereward.training.heldout import split_by_prompt
from imagereward.training.pairs import Pair, read_rankings, read_table, read_verdicts
from imagereward.training.run import train
from originals import PARITY

IMAGES = PARITY / "images"
NAMES = sorted(p.name for p in IMAGES.iterdir())[:6]
PROMPTS = ["a red cube on a table", "a corgi in sunglasses", "a lighthouse at dusk", "a bowl of ramen"]


def tiny(**changes) -> tuple[RewardTrainer, TrainConfig]:
    values = dict(lr=1e-4, batch_size=4, accumulation_steps=1, epochs=2, dropout=False, heldout=0.25)
    config = TrainConfig.original(**{**values, **changes})
    return RewardTrainer(imagereward.load(str(PARITY), device="cpu"), config, total_steps=1), config


def ranking_file(folder: Path) -> Path:
    """Four prompts, each ranking four of the parity images (ties included), as the original's files."""
    items = [
        {
            "id": f"p{k}",
            "prompt": prompt,
            "generations": NAMES[k : k + 4],
            "ranking": [1, 2, 2, 3][k:] + [1, 2, 2, 3][:k],
        }
        for k, prompt in enumerate(PROMPTS)
    ]
    path = folder / "rankings.json"
    path.write_text(json.dumps(items))
    return path


def test_each_input_names_its_bad_rows_and_keeps_the_good_ones(tmp_path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    # the original's ranking file: an item with a missing image, one whose ranking does not fit
    items = [
        {"prompt": "a", "generations": [NAMES[0], NAMES[1], "gone.png"], "ranking": [1, 2, 3]},
        {"prompt": "b", "generations": [NAMES[0], NAMES[1]], "ranking": [1]},
        {"prompt": "c", "generations": [NAMES[2], NAMES[3]], "ranking": [2, 1]},
    ]
    (tmp_path / "r.json").write_text(json.dumps(items))
    found = read_rankings(tmp_path / "r.json", IMAGES)
    assert [(p.prompt, Path(p.better).name, Path(p.worse).name) for p in found.pairs] == [
        ("a", NAMES[0], NAMES[1]),
        ("c", NAMES[3], NAMES[2]),
    ]
    assert any("item 0: no image gone.png" in s for s in found.skipped)
    assert any("item 1: `generations` and `ranking`" in s for s in found.skipped)
    # the page's verdicts: images as the download lays them out, a tie (no pair), a broken line, a missing image
    folder = tmp_path / "verdicts"
    (folder / "images").mkdir(parents=True)
    shutil.copy(IMAGES / NAMES[0], folder / "images" / f"{'a' * 64}.png")
    shutil.copy(IMAGES / NAMES[1], folder / "images" / f"{'b' * 64}.jpg")
    line = {"prompt": "p", "a": "x.png", "b": "y.jpg", "a_sha256": "a" * 64, "b_sha256": "b" * 64, "verdict": "b"}
    rows = [line, {**line, "verdict": "tie"}, {"prompt": "p"}, {**line, "b_sha256": "c" * 64}]
    (folder / "pairs.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    found = read_verdicts(folder / "pairs.jsonl")
    assert [(Path(p.better).name, Path(p.worse).name) for p in found.pairs] == [(f"{'b' * 64}.jpg", f"{'a' * 64}.png")]
    assert [s.split(": ")[0].rsplit(", ", 1)[1] for s in found.skipped] == ["line 3", "line 4"]
    # a table: prompt/chosen/rejected with bytes and paths, a row without an image
    png = io.BytesIO()
    Image.open(IMAGES / NAMES[2]).convert("RGB").save(png, format="PNG")
    table = pa.table(
        {
            "prompt": ["q1", "q2", "q3"],
            "chosen": [png.getvalue(), str(IMAGES / NAMES[3]), None],
            "rejected": [str(IMAGES / NAMES[4]), str(IMAGES / NAMES[5]), str(IMAGES / NAMES[5])],
        }
    )
    pq.write_table(table, tmp_path / "prefs.parquet")
    found = read_table(tmp_path / "prefs.parquet")
    assert [p.prompt for p in found.pairs] == ["q1", "q2"] and isinstance(found.pairs[0].better, bytes)
    assert len(found.skipped) == 1 and "row 2: an image is missing" in found.skipped[0]
    # Pick-a-Pic's layout: label_0 1 (first better), 0 (second), 0.5 (a tie, no pair, nothing wrong)
    pick = pa.table(
        {
            "caption": ["c1", "c2", "c3"],
            "jpg_0": [png.getvalue()] * 3,
            "jpg_1": [png.getvalue()[:-1] + b"x"] * 3,
            "label_0": [1.0, 0.0, 0.5],
        }
    )
    pq.write_table(pick, tmp_path / "pick.parquet")
    found = read_table(tmp_path / "pick.parquet")
    assert [p.prompt for p in found.pairs] == ["c1", "c2"] and found.skipped == []
    assert found.pairs[0].better == png.getvalue() and found.pairs[1].worse == png.getvalue()
    # HPDv2's layouts: two images with the preferred marked 1; a test row's ranking (lower better); a bad row
    hpd = pa.table(
        {
            "prompt": ["h1", "h2"],
            "image": [[str(IMAGES / NAMES[0]), str(IMAGES / NAMES[1])], [str(IMAGES / NAMES[2])]],
            "human_preference": [[0, 1], [1, 0]],
        }
    )
    pq.write_table(hpd, tmp_path / "hpd.parquet")
    found = read_table(tmp_path / "hpd.parquet")
    assert [(p.prompt, Path(p.better).name, Path(p.worse).name) for p in found.pairs] == [("h1", NAMES[1], NAMES[0])]
    assert len(found.skipped) == 1 and "row 1: `image` and its marks" in found.skipped[0]
    ranked = pa.table({"prompt": ["r"], "image": [[str(IMAGES / n) for n in NAMES[:3]]], "rank": [[2, 1, 3]]})
    pq.write_table(ranked, tmp_path / "hpd-test.parquet")
    found = read_table(tmp_path / "hpd-test.parquet")
    assert [(Path(p.better).name, Path(p.worse).name) for p in found.pairs] == [
        (NAMES[1], NAMES[0]),
        (NAMES[0], NAMES[2]),
        (NAMES[1], NAMES[2]),
    ]
    pq.write_table(pa.table({"text": ["x"], "image": [b""]}), tmp_path / "odd.parquet")
    with pytest.raises(InputError, match="of no known layout; the layouts: prompt/chosen/rejected"):
        read_table(tmp_path / "odd.parquet")


def test_an_unreadable_image_leaves_its_pair_out_with_its_source(tmp_path) -> None:
    trainer, _ = tiny()
    (tmp_path / "broken.png").write_bytes(b"not an image")
    good = Pair("p", str(IMAGES / NAMES[0]), str(IMAGES / NAMES[1]), "good.json, item 0")
    bad = Pair("p", str(tmp_path / "broken.png"), str(IMAGES / NAMES[1]), "bad.parquet, row 7")
    out = trainer.step([good, bad])
    assert out.rewards.shape == (1, 2) and len(out.skipped) == 1 and out.skipped[0].startswith("bad.parquet, row 7: ")
    with pytest.raises(InputError, match="No pair of this batch could be read"):
        trainer.step([bad])


def test_the_held_out_split_never_leaks_a_prompt() -> None:
    pairs = [Pair(f"prompt {k % 13}", f"a{k}", f"b{k}") for k in range(200)]
    for seed in range(5):
        trained, held = split_by_prompt(pairs, 0.2, seed)
        assert {p.prompt for p in trained}.isdisjoint({p.prompt for p in held})
        assert len(trained) + len(held) == 200 and len({p.prompt for p in held}) == 3
    assert split_by_prompt(pairs, 0.2, 1) == split_by_prompt(pairs, 0.2, 1)
    assert split_by_prompt(pairs, 0.2, 1)[1] != split_by_prompt(pairs, 0.2, 2)[1]


def test_a_run_reports_held_out_agreement_beside_the_untuned_model_and_a_judge(tmp_path, judges_root) -> None:
    from imagereward.judges import load_judge

    pairs = read_rankings(ranking_file(tmp_path), IMAGES).pairs
    trainer, config = tiny()
    clip = load_judge("CLIP", download_root=judges_root, device="cpu")
    result = train(trainer, pairs, tmp_path / "out", {"CLIP": clip})
    held = json.loads((tmp_path / "out" / "heldout_prompts.json").read_text())
    assert len(held) == 1 and result.heldout_pairs == sum(p.prompt in held for p in pairs)
    assert [s.step for s in result.evaluations] == [0, trainer.steps // 2, trainer.steps]
    assert result.evaluations[0].name == "untuned" and result.judges[0].name == "CLIP"
    assert result.judges[0].total == result.heldout_pairs
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["evaluations"][0]["counts"] == f"{result.evaluations[0].agreed}/{result.heldout_pairs}"
    low, high = report["evaluations"][0]["interval"]
    assert 0 <= low <= (report["evaluations"][0]["agreement"] or 0) <= high <= 1
    log = [json.loads(line) for line in (tmp_path / "out" / "log.jsonl").read_text().splitlines()]
    assert [line["step"] for line in log if "step" in line] == list(range(1, trainer.steps + 1))
    best = min(result.evaluations[1:], key=lambda s: s.loss)
    saved = imagereward.load(str(tmp_path / "out"), device="cpu")
    rewards, _ = RewardTrainer(saved, config, total_steps=1).evaluate([p for p in pairs if p.prompt in held])
    assert abs(torch.nn.functional.softplus(rewards[:, 1] - rewards[:, 0]).mean().item() - best.loss) < 1e-5
    assert "untuned" in result.table() and "CLIP" in result.table()


def test_a_resumed_run_ends_where_an_unbroken_run_ends(tmp_path) -> None:
    pairs = read_rankings(ranking_file(tmp_path), IMAGES).pairs
    straight, _ = tiny(epochs=3, dropout=True)
    torch.manual_seed(0)
    train(straight, pairs, tmp_path / "straight")
    first, _ = tiny(epochs=1, dropout=True, total_steps=straight.schedule_total)
    torch.manual_seed(0)
    train(first, pairs, tmp_path / "broken")
    rest, _ = tiny(epochs=3, dropout=True, total_steps=straight.schedule_total)
    torch.manual_seed(123)  # the state's RNG, not this, drives the rest
    train(rest, pairs, tmp_path / "broken", resume=True)
    assert rest.steps == straight.steps
    a = dict(straight.model.named_parameters())
    assert all(torch.equal(p, a[n]) for n, p in rest.model.named_parameters())


def test_lora_trains_adapters_and_the_head_and_saves_merged_weights(tmp_path) -> None:
    pytest.importorskip("peft")
    trainer, _ = tiny(lora_rank=4)
    assert trainer.trainable and all("lora_" in n or n.startswith("head.") for n in trainer.trainable)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    pair = [("a red cube", str(IMAGES / NAMES[0]), str(IMAGES / NAMES[1]))]
    for _ in range(2):
        trainer.step(pair)
    changed = {n for n, p in trainer.model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and changed <= set(trainer.trainable) and any("lora_B" in n for n in changed)
    trainer.model.eval()
    expected = trainer.evaluate([Pair(*pair[0])])[0]
    trainer.save(tmp_path / "lora")
    merged = imagereward.load(str(tmp_path / "lora"), device="cpu")
    got = RewardTrainer(merged, TrainConfig.original(total_steps=1, dropout=False)).evaluate([Pair(*pair[0])])[0]
    assert torch.allclose(got, expected, atol=1e-5)


def test_cached_features_give_the_same_step_and_are_read_back() -> None:
    pair = [("a red cube", str(IMAGES / NAMES[0]), str(IMAGES / NAMES[1]))] * 2
    plain, _ = tiny()
    cached, _ = tiny(cache_features=True)
    assert cached.first_trained_block == 1 and cached.cache is not None
    a, b = plain.step(pair, record=True), cached.step(pair, record=True)
    assert torch.allclose(a.rewards, b.rewards, atol=1e-6) and abs(a.loss.item() - b.loss.item()) < 1e-6
    # the zero-true-gradient elements (key biases: round-off, tests/fixtures/train/README.md) within 1e-5 of the
    # step's largest gradient, as the fixture's tolerance; every other element within 1e-4 relative
    largest = max(g.abs().max() for g in a.record["grad"].values())
    for name, g in a.record["grad"].items():
        assert torch.allclose(g, b.record["grad"][name], rtol=1e-4, atol=1e-5 * largest), name
    hits = cached.cache.hits
    cached.step(pair)
    assert cached.cache.hits == hits + 4  # the second pass reads every image from the cache


def test_a_bf16_step_runs() -> None:
    trainer, _ = tiny(mixed_precision="bf16")
    out = trainer.step([("a red cube", str(IMAGES / NAMES[0]), str(IMAGES / NAMES[1]))])
    assert torch.isfinite(out.loss) and out.stepped
    assert next(trainer.model.parameters()).dtype == torch.float32  # float32 master weights


def test_the_command_line_checks_its_inputs_before_the_model_loads(tmp_path, capsys, monkeypatch) -> None:
    from imagereward import cli
    from imagereward.judges import imagereward as ir

    monkeypatch.setattr(ir, "load", lambda *a, **k: pytest.fail("a model loaded"))
    taken = tmp_path / "taken"
    (taken / "x").mkdir(parents=True)
    data = ranking_file(tmp_path)
    (tmp_path / "empty.json").write_text("[]")
    cases = [
        (
            ["train", str(tmp_path / "empty.json"), "--output-dir", str(tmp_path / "o1")],
            "no preference pair to train on",
        ),
        (["train", str(data), "--image-base", str(IMAGES), "--output-dir", str(taken)], "exists and is not empty"),
        (
            ["train", str(data), "--image-base", str(IMAGES), "--output-dir", str(tmp_path / "o2"), "--resume"],
            "no state.pt",
        ),
        (
            ["train", str(data), "--image-base", str(IMAGES), "--output-dir", str(tmp_path / "o3"), "--judge", "Nope"],
            "Nope",
        ),
        (
            ["train", str(data), "--image-base", str(IMAGES), "--output-dir", str(tmp_path / "o4"), "--fix-rate", "2"],
            "fix_rate 2",
        ),
    ]
    for args, sentence in cases:
        assert cli.main(args) == 2
        assert sentence in capsys.readouterr().err


def test_the_command_line_trains_and_the_page_serves_the_result(tmp_path, capsys) -> None:
    from imagereward import cli
    from imagereward.app.page import Page
    from imagereward.app.settings import Settings, load_for_serving

    data = ranking_file(tmp_path)
    out = tmp_path / "my-judge"
    args = ["train", str(data), "--image-base", str(IMAGES), "--output-dir", str(out), "--model", str(PARITY)]
    args += ["--lr", "1e-3", "--epochs", "2", "--batch-size", "4", "--accumulation-steps", "1", "--heldout", "0.25"]
    args += ["--device", "cpu", "-q"]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "untuned" in printed and "trained (best" in printed
    assert (out / "ImageReward.pt").is_file() and (out / "med_config.json").is_file()
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    shutil.copy(IMAGES / NAMES[0], uploads / NAMES[0])
    settings = Settings(model=str(out), device="cpu", judges=())
    page = Page(settings, roots=[str(uploads)], upload_folder=uploads, loaded=load_for_serving(settings))
    try:
        assert "my-judge" in page.banner()
        image = {"path": str(uploads / NAMES[0]), "meta": {"_type": "gradio.FileData"}}
        (answer,) = page.score_pairs([[PROMPTS[0]]], [[image]], [[]])
        trained = imagereward.load(str(out), device="cpu").score(PROMPTS[0], str(IMAGES / NAMES[0]))
        untuned = imagereward.load(str(PARITY), device="cpu").score(PROMPTS[0], str(IMAGES / NAMES[0]))
        assert answer["rows"][0]["score"] == pytest.approx(trained, abs=1e-6) and abs(trained - untuned) > 1e-4
    finally:
        page.close()


def test_a_run_without_progress_stops_after_patience_and_its_trackers_hear_everything(tmp_path) -> None:
    """lr 0: no evaluation beats the first trained one, so with patience 1 the run stops after the second epoch;
    a tracker (accelerate's interface) gets the config, every step and every evaluation, and is finished."""

    class Recorder:
        def __init__(self) -> None:
            self.config, self.logs, self.finished = None, [], False

        def store_init_configuration(self, values: dict) -> None:
            self.config = values

        def log(self, values: dict, step: int) -> None:
            self.logs.append((step, values))

        def finish(self) -> None:
            self.finished = True

    pairs = read_rankings(ranking_file(tmp_path), IMAGES).pairs
    trainer, config = tiny(lr=0.0, epochs=6, patience=1)
    recorder = Recorder()
    result = train(trainer, pairs, tmp_path / "out", trackers=[recorder])
    assert len(result.evaluations) == 3 and result.stopped == "no better held-out loss in 1 evaluations"
    steps_per_epoch = trainer.steps // 2
    assert recorder.config["patience"] == 1 and recorder.finished
    assert [s for s, v in recorder.logs if "train/loss" in v] == list(range(1, 2 * steps_per_epoch + 1))
    assert [s for s, v in recorder.logs if "heldout/loss" in v] == [0, steps_per_epoch, 2 * steps_per_epoch]


def test_a_hub_dataset_is_read_from_the_hugging_face_cache(hub_cache, tmp_path) -> None:
    """`hf://owner/dataset`: its Parquet files through huggingface_hub (offline here, from a cache laid out as the
    hub lays it out), read as a local table."""
    import os
    import subprocess
    import sys

    import pyarrow as pa
    import pyarrow.parquet as pq

    png = io.BytesIO()
    Image.open(IMAGES / NAMES[2]).convert("RGB").save(png, format="PNG")
    table = pa.table({"prompt": ["q1", "q2"], "chosen": [png.getvalue()] * 2, "rejected": [png.getvalue(), None]})
    pq.write_table(table, tmp_path / "part.parquet")
    hub_cache.add("someone/prefs", {"data/train-00000-of-00001.parquet": tmp_path / "part.parquet"}, "dataset")
    env = {**os.environ, "HF_HOME": str(hub_cache.home), "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
    code = (
        "import json; from imagereward.training.pairs import read_table; found = read_table('hf://someone/prefs');"
        "print(json.dumps([[p.prompt for p in found.pairs], found.skipped]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    prompts, skipped = json.loads(done.stdout.strip().splitlines()[-1])
    assert prompts == ["q1"] and len(skipped) == 1 and "row 1: an image is missing" in skipped[0]


def test_accumulated_micro_batches_make_the_step_one_batch_makes() -> None:
    """Two micro-batches of 2 pairs with accumulation_steps 2 step the optimizer once, as one batch of 4 does."""
    pairs = [(PROMPTS[k % 2], str(IMAGES / NAMES[k]), str(IMAGES / NAMES[k + 1])) for k in range(4)]
    whole, _ = tiny(accumulation_steps=1, total_steps=1)
    parts, _ = tiny(accumulation_steps=2, total_steps=1)
    one = whole.step(pairs, record=True)
    assert not parts.step(pairs[:2]).stepped and parts.steps == 0
    two = parts.step(pairs[2:], record=True)
    assert two.stepped and parts.steps == 1
    # the accumulated gradient is the whole batch's mean (each micro-batch's loss divided by 2); the
    # zero-true-gradient elements (round-off) within 1e-5 of the largest, as the fixture's tolerance
    largest = max(g.abs().max() for g in one.record["grad"].values())
    for name, g in one.record["grad"].items():
        assert torch.allclose(two.record["grad"][name], g, rtol=1e-4, atol=1e-5 * largest), name
