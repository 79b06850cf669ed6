"""The calendar's names for meetings: importing ``.ics`` files and giving a recording its event.

    import_path(lib, "work.ics")          # a file, or a folder of them (a watched folder)
    apply_event(lib, session_id)          # the recording takes its event's title and attendees
    suggested_speaker_names(lib, sid)     # attendees first, then the known voices
    session_options(lib, sid, opts)       # attendee spellings as hints; their number as speakers

Importing is idempotent: a calendar is keyed by its file, events by UID and recurrence id, so
importing again updates, and events gone from the file (or a file gone from the folder) go away.
Recurring events are expanded over a window (``ics.DAYS_BACK`` days back to ``ics.DAYS_AHEAD``
ahead). Everything is local: no network, no accounts.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from pathlib import Path

from app.library.ics import DAYS_AHEAD, DAYS_BACK, CalendarError, read, window
from app.library.models import Attendee, Event
from app.pipeline.utterances import TranscribeOptions
from app.pipeline.vocabulary import terms

__all__ = ["CalendarError", "ImportReport", "apply_event", "attendees_of", "import_file", "import_folder",
           "import_path", "session_options", "suggested_speaker_names"]

log = logging.getLogger("minutely.calendar")


@dataclass
class ImportReport:
    calendars: int = 0
    added: int = 0
    updated: int = 0
    removed: int = 0
    total: int = 0                    # events stored now, over all imported calendars
    errors: list[str] = field(default_factory=list)   # files of a folder that could not be read

    def add(self, counts: dict[str, int]) -> None:
        self.calendars += 1
        for k in ("added", "updated", "removed", "total"):
            setattr(self, k, getattr(self, k) + counts[k])


def _source(path: Path) -> str:
    return str(path.expanduser().resolve())


def import_file(lib, path: str | Path, *, now: datetime | None = None, tz: tzinfo | None = None,
                days_back: int = DAYS_BACK, days_ahead: int = DAYS_AHEAD) -> ImportReport:
    """(Re)import one .ics file. CalendarError (one line) if it is missing or not a calendar;
    then nothing is changed."""
    path = Path(path)
    if not path.is_file():
        raise CalendarError(f"calendar file not found: {path}")
    start, end = window(now, days_back, days_ahead)
    name, events = read(path, start=start, end=end, tz=tz)
    report = ImportReport()
    report.add(lib.events.store_calendar(_source(path), name or path.stem, events))
    return report


def import_folder(lib, folder: str | Path, **kw) -> ImportReport:
    """(Re)import every ``.ics`` file in ``folder`` (not its subfolders); calendars imported from
    it whose file is gone are removed. A file that cannot be read is named in ``errors`` and its
    earlier import is kept. CalendarError if the folder does not exist."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CalendarError(f"calendar folder not found: {folder}")
    report = ImportReport()
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".ics" and p.is_file())
    for p in files:
        try:
            one = import_file(lib, p, **kw)
        except CalendarError as e:
            report.errors.append(str(e))
            continue
        report.add(dataclasses.asdict(one))
    root = _source(folder)
    present = {_source(p) for p in files}
    for cal in lib.events.calendars():
        src = Path(cal["source"])
        if str(src.parent) == root and cal["source"] not in present:
            report.removed += cal["events"]
            lib.events.remove_calendar(cal["source"])
    return report


def import_path(lib, path: str | Path, **kw) -> ImportReport:
    """A folder (``import_folder``) or one file (``import_file``)."""
    return import_folder(lib, path, **kw) if Path(path).is_dir() else import_file(lib, path, **kw)


def attendees_of(event: Event) -> list[Attendee]:
    """The organizer (unless listed) and the attendees, each person once."""
    people = [*([event.organizer] if event.organizer else []), *event.attendees]
    out: list[Attendee] = []
    for a in people:
        same = next((b for b in out if (a.email and a.email == b.email) or
                     (not a.email and a.name and a.name.casefold() == b.name.casefold())), None)
        if same is None:
            out.append(Attendee(a.name, a.email))
        elif not same.name and a.name:
            same.name = a.name
    return out


def apply_event(lib, session_id: int, *, replace_title: bool = True,
                duration: float | None = None) -> Event | None:
    """Give the session the calendar event it was recorded during (see ``Library.event_at``): its
    attendees always, its title when ``replace_title`` (the title is still one the app made).
    Called when a recording starts and again when it stops (the whole span then decides).
    ``duration``: the recording's length if the session does not hold it yet.
    Returns the event, or None when none matches (the session is left as it is)."""
    s = lib.get_session(session_id)
    duration = s.duration if duration is None else duration
    try:
        start = datetime.fromisoformat(s.created.replace("Z", "+00:00"))
    except ValueError:
        return None
    end = start + timedelta(seconds=duration) if duration else None
    event = lib.event_at(start, end)
    if event is None:
        return None
    with lib.transaction():
        lib.events.link_session(session_id, event, attendees_of(event))
        if replace_title and event.title and event.title != s.title:
            lib.update_session(session_id, title=event.title)
    log.info("session %d is the calendar event '%s' (%s)", session_id, event.title, event.start)
    return event


def suggested_speaker_names(lib, session_id: int) -> list[str]:
    """Names to offer for a session's speakers: its attendees first (in the invitation's order),
    then the saved voices' names, each once."""
    people = [a.display for a in lib.events.session_attendees(session_id)]
    return terms(people, (p.name for p in lib.voice_profiles()))


def session_options(lib, session_id: int, opts: TranscribeOptions) -> TranscribeOptions:
    """``opts`` for transcribing this session: its attendees' names added to the spelling hints
    (after the glossary), and their number as the speaker count when none was given."""
    people = lib.events.session_attendees(session_id)
    if not people:
        return opts
    return dataclasses.replace(opts, hints=terms(opts.hints, (a.name for a in people if a.name)),
                               speakers=opts.speakers or len(people))
