"""``python main.py calendar import PATH | list``: calendars from .ics files, offline.

``import`` reads one .ics file or every .ics in a folder (the settings' ``calendar_folder`` when no
PATH is given); importing again updates the same events instead of adding them twice. ``list``
shows the events of the coming days (recurring ones expanded), in local time.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

from .common import EXIT_OK, UsageError, add_action, add_actions, load_settings, open_library


def register(sub) -> None:
    actions = add_actions(sub, "calendar", "calendars from .ics files: import, list", "calendar_command")
    p = add_action(actions, "import", "import an .ics file, or every .ics file of a folder (again: updates)",
                   _import)
    p.add_argument("path", nargs="?", metavar="FILE_OR_FOLDER",
                   help="an .ics file or a folder of them (default: the settings' calendar_folder)")
    p.add_argument("--json", action="store_true")
    p = add_action(actions, "list", "the calendar's events of the coming days", _list)
    p.add_argument("--days", type=int, default=7, help="how many days ahead (default 7)")
    p.add_argument("--back", type=int, default=0, metavar="DAYS", help="also this many days back")
    p.add_argument("--json", action="store_true")


def _import(args) -> int:
    from ..library.ics import CalendarError
    from ..pipeline.calendar import import_path

    path = args.path or load_settings().calendar_folder
    if not path:
        raise UsageError("give an .ics file or a folder (or set calendar_folder in the settings)")
    with open_library() as lib:
        try:
            r = import_path(lib, path)
        except CalendarError as e:
            raise UsageError(str(e)) from None
    if args.json:
        print(json.dumps(asdict(r), ensure_ascii=False, indent=2))
        return EXIT_OK
    for why in r.errors:
        print(f"skipped: {why}")
    print(f"{r.total} event(s) from {r.calendars} calendar(s): {r.added} new, {r.updated} updated, "
          f"{r.removed} removed")
    if r.errors and not r.calendars:
        raise UsageError(f"no calendar could be read in {path}")
    return EXIT_OK


def _local(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone()


def _list(args) -> int:
    if args.days < 0 or args.back < 0:
        raise UsageError("--days and --back must be 0 or more")
    now = datetime.now(UTC)
    with open_library() as lib:
        events = lib.events_between(now - timedelta(days=args.back), now + timedelta(days=args.days))
        imported = bool(lib.events.calendars())
    if args.json:
        print(json.dumps([asdict(e) for e in events], ensure_ascii=False, indent=2))
        return EXIT_OK
    if not events:
        print("no events" + ("" if imported else " (import a calendar: calendar import FILE)"))
    for e in events:
        start, end = _local(e.start), _local(e.end)
        when = f"{start:%Y-%m-%d} all day   " if e.all_day else f"{start:%Y-%m-%d %H:%M}-{end:%H:%M}"
        people = ", ".join(a.display for a in e.attendees)
        print(f"{when}  {e.title or '(no title)'}" + (f"  [{people}]" if people else "")
              + (f"  @ {e.location}" if e.location else ""))
    return EXIT_OK

