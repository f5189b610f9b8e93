"""Who may queue what, and upload how much: the gates a public page needs in front of Gradio's queue and its
upload route.

Every call of the page and its API joins Gradio's queue through `QueueGate.push`, which, before the call is
queued:

- gives each visitor a fair share: at most `max_pending` calls queued or running per visitor (its address as
  the Space's proxy forwards it, see `visitor`), and at most `FunctionLimit.most` of the calls of a costly
  kind (an explanation: one); past that the call is refused at once (HTTP 429) with a sentence saying to
  wait, and every other visitor's calls are queued as usual, so that one client flooding the queue cannot lock
  everyone else out;
- fills a public API call's missing trailing inputs, and nulls, with those inputs' defaults (a client written
  for `/score` with two values, prompt and images, keeps working);
- refuses a value that is not one of a choice input's choices (the judges, the order) with the offered
  choices and at most `SHOWN_CHARS` characters of the value, before Gradio's own check would echo it whole;
  and a file input's value that is not a file as Gradio takes one (Gradio's check would answer "error" and
  nothing else).

`UploadGuard` (an ASGI middleware) bounds the disk uploads can fill: at most `upload_quota` bytes per visitor
within the files' lifetime, and nothing more once the upload folder holds `disk_budget` bytes
(`files.DiskMeter`).

Gradio has no hook for either: `QueueGate` wraps the queue's `push` of the pinned Gradio (6.31), reading its
queued events and running jobs; `tests/test_app_admission.py` fails if that shape changes.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any, Callable, Sequence

SHOWN_CHARS = 60
# What marks a value as a file in a Gradio call.
FILE_META = {"_type": "gradio.FileData"}
DEFAULT_MAX_PENDING = 4


def visitor(request: Any, proxy_hops: int = 0) -> str:
    """Who sent a request: with `proxy_hops` trusted proxies in front of the app (1 on a Space), the address
    the outermost of them saw, i.e. the `proxy_hops`-th entry of `X-Forwarded-For` from the right (entries
    further left are whatever the client wrote there); else the peer's address."""
    if proxy_hops > 0:
        forwarded = [a.strip() for a in request.headers.get("x-forwarded-for", "").split(",") if a.strip()]
        if len(forwarded) >= proxy_hops:
            return forwarded[-proxy_hops]
    client = getattr(request, "client", None)
    return client.host if client is not None and client.host else "unknown"


def shown(value: Any) -> str:
    """A value a client sent, as a message may quote it: its repr, cut to `SHOWN_CHARS` characters."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


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
        proxy_hops: trusted proxies in front of the app (see `visitor`).
        choice_inputs: components whose value must be among their choices (their choices fixed at build time).
        limits: tighter shares for costly kinds of call.
    """

    def __init__(
        self,
        blocks: Any,
        max_pending: int = DEFAULT_MAX_PENDING,
        proxy_hops: int = 0,
        choice_inputs: Sequence[Any] = (),
        limits: Sequence[FunctionLimit] = (),
    ) -> None:
        self.blocks = blocks
        self.max_pending = max_pending
        self.proxy_hops = proxy_hops
        self.choices = {block._id: block for block in choice_inputs}
        self.limits = list(limits)
        self.queue = blocks._queue
        self._joining: dict[Any, int] = defaultdict(int)  # by visitor, and by (visitor, limited kind)
        self._push = self.queue.push

    def install(self) -> QueueGate:
        """Puts the gate in front of the queue's `push`."""
        self.queue.push = self.push
        return self

    def pending(self, who: str, limit: FunctionLimit | None = None) -> int:
        """Calls of `who` queued or running now (and being admitted); with `limit`, only those of its
        functions."""
        events = [e for q in self.queue.event_queue_per_concurrency_id.values() for e in q.queue]
        events += [e for job in self.queue.active_jobs if job for e in job]
        if limit is not None:
            events = [e for e in events if getattr(e.fn, "fn", None) in limit.functions]
            joining = self._joining[(who, limit.kind)]
        else:
            own = {f for lim in self.limits if lim.own_share for f in lim.functions}
            events = [e for e in events if getattr(e.fn, "fn", None) not in own]
            joining = self._joining[who]
        return joining + sum(1 for e in events if visitor(e.request, self.proxy_hops) == who)

    async def push(self, body: Any, request: Any, username: str | None) -> tuple:
        """Gradio's `Queue.push`, behind the fair share and the input checks."""
        from fastapi import HTTPException
        from gradio import route_utils

        who = visitor(request, self.proxy_hops)
        try:
            fn = route_utils.get_fn(self.blocks, None, body) if body.fn_index is not None else None
        except (KeyError, IndexError):
            fn = None
        if fn is not None:
            refused = self._check_inputs(fn, body)
            if refused is not None:
                # Gradio's own validation answer: both its clients show the message (gradio_client raises
                # `ValidationError` with it; the page marks the input).
                parameter, message = refused
                detail = [{"__type__": "validate", "is_valid": False, "message": message, "parameter_name": parameter}]
                raise HTTPException(status_code=422, detail=detail)
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
        return f"{label}: expected a list of choices, got {shown(value)}; the choices: {choices}"
    for v in value if many else [value]:
        if v not in choices:
            return f"{label}: {shown(v)} is not in the list of choices: {choices}"
    return None


def _file_problem(block: Any, value: Any) -> str | None:
    """Why `value` is not a file as Gradio takes one for the file input `block` (None if it is, or `block`
    is no file input): Gradio's own check answers a client with nothing but "error"."""
    import gradio as gr

    if not isinstance(block, gr.File) or value is None:
        return None
    if isinstance(value, dict) and isinstance(value.get("path"), str) and value.get("meta") == FILE_META:
        return None
    return (
        f"{getattr(block, 'label', None) or 'file'}: expected a file uploaded to this page, as gradio_client's "
        f"handle_file(path) sends it ({{'path': ..., 'meta': {FILE_META}}}); got {_kind(value)}"
    )


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a dict without that 'meta'" if isinstance(value.get("path"), str) else "a dict without a 'path'"
    return f"a {type(value).__name__}"


class UploadGuard:
    """ASGI middleware bounding uploads (Gradio's `/gradio_api/upload`, `/upload`): by their declared size
    (`Content-Length`, required), at most `upload_quota` bytes per visitor within `window` seconds, and none
    that would take `meter.used()` (a `files.DiskMeter` of the upload folder) past `disk_budget` bytes. A refused upload gets one sentence (429, or 507 for a
    full disk), which the page shows."""

    def __init__(
        self, app: Callable, upload_quota: int, disk_budget: int, window: float, meter: Any, proxy_hops: int = 0
    ) -> None:
        self.app = app
        self.upload_quota = upload_quota
        self.disk_budget = disk_budget
        self.window = window
        self.meter = meter
        self.proxy_hops = proxy_hops
        self._uploads: dict[str, deque[tuple[float, int]]] = defaultdict(deque)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or not scope["path"].endswith("/upload"):
            await self.app(scope, receive, send)
            return
        from starlette.requests import Request
        from starlette.responses import PlainTextResponse

        request = Request(scope)
        refusal = self.refusal(request)
        if refusal is not None:
            status, text = refusal
            await PlainTextResponse(text, status_code=status)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def refusal(self, request: Any) -> tuple[int, str] | None:
        """(status, sentence) refusing an upload, or None to let it through (and count it)."""
        raw = request.headers.get("content-length", "")
        if not raw.isdigit():
            return 411, "Uploads must say their size (Content-Length)."
        size = int(raw)
        if self.meter.used() + size > self.disk_budget:
            return 507, "The server has no room for more uploads right now; try again in a few minutes."
        who = visitor(request, self.proxy_hops)
        now = time.monotonic()
        recent = self._uploads[who]
        while recent and recent[0][0] < now - self.window:
            recent.popleft()
        used = sum(n for _, n in recent)
        if used + size > self.upload_quota:
            minutes = max(1, round(self.window / 60))
            return 429, (
                f"You have uploaded {used / 2**20:,.0f} MB in the last {minutes} minutes, the most one visitor may; "
                "try again later."
            )
        recent.append((now, size))
        self.meter.add(size)
        return None
