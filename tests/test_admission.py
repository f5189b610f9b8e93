"""The gates' own rules, without a server: who a visitor is, how much one may upload and send, and how many
heavy calls run at once."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from imagereward.app.admission import heavy_calls, quoted
from imagereward.app.host import VISITOR_HEADER, HostGuard, Visitors, json_values, minutes, visitor


def request(peer: str, forwarded: str | None = None, length: int | None = None, **more: str) -> SimpleNamespace:
    headers = dict(more)
    if forwarded is not None:
        headers["x-forwarded-for"] = forwarded
    if length is not None:
        headers["content-length"] = str(length)
    return SimpleNamespace(client=SimpleNamespace(host=peer), headers=headers)


def scope(peer: str, **headers: str) -> dict:
    return {"client": (peer, 5000), "headers": [(k.encode(), v.encode()) for k, v in headers.items()]}


def test_without_a_trusted_proxy_the_forwarded_header_is_ignored() -> None:
    """Locally a client could write any X-Forwarded-For to pass for many visitors: only the peer counts."""
    assert visitor("127.0.0.1", "1.2.3.4", proxy_hops=0) == "127.0.0.1"
    assert visitor("127.0.0.1", "5.6.7.8, 9.9.9.9", proxy_hops=0) == "127.0.0.1"
    assert Visitors(0).of_scope(scope("127.0.0.1", **{"x-forwarded-for": "1.2.3.4"})) == "127.0.0.1"


def test_behind_the_spaces_proxy_the_address_it_saw_counts() -> None:
    """The proxy appends the address it saw; what the client wrote stays to its left and is not trusted."""
    assert visitor("10.16.3.80", "203.0.113.7", proxy_hops=1) == "203.0.113.7"
    assert visitor("10.16.3.80", "1.1.1.1, 203.0.113.7", proxy_hops=1) == "203.0.113.7"
    assert visitor("10.16.3.80", "1.1.1.1, 203.0.113.7, 10.0.0.2", proxy_hops=2) == "203.0.113.7"
    assert visitor("10.16.3.80", None, proxy_hops=1) == "10.16.3.80"  # no header: the peer


def test_a_stamp_is_believed_only_from_this_process_and_only_over_loopback() -> None:
    """The MCP server's loopback call carries the agent's stamp; a caller cannot write one (no key), another
    process's stamp is not this one's, and a stamp from a non-loopback peer is ignored."""
    visitors = Visitors(0)
    stamp = visitors.stamp("203.0.113.9")
    assert visitors.of_scope(scope("127.0.0.1", **{VISITOR_HEADER: stamp})) == "203.0.113.9"
    assert visitors.of_scope(scope("198.51.100.4", **{VISITOR_HEADER: stamp})) == "198.51.100.4"
    forged = "0" * 32 + " 203.0.113.9"
    assert visitors.of_scope(scope("127.0.0.1", **{VISITOR_HEADER: forged})) == "127.0.0.1"
    assert visitors.of_scope(scope("127.0.0.1", **{VISITOR_HEADER: Visitors(0).stamp("x")})) == "127.0.0.1"
    assert visitors.of_request(request("127.0.0.1", **{VISITOR_HEADER: stamp})) == "203.0.113.9"


def test_json_values_are_counted_without_parsing_and_strings_are_skipped() -> None:
    assert json_values(b'{"data": ["a, [b] {c}", [1, 2, 3], {"x": null}]}') == 9
    assert json_values(b'["' + b"[,{" * 1000 + b'"]') == 2  # inside a string: nothing
    assert json_values(b'["a\\", [1, 2]]') == 5  # an escaped backslash ends the string


def test_heavy_calls_fit_the_memory_and_the_cap() -> None:
    gb = 2**30
    assert heavy_calls(10 * gb, int(1.5 * gb), most=16) == 6
    assert heavy_calls(10 * gb, int(1.5 * gb), most=2) == 2
    assert heavy_calls(gb, int(1.5 * gb), most=16) == 1  # always one


def test_minutes_are_counted_in_words() -> None:
    assert [minutes(s) for s in (30, 60, 120, 900)] == ["1 minute", "1 minute", "2 minutes", "15 minutes"]


def test_an_echoed_value_is_cut() -> None:
    assert quoted("x" * 1_000_000) == "'" + "x" * 58 + "…" and quoted("CLIP") == "'CLIP'"


class Meter:
    def __init__(self, used: int = 0) -> None:
        self.bytes = used

    def used(self) -> int:
        return self.bytes

    def add(self, size: int) -> None:
        self.bytes += size


def test_the_upload_quota_is_per_visitor_and_the_budget_for_all() -> None:
    meter = Meter()
    guard = HostGuard(
        lambda *a: None, Visitors(), None, 100, 10_000, upload_quota=1000, disk_budget=2000, window=60, meter=meter
    )
    assert guard.upload_refusal("a", "600") is None
    status, text = guard.upload_refusal("a", "600")
    assert status == 429 and "the most one visitor may" in text and "in the last 1 minute," in text
    assert guard.upload_refusal("b", "900") is None  # b has its own share
    assert guard.upload_refusal("c", "900") == (
        507,
        "The server has no room for more uploads right now; try again in a few minutes.",
    )
    assert guard.upload_refusal("d", "")[0] == 411


@pytest.mark.parametrize("field", ["IMAGEREWARD_MAX_PENDING", "IMAGEREWARD_FILE_LIFETIME", "IMAGEREWARD_PIXEL_BUDGET"])
def test_the_limits_must_be_positive_whole_numbers(field: str) -> None:
    from imagereward.app.settings import Settings

    with pytest.raises(ValueError, match=f"{field} must be a positive whole number"):
        Settings.from_env({field: "0"})


def test_on_a_space_the_proxy_is_trusted_by_default() -> None:
    from imagereward.app.settings import Settings

    assert Settings.from_env({"SPACE_ID": "user/space"}).proxy_hops == 1
    assert Settings.from_env({}).proxy_hops == 0
    assert Settings.from_env({"SPACE_ID": "user/space", "IMAGEREWARD_PROXY_HOPS": "2"}).proxy_hops == 2


def test_the_bodies_in_flight_are_bounded_for_all_requests_together() -> None:
    """Past `IN_FLIGHT_CALLS` bodies of the largest size being read at once, the next is refused (429) before
    its body is read; once one ends, another is let in."""
    import asyncio

    from imagereward.app.host import IN_FLIGHT_CALLS

    limit = 1000
    release = asyncio.Event()
    reached: list[int] = []

    async def app(scope, receive, send) -> None:
        await receive()
        reached.append(1)
        await release.wait()

    guard = HostGuard(app, Visitors(), None, limit, 10_000, upload_quota=1, disk_budget=1, window=60, meter=Meter())

    def post(size: int) -> tuple[dict, list]:
        headers = [(b"content-length", str(size).encode()), (b"content-type", b"application/json")]
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/gradio_api/queue/join",
            "client": ("1.2.3.4", 1),
            "headers": headers,
        }
        sent: list = []

        async def receive() -> dict:
            return {"type": "http.request", "body": b"[" + b" " * (size - 2) + b"]", "more_body": False}

        async def send(message: dict) -> None:
            sent.append(message)

        return scope, [receive, send, sent]

    async def scenario() -> tuple[list, list]:
        calls = [post(limit) for _ in range(IN_FLIGHT_CALLS + 1)]
        tasks = [asyncio.create_task(guard(scope, r, s)) for scope, (r, s, _) in calls[:IN_FLIGHT_CALLS]]
        await asyncio.sleep(0.05)
        scope, (receive, send, refused) = calls[-1]
        await guard(scope, receive, send)
        release.set()
        await asyncio.gather(*tasks)
        scope, (receive, send, after) = post(limit)
        await guard(scope, receive, send)
        return refused, after

    refused, after = asyncio.run(scenario())
    assert refused[0]["status"] == 429 and b"as much request data as it may" in refused[1]["body"]
    assert len(reached) == IN_FLIGHT_CALLS + 1 and after == []  # the later one reached the app


def test_the_waiting_bodies_are_bounded() -> None:
    """A call whose body would take what the queue's waiting calls hold past `max_queued_bytes` is refused
    (429, the sentence), before it is queued."""
    import asyncio

    import gradio as gr
    from fastapi import HTTPException

    from imagereward.app.admission import QueueGate

    with gr.Blocks() as demo:
        box = gr.Textbox()
        gr.Button().click(lambda x: x, box, box, api_name="echo")
    demo.queue()
    gate = QueueGate(demo, max_pending=100, max_queued_bytes=1000).install()
    waiting = [SimpleNamespace(request=request("a", length=900), fn=None)]
    gate._events = lambda running=True: list(waiting)  # type: ignore[method-assign]
    fn_index = next(k for k, fn in demo.fns.items() if fn.api_name == "echo")
    body = SimpleNamespace(fn_index=fn_index, data=["x"], session_hash=None)
    with pytest.raises(HTTPException) as refused:
        asyncio.run(gate.push(body, request("b", length=200), None))
    assert refused.value.status_code == 429 and "waiting request data" in refused.value.detail
    assert gate.queued_bytes() == 900
