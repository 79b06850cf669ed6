"""Correcting a transcript and playing it in the window: real widgets (offscreen), a real library
in tmp_path, the real player with an injected output device (a fake sounddevice that takes
blocks at the pace of real audio), the writes on the runner's pool."""

from __future__ import annotations

import time
import wave

import numpy as np
import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QAbstractItemView, QAbstractSlider

from app.media.audio import write_wav
from app.media.player import Player
from app.ui.qmodels import ColorRole, EditedRole, PlayingRole, SpeakerRole
from app.ui.transcript_edit import SegmentEditor
from tests.support.sounddevice import FakeOutput


def emb(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=12).astype("<f4")


def meeting(window, n: int = 8, audio: bool = False) -> int:
    lib = window.services.library
    s = lib.create_session("Budget review", "recording", status="ready")
    lib.add_segments(s.id, [{"start": 3.0 * i, "end": 3.0 * i + 2.5, "speaker": f"S{i % 2 + 1}",
                             "text": f"Line {i} about the budjet and the plan number {i}.",
                             "embedding": emb(i % 2) + 0.01 * emb(100 + i)} for i in range(n)])
    if audio:
        t = np.arange(int(16000 * 3.0 * n)) / 16000
        p = write_wav(lib.media_dir(s.id) / "recording.wav", 0.2 * np.sin(2 * np.pi * 220 * t))
        lib.add_media(s.id, p, "audio")
    window.open_session(s.id)
    return s.id


def settle(qtbot, view) -> None:
    qtbot.waitUntil(lambda: not view.editing.busy, timeout=10_000)


def open_editor(qtbot, view, row: int) -> SegmentEditor:
    idx = view.segments.index(row)
    view.transcript.setCurrentIndex(idx)
    view.transcript.setFocus()
    qtbot.keyClick(view.transcript, Qt.Key.Key_F2)
    ed = view.transcript.viewport().findChild(SegmentEditor)
    assert ed is not None and view.transcript.state() == QAbstractItemView.State.EditingState
    return ed


def test_edit_in_place_searchable_survives_reopen_and_diarization_undo(window, qtbot):
    from app.pipeline.speakers import diarize_session

    view, lib = window.session_view, window.services.library
    sid = meeting(window)
    g = view.segments.segment(2)
    ed = open_editor(qtbot, view, 2)
    ed.setPlainText("")
    qtbot.keyClicks(ed, "The zeppelin budget")   # typed: Space is a space here, not play/pause
    assert ed.toPlainText() == "The zeppelin budget" and not view.player_bar.playing
    qtbot.keyClicks(ed, " is approved.")
    qtbot.keyClick(ed, Qt.Key.Key_Return)
    assert view.segments.segment(2).text == "The zeppelin budget is approved."  # shown at once
    settle(qtbot, view)
    assert lib.segment(g.id).text == "The zeppelin budget is approved." and lib.segment(g.id).edited
    assert [h.segment_id for h in lib.search("zeppelin")] == [g.id]
    assert view.segments.index(2).data(EditedRole) and not view.segments.index(3).data(EditedRole)
    assert window.edit_menu.actions()[0].text().startswith("&Undo Edit segment")
    # Esc cancels an edit
    ed = open_editor(qtbot, view, 3)
    ed.setPlainText("nothing of this")
    qtbot.keyClick(ed, Qt.Key.Key_Escape)
    settle(qtbot, view)
    assert "nothing" not in lib.segments(sid)[3].text
    assert view.editing.undo_action.text() == f"&Undo Edit segment {g.id}"
    # reopening the session and re-running diarization keep the words
    other = lib.create_session("Other", "recording", status="ready")
    window.open_session(other.id)
    window.open_session(sid)
    assert view.segments.segment(2).text == "The zeppelin budget is approved."
    assert diarize_session(lib, sid, 2) == 2
    view.refresh()
    assert view.segments.segment(2).text == "The zeppelin budget is approved."
    # Ctrl+Z (the Edit menu's undo) restores the model's words; redo brings the correction back
    view.transcript.setFocus()
    qtbot.keyClick(view.transcript, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    settle(qtbot, view)
    assert lib.segment(g.id).text == g.text and view.segments.segment(2).text == g.text
    assert lib.search("zeppelin") == [] and view.editing.redo_action.isEnabled()
    qtbot.keyClick(view.transcript, Qt.Key.Key_Z,
                   Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    settle(qtbot, view)
    assert view.segments.segment(2).text == "The zeppelin budget is approved."
    # restore the model's words from the context menu
    menu = view.editing.menu_for(view.segments.index(2))
    restore = next(a for a in menu.actions() if a.text().startswith("Restore"))
    assert restore.isEnabled()
    restore.trigger()
    settle(qtbot, view)
    assert lib.segment(g.id).text == g.text and lib.segment(g.id).original_text is None


def test_the_model_applies_a_diff_not_a_reset(window, qtbot):
    from dataclasses import replace

    view = window.session_view
    meeting(window, 10)
    model = view.segments
    old = [model.segment(r) for r in range(10)]
    new = old[:1] + [replace(old[1], id=999, text="inserted")] + old[1:6] + old[7:]   # one in, one out
    new[8] = replace(new[8], text="changed after the others moved")
    resets, changed = [], []
    model.modelReset.connect(lambda: resets.append(1))
    model.dataChanged.connect(lambda a, b, roles=(): changed.append((a.row(), b.row())))
    assert model.apply(new, model.speakers())
    assert [model.segment(r) for r in range(model.rowCount())] == new and not resets
    assert changed == [(8, 8)]
    assert not model.apply(new, model.speakers())


def action(menu, prefix: str):
    for a in menu.actions():
        if a.text().startswith(prefix):
            return a.menu() or a
    raise KeyError(prefix)


def test_reassign_one_segment_and_all_following_change_exactly_those(window, qtbot, monkeypatch):
    view, lib = window.session_view, window.services.library
    sid = meeting(window, 10)
    before = [(g.id, g.speaker) for g in lib.segments(sid)]
    # row 2 (S1) to S2 alone
    sub = action(view.editing.menu_for(view.segments.index(2)), "Speaker")
    next(a for a in sub.actions() if a.text() == "S2").trigger()
    settle(qtbot, view)
    after = [(g.id, g.speaker) for g in lib.segments(sid)]
    assert [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b] == [2]
    assert view.segments.index(2).data(SpeakerRole) == "S2"
    # row 4 (S1) and every later S1 segment to a new speaker, "Dana"
    from PySide6.QtWidgets import QInputDialog

    monkeypatch.setattr(QInputDialog, "getText", staticmethod(lambda *a, **k: ("Dana", True)))
    sub = action(view.editing.menu_for(view.segments.index(4)), "Speaker of this and all following")
    next(a for a in sub.actions() if a.text().startswith("New speaker")).trigger()
    settle(qtbot, view)
    names = [g.speaker for g in lib.segments(sid)]
    assert names == ["S1", "S2", "S2", "S2", "Dana", "S2", "Dana", "S2", "Dana", "S2"]
    assert [view.segments.index(i).data(SpeakerRole) for i in range(10)] == names
    assert view.speakers.list.count() == 3  # the panel lists the new speaker
    # one undo takes back the whole "following" change
    view.editing.undo()
    settle(qtbot, view)
    assert [g.speaker for g in lib.segments(sid)][4:] == ["S1", "S2"] * 3


def test_split_at_the_cursor_keeps_text_and_time_merge_joins(window, qtbot):
    view, lib = window.session_view, window.services.library
    sid = meeting(window, 4)
    g = view.segments.segment(1)
    ed = open_editor(qtbot, view, 1)
    cur = ed.textCursor()
    cur.setPosition(g.text.index("and"))
    ed.setTextCursor(cur)
    qtbot.keyClick(ed, Qt.Key.Key_Return, Qt.KeyboardModifier.AltModifier)
    settle(qtbot, view)
    segs = lib.segments(sid)
    assert len(segs) == 5 and view.segments.rowCount() == 5
    a, b = segs[1], segs[2]
    assert f"{a.text} {b.text}" == g.text and b.text.startswith("and")
    assert a.start == g.start and b.end == g.end and a.end == b.start
    assert b.start == pytest.approx(g.start + (g.end - g.start) * g.text.index("and") / len(g.text))
    # split from the menu while not editing: at the word nearest the middle
    action(view.editing.menu_for(view.segments.index(3)), "Split in the middle").trigger()
    settle(qtbot, view)
    assert view.segments.rowCount() == 6
    # merge the first split back together
    merge = action(view.editing.menu_for(view.segments.index(1)), "Merge with the next")
    assert merge.isEnabled()
    merge.trigger()
    settle(qtbot, view)
    m = lib.segments(sid)[1]
    assert m.text == g.text and (m.start, m.end) == (g.start, g.end) and view.segments.rowCount() == 5
    # segments of two speakers are not merged
    assert not action(view.editing.menu_for(view.segments.index(0)), "Merge with the next").isEnabled()


def test_adjust_the_split_time_from_the_menu_refuses_times_outside_and_undoes(window, qtbot, monkeypatch):
    from PySide6.QtWidgets import QInputDialog

    view, lib = window.session_view, window.services.library
    sid = meeting(window, 4)
    messages: list[str] = []
    view.editing.message.connect(messages.append)
    g = view.segments.segment(1)   # 3.0-5.5 s
    assert not action(view.editing.menu_for(view.segments.index(1)), "Adjust split time").isEnabled()
    action(view.editing.menu_for(view.segments.index(1)), "Split in the middle").trigger()
    settle(qtbot, view)
    a, b = lib.segments(sid)[1:3]
    assert a.end == b.start and view.segments.rowCount() == 5
    answers = iter(["4.75", "0:07.00", "soon", "0:04.25"])
    asked: list[str] = []

    def get_text(_parent, _title, label, text=""):
        asked.append(text)
        return next(answers), True

    monkeypatch.setattr(QInputDialog, "getText", staticmethod(get_text))
    # from the second half: the same boundary; the dialog offers the current split time
    action(view.editing.menu_for(view.segments.index(2)), "Adjust split time").trigger()
    settle(qtbot, view)
    assert asked == [f"0:0{a.end:.2f}"]
    assert (lib.segment(a.id).end, lib.segment(b.id).start) == (4.75, 4.75)
    assert (view.segments.segment(1).end, view.segments.segment(2).start) == (4.75, 4.75)
    assert view.segments.row_playing_at(4.8) == 2 and view.segments.row_playing_at(4.7) == 1
    # outside the two segments (3.0 to 5.5 s): refused in one line, nothing changes
    action(view.editing.menu_for(view.segments.index(1)), "Adjust split time").trigger()
    settle(qtbot, view)
    assert "outside segments" in messages[-1] and "\n" not in messages[-1]
    action(view.editing.menu_for(view.segments.index(1)), "Adjust split time").trigger()
    assert messages[-1].startswith("“soon” is not a time")
    assert lib.segment(a.id).end == 4.75
    action(view.editing.menu_for(view.segments.index(1)), "Adjust split time").trigger()
    settle(qtbot, view)
    assert lib.segment(b.id).start == 4.25 and g.start < 4.25 < g.end
    # Ctrl+Z takes the moves back, one at a time
    assert view.editing.undo_action.text().startswith("&Undo Move the split")
    view.transcript.setFocus()
    qtbot.keyClick(view.transcript, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    settle(qtbot, view)
    assert (lib.segment(a.id).end, view.segments.segment(2).start) == (4.75, 4.75)
    view.editing.undo()
    settle(qtbot, view)
    assert lib.segment(a.id).end == a.end and view.segments.segment(1).end == a.end


def test_speakers_panel_rename_and_merge_are_undone_by_ctrl_z(window, qtbot):
    view, lib = window.session_view, window.services.library
    sid = meeting(window, 6)
    panel = view.speakers
    panel.remember.setChecked(True)   # no voice data here: the name only
    panel.rename("S2", "Ben")
    qtbot.waitUntil(lambda: view.segments.index(1).data(SpeakerRole) == "Ben", timeout=5000)
    settle(qtbot, view)
    assert lib.speaker(sid, "S2").name == "Ben"
    assert window.edit_menu.actions()[0].text() == "&Undo Rename S2 → Ben"
    panel.merge("S2", "S1")
    settle(qtbot, view)
    qtbot.waitUntil(lambda: panel.list.count() == 1, timeout=5000)
    assert {view.segments.index(i).data(SpeakerRole) for i in range(6)} == {"S1"}
    # Ctrl+Z (focus in the speakers list): the merge, then the name, come back
    panel.list.setFocus()
    qtbot.keyClick(panel.list, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    settle(qtbot, view)
    qtbot.waitUntil(lambda: panel.list.count() == 2, timeout=5000)
    assert [view.segments.index(i).data(SpeakerRole) for i in range(6)] == ["S1", "Ben"] * 3
    qtbot.keyClick(panel.list, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    settle(qtbot, view)
    assert lib.speaker(sid, "S2").name is None
    assert [view.segments.index(i).data(SpeakerRole) for i in range(6)] == ["S1", "S2"] * 3
    qtbot.waitUntil(lambda: sorted(panel.list.item(i).text() for i in range(2)) == ["S1", "S2"], timeout=5000)
    assert view.editing.redo_action.text() == "&Redo Rename S2 → Ben"


def test_find_and_replace_counts_replaces_and_undoes_in_one_step(window, qtbot):
    view, lib = window.session_view, window.services.library
    sid = meeting(window, 8)
    qtbot.keyClick(window, Qt.Key.Key_H, Qt.KeyboardModifier.ControlModifier)
    dlg = view.editing._dialog
    assert dlg is not None and dlg.isVisible()
    dlg.find_edit.setText("budjet")
    assert dlg.count_label.text() == "8 matches in 8 segments"
    dlg.find_edit.setText("budj")   # whole words only
    assert dlg.count_label.text() == "0 matches in 0 segments" and not dlg.replace_button.isEnabled()
    dlg.whole_word.setChecked(False)
    assert dlg.count_label.text().startswith("8 matches")
    dlg.whole_word.setChecked(True)
    dlg.find_edit.setText("BUDJET")
    dlg.case.setChecked(True)
    assert dlg.count_label.text().startswith("0 matches")
    dlg.case.setChecked(False)
    dlg.replacement.setText("budget")
    dlg.replace_button.click()
    settle(qtbot, view)
    assert "Replaced 8 matches" in dlg.count_label.text()
    assert all("budget" in g.text and "budjet" not in g.text for g in lib.segments(sid))
    assert all("budget" in view.segments.segment(i).text for i in range(8))
    assert len(lib.search("budget", session_id=sid)) == 8
    # the new texts were measured on the worker: the rows are laid out as tall as measured here
    d, lv = view.editing.delegate, view.transcript
    fm, width = QFontMetrics(lv.font()), lv.viewport().width()
    qtbot.waitUntil(lambda: all(lv.visualRect(view.segments.index(i)).height()
                                == d._height(fm, width, view.segments.segment(i).text) for i in range(8)))
    view.editing.undo()
    settle(qtbot, view)
    assert all("budjet" in g.text for g in lib.segments(sid))
    dlg.close()


def test_player_bar_highlight_follows_playback_and_the_user_can_scroll_away(window, qtbot):
    view = window.session_view
    meeting(window, 40, audio=True)
    bar = view.player_bar
    sd = FakeOutput(16000, pace=4.0)  # four times real time: the test runs 4x faster, the player works the same
    bar.player = Player(sd=sd)
    window.resize(900, 400)
    # a click on a segment plays from its start; the highlight and the view follow
    view._play_index(view.segments.index(1))
    assert bar.playing and bar.play_button.accessibleName() == "Pause"
    qtbot.waitUntil(lambda: view.segments.playing_row >= 6, timeout=20_000)
    row = view.segments.playing_row
    assert view.segments.index(row).data(PlayingRole)
    assert view.transcript.visualRect(view.segments.index(row)).intersects(view.transcript.viewport().rect())
    assert bar.position >= 3.0 * 6 and bar.time_label.text().endswith(" / 01:59")
    # the user scrolls away: the view stays put, a button brings it back
    sb = view.transcript.verticalScrollBar()
    sb.triggerAction(QAbstractSlider.SliderAction.SliderToMaximum)
    bottom = sb.value()
    assert bar.follow_button.isVisibleTo(bar)
    qtbot.waitUntil(lambda: view.segments.playing_row >= row + 2, timeout=20_000)
    assert sb.value() == bottom
    bar.follow_button.click()
    assert not bar.follow_button.isVisibleTo(bar)
    assert view.transcript.visualRect(view.segments.index(view.segments.playing_row)).intersects(
        view.transcript.viewport().rect())
    # Space pauses (in the session view); the position stays; back 5 s; speed
    view.transcript.setFocus()
    qtbot.keyClick(view.transcript, Qt.Key.Key_Space)
    assert not bar.playing and bar.play_button.accessibleName() == "Play"
    paused = bar.position
    time.sleep(0.2)
    assert bar.position == paused
    bar.back_button.click()
    assert bar.position == pytest.approx(max(0.0, paused - 5.0))
    bar.speed.setCurrentIndex(bar.speed.findData(2.0))
    frames0 = sd.frames
    bar.toggle()
    qtbot.waitUntil(lambda: bar.position >= paused + 1.0, timeout=20_000)
    bar.pause()
    heard = (sd.frames - frames0) / sd.rate      # seconds of output
    covered = bar.position - (paused - 5.0)          # seconds of the recording
    assert covered / heard == pytest.approx(2.0, rel=0.25), (covered, heard)  # 2x: half the time


def test_the_seek_bar_shows_each_segment_in_its_speakers_colour_and_follows_a_speaker_change(window, qtbot):
    view = window.session_view
    meeting(window, 6)
    bar = view.player_bar.timeline
    bar.resize(600, 20)

    def colours() -> list[str]:   # the bar's pixel at each segment's middle
        img = bar.grab().toImage()
        return [img.pixelColor(int(bar._x(3.0 * i + 1.25)), bar.height() // 2).name() for i in range(6)]

    def shown() -> list[str]:
        return [view.segments.index(r).data(ColorRole).name() for r in range(6)]

    qtbot.waitUntil(lambda: colours() == shown())
    assert len(set(shown())) == 2   # S1, S2, S1, ...
    view.editing.set_speaker(view.segments.segment(1).id, "S1")
    settle(qtbot, view)
    qtbot.waitUntil(lambda: colours()[1] == colours()[0], timeout=5_000)
    assert colours() == shown()


def test_missing_audio_is_a_one_line_notice(window, qtbot):
    view = window.session_view
    meeting(window, 4)
    messages = []
    window.statusBar().messageChanged.connect(lambda m: m and messages.append(m))
    view._play_index(view.segments.index(1))
    bar = view.player_bar
    assert not bar.playing and bar.notice.isVisibleTo(bar)
    assert "not available" in bar.notice.text() and "\n" not in bar.notice.text()
    assert any("not available" in m for m in messages)


def silent_wav(path, seconds: float, rate: int = 8000):
    """A WAV of ``seconds`` of silence written as a sparse file (no disk for three hours)."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\0\0")
    n = int(seconds * rate)
    with open(path, "r+b") as f:  # patch the sizes for n frames and extend the file sparsely
        f.seek(4)
        f.write((36 + 2 * n).to_bytes(4, "little"))
        f.seek(40)
        f.write((2 * n).to_bytes(4, "little"))
        f.truncate(44 + 2 * n)
    return path


def test_three_hour_session_stays_responsive_while_playing_scrolling_and_editing(window, qtbot):
    """4,000 segments over three hours: open (the rows are read on the runner's pool), play,
    follow, scroll away and back, seek, correct a segment, split one, replace a word everywhere,
    undo it while playing: a 10 ms heartbeat on the UI thread never gaps more than 250 ms (the
    goal is 50: the figures of each step are printed)."""
    lib, view = window.services.library, window.session_view
    rng = np.random.default_rng(5)
    words = "budget research vendor contract legal cloud usage agenda team numbers review the a of to and".split()
    s = lib.create_session("Offsite, day one", "recording", status="ready")
    step = 3 * 3600 / 4000
    lib.add_segments(s.id, [{"start": i * step, "end": i * step + step * 0.9, "speaker": f"S{i % 4 + 1}",
                             "text": " ".join(rng.choice(words, int(rng.integers(6, 40))))} for i in range(4000)])
    p = silent_wav(lib.media_dir(s.id) / "recording.wav", 3 * 3600 + 5)
    lib.add_media(s.id, p, "audio")
    gaps, last = [], [time.perf_counter(), time.thread_time()]
    phase = ["before"]
    where, cpu = [], []

    def beat():   # the gap since the last beat, and the UI thread's own CPU time in it
        now, mine = time.perf_counter(), time.thread_time()
        gaps.append(now - last[0])
        cpu.append(mine - last[1])
        where.append(phase[0])
        last[:] = [now, mine]

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(beat)
    timer.start()
    qtbot.wait(50)
    phase[0] = "open"
    t0 = time.perf_counter()
    window.open_session(s.id)
    opened = time.perf_counter() - t0
    assert view.loading   # read on the pool: the window goes on meanwhile
    qtbot.waitUntil(lambda: not view.loading and view.segments.rowCount() == 4000, timeout=10_000)
    qtbot.wait(300)   # the batched layout goes on between events
    bar = view.player_bar
    bar.player = Player(sd=FakeOutput(16000, pace=1.0))
    try:
        phase[0] = "play+scroll"
        bar.play_from(3600.0)
        sb = view.transcript.verticalScrollBar()
        for i in range(75):  # 3.75 s of the user scrolling, seeking and correcting, with playback on
            qtbot.wait(50)
            if i < 20:
                sb.triggerAction(QAbstractSlider.SliderAction.SliderPageStepAdd)
            elif i == 20:
                bar.follow_button.click()
            elif i in (30, 40):
                bar.seek(1800.0 if i == 30 else 7200.0)
            elif i == 45:  # a correction typed in place (what the editor's Enter does)
                phase[0] = "edit"
                row = view.segments.playing_row
                view.segments.setData(view.segments.index(row), "Corrected while it plays.")
            elif i == 50:  # a split: the whole session is read back and diffed
                phase[0] = "split+undo"
                view.editing.split(view.segments.segment(view.segments.playing_row + 1).id)
            elif i == 55:
                view.editing.undo()
            elif i == 60:  # a find-and-replace over the whole session (~1,700 segments change)
                phase[0] = "replace"
                view.editing.replace("budget", "Budget", True, True)
            elif i == 70:
                phase[0] = "undo-replace"
                view.editing.undo()
        assert bar.playing and view.segments.playing_row > 0
        settle(qtbot, view)
        qtbot.wait(300)
    finally:
        timer.stop()
        bar.pause()
    figures = {}
    for name in ("open", "play+scroll", "edit", "split+undo", "replace", "undo-replace"):
        g = sorted(x for x, w in zip(gaps, where, strict=True) if w == name)
        assert g, name
        busy = sum(c for c, w in zip(cpu, where, strict=True) if w == name)
        figures[name] = (1000 * g[-1], 1000 * g[min(len(g) - 1, int(0.99 * len(g)))], len(g), 1000 * busy)
    print(f"\n3-hour, 4000-segment session: open_session returned in {1000 * opened:.0f} ms; "
          "heartbeat gaps (ms) per step, max / p99 (beats), the UI thread's CPU in the step (ms):")
    for name, (worst, p99, n, busy) in figures.items():
        print(f"  {name:13s} {worst:6.1f} / {p99:5.1f}  ({n})  cpu {busy:6.1f}")
    worst = max(f[0] for f in figures.values())
    assert len(gaps) > 100
    # issue 16's goal is 50 ms; on this 2-core machine at load 1.3-1.9, four runs gave 11-31 ms per
    # step but for one replace (56) and one play+scroll max (31; p99 16-19); the replace step was
    # 58-71 before a full garbage collection and the seek bar's Python loops were taken off it.
    # The bound is generous, so it catches a regression (a blocking whole-session step is several
    # hundred ms), not the load
    assert worst <= 250, f"UI thread blocked for {worst:.0f} ms"
    assert [g.text for g in lib.segments(s.id)] == [view.segments.segment(r).text
                                                     for r in range(view.segments.rowCount())]


def test_a_long_session_is_read_on_the_pool_and_the_latest_open_wins(window, qtbot):
    """Over READ_ON_POOL segments the rows arrive from the pool: a search hit's time is shown once
    they are in, and a session opened meanwhile is not replaced by the late rows."""
    from app.ui.session_view import READ_ON_POOL

    lib, view = window.services.library, window.session_view
    big = lib.create_session("Long one", "recording", status="ready")
    n = READ_ON_POOL + 200
    lib.add_segments(big.id, [{"start": 2.0 * i, "end": 2.0 * i + 1.5, "speaker": f"S{i % 3 + 1}",
                               "text": f"Point {i} of the long meeting."} for i in range(n)])
    small = meeting(window, 3)
    window.open_session(big.id, 1000.0)
    assert view.loading and view.segments.rowCount() == 0
    qtbot.waitUntil(lambda: not view.loading, timeout=10_000)
    assert view.segments.rowCount() == n and view.speakers.list.count() == 3
    assert view.segments.segment(view.transcript.currentIndex().row()).text == "Point 500 of the long meeting."
    # opened, then another session at once: the long one's rows, when they come, are dropped
    reads: list = []
    window.services.runner.task_added.connect(lambda t: t.title == "Open a session" and reads.append(t))
    window.open_session(big.id)
    window.open_session(small)
    assert not view.loading and view.segments.rowCount() == 3 and len(reads) == 1
    qtbot.waitUntil(lambda: reads[0].finished, timeout=10_000)
    assert reads[0].state == "done"
    assert view.segments.rowCount() == 3 and view.session_id == small
    assert view.segments.segment(0).text.startswith("Line 0")


def test_real_playback_through_pulseaudio_moves_the_highlight(window, qtbot, pulse):
    """The bar's own Player (sounddevice, PortAudio, the private PulseAudio sink): the highlight
    follows what is really played."""
    view = window.session_view
    meeting(window, 6, audio=True)
    bar = view.player_bar
    assert bar.player is None
    view._play_index(view.segments.index(0))
    qtbot.waitUntil(lambda: view.segments.playing_row == 1, timeout=15_000)
    assert bar.playing and bar.player is not None and bar.player.error is None
    view.transcript.setFocus()
    qtbot.keyClick(view.transcript, Qt.Key.Key_Space)
    assert not bar.playing and 3.0 <= bar.position < 6.0


def test_transcribe_one_segment_again_in_another_language(window, qtbot, tiny_model):
    """The context menu's "Transcribe again ▸ In German": a model task asks for that segment's audio
    with the language, and the answer (or, from the random tiny model, a one-line "no words") shows."""
    services = window.services
    s = services.settings
    s.model_path, s.mmproj_path, s.n_threads, s.n_ctx = str(tiny_model.model), str(tiny_model.mmproj), 1, 4096
    services.save_settings()
    services.model.model_changed()
    sid = meeting(window, 4, audio=True)
    view = window.session_view
    messages: list[str] = []
    view.editing.message.connect(messages.append)
    added: list = []
    services.runner.task_added.connect(added.append)
    sub = action(view.editing.menu_for(view.segments.index(2)), "Transcribe again")
    action(sub, "In German").trigger()
    qtbot.waitUntil(lambda: any(t.title == "Transcribe a segment again" for t in added), timeout=10_000)
    task = next(t for t in added if t.title == "Transcribe a segment again")
    qtbot.waitUntil(lambda: task.finished, timeout=120_000)
    g = services.library.segments(sid)[2]
    if task.state == "done":
        qtbot.waitUntil(lambda: view.segments.segment(2).edited, timeout=10_000)
        assert g.edited and g.original_text == "Line 2 about the budjet and the plan number 2."
        assert any("transcribed again" in m for m in messages)
    else:
        assert task.error and "\n" not in task.error and not g.edited
    assert [x.text for x in services.library.segments(sid)[:2]] == [
        "Line 0 about the budjet and the plan number 0.", "Line 1 about the budjet and the plan number 1."]


def test_citations_and_search_hits_play_from_their_time(window, qtbot):
    """A summary's or a chat answer's [mm:ss] citation, and a transcript search hit, play from there."""
    from PySide6.QtCore import QUrl

    view = window.session_view
    sid = meeting(window, 12, audio=True)
    lib = window.services.library
    s = lib.summaries.start(sid, "general")
    lib.summaries.finish(s.id, "## Decisions\n- Keep the budget [00:21] and the plan [00:30].")
    view.summary.load(sid)
    bar = view.player_bar
    bar.player = Player(sd=FakeOutput(16000, pace=1.0))
    html = view.summary.text.toHtml()
    assert 'href="t:21.00"' in html and 'href="t:30.00"' in html
    view.summary.text.anchorClicked.emit(QUrl("t:21.00"))
    assert bar.playing and view.segments.segment(view.transcript.currentIndex().row()).start == 21.0
    qtbot.waitUntil(lambda: view.segments.playing_row == 7, timeout=10_000)  # 21.0-23.5 s is segment 7
    view.chat.jump.emit(9.0)  # a chat answer's [00:09]
    qtbot.waitUntil(lambda: view.segments.playing_row == 3, timeout=10_000)
    bar.pause()
    window.search.setText("number 10")
    qtbot.waitUntil(lambda: window.results.model.rowCount() >= 1, timeout=10_000)
    row = next(i for i, h in enumerate(window.results.hits) if h.offset == 30.0)
    window.results.choose(row)
    assert bar.playing
    qtbot.waitUntil(lambda: view.segments.playing_row == 10, timeout=10_000)


def test_a_second_voice_is_shown_on_the_segment_it_talks_over(window, qtbot):
    """Overlap marks stored by transcription show on the row they fall in (the header, the
    tooltip, the accessible text), follow a rename, and appear when a job writes them later."""
    from app.ui.qmodels import OverlapRole

    view, lib = window.session_view, window.services.library
    sid = meeting(window, n=6)
    s1, s2 = lib.speaker(sid, "S1"), lib.speaker(sid, "S2")
    assert not any(view.segments.index(r).data(OverlapRole) for r in range(6))
    # a job writes the marks after the rows: row 2 (S1, 6.0-8.5) has S2 over it; a mark by the
    # row's own speaker, and one in a pause, are not shown
    lib.set_overlaps(sid, [(7.0, 7.8, s2.id), (12.2, 12.9, s1.id), (8.6, 8.9, s2.id)])
    view.refresh_soon(sid)                    # as when the job that wrote them ends
    qtbot.waitUntil(lambda: bool(view.segments.index(2).data(OverlapRole)), timeout=10_000)
    assert view.segments.index(2).data(OverlapRole) == "S2"
    assert [r for r in range(6) if view.segments.index(r).data(OverlapRole)] == [2]
    assert "S2 talks over at 00:07 (0.8 s)" in view.segments.index(2).data(Qt.ItemDataRole.ToolTipRole)
    assert "(S2 talking over)" in view.segments.index(2).data(Qt.ItemDataRole.AccessibleTextRole)
    lib.edits.rename_speaker(sid, "S2", "Bea")
    window.open_session(sid)
    assert view.segments.index(2).data(OverlapRole) == "Bea"
    view.transcript.viewport().repaint()      # the delegate paints the mark without error
