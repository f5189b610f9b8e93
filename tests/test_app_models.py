"""The page's "Compare models": a zip of generations gives the original benchmark's figures (the fixture the
original's `test-benchmark.py` made), and its report and files; the zip is read within bounds and never
trusted (names, sizes, counts); on the real server `/compare_models` answers API clients as the page shows it,
and never takes another visitor's file."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from gradio_client import Client, handle_file

from appserver import page_call, running_app
from imagereward.app.generations_zip import MAX_MEMBER_BYTES, read_zip
from imagereward.app.page import Page
from imagereward.app.settings import Settings, load_for_serving
from imagereward.errors import InputError
from originals import FIXTURES, PARITY

BENCH = FIXTURES / "benchmark-three"
MODELS = ("alpha", "beta", "gamma")


def benchmark_zip(path: Path, top: str = "", prompts: bool = True, extra: dict[str, bytes] | None = None) -> Path:
    """The fixture's generations (and prompt list) as a visitor would zip them."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for file in sorted((BENCH / "generations").rglob("*.png")):
            z.write(file, f"{top}{file.parent.name}/{file.name}")
        if prompts:
            z.write(BENCH / "prompts.json", f"{top}prompts.json")
        for name, data in (extra or {}).items():
            z.writestr(name, data)
    return path


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory, judges_root: Path):
    uploads = tmp_path_factory.mktemp("uploads")
    settings = Settings(model=str(PARITY), device="cpu", judges=("BLIP",), download_root=str(judges_root))
    page = Page(settings, roots=[str(uploads)], upload_folder=uploads, loaded=load_for_serving(settings))
    yield page
    page.close()


def uploads(page: Page) -> Path:
    return Path(page.roots.folders[0])


def test_a_zip_gives_the_original_benchmark_s_figures_report_and_files(page: Page) -> None:
    path = benchmark_zip(uploads(page) / "gens.zip", top="my-benchmark/", extra={"notes.txt": b"hello"})
    status, html, files = page.compare_models(str(path), ["BLIP"])
    assert status.startswith("**3 models, 4 prompts, 24 generations**") and "notes.txt" in status
    names = [Path(f).name for f in files]
    assert names == ["report.html", "summary.json", "summary.md", "original-result-files.zip"]
    summary = json.loads(Path(files[1]).read_text())
    for judge in ("ImageReward-v1.0", "BLIP"):
        theirs = json.loads((BENCH / "results" / f"{judge}-benchmark-results.json").read_text())
        ours = {m: row["score"] for m, row in summary["judges"][judge]["models"].items()}
        assert ours == pytest.approx(theirs, abs=1e-5)
        assert summary["judges"][judge]["ranking"] == sorted(theirs, key=lambda m: -theirs[m])
    with zipfile.ZipFile(files[3]) as z:
        listed = sorted(z.namelist())
        assert "ImageReward-v1.0-benchmark-results.json" in listed
        rows = json.loads(z.read("BLIP/BLIP-benchmark-alpha-result.json"))
        original = json.loads((BENCH / "results" / "BLIP" / "BLIP-benchmark-alpha-result.json").read_text())
        assert [list(r) for r in rows] == [list(r) for r in original]
        assert [r["rewards"] for r in rows] == [pytest.approx(r["rewards"], abs=1e-5) for r in original]
    assert "<h2>BLIP</h2>" in html and html.count("data:image/jpeg") > 0 and html.startswith("<style>")
    assert not (Path(files[0]).parent / "generations").exists()  # the generations are removed once reported


def test_a_problem_is_one_sentence_and_nothing_is_written_outside(page: Page, tmp_path: Path) -> None:
    def refusal(members: dict[str, bytes], judges=()) -> str:
        path = uploads(page) / f"case-{len(members)}-{abs(hash(tuple(members)))}.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            for name, data in members.items():
                z.writestr(name, data)
        status, html, files = page.compare_models(str(path), list(judges))
        assert html == "" and files is None, status
        return status

    png = (BENCH / "generations" / "alpha").glob("*.png").__next__().read_bytes()
    assert "no generations laid out" in refusal({"../../evil/x_0.png": png, "/abs/m/x_0.png": png, "a.txt": b""})
    assert not (tmp_path.parent / "evil").exists()
    assert "larger than 20 MB unpacked" in refusal({"m/005695-0057_0.png": b"\0" * (MAX_MEMBER_BYTES + 1)})
    assert "several top folders" in refusal({"a/m/005695-0057_0.png": png, "b/m/005695-0057_0.png": png})
    assert "is in the prompt list: add prompts.json" in refusal({"m/unknown-id_0.png": png})
    assert "Unknown judge" in refusal({"m/005695-0057_0.png": png}, judges=["PickScore"])
    status, _, _ = page.compare_models(str(tmp_path / "elsewhere.zip"), [])
    assert "could not be taken" in status
    not_zip = uploads(page) / "not.zip"
    not_zip.write_bytes(b"PK but not really")
    assert "not a zip file" in page.compare_models(str(not_zip), [])[0]


def test_the_zip_s_bounds_are_counted_on_what_is_read(tmp_path: Path) -> None:
    png = (BENCH / "generations" / "alpha").glob("*.png").__next__().read_bytes()
    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w") as z:
        for k in range(6):
            z.writestr(f"m/005695-0057_{k}.png", png)
    with pytest.raises(InputError, match="holds 6 generations; a comparison here takes at most 5"):
        read_zip(many, tmp_path / "out", max_images=5)
    # A header that lies about the size: the bytes read are counted, not the header's number.
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("m/005695-0057_0.png", b"\0" * (MAX_MEMBER_BYTES + 10))
    raw = bytearray(bomb.getvalue())
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # the uncompressed size, local and central
        at = raw.find(signature)
        raw[at + offset : at + offset + 4] = (100).to_bytes(4, "little")
    lying = tmp_path / "lying.zip"
    lying.write_bytes(bytes(raw))
    with pytest.raises(InputError, match="cannot be read|larger than"):
        read_zip(lying, tmp_path / "out2", max_images=5)
    assert sum(f.stat().st_size for f in (tmp_path / "out2").rglob("*") if f.is_file()) <= MAX_MEMBER_BYTES
    duplicate = tmp_path / "duplicate.zip"
    with zipfile.ZipFile(duplicate, "w") as z, pytest.warns(UserWarning, match="Duplicate name"):
        z.writestr("m/005695-0057_0.png", png)
        z.writestr("m/005695-0057_0.png", png)
    found = read_zip(duplicate, tmp_path / "out3", max_images=5)
    assert len(found.generations) == 1 and "a second file" in found.left_out[0]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, judges_root: Path):
    tmp = tmp_path_factory.mktemp("models")
    env = {
        "IMAGEREWARD_MODEL": str(PARITY),
        "IMAGEREWARD_JUDGES": "BLIP",
        "IMAGEREWARD_DOWNLOAD_ROOT": str(judges_root),
        "IMAGEREWARD_PROXY_HOPS": "1",  # each test's visitor is its X-Forwarded-For
    }
    with running_app(tmp, **env) as url:
        yield url, tmp


def test_compare_models_answers_an_api_client_as_the_page_shows_it(server, tmp_path: Path) -> None:
    url, _ = server
    path = benchmark_zip(tmp_path / "gens.zip")
    client = Client(url, verbose=False, headers={"X-Forwarded-For": "198.51.100.1"})
    status, html, files = client.predict(handle_file(str(path)), ["BLIP"], api_name="/compare_models")
    assert status.startswith("**3 models, 4 prompts, 24 generations**")
    assert "<h2>ImageReward-v1.0</h2>" in html and "<h2>BLIP</h2>" in html
    summary = json.loads(Path(files[1]).read_text())
    theirs = json.loads((BENCH / "results" / "ImageReward-v1.0-benchmark-results.json").read_text())
    got = {m: r["score"] for m, r in summary["judges"]["ImageReward-v1.0"]["models"].items()}
    assert got == pytest.approx(theirs, abs=1e-5)


def test_another_visitor_s_zip_is_never_taken(server, tmp_path: Path) -> None:
    url, _ = server
    path = benchmark_zip(tmp_path / "theirs.zip")
    with open(path, "rb") as f:
        response = httpx.post(
            f"{url}gradio_api/upload", files={"files": ("theirs.zip", f)}, headers={"X-Forwarded-For": "203.0.113.7"}
        )
    their_path = response.json()[0]
    client = Client(url, verbose=False, headers={"X-Forwarded-For": "198.51.100.2"})
    mine = benchmark_zip(tmp_path / "mine.zip")
    assert client.predict(handle_file(str(mine)), [], api_name="/compare_models")[0].startswith("**3 models")
    # As a hostile client sends it (gradio_client would upload a local file of that name as the caller's own).
    named = {"path": their_path, "meta": {"_type": "gradio.FileData"}}
    event, out = page_call(url, "compare_models", [named, []], {"X-Forwarded-For": "198.51.100.2"})
    assert event == "complete", out
    status, html, files = (o.get("value") if isinstance(o, dict) else o for o in out)
    assert "could not be taken" in status and not html and not files, status
    event, out = page_call(url, "compare_models", [their_path, []], {"X-Forwarded-For": "198.51.100.2"})
    assert event == "422" and "expected a file uploaded to this page" in out[0]["message"]


def test_on_zero_gpu_the_comparison_crosses_the_device_once(page: Page, zero_gpu) -> None:
    """Every generation's pairs cross to the device in one `spaces.GPU` call (the stub pickles them)."""
    zero = Page(replace(page.settings, zero_gpu=True), page.roots.folders, page.downloads.upload_folder, page.loaded)
    try:
        status, _, files = zero.compare_models(str(benchmark_zip(uploads(page) / "zero.zip")), [])
    finally:
        zero.close()
    assert status.startswith("**3 models") and files
    (call,) = zero_gpu()
    assert call["function"] == "_pairs_device"
