"""The library's "Today and upcoming" panel: the calendar's next seven days, each event with a
"Record this" button.

``CalendarPanel(services)`` reads ``lib.events_between(now, now + 7 days)`` on the main thread (a
small indexed query) and asks for a recording titled after an event with ``record_requested(title)``.
The events are grouped under a heading per day ("Today", "Tomorrow", "Thu 3 Dec"); each row is the
title on one line (elided, the whole title in its tooltip and accessible name) and the time and
attendees below. The list scrolls inside at most ``MAX_LIST_PX`` (about five events), so a busy week
never pushes the session list out of the window.
Importing goes through the runner's pool: ``import_file(path)`` (File ▸ Import calendar…) and
``reimport_folder()`` (the settings' calendar folder, at start-up and every few minutes); errors are
one line on ``message``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QScrollArea, QSizePolicy, QVBoxLayout, QWidget

from app.library.events import parse_iso

from .widgets import button

log = logging.getLogger("minutely.ui.calendar")

DAYS = 7
REIMPORT_MS = 5 * 60_000  # the calendar folder is read again every five minutes
MAX_LIST_PX = 230  # the event list scrolls beyond this height (about five events)


def day_name(event, now: datetime) -> str:
    """"Today", "Tomorrow", "Thu 3 Dec" (local time); an event that began before today (a
    several-day one still running) is under today."""
    day = parse_iso(event.start).astimezone().date()
    today = now.astimezone().date()
    if day <= today:
        return "Today"
    return "Tomorrow" if day == today + timedelta(days=1) else day.strftime("%a %-d %b")


def when(event, now: datetime) -> str:
    """"Today 14:00", "Tomorrow 09:30", "Thu 3 Dec 10:00" (local time); all-day events without a time."""
    name = day_name(event, now)
    return name if event.all_day else f"{name} {parse_iso(event.start).astimezone():%H:%M}"


class ElidedLabel(QLabel):
    """One line of plain text that ends in "…" when it does not fit; the whole text is its tooltip."""

    def __init__(self, text: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.full = text
        self.setToolTip(text)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setMinimumWidth(40)
        self.setText(text)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self.setText(self.fontMetrics().elidedText(self.full, Qt.TextElideMode.ElideRight, self.width()))
        super().resizeEvent(event)


class _EventList(QScrollArea):
    """The rows, scrolling inside a height that follows them up to MAX_LIST_PX."""

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        w = self.widget()
        inner = w.sizeHint() if w is not None else QSize(0, 0)
        return QSize(inner.width(), min(inner.height() + 2 * self.frameWidth(), MAX_LIST_PX))


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
        inner = QWidget()
        self.rows = QVBoxLayout(inner)
        self.rows.setContentsMargins(0, 0, 4, 0)
        self.rows.setSpacing(2)
        self.list = _EventList()
        self.list.setWidget(inner)
        self.list.setWidgetResizable(True)
        self.list.setFrameShape(QFrame.Shape.NoFrame)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        lay.addWidget(self.list)
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
        self.day_headings: list[QLabel] = []
        day = None
        for ev in events:
            if day_name(ev, now) != day:
                day = day_name(ev, now)
                head = QLabel(f"<small><b>{day}</b></small>")
                head.setAccessibleName(day)
                head.setContentsMargins(0, 4 if self.day_headings else 0, 0, 0)
                self.day_headings.append(head)
                self.rows.addWidget(head)
            self.rows.addWidget(self._row(ev, now))
        self.rows.addStretch(1)
        self.heading.setText(f"<b>Today and upcoming</b> ({len(events)})" if len(events) > 1
                             else "<b>Today and upcoming</b>")
        self.list.updateGeometry()
        self.setVisible(bool(events))

    def _row(self, ev, now: datetime) -> QWidget:
        w = QWidget()
        row = QHBoxLayout(w)
        row.setContentsMargins(8, 0, 0, 0)
        people = len({a.email or a.name for a in ev.attendees})
        title = ev.title or "(no title)"
        count = f" · {people} attendee{'s' if people != 1 else ''}" if people else ""
        start = "All day" if ev.all_day else f"{parse_iso(ev.start).astimezone():%H:%M}"
        text = QVBoxLayout()
        text.setContentsMargins(0, 0, 0, 0)
        text.setSpacing(0)
        name = ElidedLabel(title)
        name.setAccessibleName(f"{title}, {when(ev, now)}{count}")
        small = name.font()
        small.setPointSizeF(small.pointSizeF() * 0.85)
        detail = QLabel(start + count)
        detail.setFont(small)
        pal = detail.palette()  # secondary: between the text and the background, still readable
        fg, bg = pal.color(QPalette.ColorRole.WindowText), pal.color(QPalette.ColorRole.Window)
        pal.setColor(QPalette.ColorRole.WindowText, QColor((fg.red() * 2 + bg.red()) // 3,
                                                           (fg.green() * 2 + bg.green()) // 3,
                                                           (fg.blue() * 2 + bg.blue()) // 3))
        detail.setPalette(pal)
        text.addWidget(name)
        text.addWidget(detail)
        row.addLayout(text, 1)
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
