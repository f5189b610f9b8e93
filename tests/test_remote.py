"""Images sent as URLs or base64 (`imagereward.app.remote`), against servers this test starts on loopback
addresses only: refused unless trusted, redirects checked, size and time bounded, nothing else opened."""

from __future__ import annotations

import base64
import itertools
import time
from pathlib import Path

import pytest
from imageserver import image_server

from imagereward.app.remote import NOT_SENT, Receiver, file_name, is_public_address, is_remote
from originals import image_path

IMAGE = image_path("02_landscape_640x480.jpg")


class Folders:
    """What `Receiver` needs of the page's downloads: a new folder per call."""

    def __init__(self, root: Path) -> None:
        self.root, self.count = root, itertools.count()

    def new_folder(self) -> Path:
        folder = self.root / f"call-{next(self.count)}"
        folder.mkdir()
        return folder


@pytest.fixture
def served(tmp_path: Path):
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / IMAGE.name).write_bytes(IMAGE.read_bytes())
    with image_server(tmp_path / "www") as server:
        yield server


def receiver(tmp_path: Path, *trusted: str, max_bytes: int = 20 * 2**20, timeout: float = 10) -> Receiver:
    (tmp_path / "calls").mkdir(exist_ok=True)
    return Receiver(Folders(tmp_path / "calls"), max_bytes, timeout, trusted)


def test_a_loopback_url_is_refused_by_default_and_never_fetched(served, tmp_path: Path) -> None:
    url = served.base + IMAGE.name
    with receiver(tmp_path).receive([url, url.replace("127.0.0.1", "localhost")]) as got:
        assert got.files == {} and [e.reason for e in got.refused.values()] == [NOT_SENT, NOT_SENT]
        assert got.refused[0].name == IMAGE.name
    assert served.asked == []


def test_an_ipv6_loopback_url_is_refused(tmp_path: Path) -> None:
    try:
        context = image_server(tmp_path, "::1")
        server = context.__enter__()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    try:
        with receiver(tmp_path).receive([server.base + "x.png"]) as got:
            assert got.refused[0].reason == NOT_SENT
        assert server.asked == []
        with receiver(tmp_path, server.trusted).receive([server.base + "x.png"]) as got:
            assert "HTTP 404" in got.refused[0].reason  # trusted: fetched (and not found)
        assert server.asked == ["/x.png"]
    finally:
        context.__exit__(None, None, None)


def test_a_trusted_server_is_fetched_as_sent(served, tmp_path: Path) -> None:
    with receiver(tmp_path, served.trusted).receive([served.base + IMAGE.name]) as got:
        fetched = got.files[0]
        assert Path(fetched.path).read_bytes() == IMAGE.read_bytes() and fetched.name == IMAGE.name
        folder = Path(fetched.path).parent.parent
    assert not folder.exists()  # the call's files go when it ends


def test_a_redirect_to_an_untrusted_loopback_address_is_refused(served, tmp_path: Path) -> None:
    with image_server(tmp_path) as other:
        target = other.base + "anything.png"
        with receiver(tmp_path, served.trusted).receive([f"{served.base}redirect?to={target}"]) as got:
            assert got.refused[0].reason == NOT_SENT
        assert other.asked == []
    with receiver(tmp_path, served.trusted).receive([f"{served.base}redirect?to=file:///etc/passwd"]) as got:
        assert "redirects to something other than http(s)" in got.refused[0].reason


def test_a_huge_or_slow_answer_is_cut_off(served, tmp_path: Path) -> None:
    start = time.monotonic()
    with receiver(tmp_path, served.trusted, max_bytes=2**20, timeout=2).receive(
        [served.base + "endless", served.base + "slow"]
    ) as got:
        assert "larger than the 1 MB" in got.refused[0].reason
        assert "within 2 s" in got.refused[1].reason
    assert time.monotonic() - start < 6


def test_a_url_that_cannot_be_fetched_is_refused_alone(served, tmp_path: Path) -> None:
    """A trusted host with nothing listening: that image is refused with a reason, the others still come."""
    from appserver import free_port

    closed = f"127.0.0.1:{free_port()}"
    items = [f"http://{closed}/x.png", served.base + IMAGE.name]
    with receiver(tmp_path, served.trusted, closed).receive(items) as got:
        assert "could not be fetched (ConnectError)" in got.refused[0].reason
        assert Path(got.files[1].path).read_bytes() == IMAGE.read_bytes()


@pytest.mark.parametrize(
    "item", ["/etc/passwd", "file:///etc/passwd", "ftp://127.0.0.1/x.png", {"path": "file:///etc/hostname"}]
)
def test_server_paths_and_other_schemes_are_refused(item, tmp_path: Path) -> None:
    if isinstance(item, str) and item.startswith("/"):
        assert not is_remote(item)  # a path is not received at all: the upload checks refuse it (test_app_agents)
        return
    with receiver(tmp_path).receive([item]) as got:
        assert got.refused[0].reason == NOT_SENT and got.files == {}


def test_base64_data_is_received_with_or_without_the_data_prefix(tmp_path: Path) -> None:
    data = base64.b64encode(IMAGE.read_bytes()).decode()
    items = [f"data:image/jpeg;base64,{data}", data, "data:image/png,notbase64", "data:image/png;base64,@@@@"]
    with receiver(tmp_path).receive(items) as got:
        assert Path(got.files[0].path).read_bytes() == IMAGE.read_bytes() == Path(got.files[1].path).read_bytes()
        assert [got.files[0].name, got.files[1].name] == ["image 1", "image 2"]
        assert "must carry base64" in got.refused[2].reason and "not valid base64" in got.refused[3].reason
    with receiver(tmp_path, max_bytes=1000).receive([data]) as got:
        assert "larger than" in got.refused[0].reason


def test_names_cannot_escape_or_spoof() -> None:
    assert file_name("../../etc/passwd", 0) == ".._.._etc_passwd"
    assert file_name("evil\u202egnp.exe", 3) == "evil_gnp.exe"
    assert file_name("..", 4) == "image 5"


@pytest.mark.parametrize(
    "address, public",
    [("127.0.0.1", False), ("::1", False), ("10.1.2.3", False), ("169.254.169.254", False), ("::ffff:127.0.0.1", False),
     ("0.0.0.0", False), ("fe80::1", False), ("8.8.8.8", True), ("2606:4700::1111", True)],
)  # fmt: skip
def test_which_addresses_count_as_public(address: str, public: bool) -> None:
    assert is_public_address(address) is public  # classification only: nothing is contacted
