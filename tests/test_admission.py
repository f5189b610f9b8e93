"""The gates' own rules, without a server: who a visitor is, and how much one may upload."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from imagereward.app.admission import UploadGuard, shown, visitor


def request(peer: str, forwarded: str | None = None, length: int | None = None) -> SimpleNamespace:
    headers = {}
    if forwarded is not None:
        headers["x-forwarded-for"] = forwarded
    if length is not None:
        headers["content-length"] = str(length)
    return SimpleNamespace(client=SimpleNamespace(host=peer), headers=headers)


def test_without_a_trusted_proxy_the_forwarded_header_is_ignored() -> None:
    """Locally a client could write any X-Forwarded-For to pass for many visitors: only the peer counts."""
    assert visitor(request("127.0.0.1", "1.2.3.4"), proxy_hops=0) == "127.0.0.1"
    assert visitor(request("127.0.0.1", "5.6.7.8, 9.9.9.9"), proxy_hops=0) == "127.0.0.1"


def test_behind_the_spaces_proxy_the_address_it_saw_counts() -> None:
    """The proxy appends the address it saw; what the client wrote stays to its left and is not trusted."""
    assert visitor(request("10.16.3.80", "203.0.113.7"), proxy_hops=1) == "203.0.113.7"
    assert visitor(request("10.16.3.80", "1.1.1.1, 203.0.113.7"), proxy_hops=1) == "203.0.113.7"
    assert visitor(request("10.16.3.80", "1.1.1.1, 203.0.113.7, 10.0.0.2"), proxy_hops=2) == "203.0.113.7"
    assert visitor(request("10.16.3.80"), proxy_hops=1) == "10.16.3.80"  # no header: the peer


def test_an_echoed_value_is_cut() -> None:
    assert shown("x" * 1_000_000) == "'" + "x" * 58 + "…" and shown("CLIP") == "'CLIP'"


class Meter:
    def __init__(self, used: int = 0) -> None:
        self.bytes = used

    def used(self) -> int:
        return self.bytes

    def add(self, size: int) -> None:
        self.bytes += size


def test_the_upload_quota_is_per_visitor_and_the_budget_for_all() -> None:
    meter = Meter()
    guard = UploadGuard(lambda *a: None, upload_quota=1000, disk_budget=2000, window=60, meter=meter)
    assert guard.refusal(request("a", length=600)) is None
    status, text = guard.refusal(request("a", length=600))
    assert status == 429 and "the most one visitor may" in text
    assert guard.refusal(request("b", length=900)) is None  # b has its own share
    assert guard.refusal(request("c", length=900)) == (
        507,
        "The server has no room for more uploads right now; try again in a few minutes.",
    )
    assert guard.refusal(request("d"))[0] == 411


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
