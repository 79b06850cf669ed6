"""One library connection and the small SQL helpers every part of the library shares.

``Library`` and its components (``Summaries``, ``Jobs``) hold the same ``Store``,
so they share its transaction: a write made by one component inside another's
``transaction()`` is part of it.

Writes use plain SQL on the connection (sqlite-utils' write helpers commit on
their own, which would split our transactions); reads go through sqlite-utils'
``query``.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlite_utils

from .db import NotFound
from .models import Segment


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Store:
    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self.db = sqlite_utils.Database(conn)
        self._depth = 0

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside happen together or not at all (nesting joins the outer one)."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self.conn.execute("ROLLBACK")
            raise
        self._depth = 0
        self.conn.execute("COMMIT")

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """One consistent snapshot for several SELECTs (WAL: never blocks a writer)."""
        if self._depth or self.conn.in_transaction:
            yield
            return
        self.conn.execute("BEGIN")
        try:
            yield
        finally:
            self.conn.execute("COMMIT")

    def insert(self, table: str, row: dict[str, Any]) -> int:
        cols = ", ".join(f'"{c}"' for c in row)
        marks = ", ".join("?" for _ in row)
        cur = self.conn.execute(f'INSERT INTO "{table}" ({cols}) VALUES ({marks})', list(row.values()))
        assert cur.lastrowid is not None  # an INSERT sets it
        return cur.lastrowid

    def update(self, table: str, pk: int, row: dict[str, Any]) -> None:
        if not row:
            return
        sets = ", ".join(f'"{c}" = ?' for c in row)
        cur = self.conn.execute(f'UPDATE "{table}" SET {sets} WHERE id = ?', [*row.values(), pk])
        if cur.rowcount == 0:
            raise NotFound(f"no {table[:-1].replace('_', ' ')} {pk}")

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return list(self.db.query(sql, params))

    def one(self, table: str, pk: int, what: str) -> dict[str, Any]:
        rows = self.rows(f'SELECT * FROM "{table}" WHERE id = ?', (pk,))
        if not rows:
            raise NotFound(f"no {what} {pk}")
        return rows[0]


SEGMENT_SQL = """SELECT g.id, g.session_id, g.start, g."end", g.text, g.speaker_id, g.language,
                        COALESCE(s.name, s.label) AS speaker, g.edited, g.original_text, g.speaker_set
                 FROM segments g LEFT JOIN speakers s ON s.id = g.speaker_id"""


def segment_of(row: Sequence[Any]) -> Segment:
    """A ``SEGMENT_SQL`` row as a Segment."""
    return Segment(row[0], row[1], row[2], row[3], row[4], speaker_id=row[5], language=row[6], speaker=row[7],
                   edited=bool(row[8]), original_text=row[9], speaker_set=bool(row[10]))


def read_segment(conn: sqlite3.Connection, segment_id: int) -> Segment:
    row = conn.execute(SEGMENT_SQL + " WHERE g.id = ?", (segment_id,)).fetchone()
    if row is None:
        raise NotFound(f"no segment {segment_id}")
    return segment_of(row)
