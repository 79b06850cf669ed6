"""The library: sessions and everything they hold, in one SQLite file.

``Library.open()`` is the one place the file is checked, migrated and (if
damaged) set aside; ``lib.connect()`` gives another connection to the same file
for another thread (a background job), since a SQLite connection belongs to the
thread that made it. Multi-row writes run in one transaction, so a reader in
another thread sees all of a change or none of it.

Media files live under ``<data folder>/media/<session id>/``; rows store their
paths relative to the data folder.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import sqlite_utils

from .db import DB_NAME, LibraryError, NotFound, connect, open_database
from .edits import Edits
from .events import Events
from .jobs import Jobs
from .models import (
    SESSION_KINDS,
    ChatMessage,
    Event,
    Media,
    Overlap,
    SearchHit,
    Segment,
    Session,
    SessionDetail,
    SessionState,
    Speaker,
    VoiceProfile,
)
from .search import search as _search
from .store import SEGMENT_SQL, Store, now_iso, read_segment, segment_of
from .summaries import Summaries


class Library:
    """Sessions, speakers, segments, media and chat; ``summaries``, ``jobs``, ``edits`` (the user's
    corrections, undoable) and ``events`` (calendar events) are components on the same connection
    (summaries.py, jobs.py, edits.py, events.py)."""

    conn: sqlite3.Connection
    db: sqlite_utils.Database
    data_dir: Path
    notice: str | None
    summaries: Summaries
    jobs: Jobs
    edits: Edits
    events: Events

    def __init__(self, conn: sqlite3.Connection, data_dir: Path, notice: str | None = None):
        self._store = Store(conn)
        self.conn = conn
        self.db = self._store.db
        self.data_dir = Path(data_dir)
        self.notice = notice  # one line to show the user once (a damaged library set aside)
        self.summaries = Summaries(self._store)
        self.jobs = Jobs(self._store)
        self.edits = Edits(self._store)
        self.events = Events(self._store)

    # -- opening ------------------------------------------------------------
    @classmethod
    def open(cls, data_dir: str | Path | None = None) -> Library:
        if data_dir is None:
            from app.paths import data_dir as default_dir

            data_dir = default_dir()
        data_dir = Path(data_dir)
        opened = open_database(data_dir / DB_NAME)
        return cls(opened.conn, data_dir, opened.notice)

    @property
    def path(self) -> Path:
        return self.data_dir / DB_NAME

    def connect(self) -> Library:
        """Another connection to the same library, for use in another thread."""
        return Library(connect(self.path), self.data_dir)

    def read_only(self) -> Library:
        """Another connection that SQLite will not let write (``PRAGMA query_only``)."""
        conn = connect(self.path)
        conn.execute("PRAGMA query_only = ON")
        return Library(conn, self.data_dir)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def transaction(self) -> AbstractContextManager[None]:
        """All writes inside happen together or not at all (nesting joins the outer one)."""
        return self._store.transaction()

    # -- sessions -----------------------------------------------------------
    def create_session(self, title: str, kind: str, *, source: str | None = None,
                       status: str = SessionState.NEW, language: str | None = None,
                       created: str | None = None) -> Session:
        if kind not in SESSION_KINDS:
            raise LibraryError(f"unknown session kind '{kind}'")
        sid = self._store.insert("sessions", {"title": title, "kind": kind, "source": source, "status": status,
                                        "language": language, "created": created or now_iso(),
                                        "updated": now_iso()})
        return self.get_session(sid)

    def get_session(self, session_id: int) -> Session:
        return Session(**self._store.one("sessions", session_id, "session"))

    def sessions(self, limit: int | None = None, offset: int = 0, *, since: str | None = None,
                 kind: str | None = None, status: str | None = None) -> list[Session]:
        """Sessions newest first; ``since``: created on or after that ISO date/time;
        ``kind``/``status``: only those."""
        sql, params = "SELECT * FROM sessions WHERE 1", []
        for col, op, value in (("created", ">=", since), ("kind", "=", kind), ("status", "=", status)):
            if value is not None:
                sql += f" AND {col} {op} ?"
                params.append(str(value))
        sql += " ORDER BY created DESC, id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)} OFFSET {int(offset)}"
        return [Session(**r) for r in self._store.rows(sql, params)]

    def update_session(self, session_id: int, **changes: Any) -> Session:
        allowed = {"title", "status", "duration", "language", "source"}
        bad = set(changes) - allowed
        if bad:
            raise LibraryError(f"cannot change {', '.join(sorted(bad))} of a session")
        if "status" in changes:
            try:
                changes["status"] = SessionState(changes["status"])
            except ValueError:
                raise LibraryError(f"unknown session status '{changes['status']}'") from None
        self._store.update("sessions", session_id, {**changes, "updated": now_iso()})
        return self.get_session(session_id)

    def delete_session(self, session_id: int) -> None:
        """Delete the session, everything it holds, and its media folder."""
        self.get_session(session_id)
        with self.transaction():
            self.conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
        folder = self.media_dir(session_id, create=False)
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)

    def session_detail(self, session_id: int) -> SessionDetail:
        with self._store.snapshot():
            return SessionDetail(self.get_session(session_id), self.speakers(session_id),
                                 self.segments(session_id), self.summaries.for_session(session_id),
                                 self.summaries.session_action_items(session_id), self.media(session_id),
                                 self.overlaps(session_id))

    # -- speakers and voice profiles ----------------------------------------
    def ensure_speaker(self, session_id: int, label: str) -> Speaker:
        self.conn.execute("INSERT OR IGNORE INTO speakers (session_id, label) VALUES (?, ?)",
                          (session_id, label))
        return self.speaker(session_id, label)

    def speaker(self, session_id: int, label: str) -> Speaker:
        rows = self._store.rows("SELECT * FROM speakers WHERE session_id = ? AND label = ?", (session_id, label))
        if not rows:
            raise NotFound(f"session {session_id} has no speaker '{label}'")
        return Speaker(**rows[0])

    def speakers(self, session_id: int) -> list[Speaker]:
        return [Speaker(**r) for r in
                self._store.rows("SELECT * FROM speakers WHERE session_id = ? ORDER BY id", (session_id,))]

    def rename_speaker(self, session_id: int, label: str, name: str | None) -> Speaker:
        sp = self.speaker(session_id, label)
        self._store.update("speakers", sp.id, {"name": (name or "").strip() or None})
        return self.speaker(session_id, label)

    def merge_speakers(self, session_id: int, label: str, into_label: str) -> Speaker:
        """Give all of ``label``'s segments to ``into_label`` and remove ``label``."""
        src, dst = self.speaker(session_id, label), self.speaker(session_id, into_label)
        with self.transaction():
            self.conn.execute("UPDATE segments SET speaker_id = ? WHERE speaker_id = ?", (dst.id, src.id))
            self.conn.execute("UPDATE overlaps SET speaker_id = ? WHERE speaker_id = ?", (dst.id, src.id))
            self.conn.execute("DELETE FROM speakers WHERE id = ?", (src.id,))
        return dst

    def link_speaker_profile(self, speaker_id: int, profile_id: int | None) -> None:
        self._store.update("speakers", speaker_id, {"profile_id": profile_id})

    def set_speaker_voice(self, speaker_id: int, embedding, name: str | None = None,
                          profile_id: int | None = None) -> None:
        row: dict[str, Any] = {"embedding": embedding.astype("<f4").tobytes()
                               if hasattr(embedding, "astype") else embedding}
        if name is not None:
            row["name"] = name
        if profile_id is not None:
            row["profile_id"] = profile_id
        self._store.update("speakers", speaker_id, row)

    def segment_embeddings(self, session_id: int) -> list[tuple[int, float, float, bytes | None]]:
        """(segment id, start, end, embedding bytes) in time order: what diarization needs."""
        return [tuple(r) for r in self.conn.execute(
            'SELECT id, start, "end", embedding FROM segments WHERE session_id = ? ORDER BY start, id',
            (session_id,))]

    def assign_speakers(self, session_id: int, labels: dict[int, str]) -> set[str]:
        """Set each segment's speaker (segment id -> label), creating speakers as needed,
        and drop speakers no segment refers to any more. A segment whose speaker the user
        chose (``speaker_set``) keeps it. Returns the labels of ``labels`` still in use."""
        with self.transaction():
            ids = {label: self.ensure_speaker(session_id, label).id for label in set(labels.values())}
            self.conn.executemany("UPDATE segments SET speaker_id = ? WHERE id = ? AND session_id = ? "
                                  "AND speaker_set = 0",
                                  [(ids[lab], gid, session_id) for gid, lab in labels.items()])
            self.conn.execute("""DELETE FROM speakers WHERE session_id = ? AND id NOT IN
                                 (SELECT DISTINCT speaker_id FROM segments WHERE session_id = ?
                                  AND speaker_id IS NOT NULL)""", (session_id, session_id))
            left = {r[0] for r in self.conn.execute("SELECT label FROM speakers WHERE session_id = ?",
                                                    (session_id,))}
        return left & set(labels.values())

    def add_voice_profile(self, name: str, embedding: Any, samples: int = 1) -> VoiceProfile:
        emb = embedding.tobytes() if hasattr(embedding, "tobytes") else embedding
        pid = self._store.insert("voice_profiles", {"name": name, "embedding": emb, "samples": samples,
                                              "created": now_iso(), "updated": now_iso()})
        return self.voice_profile(pid)

    def update_voice_profile(self, profile_id: int, **changes: Any) -> VoiceProfile:
        if "embedding" in changes and hasattr(changes["embedding"], "tobytes"):
            changes["embedding"] = changes["embedding"].tobytes()
        bad = set(changes) - {"name", "embedding", "samples"}
        if bad:
            raise LibraryError(f"cannot change {', '.join(sorted(bad))} of a voice profile")
        self._store.update("voice_profiles", profile_id, {**changes, "updated": now_iso()})
        return self.voice_profile(profile_id)

    def voice_profile(self, profile_id: int) -> VoiceProfile:
        return VoiceProfile(**self._store.one("voice_profiles", profile_id, "voice profile"))

    def voice_profiles(self) -> list[VoiceProfile]:
        return [VoiceProfile(**r) for r in self._store.rows("SELECT * FROM voice_profiles ORDER BY name")]

    def delete_voice_profile(self, profile_id: int) -> None:
        self.conn.execute("DELETE FROM voice_profiles WHERE id = ?", (profile_id,))

    # -- segments -----------------------------------------------------------
    def add_segments(self, session_id: int, segments: Iterable[dict[str, Any]]) -> list[int]:
        """Insert segments ({start, end, text, speaker?, language?}) in one transaction;
        the session's duration grows to cover them."""
        ids = []
        with self.transaction():
            end_max = 0.0
            for s in segments:
                label = s.get("speaker")
                sp_id = self.ensure_speaker(session_id, label).id if label else None
                start, end = float(s["start"]), float(s["end"])
                if end < start or start < 0:
                    raise LibraryError(f"a segment cannot run from {start:.2f}s to {end:.2f}s")
                emb: Any = s.get("embedding")
                ids.append(self._store.insert("segments", {
                    "session_id": session_id, "start": start, "end": end,
                    "speaker_id": sp_id, "text": s.get("text", ""), "language": s.get("language"),
                    "embedding": emb.astype("<f4").tobytes() if hasattr(emb, "astype") else emb}))
                end_max = max(end_max, end)
            self.conn.execute("UPDATE sessions SET duration = MAX(duration, ?), updated = ? WHERE id = ?",
                              (end_max, now_iso(), session_id))
        return ids

    def replace_segment(self, segment_id: int, pieces: Iterable[dict[str, Any]]) -> list[int]:
        """Put ``pieces`` (as ``add_segments`` takes them) in place of one segment, in one
        transaction: a segment cut where its speaker changes."""
        g = self.segment(segment_id)
        with self.transaction():
            self.conn.execute("DELETE FROM segments WHERE id = ?", (segment_id,))
            return self.add_segments(g.session_id, pieces)

    def add_segment(self, session_id: int, start: float, end: float, text: str,
                    speaker: str | None = None, language: str | None = None) -> Segment:
        (sid,) = self.add_segments(session_id, [{"start": start, "end": end, "text": text,
                                                 "speaker": speaker, "language": language}])
        return self.segment(sid)

    def segment(self, segment_id: int) -> Segment:
        return read_segment(self.conn, segment_id)

    def segments_by_id(self, ids: Sequence[int]) -> list[Segment]:
        """Segments by id, in the order given (500 to a query); an id with no segment is left out."""
        found: dict[int, Segment] = {}
        for k in range(0, len(ids), 500):
            chunk = list(ids[k:k + 500])
            rows = self.conn.execute(SEGMENT_SQL + f" WHERE g.id IN ({', '.join('?' * len(chunk))})", chunk)
            found.update((g.id, g) for g in map(segment_of, rows))
        return [found[i] for i in ids if i in found]

    def segments(self, session_id: int, start: float | None = None, end: float | None = None) -> list[Segment]:
        sql = SEGMENT_SQL + " WHERE g.session_id = ?"
        params: list[Any] = [session_id]
        if start is not None:
            sql += ' AND g."end" > ?'
            params.append(start)
        if end is not None:
            sql += " AND g.start < ?"
            params.append(end)
        return [segment_of(row) for row in self.conn.execute(sql + " ORDER BY g.start, g.id", params)]

    def overlaps(self, session_id: int) -> list[Overlap]:
        """Where a second person speaks over a segment's speaker, in time order."""
        rows = self.conn.execute(
            'SELECT o.id, o.session_id, o.start, o."end", o.speaker_id, coalesce(s.name, s.label) '
            "FROM overlaps o LEFT JOIN speakers s ON s.id = o.speaker_id "
            "WHERE o.session_id = ? ORDER BY o.start, o.id", (session_id,))
        return [Overlap(*r) for r in rows]

    def set_overlaps(self, session_id: int, marks: Iterable[tuple[float, float, int | None]],
                     after: float = 0.0) -> int:
        """Replace the session's overlap marks from ``after`` seconds on (a continued recording's
        part) with ``marks`` ((start, end, second speaker's id))."""
        rows = [(session_id, float(a), float(b), sp) for a, b, sp in marks if b > a]
        with self.transaction():
            self.conn.execute("DELETE FROM overlaps WHERE session_id = ? AND start >= ?", (session_id, after))
            self.conn.executemany('INSERT INTO overlaps (session_id, start, "end", speaker_id) VALUES (?, ?, ?, ?)',
                                  rows)
        return len(rows)

    def segment_count(self, session_id: int) -> int:
        return self.conn.execute("SELECT count(*) FROM segments WHERE session_id = ?", (session_id,)).fetchone()[0]

    def update_segment(self, segment_id: int, **changes: Any) -> Segment:
        bad = set(changes) - {"text", "start", "end", "language", "speaker_id"}
        if bad:
            raise LibraryError(f"cannot change {', '.join(sorted(bad))} of a segment")
        self._store.update("segments", segment_id, changes)
        return self.segment(segment_id)

    def delete_segments(self, session_id: int, after: float | None = None, *, keep_edited: bool = True) -> int:
        """Remove a session's segments (those starting at or after ``after``) before they are
        transcribed again; what the user corrected (words, bounds or speaker) stays unless
        ``keep_edited=False``."""
        sql = "DELETE FROM segments WHERE session_id = ?"
        params: list[Any] = [session_id]
        if after is not None:
            sql += " AND start >= ?"
            params.append(after)
        if keep_edited:
            sql += " AND edited = 0 AND speaker_set = 0"
        return self.conn.execute(sql, params).rowcount

    # -- media --------------------------------------------------------------
    def media_dir(self, session_id: int, create: bool = True) -> Path:
        d = self.data_dir / "media" / str(int(session_id))
        if create:
            d.mkdir(parents=True, exist_ok=True)
        return d

    def relative(self, path: str | Path) -> str:
        """A path as the database stores it: relative to the data folder."""
        p = Path(path)
        if p.is_absolute():
            try:
                p = p.resolve().relative_to(self.data_dir.resolve())
            except ValueError:
                raise LibraryError(f"media must live in the data folder: {path}") from None
        if ".." in p.parts:
            raise LibraryError(f"media path leaves the data folder: {path}")
        return p.as_posix()

    def absolute(self, media: Media | str) -> Path:
        return self.data_dir / (media.path if isinstance(media, Media) else media)

    def add_media(self, session_id: int, path: str | Path, kind: str, offset: float = 0.0, *,
                  width: int | None = None, height: int | None = None, size: int | None = None) -> Media:
        rel = self.relative(path)
        if size is None and self.absolute(rel).exists():
            size = self.absolute(rel).stat().st_size
        mid = self._store.insert("media", {"session_id": session_id, "offset": float(offset), "path": rel,
                                     "kind": kind, "width": width, "height": height, "bytes": size,
                                     "created": now_iso()})
        return Media(**self._store.one("media", mid, "media item"))

    def forget_media(self, media_id: int) -> None:
        """Remove a media row and keep its file (it was folded into another, e.g. joined audio)."""
        self.conn.execute("DELETE FROM media WHERE id = ?", (media_id,))

    def media(self, session_id: int, kind: str | None = None) -> list[Media]:
        sql = 'SELECT * FROM media WHERE session_id = ?'
        params: list[Any] = [session_id]
        if kind:
            sql += " AND kind = ?"
            params.append(kind)
        return [Media(**r) for r in self._store.rows(sql + ' ORDER BY "offset", id', params)]

    def delete_media(self, session_id: int, kind: str) -> int:
        """Remove a session's media of one kind: the files and their rows. Returns how many."""
        items = self.media(session_id, kind)
        for m in items:
            self.absolute(m).unlink(missing_ok=True)
        self.conn.execute("DELETE FROM media WHERE session_id = ? AND kind = ?", (session_id, kind))
        return len(items)

    def session_audio(self, session_id: int, *, include_source: bool = False) -> Path | None:
        """The session's own audio file (a recording's or dictation's) that exists, else
        (``include_source``) the file it was imported from, if still there; else None."""
        for m in self.media(session_id, "audio"):
            p = self.absolute(m)
            if p.exists():
                return p
        if include_source:
            source = self.get_session(session_id).source
            if source and Path(source).exists():
                return Path(source)
        return None

    # -- chat -------------------------------------------------------------
    def add_chat_message(self, session_id: int, role: str, content: str,
                         attachments: list[Any] | None = None) -> ChatMessage:
        mid = self._store.insert("chat_messages", {"session_id": session_id, "role": role, "content": content,
                                             "attachments": json.dumps(attachments or []),
                                             "created": now_iso()})
        return self._chat(self._store.one("chat_messages", mid, "chat message"))

    @staticmethod
    def _chat(r: dict[str, Any]) -> ChatMessage:
        return ChatMessage(**{**r, "attachments": json.loads(r["attachments"] or "[]")})

    def chat(self, session_id: int) -> list[ChatMessage]:
        return [self._chat(r) for r in self._store.rows(
            "SELECT * FROM chat_messages WHERE session_id = ? ORDER BY id", (session_id,))]

    def clear_chat(self, session_id: int) -> int:
        """Forget a session's chat; returns the number of messages removed."""
        with self.transaction():
            return self.conn.execute("DELETE FROM chat_messages WHERE session_id = ?", (session_id,)).rowcount

    # -- calendar events (events.py) ------------------------------------------
    def events_between(self, start: Any, end: Any) -> list[Event]:
        """Calendar events overlapping [start, end) (datetimes or ISO strings), in start order."""
        return self.events.between(start, end)

    def event_at(self, t: Any, end: Any = None) -> Event | None:
        """The calendar event a recording made at ``t`` (until ``end``) belongs to, if any."""
        return self.events.at(t, end)

    # -- search -------------------------------------------------------------
    def search(self, query: str, limit: int = 50, highlight: tuple[str, str] = ("[", "]"),
               session_id: int | None = None) -> list[SearchHit]:
        return _search(self.conn, query, limit=limit, highlight=highlight, session_id=session_id)

