"""Recording from the window: the PulseAudio virtual mic, live segments in the open transcript."""

from __future__ import annotations

import pytest

from app.ui.bootstrap import build_services
from app.ui.main_window import MainWindow
from tests.support.meetings import have_tools, make_meeting

pytestmark = pytest.mark.skipif(not have_tools(), reason="needs espeak-ng and sox")


@pytest.fixture(scope="module")
def meeting(tmp_path_factory):
    return make_meeting(tmp_path_factory.mktemp("rec-meeting"), 2, 8, seed=11)



def _live_window(qtbot, tmp_path, pulse, tiny_model):
    """A window over a private folder with the tiny model set up, recording the rig's virtual mic."""
    services = build_services(tmp_path / "home")
    s = services.settings
    s.model_path, s.mmproj_path, s.n_threads, s.n_ctx = str(tiny_model.model), str(tiny_model.mmproj), 1, 4096
    s.mic_device, s.system_device = pulse.mic, "off"
    w = MainWindow(services)
    qtbot.addWidget(w)
    w.show()
    return services, w

@pytest.mark.slow  # ~35 s: a whole espeak-ng meeting played into the virtual mic, live
def test_record_from_the_virtual_mic_with_live_segments(qtbot, tmp_path, pulse, tiny_model, meeting):
    services, w = _live_window(qtbot, tmp_path, pulse, tiny_model)
    bar = w.recording
    try:
        assert bar.mic.currentData() == pulse.mic and bar.system.currentData() == "off"
        with qtbot.waitSignal(bar.session_started, timeout=30_000) as started:
            bar.record.trigger()  # Ctrl+R
        sid = started.args[0]
        assert w.session_view.session_id == sid and bar.record.text().endswith("Stop")
        qtbot.waitUntil(lambda: bar.runner.meeting.position > 0.5, timeout=30_000)
        player = pulse.play(meeting.wav, "micfeed")
        peaks = []
        bar.timer.timeout.connect(lambda: peaks.append(bar.meters["mic"].value()))
        # live: segments appear in the open transcript while the meeting is still playing
        qtbot.waitUntil(lambda: w.session_view.segments.rowCount() > 0 or player.poll() is not None,
                        timeout=120_000)
        assert player.poll() is None, "a live segment should show before the meeting ends"
        assert bar.elapsed.text() and max(peaks) > 30  # the level meter moved
        qtbot.waitUntil(lambda: player.poll() is not None, timeout=120_000)
        with qtbot.waitSignal(bar.session_finished, timeout=120_000) as finished:
            bar.record.trigger()
        assert finished.args == [sid, True]
        assert bar.record.text().endswith("Record") and bar.runner is None
        lib = services.library
        sess = lib.get_session(sid)
        assert (sess.kind, sess.status) == ("recording", "ready")
        assert sess.duration >= meeting.duration
        assert lib.media(sid, "audio") and len(lib.segments(sid)) >= 2
        qtbot.waitUntil(lambda: w.session_view.segments.rowCount() == len(lib.segments(sid)), timeout=10_000)
        assert w.session_view.speakers.list.count() >= 1
    finally:
        w.close()
        services.close()


def test_a_missing_microphone_is_one_line_and_nothing_is_left(qtbot, tmp_path, pulse):
    services = build_services(tmp_path / "home")
    services.settings.mic_device, services.settings.system_device = "no such microphone", "off"
    w = MainWindow(services)
    qtbot.addWidget(w)
    messages = []
    w.recording.message.connect(messages.append)
    try:
        w.recording.start()
        qtbot.waitUntil(lambda: bool(messages) and w.recording.runner is None, timeout=30_000)
        assert "no such microphone" in messages[0] and "\n" not in messages[0]
        assert services.library.sessions() == [] and w.recording.record.isEnabled()
    finally:
        w.close()
        services.close()


def test_the_bar_says_recording_only_once_audio_flows(qtbot, tmp_path, pulse):
    """Until the microphone delivers audio (PulseAudio: 0.4-2 s after it opens) the bar says
    "Starting…"; a chirp played the moment it says "Recording" is in the stored audio, whole,
    near its very start."""
    from app.ui.tasks import WAITING
    from tests.support.chirp import find_chirp, write_chirp
    from tests.support.meetings import read_wav

    wav = write_chirp(tmp_path / "chirp.wav")
    services = build_services(tmp_path / "home")
    services.settings.mic_device, services.settings.system_device = pulse.mic, "off"
    w = MainWindow(services)
    qtbot.addWidget(w)
    w.show()
    bar = w.recording
    seen = []  # (label, whether the microphone had delivered audio) at each look

    def says_recording() -> bool:
        m = bar.runner.meeting if bar.runner else None
        seen.append((bar.elapsed.text(), m is not None and m.recorder.wait_ready(0)))
        return "Recording" in seen[-1][0]

    try:
        with qtbot.waitSignal(bar.recording_changed, timeout=30_000) as changed:
            bar.record.trigger()  # Ctrl+R
            assert bar.elapsed.text() == "Starting…" and not bar.pause.isEnabled()
            qtbot.waitUntil(says_recording, timeout=30_000)
        player = pulse.play(wav, "micfeed")
        assert changed.args == [True] and bar.pause.isEnabled() and bar.record.text().endswith("Stop")
        assert all(text == "Starting…" for text, _ in seen[:-1]), seen
        text, flowing = seen[-1]
        assert flowing, "the bar said Recording before the microphone delivered audio"
        assert text in ("● Recording 00:00", "● Recording 00:01"), text  # the clock starts with the audio
        assert player.wait(30) == 0, player.stderr.read()
        m = bar.runner.meeting
        at = m.position
        qtbot.waitUntil(lambda: m.position >= at + 0.3, timeout=10_000)  # the chirp's tail on disk
        with qtbot.waitSignal(bar.session_finished, timeout=60_000) as finished:
            bar.record.trigger()
        # recorded without a model: its audio is read and its transcription waits for one (or, no
        # speech in a chirp, is refused); let that settle before closing
        tasks = lambda: [r.task for r in w.jobs.rows if r.task is not None]  # noqa: E731
        qtbot.waitUntil(lambda: any(t.kind == "import" for t in tasks())
                        and all(t.finished or t.state == WAITING for t in tasks()), timeout=60_000)
        lib = services.library
        (audio,) = lib.media(finished.args[0], "audio")
        onset, corr = find_chirp(read_wav(lib.absolute(audio).with_name("mic.wav")))
        print(f"window: {len(seen)} looks, Starting… then {text!r}; chirp at {onset:.3f} s (correlation {corr:.3f})")
        assert corr >= 0.95, f"the chirp played when the bar said Recording was not recorded whole ({corr:.3f})"
        assert onset < 1.0, f"the chirp came {onset:.2f} s into the recording: the bar said Recording too early"
    finally:
        w.close()
        services.close()


@pytest.mark.slow  # ~60 s: the meeting played twice, live both times
def test_continue_recording_into_a_session_is_transcribed_live(qtbot, tmp_path, pulse, tiny_model, meeting):
    """With a model set up, File ▸ Continue recording into this session records a second part and
    transcribes it live: its segments show in the open transcript as they land, after the first
    part's, which stay as they were."""
    services, w = _live_window(qtbot, tmp_path, pulse, tiny_model)
    bar, lib = w.recording, services.library

    def part(start) -> tuple[int, list, int]:
        with qtbot.waitSignal(bar.session_started, timeout=30_000) as started:
            start()
        qtbot.waitUntil(lambda: "Recording" in bar.elapsed.text(), timeout=30_000)
        player = pulse.play(meeting.wav, "micfeed")
        qtbot.waitUntil(lambda: player.poll() is not None, timeout=120_000)
        m = bar.runner.meeting
        at = m.position
        qtbot.waitUntil(lambda: m.position >= at + 1.0, timeout=10_000)
        shown = w.session_view.segments.rowCount()  # live: landed while recording
        with qtbot.waitSignal(bar.session_finished, timeout=120_000) as finished:
            bar.record.trigger()
        return started.args[0], finished.args, shown

    try:
        sid, done, _ = part(bar.record.trigger)
        assert done == [sid, True]
        first = [(g.id, g.start, g.end, g.text) for g in lib.segments(sid)]
        offset = lib.get_session(sid).duration
        assert len(first) >= 2
        w.open_session(sid)
        again, done, shown = part(w.continue_action.trigger)
        assert (again, done) == (sid, [sid, True])
        assert w.session_view.session_id == sid and shown > len(first), "the part's segments show as they land"
        segs = lib.segments(sid)
        assert [(g.id, g.start, g.end, g.text) for g in segs[:len(first)]] == first
        added = segs[len(first):]
        print(f"window: first part {len(first)} segments, continued part {len(added)} from {offset:.2f} s")
        assert len(added) >= 2 and min(g.start for g in added) >= offset
        sess = lib.get_session(sid)
        assert sess.status == "ready" and len(lib.sessions()) == 1
        qtbot.waitUntil(lambda: w.session_view.segments.rowCount() == len(segs), timeout=10_000)
    finally:
        w.close()
        services.close()
