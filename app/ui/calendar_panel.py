"""The library's "Today and upcoming" panel: the calendar's next seven days, each event with a
"Record this" button.

``CalendarPanel(services)`` reads ``lib.events_between(now, now + 7 days)`` on the main thread (a
small indexed query) and asks for a recording titled after an event with ``record_requested(title)``.
Importing goes through the runner's pool: ``import_file(path)`` (File ▸ Import calendar…) and
``reimport_folder()`` (the settings' calendar folder, at start-up and every few minutes); errors are
one line on ``message``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from app.library.events import parse_iso

from .widgets import button

log = logging.getLogger("minutely.ui.calendar")

DAYS = 7
REIMPORT_MS = 5 * 60_000  # the calendar folder is read again every five minutes


def when(event, now: datetime) -> str:
    """"Today 14:00", "Tomorrow 09:30", "Thu 3 Dec 10:00" (local time); all-day events without a time."""
    start = parse_iso(event.start).astimezone()
    today = now.astimezone().date()
    day = start.date()
    name = ("Today" if day == today else "Tomorrow" if day == today + timedelta(days=1)
            else start.strftime("%a %-d %b"))
    return name if event.all_day else f"{name} {start:%H:%M}"


class CalendarPanel(QWidget):
    record_requested = Signal(str)   # the event's title
    message = Signal(str)            # a one-line notice (an import's result or error)
    imported = Signal(object)        # ImportReport

    def __init__(self, services, parent: QWidget | None = None, *, now=None):
        super().__init__(parent)
        self.services = services
        self._now = now or (lambda: datetime.now(UTC))
        self.setAccessibleName("Today and upcoming")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.heading = QLabel("<b>Today and upcoming</b>")
        lay.addWidget(self.heading)
        self.rows = QVBoxLayout()
        self.rows.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(self.rows)
        self.events: list = []
        self.record_buttons: list = []
        self._importing = False
        self._import_name = ""
        self.timer = QTimer(self)
        self.timer.setInterval(REIMPORT_MS)
        self.timer.timeout.connect(self._tick)
        self.refresh()

    def start(self) -> None:
        """Re-import the calendar folder now and every few minutes."""
        self.reimport_folder()
        self.timer.start()

    def _tick(self) -> None:
        self.refresh()  # events that ended go, the next ones come into the 7 days
        self.reimport_folder()

    # -- the list -------------------------------------------------------------------------
    def refresh(self) -> None:
        now = self._now()
        try:
            events = self.services.library.events_between(now, now + timedelta(days=DAYS))
        except Exception as e:  # noqa: BLE001 - a library problem never breaks the window
            log.warning("calendar events unreadable: %s", e)
            events = []
        while self.rows.count():
            item = self.rows.takeAt(0)
            w = item.widget() if item is not None else None
            if w is not None:
                w.deleteLater()
        self.events, self.record_buttons = events, []
        for ev in events:
            self.rows.addWidget(self._row(ev, now))
        self.setVisible(bool(events))

    def _row(self, ev, now: datetime) -> QWidget:
        w = QWidget()
        row = QHBoxLayout(w)
        row.setContentsMargins(0, 0, 0, 0)
        people = len({a.email or a.name for a in ev.attendees})
        title = ev.title or "(no title)"
        detail = when(ev, now) + (f" · {people} attendee{'s' if people != 1 else ''}" if people else "")
        label = QLabel(f"{title}<br><small>{detail}</small>")
        label.setAccessibleName(f"{title}, {detail}")
        label.setWordWrap(True)
        row.addWidget(label, 1)
        rec = button("Record this", f"Record {title}", lambda: self.record_requested.emit(title))
        row.addWidget(rec)
        self.record_buttons.append(rec)
        return w

    # -- importing --------------------------------------------------------------------------
    def import_file(self, path: str | Path):
        from app.pipeline.calendar import import_path

        self._import_name = Path(path).name
        return self.services.runner.run(  # bound methods: a panel gone by then is not called
            "Importing a calendar", lambda ctx: import_path(ctx.library, path), kind="calendar",
            on_done=self._imported, on_failed=self._failed)

    def reimport_folder(self):
        folder = self.services.settings.calendar_folder
        if not folder or self._importing:
            return None
        from app.pipeline.calendar import import_folder

        self._importing = True
        return self.services.runner.run(
            "Reading the calendar folder", lambda ctx: import_folder(ctx.library, folder), kind="calendar",
            on_done=self._folder_read, on_failed=self._folder_failed)

    def _imported(self, report) -> None:
        self.refresh()
        self.message.emit(f"Calendar {self._import_name} imported: {report.total} events"
                          + (f" ({report.errors[0]})" if report.errors else ""))
        self.imported.emit(report)

    def _failed(self, why: str) -> None:
        self.message.emit(f"The calendar could not be imported: {why}")

    def _folder_read(self, report) -> None:
        self._importing = False
        self.refresh()
        if report.errors:
            self.message.emit(f"Calendar folder: {report.errors[0]}")
        self.imported.emit(report)

    def _folder_failed(self, why: str) -> None:
        self._importing = False
        self.message.emit(f"The calendar folder could not be read: {why}")
