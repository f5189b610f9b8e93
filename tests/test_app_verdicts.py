"""A person's verdict on the real server: the page's event and `/verdict` with the page's checks, the store losing
nothing (64 visitors at once; the server killed while they write), one visitor's verdicts never in another's
answer, and the command line's report counting them all."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import httpx
import pytest

from appserver import page_call, running_app
from imagereward.verdicts.store import stored_verdicts
from originals import EXPECTED, PARITY, image_path

CASE = EXPECTED["rank"][0]
META = {"_type": "gradio.FileData"}
VISITORS = 64
EACH = 20


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("verdicts")
    env = {
        "IMAGEREWARD_MODEL": str(PARITY),
        "IMAGEREWARD_JUDGES": "none",
        "IMAGEREWARD_PROXY_HOPS": "1",  # each test's visitor is its X-Forwarded-For (nothing connects to it)
        "IMAGEREWARD_VERDICTS_DB": str(tmp / "verdicts.db"),
    }
    with running_app(tmp, **env) as url:
        yield url, tmp / "verdicts.db"


def who(k: int) -> dict[str, str]:
    return {"X-Forwarded-For": f"198.51.100.{k}"}


def upload(url: str, path: Path, headers: dict[str, str]) -> str:
    with open(path, "rb") as f:
        response = httpx.post(f"{url}gradio_api/upload", files={"files": (path.name, f)}, headers=headers, timeout=60)
    response.raise_for_status()
    return response.json()[0]


def ranked(url: str, headers: dict[str, str], names: list[str]) -> dict:
    """A visitor's ranking shown: what the page's verdict event reads back (gallery, table, prompt, A and B)."""
    items = [{"image": {"path": upload(url, image_path(n), headers), "meta": META}, "caption": None} for n in names]
    session = uuid.uuid4().hex  # the visitor's page: its calls share one session, as a browser's do
    data = [CASE["prompt"], items, [], "ImageReward"]
    event, out = page_call(url, "score_and_compare", data, headers, session=session)
    assert event == "complete", out
    a, b = out[10]["value"], out[11]["value"]
    shown = {"gallery": out[3], "table": out[4], "prompt": out[8], "a": a, "b": b, "session": session}
    return shown | {"downloads": out[5]}


def verdict(url: str, headers: dict, shown: dict, given: list, choice="a", a=None, b=None, logs=None) -> tuple:
    data = [choice, given, shown["gallery"], shown["table"], shown["prompt"], a or shown["a"], b or shown["b"], None]
    return page_call(url, "verdict_on_page", data, headers, logs=logs, session=shown["session"])


def own_counts(table_html: str) -> tuple[int, int]:
    """ImageReward's `agreed/total` over all prompts, as the agreement table shows it."""
    found = re.search(r"<td>ImageReward</td><td>[^<]*</td><td>[^<]*</td><td>(\d+)/(\d+)", table_html)
    assert found, table_html
    return int(found.group(1)), int(found.group(2))


def stored(db: Path) -> int:
    with sqlite3.connect(db) as connection:
        return connection.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0]


def test_many_visitors_at_once_lose_no_verdict_and_each_sees_only_their_own(server) -> None:
    """64 visitors give 20 verdicts each at once: every one is in the store and the report; each visitor's
    agreement counts their own verdicts only (the store is never read back)."""
    url, db = server
    before = stored(db)
    shown = {k: ranked(url, who(k), CASE["images"][:3]) for k in range(VISITORS)}
    counts: dict[int, tuple[int, int]] = {}
    failures: list[str] = []

    def visitor(k: int) -> None:
        given: list = []
        for n in range(EACH):
            event, out = verdict(url, who(k), shown[k], given, "ab"[n % 2])
            if event != "complete":
                failures.append(f"{k}/{n}: {event} {out}")
                return
            given = out[0]
        counts[k] = own_counts(out[1])

    threads = [threading.Thread(target=visitor, args=(k,)) for k in range(VISITORS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert stored(db) - before == VISITORS * EACH
    assert len(counts) == VISITORS and {total for _, total in counts.values()} == {EACH}  # their own 20, never more
    report = subprocess.run(
        [sys.executable, "-m", "imagereward", "verdicts", "report", str(db), "-f", "json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert report.returncode == 0, report.stderr
    import json

    overall = next(r for r in json.loads(report.stdout) if r["prompt"] is None and r["judge"] == "ImageReward")
    assert overall["total"] + overall["ties"] + overall["both_bad"] == stored(db) >= VISITORS * EACH


@pytest.mark.parametrize(
    "case",
    ["unknown verdict", "same image", "not uploaded", "server path", "prompt too long", "too many kept"],
)
def test_a_bad_verdict_gets_one_sentence_and_changes_nothing(server, tmp_path: Path, case: str) -> None:
    url, db = server
    headers = who(200)
    shown = ranked(url, headers, CASE["images"][:2])
    given: list = []
    a, b, choice, prompt = shown["a"], shown["b"], "a", shown["prompt"]
    if case == "unknown verdict":
        choice = "maybe"
    elif case == "same image":
        b = a
    elif case == "prompt too long":
        prompt = "x" * 100_000
    elif case == "too many kept":
        given = [{"prompt": "p", "a": "1", "b": "2", "verdict": "a"}] * 2000
    gallery = [dict(item, image=dict(item["image"])) for item in shown["gallery"]]
    if case in ("not uploaded", "server path"):  # B's picture in the gallery sent is a file this visitor did not send
        other = ranked(url, who(201), CASE["images"][2:4]) if case == "not uploaded" else None
        foreign = other["gallery"][0]["image"]["path"] if other else str(image_path(CASE["images"][3]))
        names = [str(row[1]) for row in shown["table"]["data"]]
        gallery[names.index(b)]["image"]["path"] = foreign
    before = stored(db)
    shown = {**shown, "gallery": gallery, "prompt": prompt}
    logs: list[str] = []
    event, out = verdict(url, headers, shown, given, choice, a, b, logs)
    assert event == "complete"
    assert all(isinstance(v, dict) and v.get("__type__") == "update" and "value" not in v for v in out), out
    assert stored(db) == before
    assert len(logs) == 1 and SENTENCES[case] in logs[0], logs


SENTENCES = {
    "unknown verdict": "A verdict is one of a, b, tie, both_bad; 'maybe' is not.",
    "same image": "A and B are the same image: pick two different images to judge.",
    "not uploaded": "Pick images A and B of the ranking shown (only your own uploads can be judged).",
    "server path": "Pick images A and B of the ranking shown (only your own uploads can be judged).",
    "prompt too long": "The prompt is over the",
    "too many kept": "You have given 2,000 verdicts, the most this page keeps in your browser",
}


def test_the_verdict_api_scores_records_and_answers_the_agreement(server, tiny_model) -> None:
    from gradio_client import Client, handle_file

    url, db = server
    client = Client(url, verbose=False, headers=who(210))
    paths = [str(image_path(n)) for n in CASE["images"][:2]]
    before = stored(db)
    first = client.predict(
        CASE["prompt"], handle_file(paths[0]), handle_file(paths[1]), "b", [], [], api_name="/verdict"
    )
    second = client.predict(
        CASE["prompt"], handle_file(paths[0]), handle_file(paths[1]), "tie", [], [first["pair"]], api_name="/verdict"
    )
    assert stored(db) == before + 2 and first["stored"] and second["stored"]
    pair = first["pair"]
    assert (pair["a"], pair["b"], pair["chosen"], pair["verdict"]) == (
        Path(paths[0]).name,
        Path(paths[1]).name,
        Path(paths[1]).name,
        "b",
    )
    assert pair["scores"]["ImageReward"] == pytest.approx(
        [tiny_model.score(CASE["prompt"], p) for p in paths], abs=1e-5
    )
    overall = second["agreement"][0]
    assert overall["judge"] == "ImageReward" and overall["ties"] == 1 and overall["counts"] in ("1/1", "0/1")
    mine = list(stored_verdicts(db))[-2:]
    assert [v.verdict for v in mine] == ["b", "tie"]
    with pytest.raises(Exception, match="A verdict is one of a, b, tie, both_bad"):
        client.predict(CASE["prompt"], handle_file(paths[0]), handle_file(paths[1]), "A>B", [], [], api_name="/verdict")
    assert stored(db) == before + 2


def test_the_ranking_s_downloads_say_which_images_have_verdicts(server) -> None:
    """After verdicts, the ranking's CSV and JSON (already offered for download) count the verdicts naming each
    image; before any, they have no such column (the rows every surface writes)."""
    import csv
    import io
    import json

    url, _ = server
    headers = who(220)
    shown = ranked(url, headers, CASE["images"][:3])
    files = {Path(f["path"]).suffix: f["url"] for f in shown["downloads"]}
    before = httpx.get(files[".csv"], headers=headers, timeout=30).text
    assert "verdicts" not in before.splitlines()[0]
    given: list = []
    for choice in ("a", "tie"):
        event, out = verdict(url, headers, shown, given, choice)
        assert event == "complete", out
        given = out[0]
    named = [name for pair in given for name in (pair["a"], pair["b"])]
    rows = list(csv.DictReader(io.StringIO(httpx.get(files[".csv"], headers=headers, timeout=30).text)))
    assert {r["image"]: int(r["verdicts"]) for r in rows} == {n: named.count(n) for n in CASE["images"][:3]}
    ranking = json.loads(httpx.get(files[".json"], headers=headers, timeout=30).text)["rankings"][0]
    assert {r["image"]: r["verdicts"] for r in ranking["ranked"]} == {n: named.count(n) for n in CASE["images"][:3]}


WRITERS = 8


def test_a_killed_server_leaves_every_acknowledged_verdict(tmp_path: Path) -> None:
    """SIGKILL while eight visitors write: the store opens, and holds every verdict a visitor was answered for."""
    db = tmp_path / "verdicts.db"
    env = {"IMAGEREWARD_MODEL": str(PARITY), "IMAGEREWARD_JUDGES": "none", "IMAGEREWARD_PROXY_HOPS": "1"}
    acknowledged: list[str] = []
    stop = threading.Event()
    with running_app(tmp_path, IMAGEREWARD_VERDICTS_DB=str(db), **env) as url:
        shown = {k: ranked(url, who(k), CASE["images"][:3]) for k in range(WRITERS)}

        def visitor(k: int) -> None:
            given: list = []
            while not stop.is_set():
                try:
                    event, out = verdict(url, who(k), shown[k], given, "ab"[len(given) % 2])
                except Exception:  # noqa: BLE001 (the server was killed)
                    return
                if event != "complete":
                    return
                given = out[0]
                acknowledged.append(f"{k}:{given[-1]['time']}:{len(given)}")

        threads = [threading.Thread(target=visitor, args=(k,)) for k in range(WRITERS)]
        for t in threads:
            t.start()
        while len(acknowledged) < 40:
            threading.Event().wait(0.05)
        os.kill(_app_pid(tmp_path), signal.SIGKILL)
        stop.set()
        for t in threads:
            t.join(timeout=60)
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        kept = connection.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0]
    print(f"killed: {len(acknowledged)} verdicts acknowledged, {kept} in the store")  # for the record (-s)
    assert kept >= len(acknowledged) >= 40


def _app_pid(tmp: Path) -> int:
    """The app's process (`python app.py` started by `running_app` for this test's folder)."""
    out = subprocess.run(["pgrep", "-f", "app.py"], capture_output=True, text=True).stdout.split()
    for pid in map(int, out):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if str(tmp).encode() in environ:
            return pid
    raise RuntimeError("the app's process was not found")
