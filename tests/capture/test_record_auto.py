"""`record --auto` through the real CLI on the private PulseAudio: a `parecord` client with Zoom's
PulseAudio properties plays the meeting app. Recording starts when it captures the virtual mic and
stops (files finalized, the session stored with audio) when it lets go, or after silence, with a
countdown line first; `record --continue` records on into the same session (its audio then joins both parts)."""

from __future__ import annotations

import pytest

from app.library import Library
from tests.support.chirp import find_chirp, write_chirp
from tests.support.cli_proc import CliProc, wait_for
from tests.support.meetings import read_wav

RATE = 16_000


def auto(pulse, *extra: str, **kw) -> CliProc:
    return CliProc("record", "--auto", "--device", pulse.mic, "--system-audio", pulse.system, *extra, env=pulse.env,
                   **kw)


def _settings(**kw) -> None:
    from app.settings import Settings

    Settings(**kw).save()  # under the test's private MINUTELY_HOME


@pytest.mark.slow
def test_record_auto_follows_the_meeting_app_and_continue_records_on(tmp_path, pulse, _private_home):
    wav = write_chirp(tmp_path / "chirp.wav")
    _settings(auto_record_apps=["Zoom"])
    rec = auto(pulse, "--release-grace", "1", "--stop-after-silence", "0")
    zoom = None
    try:
        rec.wait_line("waiting for a meeting", 60)
        zoom = pulse.meeting_app()
        rec.wait_line("Zoom started using the microphone: recording", 30)
        rec.wait_line("recording session", 30)
        assert pulse.play(wav, "micfeed").wait(30) == 0
        zoom.terminate()
        zoom.wait(10)
        rec.wait_line("auto-stop in", 30)
        code, out = rec.finish(60)
    finally:
        rec.kill()
        if zoom is not None and zoom.poll() is None:
            zoom.kill()
    print(rec.stderr)
    assert code == 0 and out.strip().isdigit(), rec.stderr
    sid = int(out)
    assert any("auto-stop: the app released the microphone" in x for x in rec.lines), rec.stderr
    assert any(f"record --continue {sid}" in x for x in rec.lines), rec.stderr
    with Library.open(_private_home) as lib:
        (audio,) = lib.media(sid, "audio")
        first = lib.get_session(sid).duration
        mic = read_wav(lib.absolute(audio).with_name("mic.wav"))
        assert lib.absolute(audio).with_name("system.wav").exists()
    onset, corr = find_chirp(mic)
    assert corr >= 0.95, f"the chirp played while Zoom captured the mic was not recorded ({corr:.3f})"
    assert first >= onset + 0.5

    more = CliProc("record", "--continue", str(sid), "--device", pulse.mic, "--seconds", "1", env=pulse.env)
    try:
        code, out = more.finish(60)
    finally:
        more.kill()
    assert code == 0 and int(out) == sid, more.stderr
    with Library.open(_private_home) as lib:
        (joined,) = lib.media(sid, "audio")  # both parts, the second at the first one's end
        assert joined.path.endswith("/audio.wav") and joined.offset == 0.0
        whole = read_wav(lib.absolute(joined))
        assert lib.get_session(sid).duration == pytest.approx(first + 1.0, abs=0.1)
        assert len(whole) / RATE == pytest.approx(first + 1.0, abs=0.1)
    assert find_chirp(whole) == pytest.approx((onset, corr), abs=0.01)  # the first part where it was


@pytest.mark.slow
def test_record_auto_stops_after_silence_with_a_countdown(pulse, _private_home):
    rec = auto(pulse, "--app", "Zoom", "--release-grace", "600", "--stop-after-silence", "0.05")  # 3 s
    zoom = None
    try:
        rec.wait_line("waiting for a meeting", 60)
        zoom = pulse.meeting_app()
        rec.wait_line("recording session", 30)
        countdown = rec.wait_line("auto-stop in", 30)
        code, out = rec.finish(60)
        assert zoom.poll() is None  # Zoom still has the mic: silence ended it
    finally:
        rec.kill()
        if zoom is not None:
            zoom.terminate()
            zoom.wait(10)
    print(rec.stderr)
    assert code == 0 and out.strip().isdigit(), rec.stderr
    assert "silence on every track (Zoom)" in countdown
    assert any("auto-stop: silence on every track" in x for x in rec.lines), rec.stderr
    with Library.open(_private_home) as lib:
        (audio,) = lib.media(int(out), "audio")
        assert lib.absolute(audio).exists()
        assert lib.get_session(int(out)).duration >= 2.5


@pytest.mark.slow
def test_ctrl_c_while_waiting_records_nothing(pulse, _private_home):
    import signal

    rec = auto(pulse)
    try:
        rec.wait_line("waiting for a meeting", 60)
        rec.p.send_signal(signal.SIGINT)
        code, out = rec.finish(30)
    finally:
        rec.kill()
    assert code == 0 and out == "", rec.stderr
    assert rec.lines[-1] == "minutely: no meeting recorded"
    with Library.open(_private_home) as lib:
        assert lib.sessions() == []


# --- the settings: detect_meetings, auto_record_apps, --app ------------------------------------
def test_record_auto_with_detection_off_says_so_and_exits(_private_home):
    _settings(detect_meetings=False, auto_record_apps=[])
    rec = CliProc("record", "--auto")
    try:
        code, out = rec.finish(60)
    finally:
        rec.kill()
    assert code == 2 and out == "", rec.stderr
    assert len(rec.lines) == 1 and "meeting detection is off" in rec.lines[0] and "--app" in rec.lines[0]
    with Library.open(_private_home) as lib:
        assert lib.sessions() == []


@pytest.mark.slow
def test_record_auto_records_allowed_apps_and_skips_others_without_a_terminal(pulse, _private_home):
    _settings(detect_meetings=True, auto_record_apps=["Teams"])
    rec = auto(pulse, "--release-grace", "1", "--stop-after-silence", "0")  # stdin: /dev/null
    zoom = teams = None
    try:
        rec.wait_line("waiting for a meeting (Teams recorded without asking)", 60)
        zoom = pulse.meeting_app()
        skipped = rec.wait_line("Zoom started using the microphone", 30)
        assert "not recorded" in skipped and "no terminal" in skipped
        teams = pulse.meeting_app("Microsoft Teams", "teams")
        rec.wait_line("Teams started using the microphone: recording", 30)
        rec.wait_line("recording session", 30)
        teams.terminate()
        teams.wait(10)
        rec.wait_line("auto-stop in", 30)
        code, out = rec.finish(60)
    finally:
        rec.kill()
        for p in (zoom, teams):
            if p is not None and p.poll() is None:
                p.terminate()
                p.wait(10)
    print(rec.stderr)
    assert code == 0 and out.strip().isdigit(), rec.stderr
    assert any("auto-stop: the app released the microphone" in x for x in rec.lines), rec.stderr
    assert not any("Zoom started using the microphone: recording" in x for x in rec.lines)
    with Library.open(_private_home) as lib:
        assert [s.id for s in lib.sessions()] == [int(out)]


@pytest.mark.slow
def test_record_auto_asks_at_a_terminal_and_follows_the_answer(pulse, _private_home):
    import os
    import pty

    _settings(detect_meetings=True, auto_record_apps=[])
    master, slave = pty.openpty()  # stdin is a terminal; the answers are typed into its other end
    rec = auto(pulse, "--release-grace", "1", "--stop-after-silence", "0", stdin=slave)
    os.close(slave)
    zoom = None
    try:
        rec.wait_line("waiting for a meeting", 60)
        os.write(master, b"n\n")  # read only when asked
        zoom = pulse.meeting_app()
        rec.wait_line("not recording Zoom; still waiting", 30)
        zoom.terminate()
        zoom.wait(10)
        rec.wait_line("Zoom stopped using the microphone", 30)
        zoom = pulse.meeting_app()  # asked again; answered yes only after the call has ended
        wait_for(lambda: sum("Record this meeting (Zoom)? [y/N]" in x for x in rec.lines) == 2, 30, "the question")
        zoom.terminate()
        zoom.wait(10)
        wait_for(lambda: "ZOOM" not in pulse.pactl("list", "source-outputs"), 30, "Zoom's stream to go")
        os.write(master, b"y\n")
        rec.wait_line("Zoom no longer uses the microphone; still waiting", 30)
        wait_for(lambda: sum("Zoom stopped using the microphone" in x for x in rec.lines) == 2, 30, "the stop")
        os.write(master, b"y\n")  # read when asked again
        zoom = pulse.meeting_app()
        rec.wait_line("Zoom started using the microphone: recording", 30)
        rec.wait_line("recording session", 30)
        zoom.terminate()
        zoom.wait(10)
        code, out = rec.finish(60)
    finally:
        rec.kill()
        os.close(master)
        if zoom is not None and zoom.poll() is None:
            zoom.terminate()
            zoom.wait(10)
    print(rec.stderr)
    assert code == 0 and out.strip().isdigit(), rec.stderr
    asked = [x for x in rec.lines if x == "minutely: Record this meeting (Zoom)? [y/N]"]
    assert len(asked) == 3, rec.stderr
    assert sum("Zoom stopped using the microphone" in x for x in rec.lines) == 2, rec.stderr
    with Library.open(_private_home) as lib:
        assert [s.id for s in lib.sessions()] == [int(out)]


@pytest.mark.slow
def test_record_auto_app_flag_overrides_the_settings(pulse, _private_home):
    _settings(detect_meetings=False, auto_record_apps=[])
    rec = auto(pulse, "--app", "zoom", "--release-grace", "1", "--stop-after-silence", "0")
    zoom = None
    try:
        rec.wait_line("waiting for a meeting (Zoom)", 60)
        teams = pulse.meeting_app("Microsoft Teams", "teams")  # not named: not even mentioned
        zoom = pulse.meeting_app()
        rec.wait_line("Zoom started using the microphone: recording", 30)
        rec.wait_line("recording session", 30)
        zoom.terminate()
        zoom.wait(10)
        code, out = rec.finish(60)
        teams.terminate()
        teams.wait(10)
    finally:
        rec.kill()
    assert code == 0 and out.strip().isdigit(), rec.stderr
    assert not any("Teams" in x for x in rec.lines), rec.stderr
