"""The app's `score` API endpoint through gradio_client, against the real server and the tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest
from gradio_client import Client, handle_file

from appserver import running_app
from conftest import EXPECTED, PARITY, image_path

CASE = EXPECTED["rank"][0]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("api")
    with running_app(tmp, IMAGEREWARD_MODEL=str(PARITY)) as url:
        yield Client(url, verbose=False)


def gallery(paths: list[Path]) -> list[dict]:
    return [{"image": handle_file(str(p)), "caption": None} for p in paths]


def test_score_endpoint_returns_the_original_ranking(client: Client) -> None:
    rows = client.predict(CASE["prompt"], gallery([image_path(n) for n in CASE["images"]]), api_name="/score")
    assert [r["rank"] for r in rows] == list(range(1, len(CASE["images"]) + 1))
    by_name = {r["name"]: r for r in rows}
    for name, rank, reward in zip(CASE["images"], CASE["ranking"], CASE["rewards"]):
        assert by_name[name]["rank"] == rank
        assert abs(by_name[name]["score"] - reward) <= 1e-4


def test_score_endpoint_skips_a_corrupt_image(client: Client, tmp_path: Path) -> None:
    bad = tmp_path / "corrupt.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    rows = client.predict(CASE["prompt"], gallery([image_path(CASE["images"][0]), bad]), api_name="/score")
    assert [r["name"] for r in rows] == [CASE["images"][0]]


def test_score_endpoint_rejects_an_empty_prompt(client: Client) -> None:
    with pytest.raises(Exception, match="Type a prompt first"):
        client.predict("", gallery([image_path(CASE["images"][0])]), api_name="/score")


def test_only_the_score_endpoint_is_public(client: Client) -> None:
    assert list(client.view_api(print_info=False, return_format="dict")["named_endpoints"]) == ["/score"]


def test_concurrent_requests_each_get_their_own_ranking(client: Client) -> None:
    cases = [c for c in EXPECTED["rank"] if c["prompt"].strip()][:4]
    jobs = [
        client.submit(c["prompt"], gallery([image_path(n) for n in c["images"][:4]]), api_name="/score") for c in cases
    ]
    for case, job in zip(cases, jobs):
        rows = job.result(timeout=120)
        rewards = dict(zip(case["images"], case["rewards"]))
        assert len(rows) == 4
        assert all(abs(r["score"] - rewards[r["name"]]) <= 1e-4 for r in rows)
