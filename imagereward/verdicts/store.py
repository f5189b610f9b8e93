"""Verdicts collected on the server, when its operator turns collection on (`IMAGEREWARD_VERDICTS_DB`): one SQLite
file holding every verdict and, once per content, the images they name.

Nothing acknowledged is lost: a verdict is acknowledged only after the transaction that holds it has committed
(WAL, `synchronous=FULL`), so a server killed at any moment leaves a store that opens with every acknowledged
verdict in it. One writer thread commits what is waiting in one transaction (group commit), so many visitors
at once cost one commit each round, not one each. The schema is versioned (`PRAGMA user_version`) and migrated
on open. Each visitor's verdicts and image bytes per hour are bounded, and so is the store's size: past that a
verdict is refused with a sentence (`StoreRefusal`). Nothing here reads verdicts back for a visitor: only
`export` and `verdicts` (the operator's command line) read them.
"""

from __future__ import annotations

import hashlib
import json
import queue
import secrets
import sqlite3
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from .pairs import Verdict, write_pairs

# Each migration brings the schema from version k to k + 1; a store is migrated on open.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE verdicts (
        id INTEGER PRIMARY KEY,
        received REAL NOT NULL,          -- when the server received it (seconds since the epoch)
        visitor TEXT NOT NULL,           -- a keyed hash of who sent it (never the address itself)
        prompt TEXT NOT NULL,
        a TEXT NOT NULL, b TEXT NOT NULL,
        a_sha256 TEXT NOT NULL, b_sha256 TEXT NOT NULL,
        verdict TEXT NOT NULL CHECK (verdict IN ('a', 'b', 'tie', 'both_bad')),
        scores TEXT NOT NULL,            -- JSON: {judge: [score of A, score of B]}
        model TEXT NOT NULL,
        time TEXT NOT NULL,
        bytes INTEGER NOT NULL           -- the image bytes this verdict added to the store
    );
    CREATE INDEX verdicts_by_visitor ON verdicts (visitor, received);
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE images (
        sha256 TEXT PRIMARY KEY,
        suffix TEXT NOT NULL,            -- the file's extension, e.g. .png
        data BLOB NOT NULL
    );
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
HOUR = 3600.0


class StoreRefusal(Exception):
    """A verdict the store did not take; the message is the sentence to show."""


@dataclass(frozen=True)
class Image:
    """An image a verdict names: its bytes and its extension."""

    data: bytes
    suffix: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def connect(path: str | Path) -> sqlite3.Connection:
    """The store at `path` (created if missing), migrated to `SCHEMA_VERSION`.

    Raises:
        ValueError: the file's schema is newer than this package knows.
    """
    db = sqlite3.connect(str(path), timeout=30, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        db.close()
        raise ValueError(f"{path} holds schema version {version}; this package knows up to {SCHEMA_VERSION}")
    for k in range(version, SCHEMA_VERSION):
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[k].split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {k + 1}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    return db


class VerdictStore:
    """The server's store: `record` from any thread, acknowledged once committed.

    Args:
        path: the SQLite file.
        per_hour: the verdicts one visitor may add per hour (`IMAGEREWARD_VERDICTS_PER_HOUR`).
        max_bytes: the store's largest size (`IMAGEREWARD_VERDICTS_MAX_MB`); past it, verdicts are refused.
        bytes_per_hour: the image bytes one visitor may add per hour (default: 20 MB for each verdict allowed).
    """

    def __init__(
        self, path: str | Path, per_hour: int = 600, max_bytes: int = 1024 * 2**20, bytes_per_hour: int | None = None
    ) -> None:
        self.path = Path(path)
        self.per_hour = per_hour
        self.max_bytes = max_bytes
        self.bytes_per_hour = bytes_per_hour if bytes_per_hour is not None else per_hour * 20 * 2**20
        self._db = connect(self.path)
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('visitor_salt', ?)", (secrets.token_hex(16),))
        self._salt = self._db.execute("SELECT value FROM meta WHERE key = 'visitor_salt'").fetchone()[0]
        self._waiting: queue.Queue[tuple[str, Verdict, Sequence[Image], Future] | None] = queue.Queue()
        self._writer = threading.Thread(target=self._write, name="imagereward-verdicts", daemon=True)
        self._writer.start()

    def visitor_key(self, visitor: str) -> str:
        """How the store names a visitor: a hash keyed with the store's own secret (never the address)."""
        return hashlib.sha256(f"{self._salt}:{visitor}".encode()).hexdigest()[:32]

    # ------------------------------------------------------------------------------------------ writing
    def record(self, visitor: str, verdict: Verdict, images: Sequence[Image] = ()) -> Future:
        """Queues a verdict (with the images it names) for the writer; the future's result is the verdict's id
        once committed, or it raises `StoreRefusal` with the sentence to show."""
        done: Future = Future()
        self._waiting.put((visitor, verdict, images, done))
        return done

    def add(self, visitor: str, verdict: Verdict, images: Sequence[Image] = (), timeout: float = 30) -> int:
        """`record`, waiting for the commit: the verdict's id.

        Raises:
            StoreRefusal: over the visitor's hourly share, or the store is full (the message says which).
        """
        return self.record(visitor, verdict, images).result(timeout)

    def _write(self) -> None:
        while True:
            first = self._waiting.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < 256:
                try:
                    item = self._waiting.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._waiting.put(None)
                    break
                batch.append(item)
            self._commit(batch)

    def _commit(self, batch: list[tuple[str, Verdict, Sequence[Image], Future]]) -> None:
        outcomes: list[int | StoreRefusal] = []
        now = time.time()
        try:
            self._db.execute("BEGIN IMMEDIATE")
            size = self._size()
            for visitor, verdict, images, _ in batch:
                try:
                    outcomes.append(self._insert(visitor, verdict, images, now, size))
                    size = self._size()
                except StoreRefusal as refusal:
                    outcomes.append(refusal)
            self._db.execute("COMMIT")
        except sqlite3.Error as e:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            for *_, done in batch:
                done.set_exception(StoreRefusal(f"The verdict could not be stored ({e}); it still counts on the page."))
            return
        for (*_, done), outcome in zip(batch, outcomes):
            if isinstance(outcome, StoreRefusal):
                done.set_exception(outcome)
            else:
                done.set_result(outcome)

    def _size(self) -> int:
        pages = self._db.execute("PRAGMA page_count").fetchone()[0]
        return pages * self._db.execute("PRAGMA page_size").fetchone()[0]

    def _insert(self, visitor: str, verdict: Verdict, images: Sequence[Image], now: float, size: int) -> int:
        count, used = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM verdicts WHERE visitor = ? AND received > ?",
            (visitor, now - HOUR),
        ).fetchone()
        if count >= self.per_hour:
            raise StoreRefusal(
                f"You have given {count} verdicts in the last hour, the most this page keeps from one visitor; "
                "they still count on the page, and your download keeps them all."
            )
        new = [
            image
            for image in {i.sha256: i for i in images}.values()
            if self._db.execute("SELECT 1 FROM images WHERE sha256 = ?", (image.sha256,)).fetchone() is None
        ]
        added = sum(len(i.data) for i in new)
        if used + added > self.bytes_per_hour:
            raise StoreRefusal(
                "Your images of the last hour fill this visitor's share of the page's store; your verdicts still "
                "count on the page, and your download keeps them all."
            )
        if size + added > self.max_bytes:
            raise StoreRefusal(
                "The page's store of verdicts is full; your verdicts still count on the page, and your download "
                "keeps them all."
            )
        for image in new:
            self._db.execute("INSERT INTO images VALUES (?, ?, ?)", (image.sha256, image.suffix, image.data))
        cursor = self._db.execute(
            "INSERT INTO verdicts (received, visitor, prompt, a, b, a_sha256, b_sha256, verdict, scores, model, time,"
            " bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                now,
                visitor,
                verdict.prompt,
                verdict.a,
                verdict.b,
                verdict.a_sha256,
                verdict.b_sha256,
                verdict.verdict,
                json.dumps(verdict.scores),
                verdict.model,
                verdict.time,
                added,
            ),
        )
        return int(cursor.lastrowid or 0)

    def close(self) -> None:
        """Commits what is waiting, then closes the file."""
        self._waiting.put(None)
        self._writer.join(timeout=60)
        self._db.close()


# ----------------------------------------------------------------------------- the operator's reading
def stored_verdicts(path: str | Path) -> Iterator[Verdict]:
    """Every verdict of a store, in the order received (the operator's: never served to a visitor)."""
    db = connect(path)
    try:
        rows = db.execute(
            "SELECT prompt, a, b, a_sha256, b_sha256, verdict, scores, model, time FROM verdicts ORDER BY id"
        )
        for prompt, a, b, a_sha, b_sha, verdict, scores, model, when in rows:
            yield Verdict(prompt, a, b, verdict, json.loads(scores), a_sha, b_sha, model, when)
    finally:
        db.close()


def export(path: str | Path, out: str | Path) -> tuple[int, int]:
    """Writes a store's verdicts as `out/pairs.jsonl` and the images they name as `out/images/<sha256><ext>`,
    as the page's download lays them out; returns (verdicts, images) written."""
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    with open(out / "pairs.jsonl", "w", encoding="utf-8") as f:
        count = write_pairs(stored_verdicts(path), f)
    db = connect(path)
    try:
        images = 0
        for sha, suffix, data in db.execute("SELECT sha256, suffix, data FROM images ORDER BY sha256"):
            (out / "images" / f"{sha}{suffix}").write_bytes(data)
            images += 1
    finally:
        db.close()
    return count, images
