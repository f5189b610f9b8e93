"""Who may queue what, and upload how much: the gates a public page needs in front of Gradio's queue and its
upload route.

Every call of the page and its API joins Gradio's queue through `QueueGate.push`, which, before the call is
queued:

- gives each visitor a fair share: at most `max_pending` calls queued or running per visitor (who a visitor is:
  `host.Visitors`), and at most `FunctionLimit.most` of the calls of a costly
  kind (an explanation: one); past that the call is refused at once (HTTP 429) with a sentence saying to
  wait, and every other visitor's calls are queued as usual, so that one client flooding the queue cannot lock
  everyone else out;
- fills a public API call's missing trailing inputs, and nulls, with those inputs' defaults (a client written
  for `/score` with two values, prompt and images, keeps working);
- refuses a value that is not one of a choice input's choices (the judges, the order) with the offered
  choices and at most `SHOWN_CHARS` characters of the value, before Gradio's own check would echo it whole;
  and a file input's value that is not a file as Gradio takes one (Gradio's check would answer "error" and
  nothing else).

- replaces every file a call names that is not this visitor's (their uploads and what the page sent them:
  `files.Ledger`; a URL included) by a path inside `intake.REFUSED_FOLDER`, before Gradio's preprocessing
  would fetch a URL or take another visitor's upload: the request then skips that image with the sentence
  every refused path gets, and scores the rest;
- holds at most `max_queued_bytes` of waiting calls' bodies in all (a queue of 64 calls of 64 MB would be
  4 GB).

The heavy work of all visitors together (scoring, pairs, explanations) shares one concurrency limit
(`share_limit`, sized by `heavy_calls` from the memory a call takes and the machine's).

Gradio has no hook for these: `QueueGate` wraps the queue's `push` of the pinned Gradio (6.31), reading its
queued events and running jobs; `tests/test_app_admission.py` fails if that shape changes.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from ..images.reading import IMAGE_EXTENSIONS
from .host import Visitors, quoted
from .intake import REFUSED_FOLDER
from .remote import file_name, is_remote

log = logging.getLogger(__name__)

# What marks a value as a file in a Gradio call.
FILE_META = {"_type": "gradio.FileData"}
DEFAULT_MAX_PENDING = 4


@dataclass(frozen=True)
class FunctionLimit:
    """At most `most` calls of `functions` (the page's handlers), together, queued or running per visitor;
    `kind` names them in the refusal ("explanation"). With `own_share`, that is their share instead of the
    visitor's `max_pending`, and they do not count against it (a pipeline's parallel calls, batched together)."""

    kind: str
    most: int
    functions: tuple[Callable, ...]
    own_share: bool = False


class QueueGate:
    """The gate in front of a Gradio queue (see the module doc).

    Args:
        blocks: the app, after `blocks.queue(...)`.
        max_pending: calls one visitor may have queued or running.
        visitors: who sent a request (`host.Visitors`).
        choice_inputs: components whose value must be among their choices (their choices fixed at build time).
        limits: tighter shares for costly kinds of call.
        ledger: the files each visitor may name (`files.Ledger`; None: files are not checked).
        upload_folder: Gradio's upload folder (where `REFUSED_FOLDER` lies).
        image_inputs: components whose strings name images (as paths, URLs or data), beside file dicts.
        max_queued_bytes: the most the waiting calls' bodies may hold in all.
    """

    def __init__(
        self,
        blocks: Any,
        max_pending: int = DEFAULT_MAX_PENDING,
        visitors: Visitors | None = None,
        choice_inputs: Sequence[Any] = (),
        limits: Sequence[FunctionLimit] = (),
        ledger: Any | None = None,
        upload_folder: str | Path = "",
        image_inputs: Sequence[Any] = (),
        max_queued_bytes: int | None = None,
    ) -> None:
        self.blocks = blocks
        self.max_pending = max_pending
        self.visitors = visitors or Visitors()
        self.choices = {block._id: block for block in choice_inputs}
        self.limits = list(limits)
        self.ledger = ledger
        self.refused_folder = os.path.join(str(upload_folder), REFUSED_FOLDER)
        self.image_inputs = {block._id for block in image_inputs}
        self.max_queued_bytes = max_queued_bytes
        self.queue = blocks._queue
        self._joining: dict[Any, int] = defaultdict(int)  # by visitor, and by (visitor, limited kind)
        self._push = self.queue.push

    def install(self) -> QueueGate:
        """Puts the gate in front of the queue's `push`."""
        self.queue.push = self.push
        return self

    def _events(self, running: bool = True) -> list[Any]:
        events = [e for q in self.queue.event_queue_per_concurrency_id.values() for e in q.queue]
        if running:
            events += [e for job in self.queue.active_jobs if job for e in job]
        return events

    def pending(self, who: str, limit: FunctionLimit | None = None) -> int:
        """Calls of `who` queued or running now (and being admitted); with `limit`, only those of its
        functions."""
        events = self._events()
        if limit is not None:
            events = [e for e in events if getattr(e.fn, "fn", None) in limit.functions]
            joining = self._joining[(who, limit.kind)]
        else:
            own = {f for lim in self.limits if lim.own_share for f in lim.functions}
            events = [e for e in events if getattr(e.fn, "fn", None) not in own]
            joining = self._joining[who]
        return joining + sum(1 for e in events if self.visitors.of_request(e.request) == who)

    def queued_bytes(self) -> int:
        """What the bodies of the calls waiting in the queue held, as they declared it."""
        return sum(_declared_size(e.request) for e in self._events(running=False))

    async def push(self, body: Any, request: Any, username: str | None) -> tuple:
        """Gradio's `Queue.push`, behind the fair share and the input checks."""
        from fastapi import HTTPException
        from gradio import route_utils

        who = self.visitors.of_request(request)
        try:
            fn = route_utils.get_fn(self.blocks, None, body) if body.fn_index is not None else None
        except (KeyError, IndexError):
            fn = None
        if fn is None:
            raise HTTPException(status_code=404, detail="No such function on this page: reload the page.")
        refused = self._check_inputs(fn, body)
        if refused is not None:
            # Gradio's own validation answer: both its clients show the message (gradio_client raises
            # `ValidationError` with it; the page marks the input).
            parameter, message = refused
            detail = [{"__type__": "validate", "is_valid": False, "message": message, "parameter_name": parameter}]
            raise HTTPException(status_code=422, detail=detail)
        if self.ledger is not None and isinstance(body.data, list):
            body.data = [
                self._own_files(who, value, block._id in self.image_inputs)
                for block, value in zip(fn.inputs, body.data)
            ]
        limit = next((lim for lim in self.limits if getattr(fn, "fn", None) in lim.functions), None)
        # No await between counting and joining: concurrent joins of one visitor cannot both slip through.
        if (limit is None or not limit.own_share) and self.pending(who) >= self.max_pending:
            raise HTTPException(
                status_code=429,
                detail=f"You have {self.max_pending} requests waiting or running already: wait for them to finish, "
                f"then try again (each visitor may have {self.max_pending} at a time, so that everyone gets a turn).",
            )
        if limit is not None and self.pending(who, limit) >= limit.most:
            many = f"{limit.most} {limit.kind}{'s' if limit.most > 1 else ''}"
            raise HTTPException(
                status_code=429,
                detail=f"You have {many} waiting or running already: wait for {'them' if limit.most > 1 else 'it'} "
                f"to finish, then try again (each visitor may have {many} at a time).",
            )
        if self.max_queued_bytes is not None:
            waiting = self.queued_bytes() + _declared_size(request)
            if waiting > self.max_queued_bytes:
                raise HTTPException(
                    status_code=429,
                    detail=f"The server holds as much waiting request data as it may ({self.max_queued_bytes // 2**20:,} MB): "
                    "try again in a minute, or send images as URLs or uploads rather than base64 data.",
                )
        keys = [] if limit is not None and limit.own_share else [who]
        keys += [(who, limit.kind)] if limit is not None else []
        for key in keys:
            self._joining[key] += 1
        try:
            return await self._push(body, request, username)
        finally:
            for key in keys:
                self._joining[key] -= 1
                if not self._joining[key]:
                    del self._joining[key]

    def _own_files(self, who: str, value: Any, strings: bool) -> Any:
        """`value` with every file it names that `who` may not name (a file dict's path, and with `strings`
        every string that is not a URL or data) replaced by a path in the refused folder: Gradio neither
        fetches nor opens it, and the request refuses it by name. A file dict without Gradio's meta that names
        a URL or data is left to the app's own fetcher (`remote`)."""
        assert self.ledger is not None
        if isinstance(value, dict):
            path = value.get("path")
            if isinstance(path, str):
                meta = isinstance(value.get("meta"), dict)
                if self.ledger.owns(who, path) or (not meta and is_remote(path)):
                    return value
                return {**value, "path": self.refused(path, image_suffix=True), "url": None}
            return {k: self._own_files(who, v, strings) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._own_files(who, v, strings) for v in value]
        if strings and isinstance(value, str) and value and not is_remote(value) and not self.ledger.owns(who, value):
            return self.refused(value)
        return value

    def refused(self, path: str, image_suffix: bool = False) -> str:
        """Where a refused file is said to be: a path in the refused folder, named as the file was (with
        `image_suffix`, ending as an image's name: Gradio's file-type check of a file input would otherwise
        refuse the whole call before the app could skip that one file)."""
        tail = file_name(path.split("?", 1)[0].replace("\\", "/").rstrip("/").rsplit("/", 1)[-1], 0)
        if image_suffix and os.path.splitext(tail)[1].lower() not in IMAGE_EXTENSIONS:
            tail += ".png"
        return os.path.join(self.refused_folder, tail)

    def _check_inputs(self, fn: Any, body: Any) -> tuple[str, str] | None:
        """Fills a public API call's missing or null inputs with their defaults; (parameter, sentence) refusing
        a choice input's value, or None."""
        data = body.data if isinstance(body.data, list) else None
        if data is None:
            return None
        if getattr(fn, "api_visibility", None) == "public" and fn.api_name:
            for block in fn.inputs[len(data) :]:
                data.append(_default(block))
            for k, block in enumerate(fn.inputs):
                if data[k] is None and block._id in self.choices:
                    data[k] = _default(block)
        for k, (block, value) in enumerate(zip(fn.inputs, data)):
            problem = _choice_problem(self.choices[block._id], value) if block._id in self.choices else None
            problem = problem or _file_problem(block, value)
            if problem:
                return _parameter_name(fn, k), problem
        return None


def _declared_size(request: Any) -> int:
    raw = (getattr(request, "headers", None) or {}).get("content-length", "")
    return int(raw) if isinstance(raw, str) and raw.isdigit() else 0


def share_limit(blocks: Any, functions: Sequence[Callable], most: int, name: str = "heavy") -> None:
    """Puts the events of `functions` (the page's handlers, wherever they are wired, examples included) under
    one concurrency limit of `most` calls at once, all visitors together."""
    for fn in blocks.fns.values():
        if getattr(fn, "fn", None) in functions:
            fn.concurrency_id = name
            fn.concurrency_limit = most


def queue_everything(blocks: Any) -> None:
    """Sends every event through the queue (and so through `QueueGate`): Gradio runs an unqueued event (the
    examples' loader) on its direct route, past every check."""
    for fn in blocks.fns.values():
        fn.queue = True


def heavy_calls(available: int, per_call: int, most: int) -> int:
    """How many heavy calls may run at once: as many as `available` bytes hold at `per_call` bytes each
    (at least one), at most `most`."""
    return max(1, min(most, available // max(1, per_call)))


def available_memory() -> int:
    """Bytes this process may still use: the smaller of the system's available memory and what its cgroup
    (a container's limit) has left."""
    available = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        current = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        if limit.isdigit():
            left = int(limit) - current
            available = left if available is None else min(available, left)
    except (OSError, ValueError):
        pass
    return available if available is not None else 8 * 2**30


def _parameter_name(fn: Any, index: int) -> str:
    """The name of `fn`'s `index`-th input, as Gradio names it in validation answers."""
    import inspect

    names = list(getattr(fn, "input_parameter_names", None) or [])
    if not names and getattr(fn, "fn", None) is not None:
        names = list(inspect.signature(fn.fn).parameters)
    return names[index] if index < len(names) else f"parameter_{index}"


def _default(block: Any) -> Any:
    value = getattr(block, "value", None)
    return list(value) if isinstance(value, (list, tuple)) else value


def _choice_problem(block: Any, value: Any) -> str | None:
    """Why `value` is not a valid value of the choice component `block` (None if it is)."""
    import gradio as gr

    choices = [c[1] if isinstance(c, (list, tuple)) else c for c in (block.choices or [])]
    label = getattr(block, "label", None) or "a choice"
    many = isinstance(block, gr.CheckboxGroup) or (isinstance(block, gr.Dropdown) and bool(block.multiselect))
    if many and not isinstance(value, list):
        return f"{label}: expected a list of choices, got {quoted(value)}; the choices: {choices}"
    for v in value if many else [value]:
        if v not in choices:
            return f"{label}: {quoted(v)} is not in the list of choices: {choices}"
    return None


def _file_problem(block: Any, value: Any) -> str | None:
    """Why `value` is not a file as Gradio takes one for the file input `block` (None if it is, or `block`
    is no file input): Gradio's own check answers a client with nothing but "error"."""
    import gradio as gr

    if value is None:
        return None
    if isinstance(block, gr.Gallery):
        items = value if isinstance(value, list) else None
        if items is not None and all(
            _names_a_path(i.get("image") if isinstance(i, dict) and "image" in i else i) for i in items
        ):
            return None
        return (
            f"{getattr(block, 'label', None) or 'images'}: expected a list of images, each {{'image': file, "
            f"'caption': None}} with the file as gradio_client's handle_file(path) sends it ({{'path': ..., 'meta': "
            f"{FILE_META}}}); got {_kind(value) if items is None else 'a list with something else in it'}"
        )
    if not isinstance(block, gr.File) or _is_file(value):
        return None
    return (
        f"{getattr(block, 'label', None) or 'file'}: expected a file uploaded to this page, as gradio_client's "
        f"handle_file(path) sends it ({{'path': ..., 'meta': {FILE_META}}}); got {_kind(value)}"
    )


def _names_a_path(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("path"), str)


def _is_file(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("path"), str) and value.get("meta") == FILE_META


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a dict without that 'meta'" if isinstance(value.get("path"), str) else "a dict without a 'path'"
    return f"a {type(value).__name__}"


def file_paths(value: Any) -> list[str]:
    """The path of every file dict (`{"path": ...}`) in `value`, however deep."""
    if isinstance(value, dict):
        path = value.get("path")
        if isinstance(path, str):
            return [path]
        return [p for v in value.values() for p in file_paths(v)]
    if isinstance(value, (list, tuple)):
        return [p for v in value for p in file_paths(v)]
    return []


def record_sent_files(blocks: Any, ledger: Any, visitors: Visitors) -> None:
    """Records the files in every call's outputs as the calling visitor's (`files.Ledger`): the page sends its
    gallery and pictures back as inputs of the next call. Wraps `blocks.process_api`."""
    process = blocks.process_api

    async def recording(*args: Any, **kwargs: Any) -> Any:
        output = await process(*args, **kwargs)
        request = kwargs.get("request")
        if request is not None and not isinstance(request, list) and isinstance(output, dict):
            ledger.add(visitors.of_request(request), file_paths(output.get("data")))
        return output

    blocks.process_api = recording


def log_heavy_calls(blocks: Any, most: int, name: str = "heavy") -> None:
    """Logs each heavy call's start with how many run at that moment and the limit (`share_limit`'s
    concurrency id `name`): the operator's view of the one limit. Wraps `blocks.process_api`."""
    process = blocks.process_api
    running = 0

    async def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal running
        fn = kwargs.get("block_fn", args[0] if args else None)
        if getattr(fn, "concurrency_id", None) != name:
            return await process(*args, **kwargs)
        running += 1
        log.info("heavy call started (%s): %d running, at most %d", getattr(fn, "api_name", None), running, most)
        try:
            return await process(*args, **kwargs)
        finally:
            running -= 1

    blocks.process_api = counting
