"""Issue 29, against the real server (tiny model, loopback only): the doors Gradio opens beside the app's own,
closed. Each test failed on the main before this change (the figure it saw there in its doc).

No name lookup leaves the machine: URLs use numeric loopback addresses or `localhost` (/etc/hosts), and the
app's HTTP(S)_PROXY points at a loopback sink that counts connections, so that an outbound call (Gradio's
DNS-over-HTTPS lookup at dns.google) would be counted there and go nowhere.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import socket
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from imageserver import image_server
from PIL import Image

from appserver import PIDS, PROCESSES, page_call, peak_memory_mb, running_app
from imagereward.app.admission import FILE_META
from imagereward.app.intake import NOT_UPLOADED
from originals import EXPECTED, PARITY, image_path

CASE = EXPECTED["rank"][0]
HEAVY_CALLS = 2
SIDE = 1500  # the pixel budget holds three such images
BUDGET = 3 * SIDE * SIDE + SIDE


class Sink:
    """A loopback listener counting the connections made to it (the app's proxy for any outbound call)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture(scope="module")
def sink():
    s = Sink()
    yield s
    s.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("served")
    (folder / "x.png").write_bytes(image_path(CASE["images"][1]).read_bytes())
    with image_server(folder) as server:
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, sink: Sink):
    """The app as a local operator runs it: no trusted proxy (IMAGEREWARD_PROXY_HOPS=0), MCP on."""
    tmp = tmp_path_factory.mktemp("host")
    proxy = f"http://127.0.0.1:{sink.port}"
    env = {
        "IMAGEREWARD_MODEL": str(PARITY),
        "IMAGEREWARD_JUDGES": "none",
        "IMAGEREWARD_MCP": "1",
        "IMAGEREWARD_PROXY_HOPS": "0",
        "IMAGEREWARD_HEAVY_CALLS": str(HEAVY_CALLS),
        "IMAGEREWARD_PIXEL_BUDGET": str(BUDGET),
        "HTTP_PROXY": proxy,
        "HTTPS_PROXY": proxy,
        "http_proxy": proxy,
        "https_proxy": proxy,
        "NO_PROXY": "127.0.0.1,localhost,::1",
        "no_proxy": "127.0.0.1,localhost,::1",
    }
    with running_app(tmp, **env) as url:
        yield url, tmp


def upload(url: str, path: Path, headers: dict | None = None) -> str:
    with open(path, "rb") as f:
        response = httpx.post(f"{url}gradio_api/upload", files={"files": (path.name, f)}, headers=headers, timeout=60)
    response.raise_for_status()
    return response.json()[0]


def item(path: str) -> dict:
    return {"image": {"path": path, "meta": FILE_META}, "caption": None}


def noise(path: Path, side: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(path)
    return path


def mcp_calls(url: str, calls: list[tuple[str, dict]], headers: list[dict] | None = None) -> list:
    """Each call in its own MCP session (with its own headers), all at once; returns the results in order."""
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async def one(name: str, arguments: dict, extra: dict) -> object:
        async with httpx.AsyncClient(headers=extra, timeout=httpx.Timeout(120, read=300)) as client:
            async with streamable_http_client(f"{url}gradio_api/mcp/", http_client=client) as (read, write, _):
                async with ClientSession(read, write) as s:
                    await s.initialize()
                    return await s.call_tool(name, arguments)

    async def all_of_them() -> list:
        extras = headers or [{}] * len(calls)
        return await asyncio.gather(*(one(n, a, h) for (n, a), h in zip(calls, extras)))

    return asyncio.run(all_of_them())


def finished(url: str, name: str, joined: httpx.Response) -> str:
    """The last event of a call joined over /call/ (read to its end)."""
    event = ""
    with httpx.stream("GET", f"{url}gradio_api/call/{name}/{joined.json()['event_id']}", timeout=300) as stream:
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
    return event


def text_of(result) -> str:
    return "".join(c.text for c in result.content if getattr(c, "type", "") == "text")


def data_uri(png: bytes, wrap: int | None = None) -> str:
    text = base64.b64encode(png).decode()
    if wrap:
        text = "\n".join(text[k : k + wrap] for k in range(0, len(text), wrap))
    return "data:image/png;base64," + text


# ------------------------------------------------------------------------------------- 1. file inputs
def test_a_file_input_names_only_this_visitors_files_and_no_url_is_fetched(server, served, sink: Sink) -> None:
    """A URL in a file input, another visitor's upload and a server path are each skipped with the one
    sentence, the visitor's own upload scored; nothing fetched, no DNS-over-HTTPS lookup attempted (main:
    Gradio downloaded the URL itself, with no timeout, no size cap and a lookup at dns.google)."""
    url, tmp = server
    asked, connections = len(served.asked), sink.connections
    own = upload(url, image_path(CASE["images"][0]))
    by_url = f"http://localhost:{served.port}/x.png"
    items = [item(own), item(by_url), item(str(image_path(CASE["images"][1])))]
    start = time.perf_counter()
    event, (answer,) = page_call(url, "score", [CASE["prompt"], items, []])
    assert event == "complete", answer
    assert [r["name"] for r in answer["ranked"]] == [CASE["images"][0]]
    assert [s["reason"] for s in answer["skipped"]] == [NOT_UPLOADED, NOT_UPLOADED]
    assert [s["name"] for s in answer["skipped"]] == ["x.png", CASE["images"][1]]
    event, payload = page_call(url, "explain", [CASE["prompt"], {"path": by_url, "meta": FILE_META}])
    assert event == "error" and NOT_UPLOADED in payload["error"]
    assert time.perf_counter() - start < 30
    assert len(served.asked) == asked and sink.connections == connections


def test_another_visitors_upload_is_refused(tmp_path: Path) -> None:
    """Behind a trusted proxy (two visitors told apart by it), B cannot name A's upload (main: scored)."""
    with running_app(
        tmp_path, IMAGEREWARD_MODEL=str(PARITY), IMAGEREWARD_JUDGES="none", IMAGEREWARD_PROXY_HOPS="1"
    ) as url:
        a, b = {"X-Forwarded-For": "198.51.100.1"}, {"X-Forwarded-For": "198.51.100.2"}
        of_a = upload(url, image_path(CASE["images"][0]), a)
        of_b = upload(url, image_path(CASE["images"][1]), b)
        event, (answer,) = page_call(url, "score", [CASE["prompt"], [item(of_a), item(of_b)], []], headers=b)
        assert event == "complete"
        assert [r["name"] for r in answer["ranked"]] == [CASE["images"][1]]
        assert answer["skipped"] == [{"name": CASE["images"][0], "reason": NOT_UPLOADED}]
        event, (answer,) = page_call(url, "score", [CASE["prompt"], [item(of_a)], []], headers=a)
        assert event == "complete" and [r["name"] for r in answer["ranked"]] == [CASE["images"][0]]


# ----------------------------------------------------------------------------------- 2. direct routes
@pytest.mark.parametrize("route", ["gradio_api/run/explain", "gradio_api/api/explain", "gradio_api/run/score"])
def test_the_direct_routes_are_closed(server, route: str) -> None:
    """main: `/run/` and `/api/` ran every call past the queue and its limits (20 of 20 explanations)."""
    url, _ = server
    image = {"path": upload(url, image_path(CASE["images"][0])), "meta": FILE_META}
    data = [CASE["prompt"], image] if "explain" in route else [CASE["prompt"], [{"image": image, "caption": None}], []]
    response = httpx.post(f"{url}{route}", json={"data": data}, timeout=60)
    assert response.status_code == 404 and "join the queue" in response.text
    name = route.rsplit("/", 1)[1]
    queued = httpx.post(f"{url}gradio_api/call/{name}", json={"data": data}, timeout=60)
    assert queued.status_code == 200 and finished(url, name, queued) == "complete"


# --------------------------------------------------------------------------------- 3. one heavy limit
def test_heavy_calls_of_every_kind_share_one_limit(server) -> None:
    """Six heavy calls (scoring on the page, the /score API, explanations) at once run at most
    IMAGEREWARD_HEAVY_CALLS at a time, all endpoints together (main: two per endpoint, so up to six; four here,
    the one visitor's share). Read from the server's own log line at each heavy call's start, which says how
    many run at that moment (the clients' streams report starts and ends too late to time them)."""
    url, tmp = server
    log = tmp / f"app-{url.rstrip('/').rsplit(':', 1)[1]}.log"
    files = [upload(url, noise(tmp / f"heavy{k}.png", SIDE, k)) for k in range(3)]
    # One visitor (no trusted proxy here) may have four calls pending: four of the six are admitted. One call of
    # each kind joins first, so every kind is among the admitted (which four win a race of six is chance).
    calls = [
        ("score", [CASE["prompt"], [item(f) for f in files], []]),
        ("score_and_compare", [CASE["prompt"], [item(f) for f in files], [], "ImageReward"]),
        ("explain", [CASE["prompt"], {"path": files[0], "meta": FILE_META}]),
    ] * 2
    outcomes: list[str] = [""] * len(calls)

    joined = [threading.Event() for _ in calls]

    def run(k: int) -> None:
        name, data = calls[k]
        outcomes[k] = page_call(url, name, data, joined_event=joined[k])[0]

    before = len(log.read_text().splitlines())
    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(calls))]
    for t in threads[:3]:
        t.start()
    for event in joined[:3]:
        assert event.wait(60), "a call's join was not answered in 60 s"
    for t in threads[3:]:
        t.start()
    for t in threads:
        t.join()
    assert outcomes[:3] == ["complete"] * 3, outcomes
    assert outcomes.count("complete") >= 4, outcomes
    started = [
        (m.group(1), int(m.group(2)), int(m.group(3)))
        for line in log.read_text().splitlines()[before:]
        if (m := re.search(r"heavy call started \((\w+)\): (\d+) running, at most (\d+)", line))
    ]
    assert len(started) == outcomes.count("complete"), started
    assert {name for name, _, _ in started} == {"score", "score_and_compare", "explain"}
    assert max(n for _, n, _ in started) <= HEAVY_CALLS and {most for _, _, most in started} == {HEAVY_CALLS}


# ---------------------------------------------------------------------------------------- 4. identity
def test_a_local_client_cannot_choose_who_it_is(server, tmp_path: Path) -> None:
    """Without a trusted proxy, X-Forwarded-For is nobody's word: eight calls at once with eight different
    headers are one visitor's, four admitted and the rest refused (main: uvicorn believed the header from
    loopback, and all eight were admitted as eight visitors)."""
    url, _ = server
    files = [upload(url, noise(tmp_path / f"id{k}.png", SIDE, 100 + k)) for k in range(3)]
    data = [CASE["prompt"], [item(f) for f in files], []]
    from concurrent.futures import ThreadPoolExecutor

    def join(k: int) -> httpx.Response:
        headers = {"X-Forwarded-For": f"192.0.2.{k}"}
        return httpx.post(f"{url}gradio_api/call/score", json={"data": data}, headers=headers, timeout=60)

    with ThreadPoolExecutor(8) as pool:  # all at once: a call ending meanwhile would free a place
        joined = list(pool.map(join, range(8)))
    codes = [r.status_code for r in joined]
    assert codes.count(200) in (4, 5) and codes.count(429) == 8 - codes.count(200), codes
    assert all(finished(url, "score", r) == "complete" for r in joined if r.status_code == 200)


def test_an_agent_is_its_address_and_is_told_the_apps_sentence(server, tmp_path: Path) -> None:
    """Six MCP calls at once from one address, each writing another X-Forwarded-For: one visitor, four
    admitted, two refused with the app's own sentence, no internal URL (main: six visitors chosen by the header;
    a refusal read "Client error '429 Too Many Requests' for url 'http://127.0.0.1:<port>/...'")."""
    url, _ = server
    images = [data_uri(noise(tmp_path / f"a{k}.png", SIDE, 200 + k).read_bytes()) for k in range(3)]
    calls = [("score_images", {"prompt": CASE["prompt"], "images": images})] * 6
    results = mcp_calls(url, calls, headers=[{"X-Forwarded-For": f"192.0.2.{50 + k}"} for k in range(6)])
    refused = [text_of(r) for r in results if r.isError]
    # Four admitted, unless one ended while the sessions were still starting.
    assert len(refused) in (1, 2), [text_of(r)[:120] for r in results]
    for text in refused:
        assert text.startswith("You have 4 requests waiting or running already"), text
        assert "127.0.0.1:" not in text and "http" not in text


# ------------------------------------------------------------------------------------------ 5. bodies
def _raw_post(url: str, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, str, float]:
    """A POST written by hand (what a hostile client sends): the status line and body of the answer, and how
    long it took."""
    host, port = url.split("//", 1)[1].rstrip("/").split(":")
    start = time.perf_counter()
    with socket.create_connection((host, int(port)), timeout=30) as s:
        lines = [f"POST /{path} HTTP/1.1", f"Host: {host}:{port}", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
        s.sendall("\r\n".join(lines).encode() + body)
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < 20:
            chunk = s.recv(65536)
            if not chunk:
                break
            answer += chunk
    status = int(answer.split(b" ", 2)[1])
    return status, answer.split(b"\r\n\r\n", 1)[1].decode(errors="replace"), time.perf_counter() - start


def test_a_declared_500_mb_body_is_refused_before_it_is_read(server) -> None:
    """main: a 500 MB body cost +1.8 GB and 24 s before the refusal; now 413 at once, nothing read."""
    url, _ = server
    before = peak_memory_mb(PIDS[url])
    for path in ("gradio_api/call/score", "gradio_api/queue/join", "gradio_api/mcp/"):
        headers = {"Content-Type": "application/json", "Content-Length": str(500 * 2**20)}
        status, text, seconds = _raw_post(url, path, headers)
        assert status == 413 and "the most a call may send" in text and seconds < 2, (path, status, text)
    assert peak_memory_mb(PIDS[url]) - before < 50


def test_an_undeclared_body_is_cut_at_the_limit(server) -> None:
    url, _ = server

    def chunks():
        for _ in range(80):
            yield b" " * 2**20

    response = httpx.post(
        f"{url}gradio_api/call/score", content=chunks(), headers={"Content-Type": "application/json"}, timeout=60
    )
    assert response.status_code == 413 and "the most a call may send" in response.json()["detail"]


def test_ten_thousand_pairs_are_refused_before_parsing(server) -> None:
    """main: 10,000 pairs were parsed (+1.06 GB with their images) before the call's own refusal."""
    url, _ = server
    before = peak_memory_mb(PIDS[url])
    body = json.dumps({"data": [["a cat"] * 10_000, [[0] * 8] * 10_000, []]}).encode()
    response = httpx.post(
        f"{url}gradio_api/call/score_pairs", content=body, headers={"Content-Type": "application/json"}, timeout=60
    )
    assert response.status_code == 413 and "values, the most a call may" in response.json()["detail"]
    assert peak_memory_mb(PIDS[url]) - before < 30


# --------------------------------------------------------------------------------------- 6. shutdown
def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and re.fullmatch(r"[0-9a-f]{64}", p.parent.name)]


def test_sigterm_removes_the_uploads_and_a_restart_after_a_kill_removes_what_was_left(tmp_path: Path) -> None:
    """main: SIGTERM ended the app with -15 and left its uploads; after a kill, the restarted app counted the
    dead one's 95 MB against a 100 MB budget and refused every upload with 507."""
    env = {"IMAGEREWARD_MODEL": str(PARITY), "IMAGEREWARD_JUDGES": "none", "IMAGEREWARD_DISK_BUDGET_MB": "2"}
    folder = tmp_path / "gradio"
    blob = tmp_path / "blob.png"
    with running_app(tmp_path, **env) as url:
        examples = set(_files(folder))
        blob.write_bytes(os.urandom(400 * 1024))
        upload(url, blob)
        assert len(set(_files(folder)) - examples) == 1
        process = PROCESSES[url]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert set(_files(folder)) - examples == set()
    with running_app(tmp_path, **env) as url:
        for _ in range(3):  # with the examples' 0.6 MB, 1.8 of the 2 MB
            blob.write_bytes(os.urandom(400 * 1024))
            upload(url, blob)
        os.kill(PIDS[url], signal.SIGKILL)
        PROCESSES[url].wait(timeout=30)
    left = set(_files(folder)) - examples
    assert len(left) == 3
    with running_app(tmp_path, **env) as url:
        assert not [p for p in left if p.exists()]
        blob.write_bytes(os.urandom(400 * 1024))
        with open(blob, "rb") as f:
            answer = httpx.post(f"{url}gradio_api/upload", files={"files": ("blob.png", f)}, timeout=60)
        assert answer.status_code == 200, answer.text


# -------------------------------------------------------------------------------------------- 7. MCP
def test_an_mcp_call_carries_an_image_of_3_5_mb(server, tmp_path: Path) -> None:
    """main: the MCP transport refused any request over 4 MiB (413) while the tools promised 20 MB an image."""
    url, _ = server
    png = noise(tmp_path / "big.png", 1080, 7).read_bytes()
    assert 3.3 * 2**20 < len(png) < 3.7 * 2**20
    (result,) = mcp_calls(url, [("score_images", {"prompt": CASE["prompt"], "images": [data_uri(png)]})])
    assert not result.isError, text_of(result)[:300]
    assert len(json.loads(text_of(result))["ranked"]) == 1


# ------------------------------------------------------------------------------------------ 8. smaller
def test_an_mcp_validation_error_is_cut(server) -> None:
    """main: a 100 kB judge name came back as 100,094 characters."""
    url, _ = server
    good = data_uri(image_path(CASE["images"][0]).read_bytes())
    (result,) = mcp_calls(url, [("score_images", {"prompt": "p", "images": [good], "judges": ["x" * 100_000]})])
    assert result.isError and len(text_of(result)) <= 300


def test_the_same_base64_image_is_decoded_once_and_line_breaks_are_accepted(server, tmp_path: Path) -> None:
    """main: eight copies of one image under a budget of three: three decoded, five refused as over the budget;
    base64 wrapped at 76 columns refused as invalid."""
    url, _ = server
    Image.linear_gradient("L").resize((SIDE, SIDE)).convert("RGB").save(tmp_path / "same.png")  # compresses well
    png = (tmp_path / "same.png").read_bytes()
    images = [data_uri(png)] * 7 + [data_uri(png, wrap=76)]
    (result,) = mcp_calls(url, [("score_images", {"prompt": CASE["prompt"], "images": images})])
    answer = json.loads(text_of(result))
    assert len(answer["ranked"]) == 8 and answer["skipped"] == [], answer["skipped"]
    assert len({r["score"] for r in answer["ranked"]}) == 1


@pytest.mark.parametrize("name", ["score_and_compare", "fill_prompt", "no_such_thing"])
def test_a_private_or_unknown_name_is_refused_with_the_public_ones(server, name: str) -> None:
    """main: a private handler ran by name, an unknown name answered 500."""
    url, _ = server
    response = httpx.post(f"{url}gradio_api/call/{name}", json={"data": ["p", []]}, timeout=30)
    assert response.status_code == 404
    detail = response.json()["detail"]
    assert "/score, /score_images, /score_pairs" in detail and len(detail) < 300


@pytest.mark.parametrize("images", ["not a list", {"x": 1}, [123], [{"image": 5}]], ids=str)
def test_a_malformed_gallery_is_told_what_a_gallery_is(server, images: object) -> None:
    """main: `{"error": null}`."""
    url, _ = server
    response = httpx.post(f"{url}gradio_api/call/score", json={"data": ["p", images, []]}, timeout=30)
    assert response.status_code == 422
    (detail,) = response.json()["detail"]
    assert detail["parameter_name"] == "images" and "expected a list of images" in detail["message"]


def test_one_minute_is_said_so(tmp_path: Path) -> None:
    env = {
        "IMAGEREWARD_MODEL": str(PARITY),
        "IMAGEREWARD_JUDGES": "none",
        "IMAGEREWARD_FILE_LIFETIME": "60",
        "IMAGEREWARD_UPLOAD_QUOTA_MB": "1",
    }
    with running_app(tmp_path, **env) as url:
        blob = tmp_path / "b.png"
        answers = []
        for _ in range(4):
            blob.write_bytes(os.urandom(400 * 1024))
            with open(blob, "rb") as f:
                answers.append(httpx.post(f"{url}gradio_api/upload", files={"files": ("b.png", f)}, timeout=60))
        assert [a.status_code for a in answers][-1] == 429
        assert "in the last 1 minute," in answers[-1].text
