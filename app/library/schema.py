"""The library's schema as numbered migration steps (``PRAGMA user_version``).

Each step is SQL run in one transaction together with the version bump, so a
failing step leaves the database exactly as it was. Steps are only ever
appended: a released step is never edited.

1. The core: sessions, speakers, voice profiles, segments, media.
2. What understanding and jobs need: summaries, action items, chat messages,
   jobs; and full-text search (FTS5, external content, kept in sync by
   triggers) over segment text, session titles and summaries, backfilled from
   rows a version-1 library already holds.
3. Voices: a speaker embedding per segment (what diarization clusters, kept so
   an interrupted transcription resumes without re-reading audio) and per
   speaker (the centroid a voice profile is saved from).
4. Structured summaries: a summary's state while it is written (``status``:
   writing / done / failed / cancelled, and ``updated``), and its decisions and
   open questions as rows (``summary_points``), like its action items.
5. Corrections: a segment the user changed (``edited``: its words or its
   bounds), the model's words where the user changed them (``original_text``),
   a speaker the user chose (``speaker_set``: diarization leaves it alone), and
   the per-session undo history of those changes (``segment_history``).
6. Calendars: imported ``.ics`` calendars (one row per file), their events
   expanded over a window (one row per occurrence, keyed by UID and
   recurrence id, times in UTC) with attendees; and the event a session was
   recorded during (``session_events``) with its attendees
   (``session_attendees``, full-text searchable by name and email), kept when
   the calendar changes.
7. The undo history as rows: each entry's touched segments and speakers, one
   row each with their columns before and after (``history_segments``,
   ``history_speakers``), so undo and redo are SQL rather than JSON decoded in
   Python. Entries written as JSON before are moved into the rows (a Python
   step: SQL cannot decode their base64 embeddings) and stay undoable.
8. Overlap marks: stretches where a second person speaks over a segment's
   speaker (``overlaps``: the second speaker, found by transcription), kept
   beside the segments so the words stay with the segment.

A step is SQL, or a Python function given the connection when SQL alone
cannot do it; either runs inside the step's transaction.
"""

from __future__ import annotations

import base64
import json
import logging
import sqlite3
from collections.abc import Callable

STEP_1 = """
CREATE TABLE sessions (
    id        INTEGER PRIMARY KEY,
    title     TEXT NOT NULL DEFAULT '',
    created   TEXT NOT NULL,
    updated   TEXT,
    kind      TEXT NOT NULL CHECK (kind IN ('recording', 'file', 'dictation')),
    status    TEXT NOT NULL DEFAULT 'new'
              CHECK (status IN ('new', 'recording', 'transcribing', 'ready', 'failed')),
    duration  REAL NOT NULL DEFAULT 0 CHECK (duration >= 0),
    source    TEXT,
    language  TEXT
);
CREATE INDEX sessions_created ON sessions (created);

CREATE TABLE voice_profiles (
    id        INTEGER PRIMARY KEY,
    name      TEXT NOT NULL,
    embedding BLOB,
    samples   INTEGER NOT NULL DEFAULT 0,
    created   TEXT NOT NULL,
    updated   TEXT
);

CREATE TABLE speakers (
    id         INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    label      TEXT NOT NULL,
    name       TEXT,
    profile_id INTEGER REFERENCES voice_profiles (id) ON DELETE SET NULL,
    UNIQUE (session_id, label)
);

CREATE TABLE segments (
    id         INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    start      REAL NOT NULL CHECK (start >= 0),
    "end"      REAL NOT NULL,
    speaker_id INTEGER REFERENCES speakers (id) ON DELETE SET NULL,
    text       TEXT NOT NULL DEFAULT '',
    language   TEXT,
    CHECK ("end" >= start)
);
CREATE INDEX segments_session_start ON segments (session_id, start);
CREATE INDEX segments_speaker ON segments (speaker_id);

CREATE TABLE media (
    id         INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    "offset"   REAL NOT NULL DEFAULT 0,
    path       TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('screenshot', 'frame', 'audio', 'video', 'image')),
    width      INTEGER,
    height     INTEGER,
    bytes      INTEGER,
    created    TEXT NOT NULL
);
CREATE INDEX media_session_offset ON media (session_id, "offset");
"""

STEP_2_TEMPLATE = """
CREATE TABLE summaries (
    id         INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    template   TEXT NOT NULL,
    text       TEXT NOT NULL DEFAULT '',
    model      TEXT,
    created    TEXT NOT NULL
);
CREATE INDEX summaries_session ON summaries (session_id, created);

CREATE TABLE action_items (
    id         INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    summary_id INTEGER REFERENCES summaries (id) ON DELETE SET NULL,
    text       TEXT NOT NULL,
    owner      TEXT,
    due        TEXT,
    done       INTEGER NOT NULL DEFAULT 0 CHECK (done IN (0, 1))
);
CREATE INDEX action_items_session ON action_items (session_id);

CREATE TABLE chat_messages (
    id          INTEGER PRIMARY KEY,
    session_id  INTEGER NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant', 'tool')),
    content     TEXT NOT NULL DEFAULT '',
    attachments TEXT NOT NULL DEFAULT '[]',
    created     TEXT NOT NULL
);
CREATE INDEX chat_messages_session ON chat_messages (session_id, id);

CREATE TABLE jobs (
    id         INTEGER PRIMARY KEY,
    kind       TEXT NOT NULL,
    session_id INTEGER REFERENCES sessions (id) ON DELETE CASCADE,
    state      TEXT NOT NULL DEFAULT 'queued'
               CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled', 'interrupted')),
    progress   REAL NOT NULL DEFAULT 0,
    error      TEXT,
    created    TEXT NOT NULL,
    started    TEXT,
    finished   TEXT,
    updated    TEXT,
    resume     TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX jobs_state ON jobs (state);
CREATE INDEX jobs_session ON jobs (session_id);

{fts}
-- rows written by a version-1 library become searchable
INSERT INTO segments_fts (segments_fts) VALUES ('rebuild');
INSERT INTO sessions_fts (sessions_fts) VALUES ('rebuild');
"""



def _fts(table: str, column: str) -> str:
    """An external-content FTS5 index over ``table.column`` and the triggers that keep
    it in sync. (Part of released step 2: its output must never change.)"""
    return f"""
CREATE VIRTUAL TABLE {table}_fts USING fts5 (
    {column}, content='{table}', content_rowid='id', tokenize='unicode61 remove_diacritics 2',
    prefix='2 3');
CREATE TRIGGER {table}_ai AFTER INSERT ON {table} BEGIN
    INSERT INTO {table}_fts (rowid, {column}) VALUES (new.id, new.{column});
END;
CREATE TRIGGER {table}_ad AFTER DELETE ON {table} BEGIN
    INSERT INTO {table}_fts ({table}_fts, rowid, {column}) VALUES ('delete', old.id, old.{column});
END;
CREATE TRIGGER {table}_au AFTER UPDATE OF {column} ON {table} BEGIN
    INSERT INTO {table}_fts ({table}_fts, rowid, {column}) VALUES ('delete', old.id, old.{column});
    INSERT INTO {table}_fts (rowid, {column}) VALUES (new.id, new.{column});
END;
"""


STEP_2 = STEP_2_TEMPLATE.replace(
    "{fts}", _fts("segments", "text") + _fts("sessions", "title") + _fts("summaries", "text"))

STEP_3 = """
ALTER TABLE segments ADD COLUMN embedding BLOB;
ALTER TABLE speakers ADD COLUMN embedding BLOB;
"""

STEP_4 = """
ALTER TABLE summaries ADD COLUMN status TEXT NOT NULL DEFAULT 'done'
    CHECK (status IN ('writing', 'done', 'failed', 'cancelled'));
ALTER TABLE summaries ADD COLUMN updated TEXT;

CREATE TABLE summary_points (
    id         INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    summary_id INTEGER NOT NULL REFERENCES summaries (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL CHECK (kind IN ('decision', 'question')),
    text       TEXT NOT NULL,
    position   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX summary_points_summary ON summary_points (summary_id, kind, position);
CREATE INDEX summary_points_session ON summary_points (session_id);
CREATE INDEX action_items_summary ON action_items (summary_id);
"""

STEP_5 = """
ALTER TABLE segments ADD COLUMN edited INTEGER NOT NULL DEFAULT 0 CHECK (edited IN (0, 1));
ALTER TABLE segments ADD COLUMN original_text TEXT;
ALTER TABLE segments ADD COLUMN speaker_set INTEGER NOT NULL DEFAULT 0 CHECK (speaker_set IN (0, 1));

CREATE TABLE segment_history (
    id         INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    op         TEXT NOT NULL,
    label      TEXT NOT NULL DEFAULT '',
    before     TEXT NOT NULL,
    after      TEXT NOT NULL,
    undone     INTEGER NOT NULL DEFAULT 0 CHECK (undone IN (0, 1)),
    created    TEXT NOT NULL
);
CREATE INDEX segment_history_session ON segment_history (session_id, id);
"""

STEP_6 = """
CREATE TABLE calendars (
    id        INTEGER PRIMARY KEY,
    source    TEXT NOT NULL UNIQUE,
    name      TEXT NOT NULL DEFAULT '',
    imported  TEXT NOT NULL
);

CREATE TABLE events (
    id              INTEGER PRIMARY KEY,
    calendar_id     INTEGER NOT NULL REFERENCES calendars (id) ON DELETE CASCADE,
    uid             TEXT NOT NULL,
    recurrence_id   TEXT NOT NULL DEFAULT '',
    title           TEXT NOT NULL DEFAULT '',
    start           TEXT NOT NULL,
    "end"           TEXT NOT NULL,
    all_day         INTEGER NOT NULL DEFAULT 0 CHECK (all_day IN (0, 1)),
    tz              TEXT,
    location        TEXT,
    organizer_name  TEXT,
    organizer_email TEXT,
    UNIQUE (calendar_id, uid, recurrence_id),
    CHECK ("end" >= start)
);
CREATE INDEX events_start ON events (start, "end");

CREATE TABLE event_attendees (
    id        INTEGER PRIMARY KEY,
    event_id  INTEGER NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    name      TEXT NOT NULL DEFAULT '',
    email     TEXT NOT NULL DEFAULT '',
    position  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX event_attendees_event ON event_attendees (event_id, position);
CREATE INDEX event_attendees_name ON event_attendees (name COLLATE NOCASE);
CREATE INDEX event_attendees_email ON event_attendees (email COLLATE NOCASE);

CREATE TABLE session_events (
    session_id  INTEGER PRIMARY KEY REFERENCES sessions (id) ON DELETE CASCADE,
    uid         TEXT NOT NULL,
    title       TEXT NOT NULL DEFAULT '',
    start       TEXT NOT NULL,
    "end"       TEXT NOT NULL,
    location    TEXT
);

CREATE TABLE session_attendees (
    id         INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    name       TEXT NOT NULL DEFAULT '',
    email      TEXT NOT NULL DEFAULT '',
    person     TEXT NOT NULL DEFAULT '',
    position   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX session_attendees_session ON session_attendees (session_id, position);
""" + _fts("session_attendees", "person")

STEP_7 = [
    """CREATE TABLE history_segments (
    step_id               INTEGER NOT NULL REFERENCES segment_history (id) ON DELETE CASCADE,
    segment_id            INTEGER NOT NULL,
    had                   INTEGER NOT NULL DEFAULT 0 CHECK (had IN (0, 1)),
    has                   INTEGER NOT NULL DEFAULT 0 CHECK (has IN (0, 1)),
    before_session_id     INTEGER,
    before_start          REAL,
    "before_end"          REAL,
    before_speaker_id     INTEGER,
    before_text           TEXT,
    before_language       TEXT,
    before_embedding      BLOB,
    before_edited         INTEGER,
    before_original_text  TEXT,
    before_speaker_set    INTEGER,
    after_session_id      INTEGER,
    after_start           REAL,
    "after_end"           REAL,
    after_speaker_id      INTEGER,
    after_text            TEXT,
    after_language        TEXT,
    after_embedding       BLOB,
    after_edited          INTEGER,
    after_original_text   TEXT,
    after_speaker_set     INTEGER,
    PRIMARY KEY (step_id, segment_id)
)""",
    """CREATE TABLE history_speakers (
    step_id               INTEGER NOT NULL REFERENCES segment_history (id) ON DELETE CASCADE,
    speaker_id            INTEGER NOT NULL,
    had                   INTEGER NOT NULL DEFAULT 0 CHECK (had IN (0, 1)),
    has                   INTEGER NOT NULL DEFAULT 0 CHECK (has IN (0, 1)),
    before_session_id     INTEGER,
    before_label          TEXT,
    before_name           TEXT,
    before_profile_id     INTEGER,
    before_embedding      BLOB,
    after_session_id      INTEGER,
    after_label           TEXT,
    after_name            TEXT,
    after_profile_id      INTEGER,
    after_embedding       BLOB,
    PRIMARY KEY (step_id, speaker_id)
)""",
]

# the columns of the rows an entry of step 5 held (as it wrote them: released, never changed)
_V6_COLUMNS = {
    "segments": ("session_id", "start", "end", "speaker_id", "text", "language", "embedding",
                 "edited", "original_text", "speaker_set"),
    "speakers": ("session_id", "label", "name", "profile_id", "embedding"),
}


def _v6_rows(text: str) -> dict[str, dict[int, dict | None]]:
    """An entry's ``before`` or ``after`` as step 5's history wrote it: one JSON line per row
    (``[table, id, columns]``), or, earlier, one object (``{table: [[id, columns], ...]}``);
    embeddings in base64."""
    out: dict[str, dict[int, dict | None]] = {"segments": {}, "speakers": {}}
    if text.startswith("{"):
        for t, pairs in json.loads(text).items():
            out.setdefault(t, {}).update((int(i), r) for i, r in pairs)
    else:
        for line in text.splitlines():
            t, i, r = json.loads(line)
            out.setdefault(t, {})[int(i)] = r
    for rows in out.values():
        for r in rows.values():
            if r is not None and r.get("embedding") is not None:
                r["embedding"] = base64.b64decode(r["embedding"])
    return out


def step_7(conn: sqlite3.Connection) -> None:
    for sql in STEP_7:
        conn.execute(sql)
    for step, before_text, after_text in conn.execute("SELECT id, before, after FROM segment_history").fetchall():
        try:
            before, after = _v6_rows(before_text), _v6_rows(after_text)
        except (ValueError, TypeError, AttributeError):   # damaged: it could not be undone anyway
            log.warning("undo history entry %d could not be read; it is dropped", step)
            conn.execute("DELETE FROM segment_history WHERE id = ?", (step,))
            continue
        for table, key, hist in (("segments", "segment_id", "history_segments"),
                                 ("speakers", "speaker_id", "history_speakers")):
            cols = _V6_COLUMNS[table]
            names = ", ".join(f'"before_{c}", "after_{c}"' for c in cols)
            rows = []
            for i in dict.fromkeys([*before.get(table, {}), *after.get(table, {})]):
                b, a = before.get(table, {}).get(i), after.get(table, {}).get(i)
                rows.append([step, i, int(b is not None), int(a is not None),
                             *(v for c in cols for v in ((b or {}).get(c), (a or {}).get(c)))])
            conn.executemany(f"INSERT INTO {hist} (step_id, {key}, had, has, {names}) "
                             f"VALUES ({', '.join('?' * (4 + 2 * len(cols)))})", rows)
    conn.execute("ALTER TABLE segment_history DROP COLUMN before")
    conn.execute("ALTER TABLE segment_history DROP COLUMN after")


STEP_8 = """
CREATE TABLE overlaps (
    id          INTEGER PRIMARY KEY,
    session_id  INTEGER NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    start       REAL NOT NULL,
    "end"       REAL NOT NULL,
    speaker_id  INTEGER REFERENCES speakers (id) ON DELETE SET NULL
);
CREATE INDEX overlaps_session ON overlaps (session_id, start);
"""

log = logging.getLogger("minutely.library")

Step = str | Callable[[sqlite3.Connection], None]

MIGRATIONS: list[tuple[int, Step]] = [
    (1, STEP_1),
    (2, STEP_2),
    (3, STEP_3),
    (4, STEP_4),
    (5, STEP_5),
    (6, STEP_6),
    (7, step_7),
    (8, STEP_8),
]

LATEST = MIGRATIONS[-1][0]
