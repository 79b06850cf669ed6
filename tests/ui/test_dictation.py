"""The dictation pad with the PulseAudio virtual mic and the tiny Gemma 4 (real engine, real Recorder)."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCursor
from PySide6.QtTest import QTest

from app.media.audio import write_wav
from app.ui.bootstrap import build_services
from app.ui.dictation_pad import DictationPad
from tests.support.meetings import VOICES, have_tools, read_wav, speak

pytestmark = pytest.mark.skipif(not have_tools(), reason="needs espeak-ng and sox")


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory):
    d = tmp_path_factory.mktemp("dictation")
    x = speak("Please send the report to the whole team before Friday", VOICES[1], d)
    return write_wav(d / "say.wav", x), len(x) / 16000


@pytest.fixture
def pad(qtbot, tmp_path, tiny_model, pulse):
    services = build_services(tmp_path / "home")
    s = services.settings
    s.model_path, s.mmproj_path, s.n_threads, s.n_ctx = str(tiny_model.model), str(tiny_model.mmproj), 1, 4096
    s.mic_device = pulse.mic
    p = DictationPad(services)
    qtbot.addWidget(p)
    p.show()
    yield p
    p.shutdown()
    services.close()


def heard_seconds(p) -> float:
    lst = p.listener
    return sum(len(b) for b in lst._blocks) / 16000 if lst is not None else 0.0


def hold(qtbot, p, key, pulse, wav=None, silence: float = 0.0):
    QTest.keyPress(p.editor, key)
    assert p.listener is not None, p.status.text()
    # PulseAudio needs 0.3-2 s before the first audio: "Listening" only once the mic really hears
    assert p.status.text().startswith("Opening the microphone")
    qtbot.waitUntil(lambda: p.status.text().startswith("Listening"), timeout=20_000)
    assert p.listener.recorder.wait_ready(0)
    start = heard_seconds(p)
    if wav is not None:
        assert pulse.play(wav, "micfeed").wait(60) == 0
    target = heard_seconds(p) + 0.6 if wav is not None else start + silence
    qtbot.waitUntil(lambda: heard_seconds(p) >= target, timeout=20_000)  # the tail has arrived
    QTest.keyRelease(p.editor, key)


def set_cursor(p, pos: int, end: int | None = None) -> None:
    c = p.editor.textCursor()
    c.setPosition(pos)
    if end is not None:
        c.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
    p.editor.setTextCursor(c)


def test_push_to_talk_inserts_at_the_cursor_and_nowhere_else(qtbot, pad, pulse, speech_wav):
    wav, _ = speech_wav
    pad.editor.setPlainText("Dear team, \n\nBest, Ana")
    set_cursor(pad, len("Dear team, "))
    with qtbot.waitSignal(pad.inserted, timeout=120_000) as got:
        hold(qtbot, pad, Qt.Key.Key_F9, pulse, wav)
    text = got.args[0]
    assert text.strip()
    assert pad.editor.toPlainText() == "Dear team, " + text + "\n\nBest, Ana"
    lib = pad.services.library
    (session,) = [s for s in lib.sessions() if s.kind == "dictation"]  # kept, searchable
    assert lib.segments(session.id)[0].text == text.strip()
    pad.editor.undo()  # one step
    assert pad.editor.toPlainText() == "Dear team, \n\nBest, Ana"


def test_voice_edit_replaces_exactly_the_selection_and_one_undo_restores(qtbot, pad, pulse, speech_wav):
    wav, _ = speech_wav
    original = "First line stays.\nwe has went to the meeting\nLast line stays."
    pad.editor.setPlainText(original)
    a = original.index("we has")
    b = a + len("we has went to the meeting")
    set_cursor(pad, a, b)
    with qtbot.waitSignal(pad.edit_ready, timeout=120_000) as got:
        hold(qtbot, pad, Qt.Key.Key_F10, pulse, wav)
    replacement = got.args[0]
    assert pad.preview_box.isVisible() and pad.editor.toPlainText() == original  # a preview, not yet applied
    assert pad.accept_edit()
    assert pad.editor.toPlainText() == original[:a] + replacement + original[b:]
    pad.editor.undo()
    assert pad.editor.toPlainText() == original


def test_typed_instruction_and_discard(qtbot, pad):
    pad.editor.setPlainText("hello world")
    set_cursor(pad, 6, 11)
    pad.instruction.setText("make it formal")
    with qtbot.waitSignal(pad.edit_ready, timeout=120_000):
        task = pad.typed_edit()
    assert task is not None
    pad.discard_edit()
    assert pad.editor.toPlainText() == "hello world" and not pad.preview_box.isVisible()
    set_cursor(pad, 3)
    pad.instruction.setText("shorter")
    assert pad.typed_edit() is None and "Select" in pad.status.text()


def test_a_silent_recording_inserts_nothing_and_says_so(qtbot, pad, pulse):
    pad.editor.setPlainText("unchanged")
    set_cursor(pad, 4)
    hold(qtbot, pad, Qt.Key.Key_F9, pulse, silence=1.5)
    qtbot.waitUntil(lambda: "nothing was heard" in pad.status.text().lower(), timeout=60_000)
    assert pad.editor.toPlainText() == "unchanged"
    assert pad.services.model._engine is None  # silence never loaded the model (a minute for the real one)
    assert not [s for s in pad.services.library.sessions() if s.kind == "dictation"]


def test_voice_edit_without_a_selection_says_what_to_do(qtbot, pad):
    pad.editor.setPlainText("no selection")
    QTest.keyPress(pad.editor, Qt.Key.Key_F10)
    assert pad.listener is None and "Select the text" in pad.status.text()
    QTest.keyRelease(pad.editor, Qt.Key.Key_F10)
    assert np is not None


def test_voice_edit_in_a_summary_being_edited(qtbot, tmp_path, tiny_model, pulse, speech_wav):
    """Any text field: the summary's Markdown editor takes F10 voice edits, one undo step each."""
    from app.ui.summary_tab import SummaryTab

    wav, _ = speech_wav
    services = build_services(tmp_path / "home2")
    s = services.settings
    s.model_path, s.mmproj_path, s.n_threads, s.n_ctx = str(tiny_model.model), str(tiny_model.mmproj), 1, 4096
    s.mic_device = pulse.mic
    lib = services.library
    sid = lib.create_session("Weekly", "file", status="ready").id
    summary = lib.summaries.start(sid, "general")
    lib.summaries.finish(summary.id, "# Weekly\n\nwe has agreed the budget\n")
    tab = SummaryTab(services)
    qtbot.addWidget(tab)
    tab.show()
    try:
        tab.load(sid)
        tab.edit_button.setChecked(True)
        assert tab.pages.currentWidget() is tab.editor
        original = tab.editor.toPlainText()
        a = original.index("we has")
        b = a + len("we has agreed the budget")
        c = tab.editor.textCursor()
        c.setPosition(a)
        c.setPosition(b, QTextCursor.MoveMode.KeepAnchor)
        tab.editor.setTextCursor(c)
        tab.voice.confirm = lambda replacement: True  # the user presses Accept
        got = []
        tab.voice.edit_ready.connect(got.append)
        QTest.keyPress(tab.editor, Qt.Key.Key_F10)
        assert tab.voice.listener is not None
        qtbot.waitUntil(lambda: tab.voice.listener.recorder.wait_ready(0), timeout=20_000)
        assert pulse.play(wav, "micfeed").wait(60) == 0
        blocks = tab.voice.listener._blocks
        n = sum(len(x) for x in blocks)
        qtbot.waitUntil(lambda: sum(len(x) for x in blocks) >= n + 8000, timeout=20_000)
        QTest.keyRelease(tab.editor, Qt.Key.Key_F10)
        qtbot.waitUntil(lambda: bool(got), timeout=120_000)
        assert tab.editor.toPlainText() == original[:a] + got[0] + original[b:]
        tab.editor.undo()
        assert tab.editor.toPlainText() == original
        tab.editor.redo()
        tab.edit_button.setChecked(False)  # Save
        assert lib.summaries.get(summary.id).text == original[:a] + got[0] + original[b:]
    finally:
        services.close()


@pytest.fixture(scope="module")
def two_sentences(tmp_path_factory):
    d = tmp_path_factory.mktemp("dictation-two")
    a = speak("The first sentence is about the budget", VOICES[1], d)
    b = speak("The second one asks about the schedule", VOICES[1], d)
    gap = np.zeros(int(1.5 * 16000), np.float32)
    return write_wav(d / "two.wav", np.concatenate([a, gap, b]))


def test_continuous_dictation_inserts_each_utterance_as_it_ends(qtbot, pad, pulse, two_sentences):
    pad.services.model.preload()  # the first utterance must not wait for the model's start
    qtbot.waitUntil(lambda: pad.services.model.state == "ready", timeout=60_000)
    pad.editor.setPlainText("")
    got = []
    pad.inserted.connect(got.append)
    pad.continuous.setChecked(True)
    qtbot.waitUntil(lambda: pad.status.text().startswith("Listening"), timeout=20_000)
    lst = pad.listener
    player = pulse.play(two_sentences, "micfeed")
    # the first sentence is in the pad while the second is still being spoken
    qtbot.waitUntil(lambda: bool(got) or player.poll() is not None, timeout=60_000)
    assert got and player.poll() is None, "the first utterance should be inserted before the end"
    assert player.wait(60) == 0
    qtbot.waitUntil(lambda: len(got) >= 2, timeout=60_000)
    # cut audio is let go: what stays is at most the audio since the last utterance's end
    assert sum(len(b) for b in lst._blocks) / 16000 < 3.0
    pad.continuous.setChecked(False)
    qtbot.waitUntil(lambda: pad.listener is None, timeout=5_000)
    assert pad.editor.toPlainText() == "".join(got) and len(got) == 2
    # the take is ONE session: a segment per utterance on its timeline, and the take's recording
    lib = pad.services.library
    qtbot.waitUntil(lambda: any(lib.media(s.id, "audio") for s in lib.sessions()), timeout=30_000)
    (session,) = [s for s in lib.sessions() if s.kind == "dictation"]
    segs = lib.segments(session.id)
    assert [x.text for x in segs] == [t.strip() for t in got]
    assert segs[0].end <= segs[1].start and segs[1].start - segs[0].end > 0.8  # the 1.5 s pause
    wav = lib.absolute(lib.media(session.id, "audio")[0])
    assert wav.exists() and session.title.startswith("Dictation: ")
    heard = read_wav(wav)
    assert len(heard) / 16000 >= segs[1].end and lib.get_session(session.id).duration >= segs[1].end
    # the take's temporary folder goes once its recording is stored (the same task, just after)
    qtbot.waitUntil(lambda: not list(pad.services.data_dir.glob("dictation-*")), timeout=10_000)


def test_a_dictation_waiting_for_a_model_says_so(qtbot, tmp_path):
    services = build_services(tmp_path / "home")  # no model configured
    p = DictationPad(services)
    qtbot.addWidget(p)
    try:
        p.editor.setPlainText("hello world")
        set_cursor(p, 0, 5)
        p.instruction.setText("shorter")
        p.typed_edit()
        qtbot.waitUntil(lambda: p.status.text().startswith("No model yet"), timeout=10_000)
        assert p.editor.toPlainText() == "hello world"
    finally:
        p.shutdown()
        services.close()
