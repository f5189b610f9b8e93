"""`imagereward bulk` on a local Ray: the same scores as `imagereward score`, errors as rows, resuming."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from imagereward import cli
from imagereward.errors import InputError
from originals import EXPECTED, PARITY

ray = pytest.importorskip("ray")
from imagereward import bulk  # noqa: E402

NAMES = EXPECTED["images"]
PROMPT = EXPECTED["prompts"][0]


@pytest.fixture(scope="module", autouse=True)
def local_ray(tmp_path_factory: pytest.TempPathFactory):
    """One local Ray for the module (two CPUs, as a small machine has); its session folder removed after."""
    temp = Path("/tmp") / f"ray-test-{tmp_path_factory.getbasetemp().name}"  # short: Ray's sockets live there
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        _temp_dir=str(temp),
    )
    yield
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    images = tmp_path / "gens"
    images.mkdir()
    for name in NAMES[:6]:
        shutil.copy(PARITY / "images" / name, images / name)
    return images


def file_rows(paths: list[str], prompts: list[str]) -> dict:
    """A batch of rows as Ray hands them to a decoding task: image files, with their prompts."""
    import numpy as np

    return {
        "id": np.array([f"r{k}" for k in range(len(paths))]),
        "prompt": np.array(prompts),
        "image": np.array(paths),
        "kind": np.array(["file"] * len(paths)),
        "source": np.array(paths),
        "offset": np.zeros(len(paths), dtype=np.int64),
        "size": np.zeros(len(paths), dtype=np.int64),
        "data": np.array([b""] * len(paths), dtype=object),
    }


def score_cli(paths: list[str], prompt: str, capsys: pytest.CaptureFixture) -> dict[str, float]:
    assert (
        cli.main(["score", "-p", prompt, *paths, "--model", str(PARITY), "--device", "cpu", "-f", "jsonl", "-q"]) == 0
    )
    return {json.loads(line)["image"]: json.loads(line)["score"] for line in capsys.readouterr().out.splitlines()}


def test_a_parquet_manifest_gives_the_scores_of_imagereward_score(tmp_path: Path, folder: Path, capsys) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    prompts = [p for p in EXPECTED["prompts"] if p.strip()][:3]
    rows = [{"id": f"r{k}", "prompt": prompts[k % 3], "image": f"gens/{n}"} for k, n in enumerate(NAMES[:6])]
    rows.append({"id": "bad", "prompt": PROMPT, "image": "gens/corrupt.png"})
    rows.append({"id": "blank", "prompt": "  ", "image": f"gens/{NAMES[0]}"})
    manifest = tmp_path / "manifest.parquet"
    pq.write_table(pa.Table.from_pylist(rows), manifest)
    out = tmp_path / "scores.parquet"
    summary = bulk.bulk_score([manifest], out, model=str(PARITY), device="cpu", batch_size=4, progress=False)
    assert (summary.written, summary.errors, summary.skipped) == (8, 2, 0)
    got = {r["id"]: r for r in bulk.read_output(out)}
    assert set(got) == {r["id"] for r in rows}
    assert got["blank"]["score"] is None and "no prompt" in got["blank"]["error"]
    assert got["blank"]["score"] is None and "no prompt" in got["blank"]["error"]
    for row in rows[:6]:
        path = str(tmp_path / row["image"])
        want = score_cli([path], row["prompt"], capsys)[path]
        assert abs(got[row["id"]]["score"] - want) <= 1e-6
        assert got[row["id"]]["image"] == path and got[row["id"]]["error"] is None
        assert got[row["id"]]["model"] == PARITY.name and got[row["id"]]["precision"] == "float32"
    assert got["bad"]["score"] is None and "not an image" in got["bad"]["error"]


def test_a_folder_through_the_command_line_gives_the_scores_of_imagereward_score(
    tmp_path: Path, folder: Path, capsys
) -> None:
    want = score_cli([str(folder)], PROMPT, capsys)
    out = tmp_path / "out.parquet"
    args = ["bulk", str(folder), "--prompt", PROMPT, "--output", str(out), "--model", str(PARITY)]
    assert cli.main([*args, "--device", "cpu", "--batch-size", "4", "-q"]) == 0
    assert "6 rows written (0 errors)" in capsys.readouterr().err
    got = {r["image"]: r["score"] for r in bulk.read_output(out)}
    assert set(got) == set(want)
    assert max(abs(got[p] - want[p]) for p in want) <= 1e-6


def test_an_interrupted_run_resumes_with_every_row_exactly_once(tmp_path: Path, folder: Path, monkeypatch) -> None:
    monkeypatch.setattr(bulk, "PART_ROWS", 2)
    out = tmp_path / "out.parquet"
    options = {"prompt": PROMPT, "model": str(PARITY), "device": "cpu", "batch_size": 2, "progress": False}
    first = bulk.bulk_score([folder], out, stop_after=1, **options)
    assert 0 < first.written < 6
    (out / ".part-killed-00009.parquet.tmp").write_bytes(b"half a file, as a killed run leaves it")
    second = bulk.bulk_score([folder], out, **options)
    assert second.skipped == first.written and first.written + second.written == 6
    ids = [r["id"] for r in bulk.read_output(out)]
    assert sorted(ids) == sorted(NAMES[:6])  # every row exactly once
    assert not list(out.glob(".*.tmp"))
    third = bulk.bulk_score([folder], out, **options)
    assert (third.written, third.skipped) == (0, 6)


def test_a_large_manifest_run_in_chunks_into_one_output_gives_every_row_once(tmp_path: Path, folder: Path) -> None:
    """The README's way for tens of millions of rows: one command per manifest chunk, the same output."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"id": f"g{k}", "prompt": PROMPT, "image": f"gens/{n}"} for k, n in enumerate(NAMES[:6])]
    chunks = [tmp_path / "chunk-0.parquet", tmp_path / "chunk-1.parquet"]
    pq.write_table(pa.Table.from_pylist(rows[:4]), chunks[0])
    pq.write_table(pa.Table.from_pylist(rows[2:]), chunks[1])  # overlaps: g2 and g3 are in both
    out = tmp_path / "out.parquet"
    options = {"model": str(PARITY), "device": "cpu", "batch_size": 4, "progress": False}
    runs = [bulk.bulk_score([chunk], out, **options) for chunk in [*chunks, chunks[0]]]
    assert [(r.written, r.skipped) for r in runs] == [(4, 0), (2, 2), (0, 4)]
    assert sorted(r["id"] for r in bulk.read_output(out)) == [f"g{k}" for k in range(6)]


def test_several_judges_give_a_column_each_with_their_own_scores(tmp_path: Path, judges_root: Path) -> None:
    """ImageReward, Aesthetic (the same decoded pixels), PickScore and HPSv2.1 (their own preprocessing) on a
    manifest of mixed prompts: each column equals that judge scoring each row alone."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from imagereward.judges import load_score
    from originals import JUDGES

    root = judges_root
    prompts = [p for p in EXPECTED["prompts"] if p.strip()][:2]
    images = sorted((JUDGES / "images").iterdir())[:6]
    rows = [{"id": f"r{k}", "prompt": prompts[k % 2], "image": str(p)} for k, p in enumerate(images)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "manifest.parquet")
    out = tmp_path / "out.parquet"
    judges = ["Aesthetic", "PickScore", "HPSv2.1"]
    bulk.bulk_score(
        [tmp_path / "manifest.parquet"],
        out,
        model=str(PARITY),
        judges=["ImageReward-v1.0", *judges],
        device="cpu",
        batch_size=4,
        download_root=str(root),
        progress=False,
    )
    got = {r["id"]: r for r in bulk.read_output(out)}
    for name in judges:
        judge = load_score(name, device="cpu", download_root=root)
        for row in rows:
            want = judge.rewards(row["prompt"], [row["image"]])[0]
            assert abs(got[row["id"]][f"score_{name}"] - want) <= 1e-5 * max(1.0, abs(want)), (name, row)


def test_decoding_opens_each_file_once_for_every_preprocessing(monkeypatch) -> None:
    import numpy as np

    from imagereward.images import reading as images
    from imagereward.judges import specs

    opened = []
    real = images.open_image
    monkeypatch.setattr(images, "open_image", lambda *a, **k: opened.append(a[0]) or real(*a, **k))
    kinds = list(dict.fromkeys(str(s.preprocessing) for s in specs()))
    path = str(PARITY / "images" / NAMES[0])
    out = bulk.decode_batch(file_rows([path], [PROMPT]), kinds)
    assert opened == [path] and len(kinds) == 3
    assert out[bulk.pixels_column("letterbox-224")].dtype == np.float32
    assert out[bulk.pixels_column("resize-crop-224")].dtype == np.uint8


def test_the_actor_scores_a_decoded_batch_as_the_package_and_hands_its_pixels_over_uncopied(monkeypatch) -> None:
    """The model actor alone (no Ray): a batch of decoded rows, one of them an error, gives the package's
    scores; the judge's image encoder gets the batch's own pixel memory when no row is an error."""
    import numpy as np

    import imagereward

    paths = [str(PARITY / "images" / n) for n in NAMES[:4]]
    prompts = [p for p in EXPECTED["prompts"] if p.strip()][:2]
    raw = file_rows(paths, [prompts[0], prompts[1], prompts[0], prompts[1]])
    batch = bulk.decode_batch(raw)
    actor = bulk.ScoreActor(["ImageReward-v1.0"], str(PARITY), "cpu", None, None)
    model = imagereward.load(str(PARITY), device="cpu")
    want = [model.score(p, path) for p, path in zip(raw["prompt"], paths)]
    seen = []
    judge = actor.judges[0][1]
    real = judge.features_from_pixels
    monkeypatch.setattr(judge, "features_from_pixels", lambda pixels: seen.append(pixels.data_ptr()) or real(pixels))
    out = actor(batch)
    assert np.allclose(out["score"], want, rtol=0, atol=1e-6) and list(out["error"]) == [None] * 4
    assert seen == [batch[bulk.pixels_column("resize-crop-224")].ctypes.data]
    batch["error"] = np.array([None, "unreadable", None, None], dtype=object)
    out = actor(batch)
    assert np.isnan(out["score"][1]) and out["error"][1] == "unreadable"
    assert np.allclose(np.delete(out["score"], 1), np.delete(want, 1), rtol=0, atol=1e-6)


def test_part_files_share_one_schema_and_read_as_one_dataset(tmp_path: Path) -> None:
    """Parts whose rows have no error (an all-null column), or no score, still read together as one dataset."""
    import numpy as np
    import pyarrow.dataset as pads

    writer = bulk.PartWriter(tmp_path / "out", rows_per_part=3)
    for k in range(3):
        ids = [f"{k}-{j}" for j in range(2)]
        writer.add(
            {
                "id": np.array(ids),
                "prompt": np.array(["a prompt"] * 2, dtype=object),
                "score": np.array([np.nan, np.nan] if k == 2 else [0.5, -1.0]),
                "error": np.array(["unreadable", None] if k == 2 else [np.nan, np.nan], dtype=object),
            }
        )
    writer.close()
    assert len(list((tmp_path / "out").glob("part-*.parquet"))) == 2
    table = pads.dataset(tmp_path / "out").to_table()
    assert sorted(table.column("id").to_pylist()) == [f"{k}-{j}" for k in range(3) for j in range(2)]
    assert str(table.schema.field("error").type) == "string" and str(table.schema.field("score").type) == "double"
    rows = {r["id"]: r for r in table.to_pylist()}
    assert rows["2-0"]["error"] == "unreadable" and rows["2-0"]["score"] is None
    assert rows["0-1"] == {"id": "0-1", "prompt": "a prompt", "score": -1.0, "error": None}


def write_shard(shard: Path, samples: list[tuple[str, bytes]]) -> None:
    with tarfile.open(shard, "w") as tar:
        for name, data in samples:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_manifest_formats_and_webdataset_shards_are_read(tmp_path: Path) -> None:
    """Rows say where each image lies; a shard's images are located, not read."""
    image = (PARITY / "images" / NAMES[0]).read_bytes()
    (tmp_path / "m.csv").write_text(f"prompt,image\na dog,images/{NAMES[0]}\n", encoding="utf-8")
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": 7, "prompt": "a cat", "image": "x.png"}) + "\n")
    shard = tmp_path / "shard-000.tar"
    write_shard(
        shard, [("s1.png", image), ("s1.txt", b"a fox"), ("s2.jpg", image), ("s2.json", b'{"prompt": "a owl"}')]
    )
    rows = bulk.read_rows([tmp_path / "m.csv", tmp_path / "m.jsonl", shard])
    assert [(r["id"], r["prompt"]) for r in rows] == [("0", "a dog"), ("7", "a cat"), ("s1", "a fox"), ("s2", "a owl")]
    assert rows[0]["image"] == rows[0]["source"] == str(tmp_path / "images" / NAMES[0]) and rows[0]["kind"] == "file"
    assert rows[2]["image"] == "shard-000.tar/s1.png" and (rows[2]["kind"], rows[2]["source"]) == ("tar", str(shard))
    for row in rows[2:]:
        assert shard.read_bytes()[row["offset"] : row["offset"] + row["size"]] == image
    assert all(row["data"] == b"" for row in rows)  # no image bytes


def test_shards_and_manifests_holding_the_images_give_the_scores_of_imagereward_score(
    tmp_path: Path, folder: Path, capsys
) -> None:
    """A WebDataset shard and Parquet manifests with the image bytes inline (a binary column in one row group,
    and the struct Hugging Face `datasets` writes, in row groups of 2) are scored as the files are; the driver's rows hold
    no image bytes; a corrupt image and a row without one become error rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = NAMES[:5]
    want = score_cli([str(folder / n) for n in names], PROMPT, capsys)
    data = {n: (folder / n).read_bytes() for n in names}
    samples = [(f"k{k}{Path(n).suffix}", data[n]) for k, n in enumerate(names)] + [("bad.png", b"\x89PNG not really")]
    prompts = [(f"{Path(name).stem}.txt", PROMPT.encode()) for name, _ in samples]
    write_shard(tmp_path / "shard.tar", [part for pair in zip(samples, prompts) for part in pair])
    binary = pa.table({"prompt": [PROMPT] * 6, "image": [d for _, d in samples]})
    pq.write_table(binary, tmp_path / "binary.parquet")  # one row group
    struct = [{"bytes": d, "path": None} for _, d in samples[:-1]] + [{"bytes": None, "path": None}]
    pq.write_table(pa.table({"prompt": [PROMPT] * 6, "image": struct}), tmp_path / "hf.parquet", row_group_size=2)
    for source, ids in [
        ("shard.tar", [f"k{k}" for k in range(5)] + ["bad"]),
        ("binary.parquet", [str(k) for k in range(6)]),
        ("hf.parquet", [str(k) for k in range(6)]),
    ]:
        rows = bulk.read_rows([tmp_path / source])
        assert [r["id"] for r in rows] == ids
        assert all(row["data"] == b"" for row in rows)  # no image bytes
        out = tmp_path / f"{source}.out"
        summary = bulk.bulk_score(
            [tmp_path / source], out, model=str(PARITY), device="cpu", batch_size=4, progress=False
        )
        assert (summary.written, summary.errors) == (6, 1), source
        got = {r["id"]: r for r in bulk.read_output(out)}
        for k, name in enumerate(names):
            assert abs(got[ids[k]]["score"] - want[str(folder / name)]) <= 1e-6, (source, name)
            assert got[ids[k]]["error"] is None
        bad = got[ids[5]]
        assert bad["score"] is None and bad["error"], source
    assert "no image in this row" in got["5"]["error"] and got["5"]["image"] == "hf.parquet#5"


def test_a_row_group_is_read_once_a_few_rows_at_a_time_and_an_unreadable_manifest_gives_error_rows(
    tmp_path: Path, monkeypatch
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from imagereward.bulk import inputs as bulk_inputs

    monkeypatch.setattr(bulk_inputs, "READ_ROWS", 2)
    manifest = tmp_path / "m.parquet"
    pq.write_table(pa.table({"prompt": [PROMPT] * 7, "image": [bytes([k, 0, 0]) for k in range(7)]}), manifest)
    rows = [r for r in bulk.read_rows([manifest]) if r["id"] != "3"]  # row 3 already written
    items = bulk_inputs.parquet_row_groups(rows)
    assert [(i["group"], i["first"], len(i["rows"])) for i in items] == [(0, 0, 6)]
    reads = []
    real = pq.ParquetFile.iter_batches
    monkeypatch.setattr(pq.ParquetFile, "iter_batches", lambda *a, **k: reads.append(k) or real(*a, **k))
    tables = list(bulk_inputs.read_row_groups(pa.Table.from_pylist(items)))
    assert len(reads) == 1 and all(t.num_rows <= 3 for t in tables)  # streamed: a read's rows, plus one kept
    got = [r for t in tables for r in t.to_pylist()]
    assert [(r["id"], r["kind"], r["data"]) for r in got] == [
        (str(k), "bytes", bytes([k, 0, 0])) for k in (0, 1, 2, 4, 5, 6)
    ]
    pq.write_table(pa.table({"prompt": [PROMPT] * 5, "image": [b"x"] * 5}), manifest)  # shorter now
    got = [r for t in bulk_inputs.read_row_groups(pa.Table.from_pylist(items)) for r in t.to_pylist()]
    assert [r["kind"] for r in got] == ["bytes"] * 4 + ["unreadable"] * 2 and "no row 5 any more" in got[4]["source"]
    manifest.write_bytes(b"not parquet any more")
    got = [r for t in bulk_inputs.read_row_groups(pa.Table.from_pylist(items)) for r in t.to_pylist()]
    assert len(got) == 6 and {r["kind"] for r in got} == {"unreadable"} and "cannot read" in got[0]["source"]


def test_a_compressed_shard_is_refused_with_what_to_do(tmp_path: Path) -> None:
    with tarfile.open(tmp_path / "shard.tar", "w:gz") as tar:
        info = tarfile.TarInfo("k.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(InputError, match="not an uncompressed tar .* decompress them first"):
        bulk.read_rows([tmp_path / "shard.tar"])


def test_bad_inputs_are_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="give --prompt"):
        bulk.read_rows([tmp_path])
    (tmp_path / "m.csv").write_text("caption,file\nx,y\n")
    with pytest.raises(InputError, match=r"needs the columns prompt and image .* has \['caption', 'file'\]"):
        bulk.read_rows([tmp_path / "m.csv"])
    with pytest.raises(InputError, match="no such file or folder"):
        bulk.read_rows([tmp_path / "missing.parquet"])


def test_every_surface_writes_the_same_columns(tmp_path: Path, folder: Path, judges_root: Path, capsys) -> None:
    """One run of the same images and judges (ImageReward ranking, CLIP and PickScore beside) through
    `imagereward score --format csv`, the page's CSV download, the API's rows and bulk's Parquet: the same
    column names for the same things (`rows.columns`), bulk's with `id` and `error` and without the ranks."""
    import csv

    import pyarrow.parquet as pq

    from imagereward.app.page import Page
    from imagereward.app.settings import Settings, load_for_serving
    from imagereward.rows import columns

    judges = ["CLIP", "PickScore"]
    want = columns(judges)
    assert want == [
        "prompt", "rank", "image", "score", "precision", "model",
        "score_CLIP", "rank_CLIP", "score_PickScore", "rank_PickScore", "choice_PickScore",
    ]  # fmt: skip
    images = sorted(str(p) for p in folder.iterdir())[:3]
    options = ["--model", str(PARITY), "--device", "cpu", "--download-root", str(judges_root), "-q"]
    judge_options = [a for j in ["ImageReward-v1.0", *judges] for a in ("--judge", j)]
    assert cli.main(["score", "-p", PROMPT, *images, *options, *judge_options, "-f", "csv"]) == 0
    command_line = next(csv.reader(io.StringIO(capsys.readouterr().out)))

    settings = Settings(model=str(PARITY), device="cpu", download_root=str(judges_root), judges=tuple(judges))
    page = Page(settings, roots=[str(folder)], upload_folder=tmp_path / "uploads", loaded=load_for_serving(settings))
    gallery = [(p, None) for p in images]
    rankings, _ = page.rank(PROMPT, gallery, judges)
    csv_path, _, _ = page.write_downloads(rankings)
    page_csv = next(csv.reader(csv_path.open(encoding="utf-8")))
    api_row = page.api(PROMPT, gallery, judges)["ranked"][0]
    page.close()

    out = tmp_path / "bulk.parquet"
    bulk.bulk_score([folder], out, prompt=PROMPT, model=str(PARITY), judges=["ImageReward-v1.0", *judges],
                    device="cpu", download_root=str(judges_root), progress=False)  # fmt: skip
    parquet = pq.read_table(next(out.glob("part-*.parquet"))).column_names

    assert command_line == page_csv == want
    assert [k for k in api_row if k in want] == want and set(api_row) - set(want) == {
        "name",
        "scores",
        "ranks",
        "choices",
    }
    assert parquet == ["id", *(c for c in want if not c.startswith(("rank", "choice"))), "error"]


def test_a_benchmark_from_bulk_s_scores_is_the_benchmark_of_the_images(tmp_path: Path, judges_root: Path) -> None:
    """The generations written as bulk's input (`benchmark --write-manifest`), scored by bulk with ImageReward
    and BLIP, and summarised (`--from-scores`): the same figures, result files and summary as `benchmark` on
    the images, with a missing and an unreadable generation named alike."""
    import json

    from imagereward import cli
    from originals import FIXTURES

    bench = FIXTURES / "benchmark-three"
    gens = tmp_path / "gens"
    shutil.copytree(bench / "generations", gens)
    prompts = json.loads((bench / "prompts.json").read_text())
    (gens / "beta" / f"{prompts[1]['id']}_1.png").unlink()
    (gens / "beta" / f"{prompts[1]['id']}_9.png").write_bytes(b"keeps the folder's count")
    (gens / "gamma" / f"{prompts[2]['id']}_0.png").write_bytes(b"not an image")
    common = ["benchmark", "--prompts", str(bench / "prompts.json"), "--judge", "BLIP", "--bootstrap", "200", "-q"]
    model = ["--model", str(PARITY), "--device", "cpu", "--download-root", str(judges_root)]
    assert cli.main([*common, *model, "--images-dir", str(gens), "--output-dir", str(tmp_path / "direct")]) == 0
    manifest = tmp_path / "manifest.parquet"
    assert cli.main([*common, "--images-dir", str(gens), "--write-manifest", str(manifest)]) == 0
    scores = tmp_path / "scores"
    bulk.bulk_score(
        [manifest],
        scores,
        model=str(PARITY),
        judges=["ImageReward-v1.0", "BLIP"],
        device="cpu",
        batch_size=4,
        download_root=str(judges_root),
        progress=False,
    )
    out = tmp_path / "from-scores"
    assert cli.main([*common, "--from-scores", str(scores), "--images-dir", str(gens), "--output-dir", str(out)]) == 0

    direct = json.loads((tmp_path / "direct" / "summary.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["models"] == direct["models"] and summary["prompts"] == direct["prompts"]
    for judge in ("ImageReward-v1.0", "BLIP"):
        ours, theirs = summary["judges"][judge], direct["judges"][judge]
        assert ours["ranking"] == theirs["ranking"]
        for m, row in theirs["models"].items():
            got = ours["models"][m]
            assert got["score"] == pytest.approx(row["score"], abs=1e-5)
            assert got["prompts_covered"] == row["prompts_covered"]
            assert got["missing"] == row["missing"]
            assert list(got["unreadable"]) == list(row["unreadable"])
        assert [(w["wins"], w["losses"], w["ties"]) for w in ours["win_rates"]] == [
            (w["wins"], w["losses"], w["ties"]) for w in theirs["win_rates"]
        ]
        files = sorted(p.name for p in (tmp_path / "direct" / judge).iterdir())
        assert files == sorted(p.name for p in (out / judge).iterdir())
        for name in files:
            a = json.loads((out / judge / name).read_text())
            b = json.loads((tmp_path / "direct" / judge / name).read_text())
            assert [(r["id"], r["prompt"]) for r in a] == [(r["id"], r["prompt"]) for r in b]
            assert [r["rewards"] for r in a] == [pytest.approx(r["rewards"], abs=1e-5) for r in b]
    assert summary["judges"]["ImageReward-v1.0"]["models"]["beta"]["missing"] == {
        prompts[1]["id"]: [f"{prompts[1]['id']}_1.png"]
    }
    unreadable = summary["judges"]["BLIP"]["models"]["gamma"]["unreadable"]
    assert list(unreadable) == [prompts[2]["id"]] and unreadable[prompts[2]["id"]][0].startswith(
        f"{prompts[2]['id']}_0.png: "
    )
    assert (out / "report.html").read_text().count("data:image/jpeg") > 0
