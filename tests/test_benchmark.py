"""`imagereward benchmark`: equal to the original's `test-benchmark.py` (its figures and result files, recorded
in `tests/fixtures/benchmark-three/` by the original itself), and the win rates, bootstrap intervals, rankings
and correlations it lacks, checked against direct computations on hand-made cases."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from imagereward import cli
from imagereward.benchmark import Prompt, load_prompts, run_benchmark, summarize
from imagereward.benchmark.human_wins import generation_hashes, human_wins
from imagereward.benchmark.scores import ModelScores
from imagereward.benchmark.stats import disagreements, score_interval, spearman, win_rate
from imagereward.benchmark.table import JudgeTable, from_model_scores
from imagereward.verdicts import Verdict, wilson, write_pairs
from originals import FIXTURES, PARITY

BENCH = FIXTURES / "benchmark-three"
JUDGES = ("ImageReward-v1.0", "CLIP", "BLIP", "Aesthetic")
MODELS = ("alpha", "beta", "gamma")


def benchmark_args(out: Path, judges_root: Path, judges: tuple[str, ...]) -> list[str]:
    args = ["benchmark", "--images-dir", str(BENCH / "generations"), "--prompts", str(BENCH / "prompts.json")]
    args += ["--output-dir", str(out), "--model", str(PARITY), "--device", "cpu", "--download-root", str(judges_root)]
    return args + [a for j in judges for a in ("--judge", j)] + ["--generators", ",".join(MODELS), "-q"]


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory, judges_root: Path) -> Path:
    out = tmp_path_factory.mktemp("benchmark")
    assert cli.main(benchmark_args(out, judges_root, ("BLIP",))) == 0
    return out


# The original's script runs CLIP and Aesthetic's CLIP tower in float16 on the CPU (it passes
# `torch.device("cpu")`, and its baselines test `device == "cpu"`), and `imagereward benchmark` does too. Float16
# on the CPU rounds as the CPU's kernels do (the original's own CLIP features move by 2e-3 between oneDNN's
# AVX512-FP16 kernels and the others), so the fixture recorded those two with the kernels pinned
# (`tools/original_benchmark.py`: oneDNN off, ATen's AVX2 kernels) and they run here pinned alike, in a process
# of their own (the pins must be set before torch starts).
PINNED = "import sys, torch; torch.backends.mkldnn.enabled = False; from imagereward import cli; sys.exit(cli.main(sys.argv[1:]))"


@pytest.fixture(scope="module")
def ran_pinned(tmp_path_factory: pytest.TempPathFactory, judges_root: Path) -> Path:
    out = tmp_path_factory.mktemp("benchmark-pinned")
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2"}
    done = subprocess.run(
        [sys.executable, "-c", PINNED, *benchmark_args(out, judges_root, ("CLIP", "Aesthetic"))],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.mark.parametrize("judge", JUDGES)
def test_the_figures_and_files_are_the_original_s(request: pytest.FixtureRequest, judge: str) -> None:
    ran = request.getfixturevalue("ran_pinned" if judge in ("CLIP", "Aesthetic") else "ran")
    theirs = json.loads((BENCH / "results" / f"{judge}-benchmark-results.json").read_text())
    ours = json.loads((ran / f"{judge}-benchmark-results.json").read_text())
    assert list(ours) == list(theirs) == list(MODELS)
    assert ours == pytest.approx(theirs, abs=1e-5)
    for model in MODELS:
        name = f"{judge}/{judge}-benchmark-{model}-result.json"
        their_rows = json.loads((BENCH / "results" / name).read_text())
        our_rows = json.loads((ran / name).read_text())
        assert [list(r) for r in our_rows] == [list(r) for r in their_rows]  # the same fields, in order
        assert [(r["id"], r["prompt"]) for r in our_rows] == [(r["id"], r["prompt"]) for r in their_rows]
        for mine, original in zip(our_rows, their_rows):
            assert mine["mean_score"] == pytest.approx(original["mean_score"], abs=1e-5)
            assert mine["rewards"] == pytest.approx(original["rewards"], abs=1e-5)


@pytest.mark.parametrize(
    "run, judges", [("ran", ("ImageReward-v1.0", "BLIP")), ("ran_pinned", JUDGES[:1] + JUDGES[1::2])]
)
def test_the_summary_ranks_each_judge_and_names_where_they_disagree(
    request: pytest.FixtureRequest, run: str, judges: tuple[str, ...]
) -> None:
    ran = request.getfixturevalue(run)
    summary = json.loads((ran / "summary.json").read_text())
    assert list(summary["judges"]) == list(judges)
    for judge in judges:
        theirs = json.loads((BENCH / "results" / f"{judge}-benchmark-results.json").read_text())
        assert summary["judges"][judge]["ranking"] == sorted(theirs, key=lambda m: -theirs[m])
        for model, row in summary["judges"][judge]["models"].items():
            low, high = row["interval"]
            assert low <= theirs[model] + 1e-9 and theirs[model] - 1e-9 <= high and row["prompts_covered"] == 4
    rankings = {j: summary["judges"][j]["ranking"] for j in judges}
    expected = [
        {"judges": [j1, j2], "models": [a, b]}
        for i, j1 in enumerate(judges)
        for j2 in judges[i + 1 :]
        for x, a in enumerate(rankings[j1])
        for b in rankings[j1][x + 1 :]
        if rankings[j2].index(a) > rankings[j2].index(b)
    ]
    assert summary["disagreements"] == expected
    assert "| alpha |" in (ran / "summary.md").read_text()


def test_a_missing_generation_is_named_and_the_run_goes_on(tmp_path: Path, tiny_model) -> None:
    images = tmp_path / "generations"
    shutil.copytree(BENCH / "generations", images)
    prompts = load_prompts(BENCH / "prompts.json")
    gone = images / "beta" / f"{prompts[1].id}_1.png"
    gone.unlink()
    (images / "beta" / f"{prompts[1].id}_9.png").write_bytes(b"not counted: keeps the folder's count")
    (images / "gamma" / f"{prompts[2].id}_0.png").write_bytes(b"not an image")
    bench = run_benchmark(images, [("ImageReward-v1.0", tiny_model)], prompts, list(MODELS))
    table = bench.tables["ImageReward-v1.0"]
    assert table.prompts_covered("alpha") == 4
    assert table.missing[1] == {prompts[1].id: [gone.name]} and not table.covered[1, 1]
    assert list(table.unreadable[2]) == [prompts[2].id] and "not an image" in table.unreadable[2][prompts[2].id][0]
    beta = [float(np.mean(table.generations("beta", p))) for p in (0, 2, 3)]
    assert table.score("beta") == pytest.approx(np.mean(beta))
    summary = summarize(bench, samples=50)
    assert summary["judges"]["ImageReward-v1.0"]["models"]["beta"]["prompts_covered"] == 3


# ------------------------------------------------------------------------------------------ the statistics
def table_of(per_model: dict[str, dict[str, list[float]]]) -> JudgeTable:
    """A judge's table from hand-made rewards: model -> prompt id -> its generations' rewards."""
    ids = list(dict.fromkeys(p for rewards in per_model.values() for p in rewards))
    prompts = [Prompt(p, f"prompt {p}") for p in ids]
    results = [
        ModelScores(
            "J", model, [{"id": p, "prompt": p, "mean_score": float(np.mean(r)), "rewards": r} for p, r in x.items()]
        )
        for model, x in per_model.items()
    ]
    return from_model_scores("J", prompts, results)


A = {"p1": [1.0, 3.0], "p2": [0.0, 0.0], "p3": [5.0, 1.0], "p4": [2.0, 2.0], "p5": [0.5, 0.7]}
B = {"p1": [1.5, 1.5], "p2": [1.0, -1.0], "p3": [0.0, 0.0], "p4": [3.0, 3.0], "p6": [9.0, 9.0]}
AB = table_of({"A": A, "B": B})
SHARED = ["p1", "p2", "p3", "p4"]


def test_win_rates_count_prompts_and_generations_on_shared_prompts() -> None:
    w = win_rate(AB, "A", "B", samples=0)
    # shared p1..p4: means A 2.0 / 0.0 / 3.0 / 2.0 against B 1.5 / 0.0 / 0.0 / 3.0: wins p1, p3; tie p2; loss p4
    assert (w.wins, w.losses, w.ties, w.rate) == (2, 1, 1, 2 / 3)
    # every (a, b) generation pair of a shared prompt
    pairs = [(x, y) for p in SHARED for x in A[p] for y in B[p]]
    assert (w.generation_wins, w.generation_losses, w.generation_ties) == (
        sum(x > y for x, y in pairs),
        sum(x < y for x, y in pairs),
        sum(x == y for x, y in pairs),
    )
    assert win_rate(AB, "B", "A", samples=0).rate == 1 / 3


def _percentiles(rates: list[float] | np.ndarray) -> tuple[float, float]:
    return float(np.percentile(rates, 2.5)), float(np.percentile(rates, 97.5))


def test_the_bootstrap_resamples_prompts_with_its_seed() -> None:
    """A draw takes the 4 shared prompts with replacement; its win rate depends only on how many of them are
    wins, losses and ties, so each draw is multinomial(4, shares of wins, losses, ties) from numpy's generator
    with the seed: recomputed here directly. The same as drawing prompt indices (the distribution of a draw's
    rate, over many draws), unlike resampling generations; another seed moves the interval."""
    w = win_rate(AB, "A", "B", samples=400, seed=7)
    counts = np.random.default_rng(7).multinomial(4, [2 / 4, 1 / 4, 1 / 4], size=400)
    decided = counts[:, 0] + counts[:, 1]
    assert w.interval == _percentiles(counts[decided > 0, 0] / decided[decided > 0])
    assert w.interval == win_rate(AB, "A", "B", samples=400, seed=7).interval
    assert len({win_rate(AB, "A", "B", samples=40, seed=s).interval for s in range(6)}) > 1  # the seed is used

    # Drawing prompt indices gives the same distribution of a draw's rate...
    ma = np.array([np.mean(A[p]) for p in SHARED])
    mb = np.array([np.mean(B[p]) for p in SHARED])
    by_index = []
    for draw in np.random.default_rng(1).integers(0, 4, size=(20000, 4)):
        wins, losses = int(np.sum(ma[draw] > mb[draw])), int(np.sum(ma[draw] < mb[draw]))
        if wins + losses:
            by_index.append(wins / (wins + losses))
    counts = np.random.default_rng(2).multinomial(4, [2 / 4, 1 / 4, 1 / 4], size=20000)
    decided = counts[:, 0] + counts[:, 1]
    by_count = counts[decided > 0, 0] / decided[decided > 0]
    for value in np.unique(by_index):
        assert np.mean(np.isclose(by_index, value)) == pytest.approx(np.mean(np.isclose(by_count, value)), abs=0.015)
    # ... and resampling the 16 generation pairs instead of the prompts would not give the interval.
    ga = np.array([x for p in SHARED for x in A[p] for _ in B[p]])
    gb = np.array([y for p in SHARED for _ in A[p] for y in B[p]])
    by_generation = []
    for draw in np.random.default_rng(7).integers(0, ga.size, size=(400, ga.size)):
        wins, losses = int(np.sum(ga[draw] > gb[draw])), int(np.sum(ga[draw] < gb[draw]))
        by_generation.append(wins / (wins + losses))
    assert _percentiles(by_generation) != w.interval

    means = np.array([np.mean(r) for r in A.values()])
    boot = means[np.random.default_rng(3).integers(0, means.size, size=(300, means.size))].mean(axis=1)
    assert score_interval(AB, "A", 300, 3) == _percentiles(boot)


def test_spearman_and_disagreements_against_direct_counts() -> None:
    assert spearman(["a", "b", "c", "d"], ["a", "b", "c", "d"]) == 1.0
    assert spearman(["d", "c", "b", "a"], ["a", "b", "c", "d"]) == -1.0
    # one swap of neighbours among four: d^2 = 2, rho = 1 - 6 * 2 / (4 * 15) = 0.8
    assert spearman(["b", "a", "c", "d"], ["a", "b", "c", "d"]) == pytest.approx(0.8)
    with pytest.raises(ValueError, match="two models in both"):
        spearman(["a", "b"], ["a", "x"])
    assert disagreements({"J1": ["a", "b", "c"], "J2": ["b", "a", "c"]}) == [("J1", "J2", "a", "b")]


def test_the_shipped_prompts_are_the_original_s_hundred() -> None:
    prompts = load_prompts()
    assert len(prompts) == 100 and prompts[0].id == "005695-0057"
    assert prompts[0].prompt == "a concept art of a vehicle, cyberpunk"


# ------------------------------------------------------------------------------ people's verdicts, the report
def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_people_s_verdicts_become_win_rates_between_models(tmp_path: Path, ran: Path, judges_root: Path) -> None:
    """Verdicts on pairs of the benchmark's generations (found by SHA-256, either order) count for their models;
    ties and both-bad apart; images from elsewhere and pairs of one model are counted, not mixed in."""
    prompts = load_prompts(BENCH / "prompts.json")
    gens = BENCH / "generations"
    alpha, beta, gamma = (gens / m / f"{prompts[0].id}_0.png" for m in MODELS)
    alpha1 = gens / "alpha" / f"{prompts[0].id}_1.png"

    def verdict(a: Path, b: Path, choice: str, a_sha: str | None = None) -> Verdict:
        return Verdict(prompts[0].prompt, a.name, b.name, choice, a_sha256=a_sha or _sha(a), b_sha256=_sha(b))

    verdicts = [
        verdict(alpha, beta, "a"),
        verdict(beta, alpha, "b"),  # alpha again, from the other side
        verdict(alpha, beta, "a"),
        verdict(beta, alpha, "a"),  # beta wins once
        verdict(alpha, beta, "tie"),
        verdict(beta, alpha, "both_bad"),
        verdict(gamma, alpha, "a"),
        verdict(alpha, alpha1, "a"),  # one model's two generations
        verdict(alpha, beta, "a", a_sha="0" * 64),  # not a generation of the benchmark
    ]
    counted = human_wins(verdicts, generation_hashes(gens, MODELS), list(MODELS))
    assert counted.counts[("alpha", "beta")] == {"a_wins": 3, "b_wins": 1, "ties": 1, "both_bad": 1}
    assert counted.counts[("alpha", "gamma")] == {"a_wins": 0, "b_wins": 1, "ties": 0, "both_bad": 0}
    assert (counted.same_model, counted.not_in_benchmark) == (1, 1)
    assert counted.rate("alpha", "beta") == (3 / 4, wilson(3, 4), 4)
    assert counted.rate("beta", "alpha") == (1 / 4, wilson(1, 4), 4)

    pairs = tmp_path / "pairs.jsonl"
    with open(pairs, "w", encoding="utf-8") as f:
        write_pairs(verdicts, f)
    out = tmp_path / "out"
    args = benchmark_args(out, judges_root, ("BLIP",)) + [
        "--verdicts",
        str(pairs),
        "--human-ranking",
        "beta,alpha,gamma",
    ]
    assert cli.main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["human_verdicts"] == counted.as_json()
    assert summary["human_ranking"] == ["beta", "alpha", "gamma"]
    for judge in ("ImageReward-v1.0", "BLIP"):
        ranking = summary["judges"][judge]["ranking"]
        assert summary["judges"][judge]["spearman_with_human"] == spearman(ranking, ["beta", "alpha", "gamma"])
    report = (out / "report.html").read_text()
    assert "People's verdicts" in report and "75.0%" in report
    assert "| alpha over beta | 75.0% |" in (out / "summary.md").read_text()


def test_the_report_holds_every_figure_and_the_numbers_beside_its_plots(ran: Path) -> None:
    """One file, nothing fetched: the plots and thumbnails are inlined; each judge's scores, intervals and win
    rates are in its tables as summary.json has them."""
    report = (ran / "report.html").read_text()
    summary = json.loads((ran / "summary.json").read_text())
    assert "http://" not in report and "https://" not in report and 'src="data:' in report
    for judge, row in summary["judges"].items():
        assert f"<h2>{judge}</h2>" in report
        for model, scores in row["models"].items():
            low, high = scores["interval"]
            assert f"<td>{model}</td><td>{scores['score']:.4f}</td><td>{low:.4f} – {high:.4f}</td>" in report
        for w in row["win_rates"]:
            assert f"<td>{w['a']}</td><td>{w['b']}</td><td>{100 * w['prompt_win_rate']:.1f}%</td>" in report
    plots = report.count('src="data:image/png;base64,')
    thumbnails = report.count('src="data:image/jpeg;base64,')
    assert plots == 3 * len(summary["judges"])  # scores, win-rate heat map, spread per judge
    # each model's 3 best and (of 4 prompts) 1 other worst prompt, with both generations, per judge
    assert thumbnails == len(summary["judges"]) * len(MODELS) * 4 * 2


def test_the_help_explains_the_layout_and_the_ways_in(capsys) -> None:
    with pytest.raises(SystemExit):
        cli.main(["benchmark", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for needed in ("IMAGES_DIR/<model>/<id>_<k>.png", "original's 100 prompts", "--from-scores", "--write-manifest"):
        assert needed in text, needed
    assert "report.html" in text and "--verdicts" in text
