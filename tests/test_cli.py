"""`imagereward score`: folders, a corrupt file among good ones, every output format parsed back."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from imagereward import cli
from originals import EXPECTED, PARITY, image_path

CASE = EXPECTED["rank"][0]
NAMES = CASE["images"][:6]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    images = tmp_path / "gens"
    (images / "sub").mkdir(parents=True)
    for k, name in enumerate(NAMES):
        shutil.copy(PARITY / "images" / name, images / ("sub" if k % 2 else ".") / name)
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (images / "notes.txt").write_text("not an image, and not an image extension: ignored")
    return images


def expected_rows() -> list[tuple[str, float]]:
    rewards = dict(zip(CASE["images"], CASE["rewards"]))
    return sorted(((n, rewards[n]) for n in NAMES), key=lambda r: -r[1])


def run(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    code = cli.main(["score", "--model", str(PARITY), "--device", "cpu", *args])
    out, err = capsys.readouterr()
    return code, out, err


def parse(fmt: str, text: str) -> list[dict]:
    if fmt == "json":
        (group,) = json.loads(text)
        return group["results"]
    if fmt == "jsonl":
        return [json.loads(line) for line in text.splitlines()]
    if fmt == "csv":
        return [
            {**row, "rank": int(row["rank"]), "score": float(row["score"])} for row in csv.DictReader(io.StringIO(text))
        ]
    lines = text.splitlines()[1:]
    return [{"rank": int(r), "score": float(s), "image": p} for r, s, p in (line.split(None, 2) for line in lines)]


@pytest.mark.parametrize("fmt", cli.FORMATS)
def test_folder_scored_in_every_format(folder: Path, fmt: str, capsys: pytest.CaptureFixture) -> None:
    code, out, err = run(["--prompt", CASE["prompt"], str(folder), "--format", fmt], capsys)
    assert code == 0
    assert f"skipped {folder / 'broken.png'}: " in err and "notes.txt" not in out + err
    rows = parse(fmt, out)
    assert [r["rank"] for r in rows] == list(range(1, len(NAMES) + 1))
    for row, (name, reward) in zip(rows, expected_rows()):
        assert Path(row["image"]).name == name
        assert abs(row["score"] - reward) <= (1e-4 if fmt != "table" else 1e-4 + 5e-5)
    if fmt in ("json", "jsonl", "csv"):
        assert all(r["prompt"] == CASE["prompt"] for r in rows)
    if fmt == "json":
        assert json.loads(out)[0]["errors"][0]["image"].endswith("broken.png")


def test_output_file(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    target = tmp_path / "out.csv"
    code, out, _ = run(["-p", CASE["prompt"], str(folder), "-f", "csv", "-o", str(target)], capsys)
    assert code == 0 and out == ""
    assert len(parse("csv", target.read_text())) == len(NAMES)


def test_nothing_scorable_exits_non_zero(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    code, _, err = run(["-p", "a cat", str(bad), str(tmp_path / "missing.png")], capsys)
    assert code == 1
    assert f"skipped {bad}: not an image in an accepted format" in err and "missing.png: file not found" in err


def test_prompts_file_scores_many_groups(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    other = EXPECTED["rank"][1]
    lines = [
        {"prompt": CASE["prompt"], "images": ["gens"]},
        {"prompt": other["prompt"], "images": [f"gens/{NAMES[0]}", f"gens/sub/{NAMES[1]}"]},
    ]
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    code, out, _ = run(["--prompts-file", str(prompts), "-f", "jsonl"], capsys)
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["prompt"] for r in rows] == [CASE["prompt"]] * len(NAMES) + [other["prompt"]] * 2
    rewards = dict(zip(other["images"], other["rewards"]))
    for row in rows[len(NAMES) :]:
        assert abs(row["score"] - rewards[Path(row["image"]).name]) <= 1e-4


def test_unknown_model_is_a_clear_error(folder: Path, capsys: pytest.CaptureFixture) -> None:
    code = cli.main(["score", "-p", "x", str(folder), "--model", "ImageReward-v9"])
    assert code == 2
    assert "available models: ['ImageReward-v1.0']" in capsys.readouterr().err


def test_python_dash_m_entry_point(folder: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "imagereward",
            "score",
            "-p",
            CASE["prompt"],
            str(folder),
            "--model",
            str(PARITY),
            "--device",
            "cpu",
            "-f",
            "json",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)[0]["results"]) == len(NAMES)


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails the test if the model is loaded: checks that must come before any scoring."""

    def refuse(args):
        raise AssertionError("the model was loaded before the input was checked")

    monkeypatch.setattr(cli, "_load_judges", refuse)


@pytest.mark.parametrize("where", ["missing-folder/out.csv", "."])
def test_an_unwritable_output_fails_before_scoring(
    folder: Path, tmp_path: Path, where: str, no_model: None, capsys: pytest.CaptureFixture
) -> None:
    target = tmp_path / where
    code, _, err = run(["-p", "a cat", str(folder), "-o", str(target)], capsys)
    assert code == 2 and "--output" in err and ("does not exist" in err or "is a folder" in err)


def test_a_failed_run_leaves_no_partial_output(folder: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    target = tmp_path / "out.csv"
    target.write_text("earlier results\n")

    def broken(args):
        raise cli.InputError("the model could not be loaded")

    monkeypatch.setattr(cli, "_load_judges", broken)
    code, _, _ = run(["-p", "a cat", str(folder), "-o", str(target)], capsys)
    assert code == 2 and target.read_text() == "earlier results\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.csv")] == []


def test_a_permission_error_is_named_as_such(folder: Path, capsys, monkeypatch) -> None:
    from PIL import Image

    real_open = Image.open
    locked = folder / NAMES[0]

    def open_(source, *a, **k):  # what reading a file without the permission raises (root ignores chmod)
        if str(source) == str(locked):
            raise PermissionError(13, "Permission denied", str(source))
        return real_open(source, *a, **k)

    monkeypatch.setattr(Image, "open", open_)
    code, out, err = run(["-p", CASE["prompt"], str(folder), "-f", "jsonl"], capsys)
    assert code == 0
    assert f"skipped {locked}: permission denied" in err and "corrupt" not in err.split(str(locked))[1].split("\n")[0]
    assert len(out.splitlines()) == len(NAMES) - 1


def test_an_unreadable_folder_is_reported(folder: Path, capsys, monkeypatch) -> None:
    import os

    real_scandir = os.scandir

    def scandir(path="."):
        if os.fspath(path) == str(folder / "sub"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    code, out, err = run(["-p", CASE["prompt"], str(folder), "-f", "jsonl"], capsys)
    assert code == 0
    assert f"skipped {folder / 'sub'}: folder could not be read (permission denied)" in err
    assert len(out.splitlines()) == len([n for k, n in enumerate(NAMES) if k % 2 == 0])


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_batch_size_must_be_positive(folder: Path, value: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["score", "-p", "a cat", str(folder), "--batch-size", value])
    assert exit_.value.code == 2
    assert "--batch-size: must be a whole number >= 1" in capsys.readouterr().err


@pytest.mark.parametrize(
    "line, field",
    [
        ({"prompt": "a cat", "images": "gens"}, '"images" must be a list'),
        ({"prompt": 3, "images": ["gens"]}, '"prompt" must be a string'),
        ({"prompt": "a cat", "images": [1, 2]}, '"images" must be a list'),
        (["a cat", ["gens"]], "expected an object"),
    ],
)
def test_a_prompts_file_of_the_wrong_shape_names_file_line_and_field(
    folder: Path, tmp_path: Path, line, field: str, no_model: None, capsys
) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": "ok", "images": ["gens"]}) + "\n\n" + json.dumps(line) + "\n")
    code, _, err = run(["--prompts-file", str(prompts)], capsys)
    assert code == 2
    assert f"{prompts}, line 3: " in err and field in err


def test_without_a_prompt_each_file_is_scored_against_its_own(tmp_path: Path, capsys) -> None:
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    other = EXPECTED["rank"][1]
    folder = tmp_path / "gens"
    folder.mkdir()
    plans = [(CASE, 0), (CASE, 1), (other, 2), (other, 3)]
    for k, (case, i) in enumerate(plans):
        info = PngInfo()
        info.add_text("parameters", f"{case['prompt']}\nNegative prompt: blurry\nSteps: 20, Sampler: Euler")
        with Image.open(PARITY / "images" / case["images"][i]) as image:
            image.save(folder / f"{k}_{Path(case['images'][i]).stem}.png", pnginfo=info)
    shutil.copy(PARITY / "images" / CASE["images"][0], folder / "plain.png")  # carries no prompt
    code, out, err = run([str(folder), "-f", "jsonl"], capsys)
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["prompt"] for r in rows] == [CASE["prompt"]] * 2 + [other["prompt"]] * 2
    for case, group in ((CASE, rows[:2]), (other, rows[2:])):
        rewards = dict(zip(case["images"], case["rewards"]))
        for row in group:
            stem = Path(row["image"]).stem.split("_", 1)[1]
            name = next(n for n in case["images"] if Path(n).stem == stem)
            assert abs(row["score"] - rewards[name]) <= 1e-4  # PNG keeps the decoded pixels and mode
    assert "plain.png: no --prompt given, and the file carries no prompt" in err


def test_without_a_prompt_and_no_embedded_prompts_says_to_give_one(folder: Path, capsys) -> None:
    code, _, err = run([str(folder)], capsys)
    assert code == 2 and "give --prompt" in err


def test_several_judges_give_their_columns(folder: Path, capsys: pytest.CaptureFixture) -> None:
    """`--judge` repeated (`--scorer` the same): ranked by the first, `score_<judge>` and `rank_<judge>` for each
    other judge, each equal to that judge scoring alone."""
    from imagereward.judges import load_score
    from imagereward.judges.base import ranks_from_rewards

    baselines = Path(__file__).parent / "fixtures" / "parity-baselines"
    args = ["-p", "a cat", str(folder), "--model", str(PARITY), "--download-root", str(baselines), "-f", "csv"]
    code, out, _ = run([*args, "--judge", "ImageReward-v1.0", "--scorer", "CLIP", "--judge", "Aesthetic"], capsys)
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == [
        "prompt",
        "rank",
        "image",
        "score",
        "precision",
        "model",
        "score_CLIP",
        "rank_CLIP",
        "score_Aesthetic",
        "rank_Aesthetic",
    ]
    assert [int(r["rank"]) for r in rows] == list(range(1, len(rows) + 1))
    assert {r["model"] for r in rows} == {PARITY.name} and {r["precision"] for r in rows} == {"float32"}
    clip = load_score("CLIP", device="cpu", download_root=baselines)
    want = clip.rewards("a cat", [r["image"] for r in rows])
    assert [float(r["score_CLIP"]) for r in rows] == pytest.approx(want, abs=1e-6)
    assert [int(r["rank_CLIP"]) for r in rows] == ranks_from_rewards(want)


def test_explain_prints_what_the_model_read_the_words_and_writes_the_map(tmp_path: Path, capsys, tiny_model) -> None:
    import numpy as np
    from PIL import Image

    prompt = EXPECTED["rank"][0]["prompt"] + ", golden hour lighting, 85mm lens, bokeh, award winning, trending on it"
    path = image_path("02_landscape_640x480.jpg")
    out = tmp_path / "map.png"
    options = ["--model", str(PARITY), "--device", "cpu"]
    assert cli.main(["explain", prompt, str(path), *options, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    expected = tiny_model.explain(prompt, str(path))
    reading = expected.reading
    assert f"ImageReward read {reading.tokens_read} of {reading.tokens_total} tokens:" in text
    assert f"  read:   {reading.read}\n" in text and f"  unread: {reading.unread}\n" in text
    lines = [line for line in text.splitlines() if line.startswith("  ") and line.strip()[:1] in "+-"]
    assert [float(line.split()[0]) for line in lines] == pytest.approx([d for _, d in expected.words], abs=1e-4)
    assert lines[-1].endswith("trend[ing]")  # the word read in part
    with Image.open(out) as picture:
        assert picture.size == (640, 480)
    assert cli.main(["explain", prompt, str(path), *options, "-f", "json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert [w["word"] for w in answer["words"]] == [w for w, _ in expected.words]
    assert np.allclose(answer["heatmap"], expected.heatmap, atol=1e-5)
    assert answer["crop_box"] == pytest.approx(list(expected.crop_box)) and answer["model"] == "parity"
    assert cli.main(["explain", prompt, str(tmp_path / "missing.png"), *options]) == 2
    assert "missing.png" in capsys.readouterr().err


def test_the_top_level_help_imports_no_judge() -> None:
    """`imagereward --help` lists the commands without importing the judges (torch, timm, transformers): main
    took 5.8 s for it; a command's own help names the judges from the registry."""
    script = (
        "import sys\n"
        "from imagereward import cli\n"
        "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'timm', 'transformers', 'imagereward.judges') if m in sys.modules))\n"
    )
    shown = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert shown.stdout.strip().endswith("[]") and "score" in shown.stdout, shown.stdout + shown.stderr
    helped = subprocess.run(
        [sys.executable, "-m", "imagereward", "score", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "400"},  # one line per option: no name broken at its hyphen
    )
    from imagereward.judges import available_judges

    assert " ".join(available_judges()) in " ".join(helped.stdout.replace(",", " ").split())
