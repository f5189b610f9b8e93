"""The app against the real server and the tiny model: the `score` API through gradio_client, and hostile
clients speaking plain HTTP (paths on the server's disk, with and without Gradio's `meta`, sent to the API
and to the page's own handlers by name)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from appserver import ROOT, page_call, running_app
from imagereward.app.admission import FILE_META
from imagereward.app.intake import NOT_UPLOADED
from originals import EXPECTED, PARITY, image_path

CASE = EXPECTED["rank"][0]
STUBS = Path(__file__).parent / "stubs"
# The page's handlers: private ones are refused by name on /call/, but a client can still call them as the page's
# own script does (`page_call`): they must be as safe as the public one.
BASELINES = ROOT / "tests/fixtures/parity-baselines"
HANDLER_NAMES = ["score", "score_and_compare", "fill_prompt"]
# The inputs each handler takes after the prompt and the gallery (judges; the gallery's order).
MORE_INPUTS = {"score": [[]], "score_and_compare": [["CLIP"], "CLIP"]}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, judges_root: Path):
    tmp = tmp_path_factory.mktemp("api")
    with running_app(tmp, IMAGEREWARD_MODEL=str(PARITY), IMAGEREWARD_DOWNLOAD_ROOT=str(judges_root)) as url:
        yield url, tmp


@pytest.fixture(scope="module")
def client(server) -> Client:
    return Client(server[0], verbose=False)


def gallery(paths: list[Path]) -> list[dict]:
    return [{"image": handle_file(str(p)), "caption": None} for p in paths]


def upload(url: str, path: Path) -> str:
    """Uploads a file as the page does; returns its path on the server."""
    with open(path, "rb") as f:
        response = httpx.post(f"{url}gradio_api/upload", files={"files": (path.name, f)}, timeout=30)
    response.raise_for_status()
    return response.json()[0]


def call(url: str, name: str, data: list) -> tuple[str, object]:
    """Calls a function by name over /gradio_api/call/; returns the final event and its data."""
    started = httpx.post(f"{url}gradio_api/call/{name}", json={"data": data}, timeout=30)
    if started.status_code != 200:
        return "unavailable", started.text
    event_id = started.json()["event_id"]
    event, payload = "", None
    with httpx.stream("GET", f"{url}gradio_api/call/{name}/{event_id}", timeout=120) as stream:
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and event in ("complete", "error"):
                payload = json.loads(line.removeprefix("data: "))
                break
    return event, payload


def test_score_endpoint_returns_the_original_ranking(client: Client) -> None:
    response = client.predict(CASE["prompt"], gallery([image_path(n) for n in CASE["images"]]), api_name="/score")
    rows = response["ranked"]
    assert [r["rank"] for r in rows] == list(range(1, len(CASE["images"]) + 1))
    by_name = {r["name"]: r for r in rows}
    for name, rank, reward in zip(CASE["images"], CASE["ranking"], CASE["rewards"]):
        assert by_name[name]["rank"] == rank
        assert abs(by_name[name]["score"] - reward) <= 1e-4
        assert by_name[name]["precision"] == "float32"
    assert response["skipped"] == [] and response["model"].endswith("on cpu (float32)")


def test_score_endpoint_lists_skipped_images_and_notes(client: Client, tmp_path: Path) -> None:
    bad = tmp_path / "corrupt.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    response = client.predict(EXPECTED["prompts"][3], gallery([image_path(CASE["images"][0]), bad]), api_name="/score")
    assert [r["name"] for r in response["ranked"]] == [CASE["images"][0]]
    assert [s["name"] for s in response["skipped"]] == ["corrupt.png"] and response["skipped"][0]["reason"]
    assert any("reads only the first 35" in n for n in response["notes"])


def test_duplicate_names_come_out_unique(client: Client, tmp_path: Path) -> None:
    paths = []
    for k, name in enumerate(CASE["images"][:3]):
        (tmp_path / str(k)).mkdir()
        paths.append(tmp_path / str(k) / "image.png")
        shutil.copy(image_path(name), paths[-1])
    response = client.predict(CASE["prompt"], gallery(paths), api_name="/score")
    assert sorted(r["name"] for r in response["ranked"]) == ["image.png", "image.png (2)", "image.png (3)"]


def test_score_endpoint_rejects_an_empty_prompt(client: Client) -> None:
    with pytest.raises(Exception, match="Type a prompt first"):
        client.predict("", gallery([image_path(CASE["images"][0])]), api_name="/score")


def test_only_the_documented_endpoints_are_public(client: Client) -> None:
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert list(endpoints) == [
        "/score",
        "/explain",
        "/score_images",
        "/compare_images",
        "/explain_image",
        "/score_pairs",
        "/verdict",
        "/compare_models",
    ]


def test_concurrent_requests_each_get_their_own_ranking(client: Client) -> None:
    cases = [c for c in EXPECTED["rank"] if c["prompt"].strip()][:4]
    jobs = [
        client.submit(c["prompt"], gallery([image_path(n) for n in c["images"][:4]]), api_name="/score") for c in cases
    ]
    for case, job in zip(cases, jobs):
        rows = job.result(timeout=120)["ranked"]
        rewards = dict(zip(case["images"], case["rewards"]))
        assert len(rows) == 4
        assert all(abs(r["score"] - rewards[r["name"]]) <= 1e-4 for r in rows)


@pytest.mark.parametrize("with_meta", [False, True], ids=["no-meta", "meta"])
def test_a_server_path_is_refused_without_saying_whether_it_exists(server, with_meta: bool) -> None:
    url, tmp = server
    good = upload(url, image_path(CASE["images"][0]))
    outside = tmp / "outside"
    outside.mkdir(exist_ok=True)
    shutil.copy(image_path(CASE["images"][1]), outside / "exists.png")
    meta = {"meta": {"_type": "gradio.FileData"}} if with_meta else {}
    pairs = [("/etc/passwd", "/etc/no-such-file"), (str(outside / "exists.png"), str(outside / "missing.png"))]
    for existing, missing in pairs:
        answers = []
        for path in (existing, missing):
            items = [
                {"image": {"path": path, **meta}, "caption": None},
                {"image": {"path": good, **meta}, "caption": None},
            ]
            event, payload = call(url, "score", [CASE["prompt"], items, []])
            text = json.dumps(payload).replace(path, "PATH").replace(Path(path).name, "NAME")
            answers.append((event, text.split('"seconds"')[0]))
            assert "root:" not in text and "not found" not in text and "not an image" not in text
            if event == "complete":  # our check: the file is skipped with one sentence, the upload scored
                (response,) = payload
                assert [r["name"] for r in response["ranked"]] == [CASE["images"][0]]
                assert [s["reason"] for s in response["skipped"]] == [NOT_UPLOADED]
            else:  # Gradio refused the whole request first (not an image file type, or `meta` not uploaded)
                assert event == "error"
        assert answers[0] == answers[1], "an existing and a missing file must get the same answer"


@pytest.mark.parametrize("name", HANDLER_NAMES)
def test_no_handler_called_by_name_returns_a_file_that_was_not_uploaded(server, name: str) -> None:
    url, tmp = server
    inside_app = ROOT / "tests/fixtures/parity/images" / CASE["images"][1]
    in_temp = tmp / "secret-in-temp.png"
    shutil.copy(image_path(CASE["images"][2]), in_temp)
    good = upload(url, image_path(CASE["images"][0]))
    items = [{"image": {"path": str(p)}, "caption": None} for p in (inside_app, in_temp)]
    items.append({"image": {"path": good}, "caption": None})
    event, payload = page_call(url, name, [CASE["prompt"], items, *MORE_INPUTS.get(name, [])])
    if event == "unavailable":
        pytest.skip(f"no function named {name} on this page")
    assert event == "complete", payload
    allowed = {image_path(CASE["images"][0]).read_bytes()}
    for body in _served_contents(url, payload):
        assert body in allowed
    assert str(in_temp) not in json.dumps(payload) and str(inside_app) not in json.dumps(payload)


@pytest.mark.parametrize("name", ["start_compare", "compare", "reorder", "why", "why_after_pick"])
def test_the_comparison_shows_no_file_that_was_not_uploaded(server, name: str) -> None:
    url, tmp = server
    secret = tmp / "secret-for-compare.png"
    shutil.copy(image_path(CASE["images"][2]), secret)
    gallery = [{"image": {"path": p}, "caption": None} for p in (str(secret), "/etc/passwd")]
    table = {
        "headers": ["ImageReward rank", "image", "ImageReward score", "precision"],
        "data": [[1, "a", 1.0, "float32"], [2, "b", 0.0, "float32"]],
    }
    more = {
        "start_compare": [],
        "compare": ["a", "b"],
        "reorder": ["ImageReward"],
        "why": [CASE["prompt"], "a", "b", True],
        "why_after_pick": [CASE["prompt"], "a", "b", True],
    }
    data = [gallery, table, *more[name]]
    event, payload = page_call(url, name, data)
    assert event in ("complete", "error")
    assert list(_served_contents(url, payload)) == []
    assert "secret-for-compare" not in json.dumps(payload) and "passwd" not in json.dumps(payload)


def _served_contents(url: str, payload: object):
    """The bytes of every file a response links to; a zip's members one by one; the page's own CSV and JSON
    downloads are checked to hold rankings, not files."""
    import io
    import zipfile

    for link in _file_urls(payload):
        body = httpx.get(link if link.startswith("http") else url + link.lstrip("/"), timeout=30).content
        if link.endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(body)) as archive:
                yield from (archive.read(member) for member in archive.namelist())
        elif link.endswith((".csv", ".json")):
            assert body.startswith((b"prompt,rank,image,score", b'{\n "model"'))
        else:
            yield body


@pytest.mark.parametrize("data", [[0], [2], [99], ["/etc/passwd"], [{"path": "/etc/passwd"}]], ids=str)
def test_the_example_loaders_serve_only_the_examples(server, data: list) -> None:
    url, _ = server
    examples = {p.read_bytes() for p in (ROOT / "examples" / "images").iterdir()}
    for name in ("load_example_input", "load_example"):
        event, payload = page_call(url, name, data)
        assert event in ("complete", "error", "unavailable")
        for body in _served_contents(url, payload):
            assert body in examples


def _file_urls(payload: object) -> list[str]:
    found = []
    if isinstance(payload, dict):
        found += [payload["url"]] if isinstance(payload.get("url"), str) else []
        for value in payload.values():
            found += _file_urls(value)
    elif isinstance(payload, list):
        for value in payload:
            found += _file_urls(value)
    return found


def test_a_huge_prompt_is_answered(client: Client) -> None:
    response = client.predict("a cat " * 1_000_000, gallery([image_path(CASE["images"][0])]), api_name="/score")
    assert len(response["ranked"]) == 1
    assert any("reads only the first 35 tokens" in n for n in response["notes"])


def test_a_file_over_the_size_limit_is_skipped_by_name_and_the_others_scored(server, tmp_path: Path) -> None:
    """One file over 20 MB in a pick costs only that file (main: Gradio refused the whole upload, 413, and the
    page dropped the pick, good images included)."""
    url, _ = server
    big = tmp_path / "big.png"
    big.write_bytes(b"\x00" * (21 * 1024 * 1024))
    good = upload(url, image_path(CASE["images"][0]))
    meta = {"meta": {"_type": "gradio.FileData"}}
    items = [{"image": {"path": p, **meta}, "caption": None} for p in (upload(url, big), good)]
    event, (answer,) = call(url, "score", [CASE["prompt"], items, []])
    assert event == "complete" and [r["name"] for r in answer["ranked"]] == [CASE["images"][0]]
    assert answer["skipped"] == [
        {"name": "big.png", "reason": "21.0 MB is over the 20 MB a file may be; compress it or scale it down first"}
    ]


# --------------------------------------------------------------------------- Space hardware, stubbed
@pytest.mark.parametrize("zero_gpu", [False, True], ids=["cpu-space", "zerogpu"])
def test_with_the_spaces_package_and_no_cuda_the_app_serves(tmp_path: Path, zero_gpu: bool) -> None:
    """Spaces install `spaces` on every hardware: on a CPU Space (no SPACES_ZERO_GPU) the app runs on the CPU
    and never calls `spaces.GPU`; on ZeroGPU only the model's work crosses the (pickling) GPU boundary."""
    log = tmp_path / "spaces.log"
    env = {
        "PYTHONPATH": str(STUBS),
        "SPACES_STUB_LOG": str(log),
        "IMAGEREWARD_MODEL": str(PARITY),
        "CUDA_VISIBLE_DEVICES": "",
    }
    if zero_gpu:
        env |= {"SPACES_ZERO_GPU": "true", "IMAGEREWARD_DEVICE": "cpu"}  # a ZeroGPU without a GPU: the stub's CPU
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with running_app(tmp_path, **env) as url:
        client = Client(url, verbose=False)
        response = client.predict(
            CASE["prompt"], gallery([image_path(n) for n in CASE["images"][:3]] + [bad]), api_name="/score"
        )
        explained = client.predict(CASE["prompt"], handle_file(str(image_path(CASE["images"][0]))), api_name="/explain")
        pairs = client.predict(
            [CASE["prompt"]], [handle_file(str(image_path(CASE["images"][1])))], [], api_name="/score_pairs"
        )
    assert response["model"].endswith("on cpu (float32)")
    assert pairs["rows"][0]["error"] is None and pairs["rows"][0]["image"] == CASE["images"][1]
    assert len(response["ranked"]) == 3 and [s["name"] for s in response["skipped"]] == ["bad.png"]
    assert explained["name"] == CASE["images"][0] and len(explained["heatmap"]) == 14
    calls = [json.loads(line) for line in log.read_text().splitlines() if "function" in line]
    if zero_gpu:  # the explanation's gradient runs inside its own GPU call
        assert [c["function"] for c in calls] == ["_score_device", "_explain_device", "_pairs_device"]
        assert 10 <= calls[0]["duration"] <= 20 and calls[1]["duration"] == 20 and calls[2]["duration"] == 15
    else:
        assert calls == []


def test_the_api_returns_every_judges_scores_ranks_and_agreement(client: Client) -> None:
    """Three baselines beside ImageReward on one request: each judge's scores equal that judge scoring alone
    (the library), its ranks follow its scores, and the agreement counts pairs ordered as ImageReward does."""
    from imagereward.judges import load_score
    from imagereward.ranking import pairs_agreeing

    paths = [image_path(n) for n in CASE["images"][:5]]
    response = client.predict(CASE["prompt"], gallery(paths), ["CLIP", "BLIP", "Aesthetic"], api_name="/score")
    assert response["judges"] == ["ImageReward", "CLIP", "BLIP", "Aesthetic"]
    rows = response["ranked"]
    assert [r["ranks"]["ImageReward"] for r in rows] == [r["rank"] for r in rows] == [1, 2, 3, 4, 5]
    for judge in ("CLIP", "BLIP", "Aesthetic"):
        alone = dict(
            zip(
                [p.name for p in paths],
                load_score(judge, device="cpu", download_root=BASELINES).rewards(CASE["prompt"], paths),
            )
        )
        assert all(abs(r["scores"][judge] - alone[r["name"]]) <= 1e-5 for r in rows)
        by_score = sorted(rows, key=lambda r: -r["scores"][judge])
        assert [r["ranks"][judge] for r in by_score] == [1, 2, 3, 4, 5]
        same, pairs = pairs_agreeing([r["score"] for r in rows], [r["scores"][judge] for r in rows])
        assert response["agreement"][judge] == {"same": same, "pairs": pairs} and pairs == 10


def test_an_unknown_judge_is_named_with_the_offered_ones(client: Client) -> None:
    offered = r"\['CLIP', 'BLIP', 'Aesthetic', 'PickScore', 'HPSv2.1'\]"
    with pytest.raises(Exception, match=r"'HPSv2'.* not in the list of choices: " + offered):
        client.predict(CASE["prompt"], gallery([image_path(CASE["images"][0])]), ["HPSv2"], api_name="/score")


def test_the_api_returns_pickscore_and_hps_beside_imagereward(client: Client) -> None:
    """The modern judges on one request: each one's scores equal that judge alone, PickScore's choices are its
    README's softmax over the images scored, and the agreement covers both."""
    from imagereward.judges import load_score
    from imagereward.judges.pickscore import softmax
    from imagereward.ranking import pairs_agreeing
    from originals import JUDGES

    paths = [image_path(n) for n in CASE["images"][:4]]
    response = client.predict(CASE["prompt"], gallery(paths), ["PickScore", "HPSv2.1"], api_name="/score")
    assert response["judges"] == ["ImageReward", "PickScore", "HPSv2.1"]
    rows = response["ranked"]
    for judge, root in (("PickScore", JUDGES / "pickscore"), ("HPSv2.1", JUDGES / "hpsv2")):
        scores = load_score(judge, device="cpu", download_root=root).rewards(CASE["prompt"], paths)
        alone = dict(zip([p.name for p in paths], scores))
        assert all(abs(r["scores"][judge] - alone[r["name"]]) <= 1e-4 for r in rows)
        same, pairs = pairs_agreeing([r["score"] for r in rows], [r["scores"][judge] for r in rows])
        assert response["agreement"][judge] == {"same": same, "pairs": pairs} and pairs == 6
    probs = softmax([r["scores"]["PickScore"] for r in rows])
    assert [r["choices"]["PickScore"] for r in rows] == pytest.approx(probs, abs=1e-6)
    assert sum(r["choices"]["PickScore"] for r in rows) == pytest.approx(1.0, abs=1e-6)
    assert all("choices" not in r or set(r["choices"]) == {"PickScore"} for r in rows)


# ------------------------------------------------------------------------------ what it read, and why
LONG = CASE["prompt"] + ", golden hour lighting, 85mm lens, bokeh, award winning, trending on artstation, sharp"


def test_the_api_says_what_each_judge_read(client: Client) -> None:
    from imagereward.judges import load_judge
    from originals import JUDGES

    response = client.predict(LONG, gallery([image_path(CASE["images"][0])]), ["CLIP", "PickScore"], api_name="/score")
    read = response["prompt_read"]
    assert list(read) == ["ImageReward", "CLIP", "PickScore"]
    roots = {"ImageReward": None, "CLIP": BASELINES, "PickScore": JUDGES / "pickscore"}
    for judge, root in roots.items():
        got = read[judge]
        assert got["read"] + got["unread"] == LONG
        options = {"weights": str(PARITY)} if root is None else {"download_root": root}
        expected = load_judge(judge, device="cpu", **options).reading(LONG)
        assert (got["read"], got["tokens_read"], got["tokens_total"]) == (
            expected.read,
            expected.tokens_read,
            expected.tokens_total,
        )
    assert read["ImageReward"]["unread"] and read["ImageReward"]["tokens_read"] == 33


def test_the_explain_endpoint_answers_what_the_library_explains(client: Client, tiny_model) -> None:
    import numpy as np

    path = image_path(CASE["images"][1])
    answer = client.predict(LONG, handle_file(str(path)), api_name="/explain")
    expected = tiny_model.explain(LONG, str(path))
    assert answer["name"] == path.name and answer["model"].endswith("on cpu (float32)")
    assert (answer["read"], answer["unread"]) == (expected.read, expected.unread)
    assert [w["word"] for w in answer["words"]] == [w for w, _ in expected.words]
    assert np.allclose([w["delta"] for w in answer["words"]], [d for _, d in expected.words], atol=1e-5)
    assert np.allclose(answer["heatmap"], expected.heatmap, atol=1e-5)
    assert answer["crop_box"] == pytest.approx(list(expected.crop_box))
    assert answer["score"] == pytest.approx(expected.score, abs=1e-5)


@pytest.mark.parametrize("with_meta", [False, True], ids=["no-meta", "meta"])
def test_explain_refuses_a_server_path_without_saying_whether_it_exists(server, with_meta: bool) -> None:
    url, tmp = server
    outside = tmp / "outside"
    outside.mkdir(exist_ok=True)
    shutil.copy(image_path(CASE["images"][1]), outside / "exists.png")
    meta = {"meta": {"_type": "gradio.FileData"}} if with_meta else {}
    for existing, missing in [
        ("/etc/passwd", "/etc/no-such-file"),
        (str(outside / "exists.png"), str(outside / "x.png")),
    ]:
        answers = []
        for path in (existing, missing):
            event, payload = call(url, "explain", [CASE["prompt"], {"path": path, **meta}])
            text = json.dumps(payload).replace(path, "PATH").replace(Path(path).name, "NAME")
            assert event in ("error", "unavailable") and "root:" not in text and "heatmap" not in text
            if not with_meta:  # refused before the queue, saying what a file looks like
                assert event == "unavailable" and "expected a file uploaded to this page" in text
            answers.append(text)
            assert list(_served_contents(url, payload)) == []
        assert answers[0] == answers[1], "an existing and a missing file must get the same answer"


def test_explain_refuses_a_bad_upload_by_name(server, tmp_path: Path) -> None:
    url, _ = server
    strip = tmp_path / "strip.png"
    Image.new("RGB", (100_000, 5)).save(strip)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    for path, reason in ((strip, "aspect ratio of at most 64:1"), (bad, "not an image")):
        event, payload = call(url, "explain", [CASE["prompt"], {"path": upload(url, path), "meta": FILE_META}])
        assert event == "error" and f"{path.name} could not be explained" in json.dumps(payload)
        assert reason in json.dumps(payload)
