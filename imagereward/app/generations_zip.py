"""A visitor's zip of generations for "Compare models", read within bounds and never trusted.

The zip holds the original benchmark's layout, `<model>/<id>_<k>.<ext>` (possibly under one top folder), and
may hold the prompt list `prompts.json` (`[{"id", "prompt"}]`, the original's format) beside the model folders;
without one, the original's 100 prompts. The zip is an upload (at most 20 MB, as every file); inside it:
- at most `max_images` generations and MAX_MODELS models; each generation at most MAX_MEMBER_BYTES and all of
  them at most MAX_TOTAL_BYTES uncompressed, counted on the bytes actually read (a member's declared size is
  not believed);
- names are checked before use: a model and an id are short plain names (letters, digits, `._- `), k a number,
  the extension an accepted image's; the files are written as `<model>/<id>_<k><ext>` in the request's own
  folder, so no name in the zip ever becomes a path of its own;
- anything else (other files, folders, links, encrypted members) is left out and named in the notes.
Each refusal is a sentence saying what was wrong and what to do.
"""

from __future__ import annotations

import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from ..benchmark.layout import Prompt, load_prompts
from ..errors import InputError
from ..images.formats import IMAGE_EXTENSIONS

MAX_MODELS = 12
MAX_MEMBER_BYTES = 20 * 2**20
MAX_TOTAL_BYTES = 200 * 2**20
MAX_PROMPTS_BYTES = 2 * 2**20
NAME = r"[A-Za-z0-9][A-Za-z0-9._ -]{0,63}"
GENERATION = re.compile(
    rf"(?:(?P<top>{NAME})/)?(?P<model>{NAME})/(?P<id>[A-Za-z0-9][A-Za-z0-9._-]{{0,63}})_(?P<k>[0-9]{{1,3}})(?P<ext>\.[A-Za-z0-9]{{2,5}})"
)
PROMPTS = re.compile(rf"(?:{NAME}/)?prompts\.json")


@dataclass
class Generation:
    model: str
    prompt_id: str
    k: int
    path: Path


@dataclass
class ZipGenerations:
    """What a zip held: its generations written out, the prompt list, and what was left out (named)."""

    generations: list[Generation] = field(default_factory=list)
    prompts: list[Prompt] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)

    @property
    def models(self) -> list[str]:
        return sorted({g.model for g in self.generations})


def read_zip(path: str | Path, folder: Path, max_images: int) -> ZipGenerations:
    """The zip's generations written into `folder` (see the module doc).

    Raises:
        InputError: not a zip, no generations laid out as the benchmark lays them out, or over a bound.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise InputError(f"This is not a zip file ({e}): send a .zip of <model>/<id>_<k>.png generations.") from None
    out = ZipGenerations()
    total = 0
    prompts_text: bytes | None = None
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        wanted = []
        for member in members:
            name = member.filename
            match = GENERATION.fullmatch(name)
            if member.flag_bits & 0x1:
                out.left_out.append(f"{name[:80]} (encrypted)")
            elif PROMPTS.fullmatch(name):
                prompts_text = _read(archive, member, MAX_PROMPTS_BYTES, "prompts.json")
            elif match is None or match["ext"].lower() not in IMAGE_EXTENSIONS:
                out.left_out.append(name[:80])
            else:
                wanted.append((member, match))
        tops = {m["top"] for _, m in wanted}
        if len(tops) > 1:
            raise InputError(
                "The zip holds generations under several top folders: put one folder per model at the top of the "
                "zip (or all of them inside one folder)."
            )
        if not wanted:
            raise InputError(
                "The zip holds no generations laid out as <model>/<id>_<k>.png (one folder per model, files named "
                "by the prompt's id and the generation's number): see the Compare models help."
            )
        if len(wanted) > max_images:
            raise InputError(
                f"The zip holds {len(wanted)} generations; a comparison here takes at most {max_images}. Send fewer "
                "prompts or generations, or run `imagereward benchmark` on your machine for the whole set."
            )
        models = {m["model"] for _, m in wanted}
        if len(models) > MAX_MODELS:
            raise InputError(f"The zip holds {len(models)} models; a comparison here takes at most {MAX_MODELS}.")
        placed: set[tuple[str, str, int]] = set()
        for member, match in wanted:
            key = (match["model"], match["id"], int(match["k"]))
            if key in placed:
                out.left_out.append(f"{match.group(0)[:80]} (a second file for the same generation)")
                continue
            placed.add(key)
            data = _read(archive, member, MAX_MEMBER_BYTES, match.group(0))
            total += len(data)
            if total > MAX_TOTAL_BYTES:
                raise InputError(
                    f"The generations come to more than {MAX_TOTAL_BYTES // 2**20} MB unpacked: send fewer or "
                    "smaller images."
                )
            target = folder / match["model"] / f"{match['id']}_{int(match['k'])}{match['ext'].lower()}"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            out.generations.append(Generation(match["model"], match["id"], int(match["k"]), target))
    out.prompts = _prompts(prompts_text)
    known = {p.id for p in out.prompts}
    unknown = sorted({g.prompt_id for g in out.generations} - known)
    if unknown:
        out.left_out += [f"prompt id {i} (not in the prompt list)" for i in unknown[:10]]
        out.generations = [g for g in out.generations if g.prompt_id in known]
        if not out.generations:
            raise InputError(
                f"None of the zip's prompt ids ({', '.join(unknown[:5])}) is in the prompt list: add prompts.json "
                '([{"id", "prompt"}]) to the zip.'
            )
    return out


def _read(archive: zipfile.ZipFile, member: zipfile.ZipInfo, limit: int, name: str) -> bytes:
    """A member's bytes, at most `limit` of them read whatever its header says."""
    try:
        with archive.open(member) as f:
            data = f.read(limit + 1)
    except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError) as e:
        raise InputError(f"{name[:80]} in the zip cannot be read ({e}): zip it again with plain deflate.") from None
    if len(data) > limit:
        raise InputError(f"{name[:80]} in the zip is larger than {limit // 2**20} MB unpacked: send a smaller one.")
    return data


def _prompts(text: bytes | None) -> list[Prompt]:
    if text is None:
        return load_prompts()
    try:
        items = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f'prompts.json in the zip is not JSON ({e}): it is a list of {{"id", "prompt"}}.') from None
    if not isinstance(items, list) or not all(
        isinstance(i, dict) and isinstance(i.get("id"), str) and isinstance(i.get("prompt"), str) for i in items
    ):
        raise InputError('prompts.json in the zip must be a list of {"id": "...", "prompt": "..."}.')
    return [Prompt(i["id"], i["prompt"]) for i in items]
