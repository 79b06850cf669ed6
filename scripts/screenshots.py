"""Open the main views with sample data and save a PNG of each, to look at them.

    xvfb-run -a -s "-screen 0 1400x900x24" .venv/bin/python scripts/screenshots.py [OUTDIR]

(OUTDIR defaults to build/screenshots.) Views: first run, library + session
transcript, search, summary, chat, screenshots, recording (from the private
PulseAudio virtual mic when pulseaudio is installed), dictation pad, settings,
the player bar while playing, a correction being typed, find and replace, and
the "Today and upcoming" calendar with 40 events over a week.
Everything happens in a temporary data folder; nothing of the user's is read.
The sample meeting is text written here (no model needed); the recording view
records real audio from the virtual mic.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LINES = [
    ("Ana", "Good morning everyone, let's start with the budget for next quarter."),
    ("Ben", "Thanks. The hardware costs came in about ten percent lower than we planned."),
    ("Chloe", "That helps. Can we move some of it to the user research study?"),
    ("Ana", "I think so. Ben, can you send the updated numbers by Friday?"),
    ("Ben", "Yes, I'll have the spreadsheet ready by Thursday evening."),
    ("Dev", "One risk: the vendor contract renews in March and prices may go up."),
    ("Chloe", "Let's ask legal to review the renewal terms before we sign anything."),
    ("Ana", "Agreed. Decision: we move fifteen thousand to research, the rest stays in reserve."),
    ("Dev", "I'll draft the note to legal today and copy everyone."),
    ("Ben", "Should we also revisit the cloud budget? Usage doubled last month."),
    ("Ana", "Good point, let's put it on next week's agenda."),
]

SUMMARY = """# Budget review

The team reviewed next quarter's budget. Hardware came in about 10% under plan, and the surplus
goes mostly to the user research study. The vendor contract renewal in March is a risk.

## Action items
- Send the updated budget numbers — Ben (due Friday)
- Draft the note to legal about the renewal terms — Dev (due today)

## Decisions
- Move 15,000 to user research; the rest stays in reserve.

## Open questions
- Should the cloud budget be revisited after usage doubled?
"""


def sample_library(home: Path) -> int:
    from PIL import Image, ImageDraw

    from app.library import Library

    with Library.open(home) as lib:
        for title, kind in [("Design critique", "recording"), ("Customer call — Acme", "file"),
                            ("1:1 with Chloe", "recording"), ("Dictation: notes for the offsite", "dictation"),
                            ("All hands", "file")]:
            s = lib.create_session(title, kind, status="ready")
            lib.add_segments(s.id, [{"start": 5.0 * j, "end": 5.0 * j + 4, "text": f"Notes {j} of {title}.",
                                     "speaker": f"S{j % 2 + 1}"} for j in range(6)])
        s = lib.create_session("Budget review, Q3", "recording", status="ready")
        t = 0.0
        segs = []
        names = sorted({n for n, _ in LINES})
        for name, text in LINES:
            dur = 1.5 + len(text) / 16
            segs.append({"start": t, "end": t + dur, "text": text, "speaker": f"S{names.index(name) + 1}"})
            t += dur + 0.6
        lib.add_segments(s.id, segs)
        for i, name in enumerate(names):
            lib.rename_speaker(s.id, f"S{i + 1}", name)
        lib.update_session(s.id, duration=t)
        import numpy as np

        from app.media.audio import write_wav

        # quiet audio of the meeting's length, so the player bar has something to play
        tone = 0.02 * np.sin(2 * np.pi * 220 * np.arange(int(16000 * t)) / 16000)
        lib.add_media(s.id, write_wav(lib.media_dir(s.id) / "recording.wav", tone), "audio")
        lib.edits.edit_segment(lib.segments(s.id)[2].id, LINES[2][1].replace("move some", "move part"))
        summary = lib.summaries.start(s.id, "general")
        lib.summaries.finish(summary.id, SUMMARY, action_items=[
            {"text": "Send the updated budget numbers", "owner": "Ben", "due": "Friday"},
            {"text": "Draft the note to legal about the renewal terms", "owner": "Dev", "due": "today"}],
            decisions=["Move 15,000 to user research; the rest stays in reserve."],
            questions=["Should the cloud budget be revisited after usage doubled?"])
        lib.add_chat_message(s.id, "user", "What did we decide about the research budget?")
        lib.add_chat_message(s.id, "assistant", "You moved 15,000 to the user research study [00:42], after Ben "
                                                "reported hardware 10% under plan [00:06]. The rest stays in reserve.")
        shots = lib.media_dir(s.id) / "screens"
        shots.mkdir(parents=True, exist_ok=True)
        for k, (off, colour) in enumerate([(8.0, "#2d6cdf"), (31.0, "#1f9e6b"), (55.0, "#c2552d")]):
            im = Image.new("RGB", (1280, 800), "white")
            d = ImageDraw.Draw(im)
            d.rectangle([0, 0, 1280, 90], fill=colour)
            d.text((40, 30), f"Q3 budget — slide {k + 1}", fill="white")
            for b in range(5):
                d.rectangle([120 + b * 200, 700 - (b + 2) * 70 - k * 20, 250 + b * 200, 700], fill=colour)
            p = shots / f"shot-{k}.jpg"
            im.save(p, quality=80)
            lib.add_media(s.id, p, "screenshot", off, width=1280, height=800)
        return s.id


CAL_TITLES = ["Standup", "Design critique", "1:1 with Chloe", "Customer call — Acme Corporation quarterly "
              "business review and renewal planning", "Hiring sync", "Budget review, Q3", "Lunch & learn: "
              "observability", "Sprint planning", "Vendor contract renewal with legal", "Offsite prep"]


def sample_calendar(home: Path, n: int = 40) -> None:
    """`n` events over today and the next six days (a long title, all-day ones, attendees), imported
    from an .ics the way File ▸ Import calendar… does."""
    from datetime import UTC, datetime, timedelta

    from app.library import Library
    from app.pipeline.calendar import import_path

    now = datetime.now(UTC).replace(second=0, microsecond=0)
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Minutely screenshots//EN"]
    for i in range(n):
        day, slot = divmod(i, 6)
        uid = f"shot-{i}@minutely"
        title = CAL_TITLES[i % len(CAL_TITLES)]
        if slot == 5:  # one all-day event a day
            d = (now + timedelta(days=day)).date()
            when = [f"DTSTART;VALUE=DATE:{d:%Y%m%d}", f"DTEND;VALUE=DATE:{d + timedelta(days=1):%Y%m%d}"]
            title = "Company holiday" if day % 3 == 2 else "Release week"
        else:
            start = now + timedelta(days=day, minutes=20 + 75 * slot)
            when = [f"DTSTART:{start:%Y%m%dT%H%M%SZ}", f"DTEND:{start + timedelta(minutes=45):%Y%m%dT%H%M%SZ}"]
        lines += ["BEGIN:VEVENT", f"UID:{uid}", f"SUMMARY:{title}", *when]
        lines += [f"ATTENDEE;CN=Person {k}:mailto:p{k}@example.com" for k in range(i % 7)]
        lines.append("END:VEVENT")
    lines.append("END:VCALENDAR")
    ics = home / "week.ics"
    home.mkdir(parents=True, exist_ok=True)
    ics.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    with Library.open(home) as lib:
        import_path(lib, ics)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else ROOT / "build" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="minutely-shots-"))
    os.environ["MINUTELY_HOME"] = str(tmp / "first")

    import llama_cpp  # noqa: F401  (before numpy: see app/engine/__init__.py)
    from PySide6.QtWidgets import QApplication

    from app.ui.app import make_application
    from app.ui.bootstrap import build_services
    from app.ui.main_window import MainWindow

    rig = None
    try:
        from tests.support.pulse import missing, start_pulse

        if not missing():
            rig = start_pulse()
            os.environ.update(rig.env)
            import sounddevice as sd

            sd._terminate()
            sd._initialize()
    except Exception as e:  # noqa: BLE001 - the recording view is then shown idle
        print(f"no PulseAudio rig ({e}); the recording view is shown idle", file=sys.stderr)
    app = make_application()

    def settle(ms: int = 300) -> None:
        end = time.monotonic() + ms / 1000
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.01)

    def shot(widget, name: str) -> None:
        settle()
        path = out / f"{name}.png"
        widget.grab().save(str(path))
        print(path)

    # first run: no model, no sessions
    services = build_services(tmp / "first")
    w = MainWindow(services)
    w.resize(1280, 800)
    w.show()
    shot(w, "1-first-run")
    w.close()
    services.close()

    home = tmp / "sample"
    sid = sample_library(home)
    sample_calendar(home)
    services = build_services(home)
    if rig is not None:
        services.settings.mic_device, services.settings.system_device = rig.mic, "off"
    w = MainWindow(services)
    w.resize(1280, 800)
    w.show()
    w.open_session(sid)
    shot(w, "2-library-and-session")
    cal = w.calendar  # a busy week: grouped by day, scrolled to its third day
    settle()
    cal.list.verticalScrollBar().setValue(cal.day_headings[min(2, len(cal.day_headings) - 1)].y())
    shot(cal.parentWidget(), "13-calendar")
    cal.list.verticalScrollBar().setValue(0)
    w.search.setText("budget")
    settle(500)
    shot(w, "3-search")
    w.search.clear()
    w.open_session(sid, 42.0)
    view = w.session_view
    view.tabs.setCurrentWidget(view.summary)
    shot(w, "4-summary")
    view.tabs.setCurrentWidget(view.chat)
    shot(w, "5-chat")
    view.tabs.setCurrentWidget(view.shots)
    shot(w, "6-screenshots")
    view.tabs.setCurrentIndex(0)
    if rig is not None:
        w.recording.record.trigger()
        deadline = time.monotonic() + 20
        while w.recording.runner is None or w.recording.runner.meeting is None or \
                w.recording.runner.meeting.position < 2.0:
            settle(100)
            if time.monotonic() > deadline:
                break
    shot(w, "7-recording")
    if w.recording.recording:
        w.recording.stop()
        while w.recording.recording:
            settle(100)
    # the player bar while playing (silently when there is no PulseAudio), a correction being
    # typed in place, find and replace
    w.open_session(sid)
    view.player_bar.seek(24.0)
    if rig is not None:
        view.player_bar.play_from(24.0)
        settle(1200)
    shot(w, "10-player")
    view.player_bar.pause()
    row = 4
    view.transcript.setCurrentIndex(view.segments.index(row))
    view.transcript.edit(view.segments.index(row))
    settle(100)
    from app.ui.transcript_edit import SegmentEditor

    ed = view.transcript.viewport().findChild(SegmentEditor)
    if ed is not None:
        ed.setPlainText("Yes, I'll have the spreadsheet ready by Thursday eve")
        ed.moveCursor(ed.textCursor().MoveOperation.End)
    shot(w, "11-editing")
    if ed is not None:
        view.transcript.closeEditor(ed, view.editing.delegate.EndEditHint.RevertModelCache)
    dlg = view.editing.find_replace()
    dlg.find_edit.setText("budget")
    dlg.replacement.setText("Budget")
    shot(dlg, "12-find-replace")
    dlg.close()
    w.dictation_dock.show()
    w.dictation.editor.setPlainText("Dear team,\n\nThanks for the budget review today. Ben will send the "
                                    "updated numbers by Friday.")
    shot(w, "8-dictation")
    w.dictation_dock.hide()
    dlg = w.settings_dialog()
    shot(dlg, "9-settings")
    dlg.close()
    w.close()
    services.close()
    QApplication.processEvents()
    if rig is not None:
        from tests.support.pulse import stop_pulse

        stop_pulse(rig)
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
