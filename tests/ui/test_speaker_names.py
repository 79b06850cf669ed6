"""Renaming a speaker offers the session's attendees first, then the saved voices' names."""

from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import QLineEdit

from app.library.models import Attendee, Event
from app.ui.bootstrap import build_services
from app.ui.session_view import SpeakersPanel


def test_rename_completer_offers_attendees_then_known_voices(qtbot, tmp_path):
    services = build_services(tmp_path / "home")
    try:
        lib = services.library
        sid = lib.create_session("Design sync", "recording").id
        lib.ensure_speaker(sid, "S1")
        lib.add_voice_profile("Zoe Known", np.zeros(4, dtype=np.float32))
        lib.add_voice_profile("Ana Lima", np.zeros(4, dtype=np.float32))  # an attendee too: once
        ev = Event(uid="e@x", title="Design sync", start="2026-11-24T08:00:00Z", end="2026-11-24T09:00:00Z")
        lib.events.store_calendar("/tmp/work.ics", "Work", [ev])
        stored = lib.events_between("2026-11-24T00:00:00Z", "2026-11-25T00:00:00Z")[0]
        lib.events.link_session(sid, stored, [Attendee("Ana Lima", "ana@x"), Attendee("", "chen@x")])
        panel = SpeakersPanel(services)
        qtbot.addWidget(panel)
        panel.show()
        panel.load(sid)
        assert panel.suggestions() == ["Ana Lima", "chen", "Zoe Known"]
        item = panel.list.item(0)
        panel.list.setCurrentItem(item)
        panel.list.editItem(item)
        editor = panel.list.findChild(QLineEdit)
        assert editor is not None and editor.completer() is not None
        model = editor.completer().model()
        assert [model.index(i, 0).data() for i in range(model.rowCount())] == ["Ana Lima", "chen", "Zoe Known"]
        editor.completer().setCompletionPrefix("li")  # anywhere in a name, any case
        assert editor.completer().currentCompletion() == "Ana Lima"
        editor.setText("Ana Lima")
        with qtbot.waitSignal(panel.rename_requested) as asked:   # the session view stores it, undoably
            panel.list.commitData(editor)  # as Enter does
        assert asked.args == ["S1", "Ana Lima", True]
    finally:
        services.close()
