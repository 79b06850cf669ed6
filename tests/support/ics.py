"""Calendar files as Outlook, Google Calendar and Thunderbird write them, for the calendar tests."""

from __future__ import annotations

from pathlib import Path

# Outlook names its zones the Windows way and ships the rules in a VTIMEZONE block
OUTLOOK_TZ = """BEGIN:VTIMEZONE
TZID:W. Europe Standard Time
BEGIN:STANDARD
DTSTART:16010101T030000
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:16010101T020000
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3
END:DAYLIGHT
END:VTIMEZONE"""

# a weekly stand-up from 19 Oct 2026 (across the 25 Oct change from summer time), 6 times;
# 2 Nov cancelled (EXDATE), 9 Nov moved to 11:00 with another title (RECURRENCE-ID)
WEEKLY = """BEGIN:VEVENT
UID:standup-42@example.com
SUMMARY:Team stand-up
DTSTART;TZID=W. Europe Standard Time:20261019T093000
DTEND;TZID=W. Europe Standard Time:20261019T100000
RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=6
EXDATE;TZID=W. Europe Standard Time:20261102T093000
LOCATION:Room 4
ORGANIZER;CN=Bob Stone:mailto:bob@example.com
ATTENDEE;CN=Ana Lima;PARTSTAT=ACCEPTED:mailto:Ana@Example.com
ATTENDEE;CN="Chen Wei";PARTSTAT=TENTATIVE:mailto:chen@example.com
ATTENDEE;CN=Dora Declined;PARTSTAT=DECLINED:mailto:dora@example.com
ATTENDEE;CUTYPE=ROOM;CN=Room 4:mailto:room4@example.com
ATTENDEE;CN=Bob Stone;PARTSTAT=ACCEPTED:mailto:bob@example.com
END:VEVENT
BEGIN:VEVENT
UID:standup-42@example.com
RECURRENCE-ID;TZID=W. Europe Standard Time:20261109T093000
SUMMARY:Team stand-up (moved)
DTSTART;TZID=W. Europe Standard Time:20261109T110000
DTEND;TZID=W. Europe Standard Time:20261109T113000
ORGANIZER;CN=Bob Stone:mailto:bob@example.com
ATTENDEE;CN=Ana Lima:mailto:ana@example.com
END:VEVENT"""

ALL_DAY = """BEGIN:VEVENT
UID:offsite@example.com
SUMMARY:Company offsite
DTSTART;VALUE=DATE:20261026
DTEND;VALUE=DATE:20261027
END:VEVENT"""

# Google writes UTC times; this one overlaps the stand-up of 26 Oct (08:30-09:00 UTC)
REVIEW = """BEGIN:VEVENT
UID:review-7@google.com
SUMMARY:Budget review
DTSTART:20261026T085000Z
DTEND:20261026T100000Z
ATTENDEE;CN=Eve Park:mailto:eve@example.com
END:VEVENT"""

FLOATING = """BEGIN:VEVENT
UID:floating@example.com
SUMMARY:Lunch
DTSTART:20261027T120000
DTEND:20261027T130000
END:VEVENT"""


def calendar(*events: str, name: str = "Work", tz: bool = True) -> str:
    body = "\n".join([*([OUTLOOK_TZ] if tz else []), *events])
    text = f"BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//Minutely tests//EN\nX-WR-CALNAME:{name}\n{body}\nEND:VCALENDAR\n"
    return text.replace("\n", "\r\n")   # RFC 5545 lines end in CRLF


def write(path: Path, *events: str, **kw) -> Path:
    path.write_text(calendar(*events, **kw), encoding="utf-8", newline="")
    return path
