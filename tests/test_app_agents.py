"""The app for agents and pipelines, against the real server and the tiny model: the MCP server through `mcp`'s
own client over streamable HTTP (the tools listed, each called, the rankings equal `/score`'s for images sent as
base64 and as URLs of a loopback image server the app is told to trust, in this test only), `/score_pairs`
through gradio_client (the package's numbers, errors in place), README's client snippets run as written, and
hostile calls on every new route. Every address contacted is on loopback: the app, and the image servers this
test starts."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from gradio_client import Client, handle_file
from imageserver import image_server

from appserver import ROOT, running_app
from imagereward.app.remote import NOT_SENT
from originals import EXPECTED, PARITY, image_path

pytest.importorskip("mcp")

CASE = next(c for c in EXPECTED["rank"] if c["prompt"].strip() and len(c["images"]) >= 3)
NAMES = CASE["images"][:3]
TOOLS = {"score_images", "compare_images", "explain_image"}
README = (ROOT / "docs" / "app.md").read_text(encoding="utf-8")  # where the client snippets live


def snippet(name: str) -> str:
    """The fenced block after docs/app.md's `<!-- snippet: name -->`."""
    match = re.search(rf"<!-- snippet: {name} -->\n```\w*\n(.*?)\n```", README, re.S)
    assert match, f"docs/app.md has no snippet {name}"
    return match.group(1)


def data_uri(name: str) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(image_path(name).read_bytes()).decode()


@pytest.fixture(scope="module")
def images_served(tmp_path_factory: pytest.TempPathFactory):
    www = tmp_path_factory.mktemp("www")
    for name in NAMES:
        shutil.copy(image_path(name), www / name)
    with image_server(www) as server:
        yield server


@pytest.fixture(scope="module")
def trusting(tmp_path_factory: pytest.TempPathFactory, images_served) -> str:
    """An app with MCP on that trusts the test's image server (and nothing else on loopback)."""
    tmp = tmp_path_factory.mktemp("agents")
    env = {"IMAGEREWARD_MODEL": str(PARITY), "IMAGEREWARD_MCP": "1", "IMAGEREWARD_JUDGES": "none"}
    with running_app(tmp, IMAGEREWARD_TRUSTED_URL_HOSTS=images_served.trusted, **env) as url:
        yield url


@pytest.fixture(scope="module")
def default(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An app with MCP on and the default URL rules."""
    tmp = tmp_path_factory.mktemp("agents-default")
    with running_app(tmp, IMAGEREWARD_MODEL=str(PARITY), IMAGEREWARD_MCP="1", IMAGEREWARD_JUDGES="none") as url:
        yield url


def mcp_session(url: str, calls: list[tuple[str, dict]]) -> tuple[list, list]:
    """Lists the tools of the app's MCP server (the URL README's client configuration gives, pointed at the
    local server) and makes each call; returns (tools, results)."""
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    configured = json.loads(snippet("mcp-config"))["mcpServers"]["imagereward"]["url"]
    endpoint = re.sub(r"^https://[^/]+/", url, configured)

    async def session() -> tuple[list, list]:
        async with streamable_http_client(endpoint) as (read, write, _):
            async with ClientSession(read, write) as s:
                await s.initialize()
                tools = (await s.list_tools()).tools
                results = [await s.call_tool(name, arguments) for name, arguments in calls]
                return tools, results

    return asyncio.run(session())


def text_of(result) -> str:
    return "".join(c.text for c in result.content if getattr(c, "type", "") == "text")


def ranking(answer: dict) -> list[tuple[str, float]]:
    return [(r["image"], r["score"]) for r in answer["ranked"]]


def test_the_mcp_tools_answer_as_score_does(trusting: str, images_served) -> None:
    by_score = Client(trusting, verbose=False).predict(
        CASE["prompt"], [{"image": handle_file(str(image_path(n))), "caption": None} for n in NAMES], api_name="/score"
    )
    urls = [images_served.base + n for n in NAMES]
    tools, results = mcp_session(
        trusting,
        [
            ("score_images", {"prompt": CASE["prompt"], "images": [data_uri(n) for n in NAMES]}),
            ("score_images", {"prompt": CASE["prompt"], "images": urls}),
            ("compare_images", {"prompt": CASE["prompt"], "image_a": urls[0], "image_b": data_uri(NAMES[1])}),
            ("explain_image", {"prompt": CASE["prompt"], "image": urls[2]}),
        ],
    )
    assert {t.name for t in tools} == TOOLS
    described = {t.name: t for t in tools}["score_images"]
    assert "35 tokens" in described.description and "0 is an average generation" in described.description
    from imagereward.images.reading import FORMATS_TEXT

    assert all(FORMATS_TEXT in json.dumps(t.inputSchema) for t in tools)  # the formats from their one table
    assert described.inputSchema["properties"]["images"]["type"] == "array"
    as_data, as_urls, compared, explained = (json.loads(text_of(r)) for r in results)
    names = {f"image {k + 1}": n for k, n in enumerate(NAMES)}
    assert [(names[i], s) for i, s in ranking(as_data)] == ranking(by_score)
    assert ranking(as_urls) == ranking(by_score)
    scores = dict(ranking(by_score))
    # Two images are one batch of 2, /score's three a batch of 3: on a CPU with AMX, oneDNN's kernels for the two
    # shapes round differently (2.4e-7 here), as the package alone does for the same images.
    assert compared["a"]["score"] == pytest.approx(scores[NAMES[0]], abs=1e-6)
    assert compared["b"]["score"] == pytest.approx(scores[NAMES[1]], abs=1e-6)
    assert 0 < compared["p_a_preferred"] < 1
    assert explained["name"] == NAMES[2] and len(explained["heatmap"]) == 14
    assert sorted(images_served.asked) == sorted(["/" + n for n in NAMES] + ["/" + NAMES[0], "/" + NAMES[2]])
    assert str(ROOT) not in "".join(text_of(r) for r in results)  # no server paths in what an agent reads


def test_by_default_a_loopback_url_is_refused(default: str, images_served) -> None:
    before = list(images_served.asked)
    _, (result, both) = mcp_session(
        default,
        [
            ("score_images", {"prompt": CASE["prompt"], "images": [images_served.base + NAMES[0], data_uri(NAMES[1])]}),
            ("score_images", {"prompt": CASE["prompt"], "images": [images_served.base + NAMES[0]]}),
        ],
    )
    answer = json.loads(text_of(result))
    assert answer["skipped"] == [{"name": NAMES[0], "reason": NOT_SENT}] and len(answer["ranked"]) == 1
    assert both.isError and NOT_SENT in text_of(both)
    assert images_served.asked == before  # never fetched


HOSTILE = [
    "/etc/passwd",
    "file:///etc/passwd",
    "http://127.0.0.1:1/x.png",
    "http://localhost:1/x.png",
    "http://[::1]:1/x.png",
]


def test_hostile_images_are_refused_on_every_new_route(default: str, tmp_path: Path) -> None:
    secret = ROOT / "tests/fixtures/parity/images" / NAMES[0]  # a real image on the server's disk
    items = [*HOSTILE, str(secret), f"{default}gradio_api/file={secret}"]
    _, results = mcp_session(
        default,
        [
            ("score_images", {"prompt": CASE["prompt"], "images": [*items, data_uri(NAMES[1])]}),
            ("explain_image", {"prompt": CASE["prompt"], "image": str(secret)}),
            (
                "compare_images",
                {"prompt": CASE["prompt"], "image_a": "file:///etc/passwd", "image_b": data_uri(NAMES[1])},
            ),
            ("score_api", {"prompt": CASE["prompt"], "images": [str(secret)]}),
        ],
    )
    scored, explained, compared, unlisted = results
    answer = json.loads(text_of(scored))
    assert [s["reason"] for s in answer["skipped"]] == [NOT_SENT] * len(items) and len(answer["ranked"]) == 1
    assert explained.isError and NOT_SENT in text_of(explained)
    assert compared.isError and NOT_SENT in text_of(compared)
    assert unlisted.isError  # only the three tools are callable
    client = Client(default, verbose=False)
    pairs = client.predict([CASE["prompt"]] * len(items), items, [], api_name="/score_pairs")
    assert [r["error"] for r in pairs["rows"]] == [NOT_SENT] * len(items)


def test_score_pairs_equals_the_package(trusting: str, images_served, tiny_model) -> None:
    from imagereward.images.decoding import Decoder

    prompts = [c["prompt"] for c in EXPECTED["rank"] if c["prompt"].strip()][:3]
    client = Client(trusting, verbose=False)
    images = [handle_file(str(image_path(NAMES[0]))), data_uri(NAMES[1]), images_served.base + NAMES[2]]
    answer = client.predict([*prompts, prompts[0]], [*images, "/etc/passwd"], [], api_name="/score_pairs")
    decoder = Decoder()
    try:
        decoded = decoder.decode([str(image_path(n)) for n in NAMES], NAMES, [tiny_model.preprocessing])
    finally:
        decoder.close()
    expected = [r.score for r in tiny_model.score_pairs(prompts, decoded[tiny_model.preprocessing], NAMES)]
    rows = answer["rows"]
    assert [r["score"] for r in rows[:3]] == pytest.approx(expected, abs=1e-6)
    assert [r["image"] for r in rows] == [NAMES[0], "image 2", NAMES[2], "passwd"]
    assert rows[3]["score"] is None and rows[3]["error"] == NOT_SENT and all(r["error"] is None for r in rows[:3])


def test_parallel_pair_calls_are_batched_and_each_gets_its_own_rows(trusting: str) -> None:
    """12 calls at once from one visitor: all admitted (pair calls have their own share of 16, beyond the page's 4
    per visitor), each answered with its own rows, equal to the same call made alone."""
    client = Client(trusting, verbose=False)
    prompts = [c["prompt"] for c in EXPECTED["rank"] if c["prompt"].strip()][:4]
    # A client (session) per call, as a pipeline's workers have: one gradio_client session with calls joining
    # while others complete can lose a call to its own race (the server closes the session's stream when its
    # last pending call ends; a call joined meanwhile is then cancelled on the client's side).
    jobs = [
        Client(trusting, verbose=False).submit(
            [p] * 2, [handle_file(str(image_path(n))) for n in NAMES[:2]], [], api_name="/score_pairs"
        )
        for p in prompts * 3
    ]
    answers = [job.result(timeout=120) for job in jobs]
    for p, answer in zip(prompts * 3, answers):
        assert [r["prompt"] for r in answer["rows"]] == [p, p] and all(r["error"] is None for r in answer["rows"])
    alone = {
        p: client.predict([p] * 2, [handle_file(str(image_path(n))) for n in NAMES[:2]], [], api_name="/score_pairs")
        for p in prompts
    }
    for p, answer in zip(prompts * 3, answers):
        assert [r["score"] for r in answer["rows"]] == pytest.approx([r["score"] for r in alone[p]["rows"]], abs=1e-6)


def test_readme_client_snippets_run_as_written(trusting: str, tiny_model, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # README's commands run from the repository's root
    for name in ("score-client", "pairs-client"):
        code = snippet(name).replace("http://127.0.0.1:7860/", trusting)
        scope: dict = {}
        exec(compile(code, f"README:{name}", "exec"), scope)  # noqa: S102 (README's own code)
        answer = scope.get("result") or scope.get("answer")
        assert answer and (answer.get("ranked") or answer.get("rows"))
    pairs_rows = scope["answer"]["rows"]
    assert [r["image"] for r in pairs_rows] == ["coffee.jpg", "cat.jpg"] and all(r["error"] is None for r in pairs_rows)
    expected = tiny_model.score(
        "a cup of coffee with latte art on a wooden table, photograph", str(ROOT / "examples/images/coffee.jpg")
    )
    assert pairs_rows[0]["score"] == pytest.approx(expected, abs=1e-6)

    script = snippet("pairs-curl").replace("URL=http://127.0.0.1:7860", f"URL={trusting.rstrip('/')}")
    out = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60).stdout
    assert "event: complete" in out, out[-500:]
    data = json.loads(out.split("data:", 1)[1].strip().splitlines()[0])
    expected = tiny_model.score("a cup of coffee with latte art", str(ROOT / "examples/images/coffee.jpg"))
    assert data[0]["rows"][0]["score"] == pytest.approx(expected, abs=1e-6)


def test_the_app_starts_without_the_mcp_package(tmp_path: Path) -> None:
    """Where `mcp` cannot be imported, the page and the API work, and the log says MCP is off."""
    stub = tmp_path / "no-mcp"
    stub.mkdir()
    (stub / "sitecustomize.py").write_text(
        "import sys\n"
        "class _NoMcp:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'mcp' or name.startswith('mcp.'):\n"
        "            raise ModuleNotFoundError(\"No module named 'mcp'\")\n"
        "sys.meta_path.insert(0, _NoMcp())\n"
    )
    env = {
        "IMAGEREWARD_MODEL": str(PARITY),
        "IMAGEREWARD_MCP": "1",
        "IMAGEREWARD_JUDGES": "none",
        "PYTHONPATH": str(stub),
    }
    with running_app(tmp_path, **env) as url:
        answer = Client(url, verbose=False).predict(
            CASE["prompt"], [{"image": handle_file(str(image_path(NAMES[0]))), "caption": None}], api_name="/score"
        )
        assert len(answer["ranked"]) == 1
        assert httpx.get(f"{url}gradio_api/mcp/", timeout=10).status_code == 404
    log = next(tmp_path.glob("app-*.log")).read_text()
    assert "MCP is off: the mcp package is not installed" in log


# ------------------------------------------------------------------------- what an agent still tripped on
def tiny_pngs(count: int) -> list[str]:
    """`count` distinct small pictures as base64 data."""
    import io

    from PIL import Image

    uris = []
    for k in range(count):
        buffer = io.BytesIO()
        Image.new("RGB", (64, 64), (k * 5 % 256, 255 - k * 5 % 256, 90)).save(buffer, format="PNG")
        uris.append("data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode())
    return uris


def test_an_agent_is_told_when_images_were_cut_and_what_identical_images_mean(default: str) -> None:
    """40 images: 32 ranked, and the note /score gives (main: `notes: []`); two identical images: a tie, not
    "a" (main: `preferred: "a"` at p = 0.5); the server says what its tools are for (main: no instructions);
    `images` sent as one long string is answered in a short sentence (main: 46,796 characters echoing it)."""
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    images = tiny_pngs(40)

    async def session() -> tuple:
        async with streamable_http_client(f"{default}gradio_api/mcp/") as (read, write, _):
            async with ClientSession(read, write) as s:
                started = await s.initialize()
                many = await s.call_tool("score_images", {"prompt": CASE["prompt"], "images": images})
                same = await s.call_tool(
                    "compare_images", {"prompt": CASE["prompt"], "image_a": images[0], "image_b": images[0]}
                )
                one_string = await s.call_tool("score_images", {"prompt": CASE["prompt"], "images": images[0] * 200})
                return started, many, same, one_string

    started, many, same, one_string = asyncio.run(session())
    answer = json.loads(text_of(many))
    assert len(answer["ranked"]) == 32
    assert any(n.startswith("Only the first 32 of 40 images were scored") for n in answer["notes"]), answer["notes"]
    compared = json.loads(text_of(same))
    assert compared["p_a_preferred"] == 0.5 and compared["preferred"] == "tie"
    assert started.instructions and "score_images" in started.instructions and "image N" in started.instructions
    assert one_string.isError and len(text_of(one_string)) <= 300
