"""What reaches Gradio at all: the HTTP layer in front of the app (`HostGuard`, an ASGI middleware).

Gradio opens doors beside the app's own handlers; a public page closes them here, before Gradio reads a
request:

- **Who a visitor is** (`Visitors`): the socket's peer, unless the operator trusts `proxy_hops` proxies in
  front of the app (1 on a Space), then the address the outermost of them saw (`X-Forwarded-For`, the
  `proxy_hops`-th entry from the right). uvicorn's own trust of that header from loopback is switched off
  (`distrust_forwarded_headers`), so a local client cannot pick who it is. The guard writes the visitor into
  every request as a signed header (`VISITOR_HEADER`, an HMAC with a key of this process); Gradio's MCP server
  calls the app over loopback with the MCP request's headers, so an agent's calls count as the agent's
  address, and no header a caller writes is ever believed.
- **A body limit on every route**, refused before the body is read when its size is declared (and cut off when
  it is not): `max_body` bytes for the API's JSON routes (the queue, `/call/`, MCP), `upload_limit` for an
  upload, `SMALL_BODY` for anything else; and at most `IN_FLIGHT_CALLS` x `max_body` of bodies being read or
  handled at once, all requests together (429 past that; an MCP request's body counts until its tool call
  ends, and the MCP server's loopback call carrying it is not counted again). A JSON body may also hold at
  most `MAX_JSON_VALUES` values (counted on the bytes, strings skipped, before anything is parsed): 10,000
  pairs cost a gigabyte to parse.
- **Names**: `/call/<name>` of a function that is not public, or of no function, is refused with the public
  names (Gradio would run a private handler by name, and answer an unknown name with a 500).
- **Uploads** (`/upload`): by their declared size (`Content-Length`, required), at most `upload_quota` bytes
  per visitor within `window` seconds, none past the disk budget (`files.DiskMeter`); each upload's paths
  (Gradio's answer) are recorded as this visitor's (`files.Ledger`), the only files a call of theirs may name.

Every refusal is one sentence (`{"detail": ...}`, as Gradio answers), with the status saying what kind.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import time
from collections import defaultdict, deque
from typing import Any, Callable, Iterable

VISITOR_HEADER = "x-imagereward-visitor"
# Bodies of the routes that take no data (assets, heartbeats, cancel, reset, ...).
SMALL_BODY = 1 << 20
# JSON values a call may carry (the page's largest call, 32 images with their captions and a table of 32
# rows, is about 1,000).
MAX_JSON_VALUES = 20_000
# Bodies being read or handled at once, all requests together, in units of the largest (`max_body`).
IN_FLIGHT_CALLS = 4
JSON_ROUTES = ("/queue/join", "/call/", "/run/", "/api/", "/mcp")
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"')
_LOOPBACK = ("127.0.0.1", "::1", "localhost")
# The most of a client's value a message quotes.
SHOWN_CHARS = 60


def distrust_forwarded_headers() -> None:
    """Stops uvicorn from taking `X-Forwarded-For` from loopback peers as the client's address (its default
    trusts 127.0.0.1 and ::1): the app reads the header itself, as far as `proxy_hops` says. Call before
    the server starts."""
    os.environ["FORWARDED_ALLOW_IPS"] = ""


def visitor(client_host: str | None, forwarded: str | None, proxy_hops: int = 0) -> str:
    """Who sent a request: with `proxy_hops` trusted proxies in front of the app (1 on a Space), the address
    the outermost of them saw, i.e. the `proxy_hops`-th entry of `forwarded` (`X-Forwarded-For`) from the
    right (entries further left are whatever the client wrote there); else the peer's address."""
    if proxy_hops > 0:
        addresses = [a.strip() for a in (forwarded or "").split(",") if a.strip()]
        if len(addresses) >= proxy_hops:
            return addresses[-proxy_hops]
    return client_host or "unknown"


class Visitors:
    """Who sent a request, and the signed header that carries it through the app (see the module doc).

    Args:
        proxy_hops: trusted proxies in front of the app.
        key: the signing key (default: a new random one, this process's).
    """

    def __init__(self, proxy_hops: int = 0, key: bytes | None = None) -> None:
        self.proxy_hops = proxy_hops
        self._key = key or secrets.token_bytes(32)

    def stamp(self, who: str) -> str:
        signature = hmac.new(self._key, who.encode(), hashlib.sha256).hexdigest()[:32]
        return f"{signature} {who}"

    def read_stamp(self, value: str | None) -> str | None:
        """The visitor a stamp names, if this process signed it; else None."""
        if not value or " " not in value:
            return None
        signature, who = value.split(" ", 1)
        return who if hmac.compare_digest(signature, self.stamp(who).split(" ", 1)[0]) else None

    def of_scope(self, scope: dict) -> str:
        """The visitor of an ASGI request: a stamp this process wrote, on a call from loopback (the MCP
        server's own call), else the peer and the trusted proxies' header."""
        headers = _headers(scope)
        return self.internal(scope) or visitor(_peer(scope), headers.get("x-forwarded-for"), self.proxy_hops)

    def internal(self, scope: dict) -> str | None:
        """The visitor an internal call (the MCP server's loopback call, carrying this process's stamp) is
        made for; None for any other request."""
        if _peer(scope) not in _LOOPBACK:
            return None
        return self.read_stamp(_headers(scope).get(VISITOR_HEADER))

    def of_request(self, request: Any) -> str:
        """The visitor of a request the guard let in (its stamp); for a request that did not pass the guard,
        the peer and the trusted proxies' header."""
        headers = getattr(request, "headers", None) or {}
        stamped = self.read_stamp(headers.get(VISITOR_HEADER))
        if stamped is not None:
            return stamped
        client = getattr(request, "client", None)
        return visitor(getattr(client, "host", None), headers.get("x-forwarded-for"), self.proxy_hops)


def _peer(scope: dict) -> str | None:
    client = scope.get("client")
    return client[0] if client else None


def _headers(scope: dict) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def quoted(value: Any) -> str:
    """A value a client sent, as a message may quote it: its repr, cut to `SHOWN_CHARS` characters."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def json_values(body: bytes) -> int:
    """How many JSON values `body` holds at most (its commas and openings, strings skipped), without parsing."""
    bare = _STRING.sub(b'""', body)
    return bare.count(b",") + bare.count(b"[") + bare.count(b"{") + 1


def megabytes(size: int) -> str:
    return f"{size / 2**20:,.0f} MB"


class HostGuard:
    """The ASGI middleware (see the module doc).

    Args:
        app: the application behind it.
        visitors: who sent a request.
        ledger: the files each visitor may name (`files.Ledger`).
        max_body: the most a JSON call may send.
        upload_limit: the most one upload request may send.
        upload_quota: bytes one visitor may upload within `window` seconds.
        disk_budget: bytes the upload folder may hold (`meter.used()`).
        window: seconds the quota counts back (the files' lifetime).
        meter: the upload folder's `files.DiskMeter`.
        names: () -> (every function's API name, the public ones), read when a name is checked.
    """

    def __init__(
        self,
        app: Callable,
        visitors: Visitors,
        ledger: Any,
        max_body: int,
        upload_limit: int,
        upload_quota: int,
        disk_budget: int,
        window: float,
        meter: Any,
        names: Callable[[], tuple[Iterable[str], Iterable[str]]] = lambda: ((), ()),
    ) -> None:
        self.app = app
        self.visitors = visitors
        self.ledger = ledger
        self.max_body = max_body
        self.upload_limit = upload_limit
        self.upload_quota = upload_quota
        self.disk_budget = disk_budget
        self.window = window
        self.meter = meter
        self.names = names
        self.most_in_flight = IN_FLIGHT_CALLS * max_body
        self._in_flight = 0
        self._uploads: dict[str, deque[tuple[float, int]]] = defaultdict(deque)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        stamped = self.visitors.internal(scope)  # the MCP server's own call: its body counted as the MCP request's
        who = stamped if stamped is not None else self.visitors.of_scope(scope)
        declared = _headers(scope).get("content-length", "")
        headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != VISITOR_HEADER.encode()]
        headers.append((VISITOR_HEADER.encode(), self.visitors.stamp(who).encode("latin-1", "replace")))
        scope = {**scope, "headers": headers}
        path, method = scope.get("path", ""), scope.get("method", "GET")
        refusal = self.name_refusal(path, method)
        if refusal is None and method in ("POST", "PUT", "PATCH"):
            refusal = self.size_refusal(path, declared)
        if refusal is None and _is_upload(path, method):
            refusal = self.upload_refusal(who, declared)
        if refusal is not None:
            await _refuse(scope, receive, send, *refusal)
            return
        if _is_upload(path, method):
            await self.app(scope, receive, self._recording(who, send))
            return
        if method not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        size = 0 if stamped is not None else int(declared) if declared.isdigit() else self.limit(path)
        if self._in_flight + size > self.most_in_flight:
            await _refuse(scope, receive, send, 429, self.busy_sentence())
            return
        self._in_flight += size  # no await since the check: two bodies cannot both slip through
        try:
            body = await self._read_bounded(receive, path)
            if isinstance(body, tuple):
                await _refuse(scope, receive, send, *body)
                return
            if _is_json_route(path) and json_values(body) > MAX_JSON_VALUES:
                await _refuse(scope, receive, send, 413, self.values_sentence())
                return
            await self.app(scope, _replay(body, receive), send)
        finally:
            self._in_flight -= size

    # ------------------------------------------------------------------------------------------ rules
    def limit(self, path: str) -> int:
        """The most a request to `path` may send."""
        if path.endswith("/upload"):
            return self.upload_limit
        return self.max_body if _is_json_route(path) else SMALL_BODY

    def size_sentence(self, path: str) -> str:
        limit = self.limit(path)
        if path.endswith("/upload"):
            return f"This upload is larger than {megabytes(limit)}, the most one upload request may send; upload fewer files at a time."
        if _is_json_route(path):
            return (
                f"This call sends more than {megabytes(limit)}, the most a call may send: send images as https URLs, "
                "or upload them (gradio_client's handle_file) instead of as base64 data, or split the call."
            )
        return f"This request sends more than {megabytes(limit)}, the most this address takes."

    def busy_sentence(self) -> str:
        return (
            f"The server is reading as much request data as it may at once ({megabytes(self.most_in_flight)}): try again "
            "in a moment, or send images as URLs or uploads rather than base64 data."
        )

    @staticmethod
    def values_sentence() -> str:
        return (
            f"This call holds more than {MAX_JSON_VALUES:,} values, the most a call may: send fewer images or "
            "pairs per call (/score_pairs takes at most the image limit per call; send several calls in parallel)."
        )

    def size_refusal(self, path: str, declared: str | None) -> tuple[int, str] | None:
        if declared is not None and declared.strip().isdigit() and int(declared) > self.limit(path):
            return 413, self.size_sentence(path)
        return None

    def name_refusal(self, path: str, method: str) -> tuple[int, str] | None:
        """`/call/<name>` of no function, or of one that is not public."""
        match = re.search(r"/call/([^/]+)/?$", path)
        if method != "POST" or match is None:
            return None
        every, public = self.names()
        name, public = match.group(1), sorted(public)
        if name in public:
            return None
        what = "is not a public endpoint" if name in set(every) else "is no endpoint of this app"
        return 404, f"{quoted(name)} {what}; the public ones: {', '.join('/' + p for p in public)}."

    def upload_refusal(self, who: str, declared: str) -> tuple[int, str] | None:
        """(status, sentence) refusing an upload, or None to let it through (and count it)."""
        if not declared.isdigit():
            return 411, "Uploads must say their size (Content-Length)."
        size = int(declared)
        if self.meter.used() + size > self.disk_budget:
            return 507, "The server has no room for more uploads right now; try again in a few minutes."
        now = time.monotonic()
        recent = self._uploads[who]
        while recent and recent[0][0] < now - self.window:
            recent.popleft()
        if not recent:
            self._uploads.pop(who, None)
        used = sum(n for _, n in recent)
        if used + size > self.upload_quota:
            return 429, (
                f"You have uploaded {megabytes(used)} in the last {minutes(self.window)}, the most one visitor may; "
                "try again later."
            )
        self._uploads[who].append((now, size))
        self.meter.add(size)
        return None

    # ------------------------------------------------------------------------------------- plumbing
    async def _read_bounded(self, receive: Callable, path: str) -> bytes | tuple[int, str]:
        """The whole body, or a refusal as soon as it passes the route's limit (a body that did not declare
        its size)."""
        chunks, size, limit = [], 0, self.limit(path)
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return 413, self.size_sentence(path)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _recording(self, who: str, send: Callable) -> Callable:
        """`send`, recording the paths of a successful upload's answer as `who`'s."""
        state: dict[str, Any] = {"status": 0, "body": b""}

        async def recording(message: dict) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
            elif message["type"] == "http.response.body" and state["status"] == 200:
                state["body"] += message.get("body", b"")
                if not message.get("more_body", False):
                    try:
                        paths = json.loads(state["body"])
                    except ValueError:
                        paths = []
                    self.ledger.add(who, [p for p in paths if isinstance(p, str)] if isinstance(paths, list) else [])
            await send(message)

        return recording


def minutes(seconds: float) -> str:
    n = max(1, round(seconds / 60))
    return f"{n} minute{'s' if n != 1 else ''}"


def _is_upload(path: str, method: str) -> bool:
    return method == "POST" and path.rstrip("/").endswith("/upload")


def _is_json_route(path: str) -> bool:
    return any(route in path for route in JSON_ROUTES)


def _replay(body: bytes, receive: Callable) -> Callable:
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _refuse(scope: dict, receive: Callable, send: Callable, status: int, sentence: str) -> None:
    """The refusal: plain text to an upload (what the page shows of a failed upload), else Gradio's
    `{"detail": sentence}`."""
    from starlette.responses import JSONResponse, PlainTextResponse

    if _is_upload(scope.get("path", ""), scope.get("method", "")):
        await PlainTextResponse(sentence, status_code=status)(scope, receive, send)
    else:
        await JSONResponse({"detail": sentence}, status_code=status)(scope, receive, send)
