"""Images an API client names instead of uploading: an http(s) URL the server fetches, or base64 data.

What agents (the MCP tools) and pipelines (`/score_pairs`) send. Each is written to a file in a folder of its
own inside the page's downloads, then goes through the same request path as an upload (the format, pixel and
resize checks, the pixel budget); the folder is removed when the call ends.

A URL is fetched as Gradio fetches one (`safehttpx`, which Gradio's SSRF-protected download is built on: the
connection goes to the address that was checked, so a name cannot resolve to a public address for the check
and a private one for the fetch), with what Gradio's download lacks for a public page:

- every address the host resolves to must be public (not loopback, private, link-local, multicast or
  reserved), checked here from the local resolver only; Gradio's own check would ask a public DNS service
  about a name that resolves to a private address;
- every redirect is checked the same way, at most `MAX_REDIRECTS`;
- at most `max_bytes` (the upload limit) are read, and the whole fetch, redirects included, gets `timeout`
  seconds;
- `trusted` hosts (`host:port`, from `IMAGEREWARD_TRUSTED_URL_HOSTS`, empty by default) skip the public-address
  check: for a test server on loopback, or an image store on the operator's own network.

Anything else (a server path, `file://`, another scheme) is refused with the same sentence as a server path
sent as an upload: nothing is opened.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import ipaddress
import re
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import unquote, urljoin, urlsplit

import httpx

from ..errors import ImageLoadError
from ..images.reading import MAGIC_BYTES

MAX_REDIRECTS = 5
CHUNK = 1 << 16
# What a client may send instead of an upload, for the refusal.
ACCEPTED = (
    "send an image as an https URL, as base64 data (data:image/png;base64,…), or upload it; server paths and "
    "file:// URLs are never opened"
)
NOT_SENT = f"not an image this call sent; {ACCEPTED}"
# The first bytes of the accepted formats: how bare base64 is told from a path or a URL.
_MAGIC = MAGIC_BYTES
# What a file name may not hold: separators, control characters, and bidirectional overrides (display spoofing).
_WHITESPACE = re.compile(r"\s+")
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\\u202a-\u202e\u2066-\u2069]+")


@dataclass(frozen=True)
class Fetched:
    """An image a call sent by URL or as data, on disk: `path` (inside the call's folder) and its `name`."""

    path: str
    name: str


@dataclass
class Received:
    """The images of one call that came as URLs or data: each item's file (or why there is none), by position
    in the call; `folder` holds the files and is removed by `close`."""

    folder: Path
    files: dict[int, Fetched] = field(default_factory=dict)
    refused: dict[int, ImageLoadError] = field(default_factory=dict)

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> Received:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def is_remote(item: Any) -> bool:
    """Whether a call's image item names a URL or carries data (a string, or a file dict whose `path` or `url`
    is one), rather than an upload's path on this server."""
    text = _text(item)
    return text is not None and (_scheme(text) != "" or _bare_base64(text) is not None)


def _text(item: Any) -> str | None:
    """The string an item names: itself, or a file dict's `path` (an upload's, on this server), or its URL."""
    if isinstance(item, dict):
        path = item.get("path")
        item = path if isinstance(path, str) and path and _scheme(path) == "" else item.get("url") or path
    return item if isinstance(item, str) else None


def _scheme(text: str) -> str:
    head = text[:12].lower()
    for scheme in ("https://", "http://", "data:", "file:", "ftp://"):
        if head.startswith(scheme):
            return scheme.rstrip(":/")
    return ""


def _bare_base64(text: str) -> bytes | None:
    """The bytes of bare base64 (no `data:` prefix) that decode to an accepted format's header, else None."""
    if len(text) < 16 or not re.fullmatch(r"[A-Za-z0-9+/=\s]+", text[:4096]):
        return None
    try:
        head = base64.b64decode(_WHITESPACE.sub("", text[:128])[:64], validate=False)
    except (binascii.Error, ValueError):
        return None
    return head if head.startswith(_MAGIC) else None


def remote_name(item: Any, index: int) -> str:
    """What a URL or data item goes by: the URL's file name (`image N` for data), as a safe file name."""
    text = _text(item) or ""
    name = ""
    if _scheme(text) in ("http", "https"):
        name = unquote(urlsplit(text).path.rstrip("/").rsplit("/", 1)[-1])
    if not name and isinstance(item, dict) and isinstance(item.get("orig_name"), str):
        name = item["orig_name"]
    return file_name(name, index)


def file_name(name: str, index: int) -> str:
    """`name` as a file name: unsafe characters replaced, at most 120 characters (`image N` if nothing is left)."""
    safe = _UNSAFE.sub("_", name).strip()[:120]
    return safe if safe not in ("", ".", "..") else f"image {index + 1}"


def is_public_address(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified
    )


class Receiver:
    """Fetches and decodes the images a call names (see the module doc).

    Args:
        downloads: where each call's folder is made (`files.Downloads`).
        max_bytes: the most one image may take (the upload limit).
        timeout: seconds for one URL, redirects included.
        trusted: `host:port` entries whose addresses need not be public.
    """

    def __init__(self, downloads: Any, max_bytes: int, timeout: float, trusted: Sequence[str] = ()) -> None:
        self.downloads = downloads
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.trusted = {t.strip().lower() for t in trusted if t.strip()}

    def receive(self, items: Sequence[Any]) -> Received:
        """Every URL or data item of `items` on disk (the others are left alone), fetched at once.
        Never raises for an item: its refusal is in `refused`."""
        received = Received(self.downloads.new_folder())
        todo = [(k, item) for k, item in enumerate(items) if is_remote(item)]
        if not todo:
            return received

        async def all_of_them() -> list[tuple[str, bytes] | ImageLoadError]:
            return await asyncio.gather(*(self._one(item, k) for k, item in todo))

        # The same content sent several times is one file: decoded once, and counted once by the pixel budget.
        by_content: dict[str, str] = {}
        for (k, _), outcome in zip(todo, asyncio.run(all_of_them())):
            if isinstance(outcome, ImageLoadError):
                received.refused[k] = outcome
                continue
            name, data = outcome
            key = hashlib.sha256(data).hexdigest()
            if key not in by_content:
                path = received.folder / key[:32] / name
                path.parent.mkdir()
                path.write_bytes(data)
                by_content[key] = str(path)
            received.files[k] = Fetched(by_content[key], name)
        return received

    async def _one(self, item: Any, index: int) -> tuple[str, bytes] | ImageLoadError:
        name = remote_name(item, index)
        text = _text(item) or ""
        try:
            scheme = _scheme(text)
            if scheme == "data" or (scheme == "" and _bare_base64(text) is not None):
                data = self._decode_data(text, name)
            elif scheme in ("http", "https"):
                data = await asyncio.wait_for(self._fetch(text, name), self.timeout)
            else:
                raise ImageLoadError(name, NOT_SENT)
        except ImageLoadError as e:
            return e
        except (asyncio.TimeoutError, TimeoutError, httpx.TimeoutException):
            return ImageLoadError(name, f"the URL did not answer with the whole image within {self.timeout:g} s")
        except (httpx.HTTPError, OSError) as e:  # refused, reset, a TLS failure: this image only
            return ImageLoadError(
                name, f"the URL could not be fetched ({type(e).__name__}); check it, or send the data"
            )
        return name, data

    def _decode_data(self, text: str, name: str) -> bytes:
        payload = text
        if text[:5].lower() == "data:":
            header, comma, payload = text[:256].partition(",")
            if not comma or ";base64" not in header.lower():
                raise ImageLoadError(name, "a data: URI must carry base64 (data:image/png;base64,…)")
            payload = text[len(header) + 1 :]
        payload = _WHITESPACE.sub("", payload)  # base64 wrapped at 76 (MIME) or 64 (PEM) columns
        if len(payload) * 3 // 4 > self.max_bytes:
            raise ImageLoadError(name, f"larger than the {self.max_bytes // 2**20} MB an image may be")
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise ImageLoadError(name, "its base64 data is not valid base64") from None

    async def _fetch(self, url: str, name: str) -> bytes:
        from safehttpx import AsyncSecureTransport

        for _ in range(MAX_REDIRECTS + 1):
            address = await self._checked_address(url, name)
            transport = AsyncSecureTransport(address)
            async with httpx.AsyncClient(transport=transport, timeout=self.timeout) as client:
                async with client.stream("GET", url, follow_redirects=False) as response:
                    if response.is_redirect and "location" in response.headers:
                        url = urljoin(str(response.url), response.headers["location"])
                        if _scheme(url) not in ("http", "https"):
                            raise ImageLoadError(name, f"the URL redirects to something other than http(s); {ACCEPTED}")
                        continue
                    if response.status_code != 200:
                        raise ImageLoadError(name, f"the URL answered HTTP {response.status_code}, not an image")
                    declared = response.headers.get("content-length", "")
                    if declared.isdigit() and int(declared) > self.max_bytes:
                        raise ImageLoadError(name, f"larger than the {self.max_bytes // 2**20} MB an image may be")
                    body = bytearray()
                    async for chunk in response.aiter_bytes(CHUNK):
                        body += chunk
                        if len(body) > self.max_bytes:
                            raise ImageLoadError(name, f"larger than the {self.max_bytes // 2**20} MB an image may be")
                    return bytes(body)
        raise ImageLoadError(name, f"the URL redirects more than {MAX_REDIRECTS} times")

    async def _checked_address(self, url: str, name: str) -> str:
        """The address to connect to for `url`: its host's, every one of them public unless it is trusted."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if not host:
            raise ImageLoadError(name, f"not a URL with a host; {ACCEPTED}")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise ImageLoadError(name, "the URL's port is not a number") from None
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            raise ImageLoadError(name, f"the URL's host {host[:60]} could not be found") from None
        addresses = [info[4][0] for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)]
        trusted = f"{host}:{port}" in self.trusted or f"[{host}]:{port}" in self.trusted
        if not addresses or (not trusted and not all(is_public_address(a) for a in addresses)):
            raise ImageLoadError(name, NOT_SENT)
        return addresses[0]
