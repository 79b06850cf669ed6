"""The undo history's rows: what an operation changed, stored and put back in SQL.

An entry (a ``segment_history`` row: a step) keeps each segment and speaker row it touched in
``history_segments`` / ``history_speakers``: one row per touched row, its columns as they were
(``before_*``; ``had`` = 0: there was no such row) and as they became (``after_*``; ``has`` = 0:
it is gone). Recording copies the rows with ``INSERT ... SELECT`` and ``UPDATE ... FROM``, and
undo/redo put them back the same way, so a 2,000-row step never passes through Python objects:
SQLite does the work without the interpreter lock, and the window's thread, which needs the lock
to lay out the transcript, is not held up (a JSON entry took ~12 ms of decoding per side).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from .db import LibraryError

COLUMNS = {
    "segments": ("session_id", "start", "end", "speaker_id", "text", "language", "embedding",
                 "edited", "original_text", "speaker_set"),
    "speakers": ("session_id", "label", "name", "profile_id", "embedding"),
}
TABLES = {"segments": ("history_segments", "segment_id"), "speakers": ("history_speakers", "speaker_id")}


def _cols(prefix: str, table: str, alias: str = "") -> str:
    return ", ".join(f'{alias}"{prefix}{c}"' for c in COLUMNS[table])


def touch(conn: sqlite3.Connection, step: int, table: str, ids: Sequence[int]) -> None:
    """Record rows of ``table`` as they are now (before the step changes them); ids already
    recorded in the step keep what was recorded first, ids of no row are recorded as absent."""
    if not ids:
        return
    hist, key = TABLES[table]
    arg = json.dumps(list(ids))
    conn.execute(f"INSERT OR IGNORE INTO {hist} (step_id, {key}, had, {_cols('before_', table)}) "
                 f"SELECT ?, id, 1, {_cols('', table)} FROM {table} WHERE id IN (SELECT value FROM json_each(?))",
                 (step, arg))
    conn.execute(f"INSERT OR IGNORE INTO {hist} (step_id, {key}, had) SELECT ?, value, 0 FROM json_each(?)",
                 (step, arg))


def created(conn: sqlite3.Connection, step: int, table: str, row_id: int) -> None:
    """Record a row the step made (there was no such row before it)."""
    hist, key = TABLES[table]
    conn.execute(f"INSERT OR IGNORE INTO {hist} (step_id, {key}, had) VALUES (?, ?, 0)", (step, row_id))


def finish(conn: sqlite3.Connection, step: int) -> bool:
    """Record the touched rows as they are now (after the step); returns whether any changed."""
    changed = False
    for table, (hist, key) in TABLES.items():
        sets = ", ".join(f'"after_{c}" = t."{c}"' for c in COLUMNS[table])
        conn.execute(f"UPDATE {hist} SET has = 1, {sets} FROM {table} AS t "
                     f"WHERE {hist}.step_id = ? AND t.id = {hist}.{key}", (step,))
        differs = " OR ".join(f'"before_{c}" IS NOT "after_{c}"' for c in COLUMNS[table])
        changed = changed or conn.execute(f"SELECT EXISTS (SELECT 1 FROM {hist} WHERE step_id = ? AND "
                                          f"(had IS NOT has OR {differs}))", (step,)).fetchone()[0] == 1
    return changed


def _upsert(conn: sqlite3.Connection, step: int, table: str, undo: bool) -> None:
    """Make the rows the step recorded in ``table`` (those it leaves existing) what they were
    before it (``undo``) or after it, changing only the columns the step changed, so that what
    changed them since (diarization, a rename) stays."""
    hist, key = TABLES[table]
    tp, lp = ("had", "has") if undo else ("has", "had")        # the state put back, the one left
    tg, lv = ("before_", "after_") if undo else ("after_", "before_")
    taken = conn.execute(f"SELECT 1 FROM {hist} AS h JOIN {table} AS t ON t.id = h.{key} WHERE h.step_id = ? "
                         f"AND h.{tp} AND (NOT h.{lp} OR t.session_id IS NOT h.{tg}session_id) LIMIT 1",
                         (step,)).fetchone()
    if taken:
        raise LibraryError("the transcript changed since (a row it would bring back is taken)")
    # a row the step removed (or, redone, made) and nothing took since comes back whole
    conn.execute(f"INSERT INTO {table} (id, {_cols('', table)}) SELECT h.{key}, {_cols(tg, table, 'h.')} "
                 f"FROM {hist} AS h WHERE h.step_id = ? AND h.{tp} AND NOT h.{lp} "
                 f"AND NOT EXISTS (SELECT 1 FROM {table} WHERE id = h.{key}) ORDER BY h.{key}", (step,))
    # rows kept: the text alone (its full-text trigger fires only where it changed), then the rest
    cols = [c for c in COLUMNS[table] if c != "session_id"]
    groups = [["text"], [c for c in cols if c != "text"]] if "text" in cols else [cols]
    for group in groups:
        sets = ", ".join(f'"{c}" = CASE WHEN h."{tg}{c}" IS NOT h."{lv}{c}" THEN h."{tg}{c}" ELSE {table}."{c}" END'
                         for c in group)
        differs = " OR ".join(f'h."{tg}{c}" IS NOT h."{lv}{c}"' for c in group)
        conn.execute(f"UPDATE {table} SET {sets} FROM {hist} AS h WHERE h.step_id = ? AND h.{key} = {table}.id "
                     f"AND h.{tp} AND h.{lp} AND ({differs})", (step,))


def _remove(conn: sqlite3.Connection, step: int, table: str, undo: bool) -> None:
    hist, key = TABLES[table]
    conn.execute(f"DELETE FROM {table} WHERE id IN (SELECT {key} FROM {hist} WHERE step_id = ? "
                 f"AND NOT {'had' if undo else 'has'})", (step,))


def apply(conn: sqlite3.Connection, step: int, undo: bool) -> tuple[list[int], bool]:
    """Undo (or redo) a step: speakers that exist in the state put back first (segments refer to
    them), then segments, then the segments and speakers that do not. Returns the segments the
    step recorded and whether they all kept their places (none came, went or moved in time)."""
    try:
        _upsert(conn, step, "speakers", undo)
        _upsert(conn, step, "segments", undo)
        _remove(conn, step, "segments", undo)
        _remove(conn, step, "speakers", undo)
    except sqlite3.IntegrityError as e:
        raise LibraryError(f"the transcript changed since ({e})") from None
    rows = conn.execute("SELECT segment_id, had AND has AND before_start = after_start FROM history_segments "
                        "WHERE step_id = ?", (step,)).fetchall()
    return [r[0] for r in rows], all(r[1] for r in rows)
