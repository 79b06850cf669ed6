"""Opening the library file: checks, migrations, and what to do when it is damaged.

At start the library is checked (``PRAGMA quick_check``); a damaged file is
moved aside, never deleted, with its -wal/-shm companions, the user is told in
one line, and a fresh library is opened. An older schema is migrated step by
step (``schema.MIGRATIONS``) after a backup copy is taken; a failing step rolls
back and leaves the file as it was. Every connection runs in WAL mode with
foreign keys on and a busy timeout, so a background writer and the UI can work
at once.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from app.errors import MinutelyError

from .schema import MIGRATIONS, Step

log = logging.getLogger("minutely.library")

DB_NAME = "library.sqlite3"
BUSY_TIMEOUT_MS = 5000


class LibraryError(MinutelyError):
    """A library problem, with a one-line message for the user."""


class NotFound(LibraryError):
    pass


def connect(path: str | os.PathLike) -> sqlite3.Connection:
    """A configured connection (autocommit; transactions are explicit)."""
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000,
                           check_same_thread=True)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":  # e.g. a network file system
        log.warning("library journal mode is %s, not WAL", mode)
    conn.execute("PRAGMA synchronous = FULL")
    return conn


def user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def _companions(path: Path) -> list[Path]:
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]


def move_aside(path: Path, why: str = "damaged") -> Path:
    """Rename the database (and its WAL/SHM files) out of the way; return the new name."""
    stamp = _stamp()
    target = path.with_name(f"{path.name}.{why}-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.{why}-{stamp}-{n}")
    for src in _companions(path):
        if src.exists():
            os.replace(src, target.with_name(target.name + src.name[len(path.name):]))
    return target


def check(path: Path) -> str | None:
    """None if the file is a healthy SQLite database; else why not."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error as e:
        return str(e)
    try:
        rows = [r[0] for r in conn.execute("PRAGMA quick_check").fetchall()]
        if rows != ["ok"]:
            return "; ".join(str(r) for r in rows[:3])
        return None
    except sqlite3.DatabaseError as e:
        return str(e)
    finally:
        conn.close()


def backup(conn: sqlite3.Connection, path: Path, version: int) -> Path:
    dest = path.with_name(f"{path.name}.bak-v{version}-{_stamp()}")
    out = sqlite3.connect(str(dest))
    try:
        conn.backup(out)
    finally:
        out.close()
    return dest


def migrate(conn: sqlite3.Connection, path: Path | None = None,
            migrations: list[tuple[int, Step]] = MIGRATIONS) -> list[int]:
    """Apply the steps above the file's version; return the versions applied."""
    current = user_version(conn)
    latest = migrations[-1][0]
    if current > latest:
        raise LibraryError(f"this library was written by a newer Minutely (schema v{current}, "
                           f"this one knows v{latest}); update Minutely to open it")
    todo = [(v, sql) for v, sql in migrations if v > current]
    if not todo:
        return []
    if current > 0 and path is not None:
        saved = backup(conn, path, current)
        log.info("library backed up to %s before migrating from v%d", saved.name, current)
    applied = []
    for version, step in todo:
        try:
            if isinstance(step, str):
                conn.executescript(f"BEGIN IMMEDIATE;\n{step}\nPRAGMA user_version = {version};\nCOMMIT;")
            else:  # a Python step: its statements, then the version, in one transaction
                conn.execute("BEGIN IMMEDIATE")
                step(conn)
                conn.execute(f"PRAGMA user_version = {version}")
                conn.execute("COMMIT")
        except (sqlite3.Error, ValueError) as e:   # ValueError: an entry a Python step cannot read
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise LibraryError(f"upgrading the library to v{version} failed ({e}); "
                               f"it was left unchanged at v{user_version(conn)}") from None
        applied.append(version)
    return applied


@dataclass
class Opened:
    conn: sqlite3.Connection
    path: Path
    notice: str | None  # one line for the user, e.g. a damaged library was set aside
    migrated: list[int]


def open_database(path: Path) -> Opened:
    """Open (creating, checking, migrating) the library database at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    notice = None
    if path.exists() and path.stat().st_size > 0:
        problem = check(path)
        if problem is not None:
            aside = move_aside(path)
            notice = (f"The library was damaged ({problem}); it was set aside as {aside.name} "
                      f"and a new, empty library was opened.")
            log.info("%s", notice)
    conn = None
    try:
        conn = connect(path)
        migrated = migrate(conn, path)
    except sqlite3.DatabaseError as e:  # damage that quick_check did not reach
        if conn is not None:
            conn.close()
        aside = move_aside(path)
        notice = (f"The library was damaged ({e}); it was set aside as {aside.name} "
                  f"and a new, empty library was opened.")
        log.info("%s", notice)
        conn = connect(path)
        migrated = migrate(conn, path)
    return Opened(conn, path, notice, migrated)

