"""Calendar events in the library: ``library.events``.

A calendar is one imported ``.ics`` file (keyed by its path). Storing it again
updates its events in place, matched by UID and recurrence id (the occurrence's
original start), adds the new ones and deletes those no longer in the file or the
window: a re-import never duplicates. Times are ISO 8601 UTC strings, so they
compare as text.

A session recorded during an event keeps a copy of it (``session_events``) and of
its attendees (``session_attendees``, full-text indexed), so the session keeps its
people when the calendar later changes or the event leaves the window.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from .models import Attendee, Event
from .store import Store, now_iso

SLACK = 300.0   # seconds: a recording started a few minutes early or late still belongs to its event


def as_iso(t: datetime | str) -> str:
    if isinstance(t, str):
        t = parse_iso(t)
    t = t if t.tzinfo else t.astimezone()
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(s: str) -> datetime:
    dt = datetime.fromisoformat(s.strip().replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _person(a: Attendee) -> str:
    """What the attendee FTS indexes: the name and the address's words."""
    return " ".join(x for x in (a.name, a.email.replace("@", " ").replace(".", " ")) if x)


class Events:
    def __init__(self, store: Store):
        self._store = store

    # -- calendars -------------------------------------------------------------
    def store_calendar(self, source: str, name: str, events: Iterable[Event]) -> dict[str, int]:
        """Replace what the calendar ``source`` holds with ``events``, matching by UID and recurrence
        id. Returns counts: added, updated, removed, total."""
        conn = self._store.conn
        counts = {"added": 0, "updated": 0, "removed": 0, "total": 0}
        with self._store.transaction():
            conn.execute("""INSERT INTO calendars (source, name, imported) VALUES (?, ?, ?)
                            ON CONFLICT (source) DO UPDATE SET name = excluded.name,
                            imported = excluded.imported""", (source, name, now_iso()))
            cal_id = conn.execute("SELECT id FROM calendars WHERE source = ?", (source,)).fetchone()[0]
            old = {(u, r): i for i, u, r in conn.execute(
                "SELECT id, uid, recurrence_id FROM events WHERE calendar_id = ?", (cal_id,))}
            keep: set[int] = set()
            for ev in events:
                row: dict[str, Any] = {
                    "title": ev.title, "start": ev.start, "end": ev.end, "all_day": int(ev.all_day),
                    "tz": ev.tz, "location": ev.location,
                    "organizer_name": ev.organizer.name if ev.organizer else None,
                    "organizer_email": ev.organizer.email if ev.organizer else None}
                eid = old.get((ev.uid, ev.recurrence_id))
                if eid is None:
                    eid = self._store.insert("events", {"calendar_id": cal_id, "uid": ev.uid,
                                                        "recurrence_id": ev.recurrence_id, **row})
                    counts["added"] += 1
                elif eid in keep:
                    continue
                else:
                    self._store.update("events", eid, row)
                    conn.execute("DELETE FROM event_attendees WHERE event_id = ?", (eid,))
                    counts["updated"] += 1
                keep.add(eid)
                conn.executemany("INSERT INTO event_attendees (event_id, name, email, position) VALUES (?, ?, ?, ?)",
                                 [(eid, a.name, a.email, i) for i, a in enumerate(ev.attendees)])
            gone = [i for i in old.values() if i not in keep]
            conn.executemany("DELETE FROM events WHERE id = ?", [(i,) for i in gone])
            counts["removed"], counts["total"] = len(gone), len(keep)
        return counts

    def calendars(self) -> list[dict[str, Any]]:
        """{id, source, name, imported, events} of every imported calendar."""
        return self._store.rows("""SELECT c.*, (SELECT count(*) FROM events e WHERE e.calendar_id = c.id) AS events
                                   FROM calendars c ORDER BY c.source""")

    def remove_calendar(self, source: str) -> bool:
        with self._store.transaction():
            return self._store.conn.execute("DELETE FROM calendars WHERE source = ?", (source,)).rowcount > 0

    # -- events ----------------------------------------------------------------
    def _load(self, rows: list[dict[str, Any]]) -> list[Event]:
        if not rows:
            return []
        ids = [r["id"] for r in rows]
        people: dict[int, list[Attendee]] = {i: [] for i in ids}
        for eid, name, email in self._store.conn.execute(
                f"SELECT event_id, name, email FROM event_attendees WHERE event_id IN ({','.join('?' * len(ids))})"
                " ORDER BY event_id, position", ids):
            people[eid].append(Attendee(name, email))
        out = []
        for r in rows:
            org = Attendee(r["organizer_name"] or "", r["organizer_email"] or "") \
                if r["organizer_name"] or r["organizer_email"] else None
            out.append(Event(uid=r["uid"], title=r["title"], start=r["start"], end=r["end"],
                             recurrence_id=r["recurrence_id"], all_day=bool(r["all_day"]), tz=r["tz"],
                             location=r["location"], organizer=org, attendees=people[r["id"]],
                             id=r["id"], calendar_id=r["calendar_id"]))
        return out

    def get(self, event_id: int) -> Event:
        return self._load([self._store.one("events", event_id, "event")])[0]

    def between(self, start: datetime | str, end: datetime | str) -> list[Event]:
        """Events that overlap [start, end), in start order (an event of no length at ``start`` counts)."""
        a, b = as_iso(start), as_iso(end)
        return self._load(self._store.rows(
            'SELECT * FROM events WHERE start < ? AND ("end" > ? OR start >= ?) ORDER BY start, "end", id',
            (b, a, a)))

    def at(self, t: datetime | str, end: datetime | str | None = None, slack: float = SLACK) -> Event | None:
        """The event a recording made from ``t`` (to ``end``) belongs to: of the timed events that
        overlap it, give or take ``slack`` seconds, the one covering the largest share of it; a tie
        (or a recording with no length yet) goes to the event whose start is nearest ``t``.
        All-day events never match (a day off is not a meeting)."""
        t0 = parse_iso(as_iso(t))
        t1 = max(t0, parse_iso(as_iso(end))) if end is not None else t0
        pad = timedelta(seconds=slack)
        best: tuple[float, float, Event] | None = None
        for ev in self.between(t0 - pad, t1 + pad + timedelta(seconds=1)):
            if ev.all_day:
                continue
            s, e = parse_iso(ev.start) - pad, parse_iso(ev.end) + pad
            overlap = (min(e, t1) - max(s, t0)).total_seconds()
            if overlap < 0 or (t1 == t0 and not s <= t0 <= e):
                continue
            key = (overlap, -abs((parse_iso(ev.start) - t0).total_seconds()))
            if best is None or key > best[:2]:
                best = (*key, ev)
        return best[2] if best else None

    def by_attendee(self, text: str, limit: int = 100) -> list[Event]:
        """Events with an attendee (or organizer) whose name or address contains ``text``."""
        like = f"%{text.strip()}%"
        return self._load(self._store.rows(
            """SELECT * FROM events WHERE id IN (SELECT event_id FROM event_attendees
                   WHERE name LIKE ? OR email LIKE ?) OR organizer_name LIKE ? OR organizer_email LIKE ?
               ORDER BY start DESC LIMIT ?""", (like, like, like, like, int(limit))))

    # -- sessions --------------------------------------------------------------
    def link_session(self, session_id: int, event: Event, attendees: list[Attendee]) -> None:
        """Remember that the session was recorded during ``event``, with these attendees."""
        conn = self._store.conn
        with self._store.transaction():
            conn.execute("""INSERT OR REPLACE INTO session_events (session_id, uid, title, start, "end", location)
                            VALUES (?, ?, ?, ?, ?, ?)""",
                         (session_id, event.uid, event.title, event.start, event.end, event.location))
            conn.execute("DELETE FROM session_attendees WHERE session_id = ?", (session_id,))
            conn.executemany("""INSERT INTO session_attendees (session_id, name, email, person, position)
                                VALUES (?, ?, ?, ?, ?)""",
                             [(session_id, a.name, a.email, _person(a), i) for i, a in enumerate(attendees)])

    def session_event(self, session_id: int) -> Event | None:
        rows = self._store.rows("SELECT * FROM session_events WHERE session_id = ?", (session_id,))
        if not rows:
            return None
        r = rows[0]
        return Event(uid=r["uid"], title=r["title"], start=r["start"], end=r["end"], location=r["location"],
                     attendees=self.session_attendees(session_id))

    def session_attendees(self, session_id: int) -> list[Attendee]:
        return [Attendee(n, e) for n, e in self._store.conn.execute(
            "SELECT name, email FROM session_attendees WHERE session_id = ? ORDER BY position", (session_id,))]
