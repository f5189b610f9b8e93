"""Issue 21, against the real server (tiny model, 127.0.0.1 only): the holes a hostile client found, closed.

- the pixel budget counts every file once and refuses a refused file every time it appears;
- an extreme shape (100,000 x 5) is refused from its header, quickly and without memory;
- one visitor flooding the queue does not starve another (visitors told apart by the address the Space's
  proxy forwards: `IMAGEREWARD_PROXY_HOPS=1`; the header values below are only strings, nothing connects to
  them);
- the page's CSV is inert in a spreadsheet;
- the disk a stream of requests leaves stays bounded and returns to nothing once the files' lifetime is over;
- uploads are bounded per visitor and in all;
- the old two-value `/score` call and `judges: null` are answered, an absurd judge name is not echoed back,
  and the model is named by its folder, never by its path on the server.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import threading
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from appserver import PIDS, page_call, peak_memory_mb, running_app
from originals import EXPECTED, PARITY, image_path

CASE = EXPECTED["rank"][0]
MAX_PENDING = 4
BUDGET = 25_000_000
LIFETIME = 3
WHO = {"X-Forwarded-For": "127.0.0.11"}  # the default visitor of `upload` and `call`


def upload(url: str, path: Path, who: str = "127.0.0.11") -> str:
    with open(path, "rb") as f:
        response = httpx.post(
            f"{url}gradio_api/upload", files={"files": (path.name, f)}, headers={"X-Forwarded-For": who}, timeout=60
        )
    response.raise_for_status()
    return response.json()[0]


def items(paths: list[str]) -> list[dict]:
    return [{"image": {"path": p}, "caption": None} for p in paths]


def join(url: str, name: str, data: list, who: str = "127.0.0.11") -> httpx.Response:
    return httpx.post(f"{url}gradio_api/call/{name}", json={"data": data}, headers={"X-Forwarded-For": who}, timeout=60)


def outcome(url: str, name: str, joined: httpx.Response) -> tuple[str, object]:
    if joined.status_code != 200:
        return str(joined.status_code), joined.json().get("detail")
    event_id, event = joined.json()["event_id"], ""
    with httpx.stream("GET", f"{url}gradio_api/call/{name}/{event_id}", timeout=300) as stream:
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and event in ("complete", "error"):
                return event, json.loads(line.removeprefix("data: "))
    return "closed", None


def call(url: str, name: str, data: list, who: str = "127.0.0.11") -> tuple[str, object]:
    return outcome(url, name, join(url, name, data, who))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("limits")
    env = {
        "IMAGEREWARD_MODEL": str(PARITY),
        "IMAGEREWARD_JUDGES": "none",
        "IMAGEREWARD_PROXY_HOPS": "1",
        "IMAGEREWARD_PIXEL_BUDGET": str(BUDGET),
        "IMAGEREWARD_MAX_PENDING": str(MAX_PENDING),
    }
    with running_app(tmp, **env) as url:
        yield url, tmp


# --------------------------------------------------------------------------------------------- budget
def test_repeated_bombs_score_no_more_files_than_the_budget_admits_alone(server) -> None:
    url, tmp = server
    paths = []
    for k in range(8):
        paths.append(tmp / f"bomb{k}.png")
        Image.new("1", (4000, 3000 + k)).save(paths[-1])  # 12 Mpx, a few kB: two fit the budget
    uploaded = [upload(url, p) for p in paths]
    event, (alone,) = call(url, "score", [CASE["prompt"], items(uploaded), []])
    assert event == "complete" and len(alone["ranked"]) == 2 and len(alone["skipped"]) == 6
    event, (twice,) = call(url, "score", [CASE["prompt"], items(uploaded + uploaded), []])
    assert event == "complete"
    scored_files = {r["name"].split(" (")[0] for r in twice["ranked"]}
    assert scored_files == {r["name"] for r in alone["ranked"]}
    assert len(twice["ranked"]) == 4 and len(twice["skipped"]) == 12
    assert {s["reason"] for s in twice["skipped"]} == {alone["skipped"][0]["reason"]}
    assert f"budget of {BUDGET:,} decoded pixels" in alone["skipped"][0]["reason"]


def test_an_extreme_shape_is_refused_within_a_second_and_a_few_megabytes(server) -> None:
    """Issue 21 measured 8.4-9.2 s and +3.7 GB for this file (11.0 s and 4.1 GB here, `benchmarks/worst_image.py`);
    the bound refuses it from its header."""
    url, tmp = server
    strip = tmp / "strip.png"
    Image.new("RGB", (100_000, 5), (250, 20, 20)).save(strip)
    good = upload(url, image_path(CASE["images"][0]))
    bad = upload(url, strip)
    before = peak_memory_mb(PIDS[url])
    start = time.perf_counter()
    event, (response,) = call(url, "score", [CASE["prompt"], items([bad, good]), []])
    seconds = time.perf_counter() - start
    assert event == "complete" and [r["name"] for r in response["ranked"]] == [CASE["images"][0]]
    (skipped,) = response["skipped"]
    assert skipped["name"] == "strip.png" and "aspect ratio of at most 64:1" in skipped["reason"]
    assert seconds < 2.0
    assert peak_memory_mb(PIDS[url]) - before < 100


# ----------------------------------------------------------------------------------------- fair share
def test_a_flooding_visitor_does_not_starve_another(server) -> None:
    """Visitor A keeps the queue full with heavy calls (32 large images each): 48 clients resubmit the moment a
    call ends (a second after a refusal). Visitor B's small calls are still admitted and each answered within
    the stated bound: B waits behind at most A's `MAX_PENDING` calls, run two at a time, i.e. ceil(MAX_PENDING
    / 2) of A's call durations under this load (two divided by A's rate of completed calls, measured over the
    same seconds), plus its own (+25%, + 0.5 s). Without the fair share (checked by setting the limit out of
    reach: B waited 20 s here, against a bound of about 4-5 s), A's 48 calls are all queued ahead of B's,
    and with 64 of them B would get "Queue is full"."""
    import numpy as np

    url, tmp = server
    rng = np.random.default_rng(0)
    heavy = []
    for k in range(32):
        Image.fromarray(rng.integers(0, 256, (768, 768, 3), dtype=np.uint8)).save(tmp / f"heavy{k}.png")
        heavy.append(upload(url, tmp / f"heavy{k}.png", "127.0.0.11"))
    small = [upload(url, image_path(CASE["images"][0]), "127.0.0.12")]
    heavy_call, small_call = [CASE["prompt"], items(heavy), []], [CASE["prompt"], items(small), []]
    stop = threading.Event()
    answers: list[tuple[float, str]] = []
    refusals: list[str] = []

    def flooder() -> None:
        while not stop.is_set():
            status, detail = call(url, "score", heavy_call, "127.0.0.11")
            answers.append((time.perf_counter(), status))
            if status == "429":
                refusals.append(detail)
                time.sleep(1.0)

    threads = [threading.Thread(target=flooder) for _ in range(48)]
    for t in threads:
        t.start()
    try:
        time.sleep(5.0)  # the flood is in, its share full
        window = time.perf_counter()
        waits = []
        for _ in range(3):
            start = time.perf_counter()
            event, _ = call(url, "score", small_call, "127.0.0.12")
            assert event == "complete"
            waits.append(time.perf_counter() - start)
        window = (window, time.perf_counter())
    finally:
        stop.set()
        for t in threads:
            t.join()
    completed = [t for t, status in answers if status == "complete" and window[0] <= t <= window[1]]
    heavy_duration = 2 * (window[1] - window[0]) / max(1, len(completed))  # two run at a time
    bound = (math.ceil(MAX_PENDING / 2) + 1) * heavy_duration * 1.25 + 0.5
    assert max(waits) <= bound, (waits, bound, heavy_duration)
    assert refusals and all(f"You have {MAX_PENDING} requests waiting or running" in d for d in refusals)
    assert {status for _, status in answers} <= {"complete", "429"}


def test_one_explanation_at_a_time_per_visitor(server) -> None:
    """An explanation (a backward pass) is admitted one at a time per visitor, whether it is queued or
    running: with the page's two workers busy with another visitor's calls, A's first explanation waits in
    the queue and its second is refused at once; B's is queued; once A's first is answered, A may ask again.
    A hostile `/explain` of a huge shape is refused as `/score` refuses it."""
    import numpy as np

    from imagereward.app.admission import FILE_META

    url, tmp = server
    rng = np.random.default_rng(1)
    heavy = []
    for k in range(24):
        Image.fromarray(rng.integers(0, 256, (768, 768, 3), dtype=np.uint8)).save(tmp / f"busy{k}.png")
        heavy.append(upload(url, tmp / f"busy{k}.png", "127.0.0.31"))
    image = {"path": upload(url, image_path(CASE["images"][0]), "127.0.0.32"), "meta": FILE_META}
    image_of_33 = {"path": upload(url, image_path(CASE["images"][0]), "127.0.0.33"), "meta": FILE_META}
    busy = [join(url, "score", [CASE["prompt"], items(heavy), []], "127.0.0.31") for _ in range(2)]
    first = join(url, "explain", [CASE["prompt"], image], "127.0.0.32")
    second = join(url, "explain", [CASE["prompt"], image], "127.0.0.32")
    other = join(url, "explain", [CASE["prompt"], image_of_33], "127.0.0.33")
    assert [r.status_code for r in (*busy, first, second, other)] == [200, 200, 200, 429, 200]
    assert second.json()["detail"].startswith("You have 1 explanation waiting or running already")
    event, (answer,) = outcome(url, "explain", first)
    assert event == "complete" and answer["name"] == CASE["images"][0]
    again = join(url, "explain", [CASE["prompt"], image], "127.0.0.32")
    assert again.status_code == 200 and outcome(url, "explain", again)[0] == "complete"
    assert outcome(url, "explain", other)[0] == "complete"
    assert all(outcome(url, "score", b)[0] == "complete" for b in busy)

    strip = tmp / "strip-explain.png"
    Image.new("RGB", (100_000, 5)).save(strip)
    start, before = time.perf_counter(), peak_memory_mb(PIDS[url])
    event, payload = call(url, "explain", [CASE["prompt"], {"path": upload(url, strip), "meta": FILE_META}])
    assert event == "error" and "aspect ratio of at most 64:1" in json.dumps(payload)
    assert time.perf_counter() - start < 2.0 and peak_memory_mb(PIDS[url]) - before < 100


# ------------------------------------------------------------------------------------------------ CSV
def test_the_pages_csv_download_is_inert(server) -> None:
    url, tmp = server
    paths = []
    for name, source in zip(["=HYPERLINK(1).png", "@cmd.png", "+1.png", "-1.png"], CASE["images"]):
        paths.append(tmp / name)
        paths[-1].write_bytes(image_path(source).read_bytes())
    uploaded = [upload(url, p) for p in paths]
    event, payload = page_call(url, "score_and_compare", ["-a cat", items(uploaded), [], "ImageReward"], WHO)
    assert event == "complete"
    links = [f["url"] for f in payload[5] if f["url"].endswith(".csv")]
    rows = list(csv.reader(io.StringIO(httpx.get(links[0], timeout=30).text)))
    header = rows[0]
    for row in rows[1:]:
        for column, cell in zip(header, row):
            if column in ("rank", "score"):
                float(cell)
            else:
                assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (column, cell)
    assert sorted(r[header.index("image")] for r in rows[1:]) == [
        "'+1.png",
        "'-1.png",
        "'=HYPERLINK(1).png",
        "'@cmd.png",
    ]


# ---------------------------------------------------------------------------------------- small items
def test_the_old_two_value_call_and_null_judges_are_answered(server) -> None:
    url, _ = server
    good = upload(url, image_path(CASE["images"][0]))
    for data in ([CASE["prompt"], items([good])], [CASE["prompt"], items([good]), None]):
        event, payload = call(url, "score", data)
        assert event == "complete", payload
        assert [r["name"] for r in payload[0]["ranked"]] == [CASE["images"][0]]


def test_an_absurd_judge_name_is_not_echoed_back(server) -> None:
    url, _ = server
    good = upload(url, image_path(CASE["images"][0]))
    joined = join(url, "score", [CASE["prompt"], items([good]), ["x" * 1_000_000]])
    assert joined.status_code == 422 and len(joined.content) < 1000
    (detail,) = joined.json()["detail"]
    assert detail["parameter_name"] == "judges" and "is not in the list of choices" in detail["message"]


def test_the_model_is_named_by_its_folder_never_its_path(server) -> None:
    url, _ = server
    good = upload(url, image_path(CASE["images"][0]))
    event, (response,) = call(url, "score", [CASE["prompt"], items([good]), []])
    assert response["model"] == "parity on cpu (float32)"
    event, payload = page_call(url, "score_and_compare", [CASE["prompt"], items([good]), [], "ImageReward"], WHO)
    served = [httpx.get(f["url"], timeout=30).content for f in payload[5] if f["url"].endswith((".csv", ".json"))]
    assert served and all(str(PARITY).encode() not in body for body in served)
    assert str(PARITY) not in httpx.get(url, timeout=30).text


# ----------------------------------------------------------------------------------------------- disk
def distinct_copy(source: Path, target: Path, k: int) -> Path:
    """The image with a counter in its metadata: distinct content, as every visitor's upload is."""
    info = PngInfo()
    info.add_text("request", str(k))
    Image.open(source).save(target, pnginfo=info)
    return target


def new_files(folder: Path, before: set[Path]) -> list[Path]:
    """The files under `folder` but those in `before` (a walk that tolerates the sweep removing folders)."""
    found = [Path(root) / name for root, _, names in os.walk(folder) for name in names]
    return [p for p in found if p not in before and not p.is_symlink()]


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except FileNotFoundError:  # swept meanwhile
        return None


def test_the_disk_stays_bounded_over_200_requests(tmp_path: Path) -> None:
    """Each request uploads two new images and gets the page's downloads (CSV, JSON, zip). With the files'
    lifetime at 3 s (checked every second) no file a request left is ever older than the lifetime and two
    sweeps, so the disk holds at most the files of the requests of that long, and nothing of them once that
    has passed. The downloads are written inside Gradio's upload folder (not copied), and nothing is left in
    the system temp folder."""
    import tempfile

    system_temp_before = {p.name for p in Path(tempfile.gettempdir()).glob("imagereward-downloads-*")}
    with running_app(
        tmp_path, IMAGEREWARD_MODEL=str(PARITY), IMAGEREWARD_JUDGES="none", IMAGEREWARD_FILE_LIFETIME=str(LIFETIME)
    ) as url:
        cache = tmp_path / "gradio"
        page_files = set(new_files(cache, set()))  # the examples' images: the page's own, kept
        sources = [image_path(n) for n in CASE["images"][:2]]
        peak = oldest = per_request = 0.0
        oldest_file = None
        start = time.perf_counter()
        for k in range(200):
            copies = [distinct_copy(s, tmp_path / f"r{k}-{j}.png", k) for j, s in enumerate(sources)]
            event, payload = page_call(
                url, "score_and_compare", ["a cat", items([upload(url, c) for c in copies]), [], "ImageReward"]
            )
            assert event == "complete", payload
            now, left = time.time(), [(p, stat) for p in new_files(cache, page_files) if (stat := _stat(p))]
            size = sum(stat.st_size for _, stat in left)
            per_request = size if k == 0 else per_request
            peak = max(peak, size)
            ages = [(now - stat.st_ctime, p) for p, stat in left]
            if ages and max(ages)[0] > oldest:
                oldest, oldest_file = max(ages)
            for c in copies:
                c.unlink()
        rate = 200 / (time.perf_counter() - start)
        assert oldest <= LIFETIME + 2 + 1, (oldest, oldest_file)  # the lifetime, two sweeps, a busy second
        assert peak <= per_request * (rate * (LIFETIME + 3) + 1), (peak, per_request, rate)
        time.sleep(LIFETIME + 2.5)
        assert new_files(cache, page_files) == []
        assert not [p for p in cache.glob("imagereward-downloads-*/*") if p.is_dir()]
        assert {p for p in page_files if p.exists()} == page_files  # the examples are kept
    system_temp_after = {p.name for p in Path(tempfile.gettempdir()).glob("imagereward-downloads-*")}
    assert system_temp_after <= system_temp_before


# -------------------------------------------------------------------------------------------- uploads
def test_uploads_are_bounded_per_visitor_and_in_all(tmp_path: Path) -> None:
    """One visitor may upload `IMAGEREWARD_UPLOAD_QUOTA_MB` within the files' lifetime (another still can), and
    once the upload folder holds `IMAGEREWARD_DISK_BUDGET_MB` nobody can, each refusal saying why."""
    blob = tmp_path / "blob.png"
    blob.write_bytes(os.urandom(300 * 1024))
    env = {
        "IMAGEREWARD_MODEL": str(PARITY),
        "IMAGEREWARD_JUDGES": "none",
        "IMAGEREWARD_PROXY_HOPS": "1",
        "IMAGEREWARD_UPLOAD_QUOTA_MB": "1",
        "IMAGEREWARD_DISK_BUDGET_MB": "3",
    }
    with running_app(tmp_path, **env) as url:

        def send(who: str) -> httpx.Response:
            blob.write_bytes(os.urandom(300 * 1024))  # new content: a new file each time
            with open(blob, "rb") as f:
                return httpx.post(
                    f"{url}gradio_api/upload",
                    files={"files": ("blob.png", f)},
                    headers={"X-Forwarded-For": who},
                    timeout=60,
                )

        first = [send("127.0.0.21") for _ in range(4)]
        assert [r.status_code for r in first] == [200, 200, 200, 429]
        assert "the most one visitor may" in first[-1].text
        answers = {}
        for k in range(2, 12):  # other visitors, each with its own share, until the disk budget is reached
            time.sleep(2.1)  # the disk meter measures again
            answers[k] = [send(f"127.0.0.{20 + k}").status_code for _ in range(3)]
            if 507 in answers[k]:
                break
        assert answers[2][0] == 200  # the first visitor's quota did not stop the next
        full = send("127.0.0.99")
        assert full.status_code == 507 and "no room for more uploads" in full.text
        used = sum(p.stat().st_size for p in (tmp_path / "gradio").rglob("*") if p.is_file())
        assert used <= 3 * 2**20 + 3 * 300 * 1024  # the budget, overshot by at most what one measuring gap admits
