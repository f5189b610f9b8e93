"""A person's verdicts: the pairs format, agreement with its Wilson interval, the next pair, and the store (one
writer, nothing acknowledged lost, each visitor's share and the total bounded), and the command line's report and
export."""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from imagereward import cli
from imagereward.verdicts import Verdict, agreement, next_pairs, pair_key, read_pairs, wilson, write_pairs
from imagereward.verdicts.agreement import Z95
from imagereward.verdicts.store import (
    SCHEMA_VERSION,
    Image,
    StoreRefusal,
    VerdictStore,
    connect,
    export,
    stored_verdicts,
)


def verdict(k: int, choice: str = "a", prompt: str = "a cat", scores: dict | None = None) -> Verdict:
    return Verdict(prompt, f"{k}a.png", f"{k}b.png", choice, scores or {"ImageReward": [1.0, 0.0]}, model="m")


# ------------------------------------------------------------------------------------------ the format
def test_pairs_go_through_the_file_unchanged_and_a_bad_line_is_named(tmp_path: Path) -> None:
    given = [verdict(0, "a"), verdict(1, "b", "a dog"), verdict(2, "tie"), verdict(3, "both_bad")]
    path = tmp_path / "pairs.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        assert write_pairs(given, f) == 4
    assert list(read_pairs(path)) == given
    second = json.loads(path.read_text().splitlines()[1])
    assert (second["chosen"], second["rejected"], second["verdict"]) == ("1b.png", "1a.png", "b")
    path.write_text(path.read_text() + '{"prompt": "x", "a": "1", "b": "2", "verdict": "maybe"}\n')
    with pytest.raises(ValueError, match=r"line 5: unknown verdict 'maybe'; a verdict is one of a, b, tie, both_bad"):
        list(read_pairs(path))


# --------------------------------------------------------------------------------------- agreement
@pytest.mark.parametrize("agreed, total", [(0, 1), (2, 2), (4, 6), (13, 20), (650, 1000)])
def test_the_wilson_interval_solves_its_score_equation(agreed: int, total: int) -> None:
    """Each bound p of Wilson's interval is where the observed share is z standard errors (at p) from p."""
    share = agreed / total
    low, high = wilson(agreed, total)
    assert low <= share <= high
    for bound in (low, high):
        if 0 < bound < 1:
            assert abs(share - bound) == pytest.approx(Z95 * math.sqrt(bound * (1 - bound) / total), abs=1e-12)
    assert wilson(0, 0) == (0.0, 1.0)


def test_agreement_counts_decided_verdicts_and_keeps_ties_apart() -> None:
    scores = [
        {"ImageReward": [1.0, 0.0], "CLIP": [0.2, 0.3]},  # a chosen: IR agrees, CLIP not
        {"ImageReward": [0.5, 0.9], "CLIP": [0.3, 0.1]},  # b chosen: IR agrees, CLIP not
        {"ImageReward": [0.5, 0.9], "CLIP": [0.3, None]},  # a chosen: IR not, CLIP could not score B
        {"ImageReward": [0.5, 0.5], "CLIP": [0.3, 0.1]},  # tie
        {"ImageReward": [0.5, 0.4], "CLIP": [0.3, 0.1]},  # both bad
    ]
    given = [verdict(0, "a", "p1", scores[0]), verdict(1, "b", "p1", scores[1]), verdict(2, "a", "p2", scores[2])]
    given += [verdict(3, "tie", "p2", scores[3]), verdict(4, "both_bad", "p2", scores[4])]
    rows = {(r.judge, r.prompt): r for r in agreement(given)}
    assert rows[("ImageReward", None)].counts == "2/3" and rows[("CLIP", None)].counts == "0/2"
    assert (rows[("ImageReward", None)].ties, rows[("ImageReward", None)].both_bad) == (1, 1)
    assert rows[("ImageReward", "p1")].counts == "2/2" and rows[("ImageReward", "p2")].counts == "0/1"
    assert rows[("CLIP", "p2")].total == 0 and rows[("CLIP", "p2")].share is None
    assert rows[("ImageReward", None)].interval == wilson(2, 3)


def test_the_next_pair_is_where_judges_disagree_then_where_imagereward_is_least_sure() -> None:
    names = ["w", "x", "y", "z"]
    scores = {
        "ImageReward": {"w": 2.0, "x": 1.0, "y": 0.9, "z": -1.0},
        "CLIP": {"w": 0.1, "x": 0.5, "y": 0.4, "z": 0.0},  # orders w below x and y, and z below w
    }
    order = next_pairs(names, scores, "ImageReward")
    assert order[:2] == [("w", "x"), ("w", "y")]  # the judges disagree; the smaller gap first
    assert order[2] == ("x", "y")  # then ImageReward's least sure pair (0.1 apart)
    assert len(order) == 6
    judged = {pair_key("w", "x"), pair_key("y", "x")}
    assert next_pairs(names, scores, "ImageReward", judged)[:2] == [("w", "y"), ("y", "z")]  # y-z: 1.9 apart
    assert next_pairs(["w", "x"], scores, "ImageReward", {pair_key("x", "w")}) == []


# ------------------------------------------------------------------------------------------- the store
def test_a_store_is_created_migrated_and_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "v.db"
    db = connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(ValueError, match="schema version 2; this package knows up to 1"):
        connect(path)


def test_many_visitors_at_once_lose_no_verdict_and_images_are_kept_once(tmp_path: Path) -> None:
    store = VerdictStore(tmp_path / "v.db", per_hour=100)
    cat = Image(b"\x89PNG cat" * 100, ".png")
    errors: list[BaseException] = []

    def visitor(v: int) -> None:
        try:
            for k in range(20):
                store.add(f"visitor-{v}", verdict(k, "ab"[k % 2], f"p{v}"), [cat, Image(bytes([v, k]) * 50, ".png")])
        except BaseException as e:  # noqa: BLE001 (the test reports it)
            errors.append(e)

    threads = [threading.Thread(target=visitor, args=(v,)) for v in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.close()
    assert errors == []
    stored = list(stored_verdicts(tmp_path / "v.db"))
    assert len(stored) == 64 * 20
    db = sqlite3.connect(tmp_path / "v.db")
    assert db.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 1 + 64 * 20  # the shared image once
    db.close()


def test_each_visitor_s_share_and_the_total_are_bounded(tmp_path: Path) -> None:
    store = VerdictStore(tmp_path / "v.db", per_hour=3, max_bytes=2 * 2**20)
    for k in range(3):
        store.add("one", verdict(k))
    with pytest.raises(StoreRefusal, match="3 verdicts in the last hour"):
        store.add("one", verdict(3))
    store.add("two", verdict(0))  # another visitor's share is their own
    with pytest.raises(StoreRefusal, match="store of verdicts is full"):
        store.add("two", verdict(1), [Image(os.urandom(3 * 2**20), ".png")])
    store.close()
    assert [v.a for v in stored_verdicts(tmp_path / "v.db")] == ["0a.png", "1a.png", "2a.png", "0a.png"]


WRITER = """
import sys
from imagereward.verdicts import Verdict
from imagereward.verdicts.store import Image, VerdictStore
store = VerdictStore(sys.argv[1], per_hour=10**6)
k = 0
while True:
    image = Image(k.to_bytes(4, "big") * 2000, ".png")
    ident = store.add("v", Verdict("p", f"{k}a.png", f"{k}b.png", "a", {"ImageReward": [1.0, 0.0]}), [image])
    print(ident, flush=True)
    k += 1
"""


def test_a_killed_server_leaves_a_store_that_opens_with_every_acknowledged_verdict(tmp_path: Path) -> None:
    path = tmp_path / "v.db"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    acknowledged = []
    deadline = time.monotonic() + 60
    while len(acknowledged) < 200 and time.monotonic() < deadline:
        acknowledged.append(int(writer.stdout.readline()))
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    acknowledged += [int(line) for line in writer.stdout.read().split()]
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    kept = {row[0] for row in db.execute("SELECT id FROM verdicts")}
    db.close()
    assert len(acknowledged) >= 200 and set(acknowledged) <= kept


def test_the_report_of_a_store_equals_the_report_of_its_export(tmp_path: Path, capsys) -> None:
    store = VerdictStore(tmp_path / "v.db")
    scores = {"ImageReward": [1.0, 0.0], "CLIP": [0.0, 1.0]}
    for k, choice in enumerate(["a", "a", "b", "tie", "a", "b"]):
        store.add("one", verdict(k, choice, scores=scores), [Image(bytes([k]) * 10, ".png")])
    store.close()
    assert cli.main(["verdicts", "report", str(tmp_path / "v.db")]) == 0
    from_store = capsys.readouterr().out
    assert cli.main(["verdicts", "export", str(tmp_path / "v.db"), "--out", str(tmp_path / "out")]) == 0
    assert "6 verdicts and 6 images" in capsys.readouterr().err
    assert cli.main(["verdicts", "report", str(tmp_path / "out" / "pairs.jsonl")]) == 0
    assert capsys.readouterr().out == from_store
    assert "ImageReward" in from_store and " 3/5 " in from_store and " 2/5 " in from_store
    assert len(list((tmp_path / "out" / "images").iterdir())) == 6
    assert export(tmp_path / "v.db", tmp_path / "again") == (6, 6)
    assert cli.main(["verdicts", "report", str(tmp_path / "missing.db")]) == 2


def test_the_pairs_file_is_documented_once_as_it_is_written() -> None:
    """docs/verdicts.md's table of the pairs file names exactly the fields a pair is written with, in order."""
    doc = (Path(__file__).parents[1] / "docs" / "verdicts.md").read_text(encoding="utf-8")
    table = doc.split("## The pairs file", 1)[1]
    fields = [line.split("`")[1] for line in table.splitlines() if line.startswith("| `")]
    assert fields == list(verdict(0).as_dict())
