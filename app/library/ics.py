"""Reading iCalendar (``.ics``, RFC 5545) files as Outlook, Google Calendar and Thunderbird export them.

icalendar parses the file (with its VTIMEZONE blocks, Windows zone names included);
recurring-ical-events expands RRULE/RDATE/EXDATE and the moved or cancelled
occurrences (RECURRENCE-ID) over a window. Every occurrence becomes an
:class:`Event` with UTC times: one written with a TZID is converted from that zone,
a floating one (no zone) and an all-day one are taken in the local time zone
(``tz``: the computer's, unless given). Cancelled events, declined attendees and
rooms or resources are left out. No I/O besides reading the file; no network.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from .db import LibraryError
from .models import Attendee, Event

DAYS_BACK, DAYS_AHEAD = 30, 60     # the default window around now


class CalendarError(LibraryError):
    """A file that is not a calendar, or cannot be read: one line for the user."""


def utc_iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def window(now: datetime | None = None, days_back: int = DAYS_BACK,
           days_ahead: int = DAYS_AHEAD) -> tuple[datetime, datetime]:
    now = now or datetime.now(UTC)
    return now - timedelta(days=days_back), now + timedelta(days=days_ahead)


def _aware(value: date | datetime, tz: tzinfo | None) -> datetime:
    """A DTSTART/DTEND value as an aware datetime: a date is midnight, a naive (floating) time is
    local — in ``tz`` or, without it, the computer's zone."""
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        return value.replace(tzinfo=tz) if tz is not None else value.astimezone()
    return value


def _address(prop: Any) -> Attendee:
    email = str(prop or "").strip()
    if email.lower().startswith("mailto:"):
        email = email[7:]
    params = getattr(prop, "params", {}) or {}
    name = " ".join(str(params.get("CN", "")).split()).strip('"')
    return Attendee(name=name, email=email.strip().lower())


def _people(component: Any) -> list[Attendee]:
    raw = component.get("ATTENDEE")
    if raw is None:
        return []
    out: list[Attendee] = []
    for prop in raw if isinstance(raw, list) else [raw]:
        params = getattr(prop, "params", {}) or {}
        if str(params.get("CUTYPE", "")).upper() in ("ROOM", "RESOURCE"):
            continue
        if str(params.get("PARTSTAT", "")).upper() == "DECLINED":
            continue
        a = _address(prop)
        if (a.name or a.email) and not any(a.email and a.email == b.email for b in out):
            out.append(a)
    return out


def _event(e: Any, tz: tzinfo | None) -> Event | None:
    if str(e.get("STATUS", "")).upper() == "CANCELLED" or "DTSTART" not in e:
        return None
    start_v = e["DTSTART"].dt
    all_day = not isinstance(start_v, datetime)
    if e.get("DTEND") is not None:
        end_v = e["DTEND"].dt
    elif e.get("DURATION") is not None:
        end_v = start_v + e["DURATION"].dt
    else:
        end_v = start_v + timedelta(days=1) if all_day else start_v
    start, end = _aware(start_v, tz), _aware(end_v, tz)
    if end < start:
        end = start
    rid = e.get("RECURRENCE-ID")
    organizer = _address(e["ORGANIZER"]) if e.get("ORGANIZER") is not None else None
    tzid = e["DTSTART"].params.get("TZID") if hasattr(e["DTSTART"], "params") else None
    return Event(uid=str(e.get("UID", "")).strip(), title=" ".join(str(e.get("SUMMARY", "")).split()),
                 start=utc_iso(start), end=utc_iso(end),
                 recurrence_id=utc_iso(_aware(rid.dt, tz)) if rid is not None else "",
                 all_day=all_day, tz=str(tzid) if tzid else None,
                 location=" ".join(str(e.get("LOCATION", "")).split()) or None,
                 organizer=organizer if organizer and (organizer.name or organizer.email) else None,
                 attendees=_people(e))


def parse(data: bytes | str, *, start: datetime, end: datetime, tz: tzinfo | None = None,
          name: str = "the file") -> tuple[str, list[Event]]:
    """(calendar name, the occurrences of its events between ``start`` and ``end``), in start order.
    CalendarError if ``data`` is not an iCalendar."""
    import icalendar
    import recurring_ical_events

    raw = data.encode("utf-8") if isinstance(data, str) else data
    if b"BEGIN:VCALENDAR" not in raw[:4096].upper():
        raise CalendarError(f"{name} is not a calendar (.ics): no BEGIN:VCALENDAR")
    try:
        calendars = icalendar.Calendar.from_ical(raw, multiple=True)
    except (ValueError, KeyError, IndexError) as e:
        raise CalendarError(f"{name} is not a readable calendar: {e}") from None
    title, events, seen = "", [], set()
    for cal in calendars:
        title = title or " ".join(str(cal.get("X-WR-CALNAME", "")).split())
        try:
            occurrences = recurring_ical_events.of(cal, skip_bad_series=True).between(start, end)
        except Exception as e:  # a broken RRULE or time zone: say which file
            raise CalendarError(f"{name} has events that cannot be read: {e}") from None
        for comp in occurrences:
            ev = _event(comp, tz)
            if ev is None or not ev.uid:
                continue
            key = (ev.uid, ev.recurrence_id)
            if key not in seen:
                seen.add(key)
                events.append(ev)
    events.sort(key=lambda ev: (ev.start, ev.end, ev.title))
    return title, events


def read(path: Path, *, start: datetime, end: datetime, tz: tzinfo | None = None) -> tuple[str, list[Event]]:
    """``parse`` of a file; CalendarError for a missing or unreadable one."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise CalendarError(f"cannot read {path}: {e.strerror or e}") from None
    return parse(data, start=start, end=end, tz=tz, name=Path(path).name)
