"""Issue 21: every CSV the project writes is inert in a spreadsheet (no cell starts a formula), checked by
parsing the files the page and the command line write; the zip's entry names carry no bidirectional controls."""

from __future__ import annotations

import csv
import io
import shutil
import zipfile
from pathlib import Path

import pytest

from imagereward import cli
from imagereward.app import downloads
from imagereward.ranking import rank_images
from imagereward.rows import FORMULA_STARTS, inert
from originals import EXPECTED, PARITY

CASE = EXPECTED["rank"][0]
# Names a hostile visitor (or a careless generator) could give files: each would run as a formula.
HOSTILE = ["=HYPERLINK(1).png", "+cmd.png", "-2+3.png", "@SUM(A1).png", "\tTAB.png"]
RLO = "\u202e"


def assert_inert(rows: list[list[str]], numeric: set[str]) -> None:
    header, *body = rows
    for row in body:
        for column, cell in zip(header, row):
            if column in numeric and cell:
                float(cell)  # numbers stay numbers, negative ones included
            else:
                assert not cell.startswith(FORMULA_STARTS), (column, cell)


@pytest.fixture
def hostile_files(tmp_path: Path) -> list[Path]:
    paths = []
    for name, source in zip(HOSTILE, CASE["images"]):
        paths.append(tmp_path / name)
        shutil.copy(PARITY / "images" / source, paths[-1])
    return paths


def test_inert_quotes_what_would_start_a_formula() -> None:
    assert [inert(v) for v in ("=1+1", "+1", "-1", "@A1", "\t=1", "\r=1")] == [
        "'=1+1",
        "'+1",
        "'-1",
        "'@A1",
        "'\t=1",
        "'\r=1",
    ]
    assert [inert(v) for v in ("a cat", "", -0.5, 3, None)] == ["a cat", "", -0.5, 3, None]


def test_the_pages_csv_is_inert(tiny_model, hostile_files: list[Path], tmp_path: Path) -> None:
    prompt = "-a cat =with a hat"
    ranking = rank_images(tiny_model, prompt, hostile_files)
    assert any(r.score < 0 for r in ranking.ranked)  # a negative score must stay a number
    csv_path, json_path, _ = downloads.write_downloads([(prompt, ranking)], "=evil-model", tmp_path / "out")
    rows = list(csv.reader(io.StringIO(csv_path.read_text(encoding="utf-8"))))
    assert_inert(rows, numeric={"rank", "score"})
    names = {row[rows[0].index("image")] for row in rows[1:]}
    assert names == {"'" + n for n in HOSTILE}  # quoted, not lost
    assert '"image": "=HYPERLINK(1).png"' in json_path.read_text(encoding="utf-8")  # JSON keeps the value


def test_the_command_lines_csv_is_inert(hostile_files: list[Path], capsys) -> None:
    code = cli.main(
        ["score", "--model", str(PARITY), "--device", "cpu", "--format", "csv", "-p", "=1+2", *map(str, hostile_files)]
    )
    out, _ = capsys.readouterr()
    assert code == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert len(rows) == len(HOSTILE) + 1
    assert_inert(rows, numeric={"rank", "score", *(c for c in rows[0] if c.startswith("score_"))})


def test_zip_entry_names_drop_bidirectional_controls(tiny_model, tmp_path: Path) -> None:
    spoof = tmp_path / f"cat{RLO}gnp.exe"
    shutil.copy(PARITY / "images" / CASE["images"][0], spoof)
    ranking = rank_images(tiny_model, CASE["prompt"], [spoof])
    _, _, zip_path = downloads.write_downloads([("p", ranking)], "X", tmp_path / "out")
    with zipfile.ZipFile(zip_path) as archive:
        (entry,) = archive.namelist()
    assert RLO not in entry and entry.endswith("catgnp.exe")
