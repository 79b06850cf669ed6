"""`Meeting(continue_session=sid)`: a false auto-stop is undone by recording a further part into the
same session: its audio in `recording-2/`, placed after the first part; the session's length grows,
and its one "audio" media becomes `audio.wav`, every part at its offset (what transcription and
playback use)."""

from __future__ import annotations

import wave

import numpy as np
import pytest

from app.capture.recorder import RecordingError
from app.capture.tracks import RecordingResult
from app.library import Library, SessionState
from app.pipeline import meeting as meeting_mod

RATE = 16_000


def write_wav(path, seconds, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(np.full(round(seconds * RATE), value, "<i2").tobytes())
    return path


def read(path):
    with wave.open(str(path), "rb") as r:
        return np.frombuffer(r.readframes(r.getnframes()), "<i2")


class FakeRecorder:
    def __init__(self, folder, *, on_ready, duration, value, **_):
        self.folder, self.on_ready, self.seconds, self.value = folder, on_ready, duration, value
        self.tracks, self.notices, self.duration = ["mic"], [], 0.0

    def start(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        self.on_ready()

    def stop(self):
        mix = write_wav(self.folder / "mix.wav", self.seconds, self.value)
        return RecordingResult(self.folder, self.seconds, {}, mix)


def record(lib, monkeypatch, seconds, value=1, **kw):
    monkeypatch.setattr(meeting_mod, "Recorder",
                        lambda folder, **k: FakeRecorder(folder, duration=seconds, value=value, **k))
    m = meeting_mod.Meeting(lib, mic="default", title="Standup", **kw)
    sid = m.start()
    m.stop()
    return sid


def test_continue_appends_parts_and_joins_them(tmp_path, monkeypatch):
    with Library.open(tmp_path / "data") as lib:
        sid = record(lib, monkeypatch, 0.9, 1)
        assert record(lib, monkeypatch, 0.3, 2, continue_session=sid) == sid
        assert record(lib, monkeypatch, 0.05, 3, continue_session=sid) == sid
        media = lib.media_dir(sid, create=False)
        assert [(media / d / "joined").read_text().strip() for d in ("recording", "recording-2", "recording-3")] \
            == ["0.0", "0.9", "1.2"]
        (audio,) = lib.media(sid, "audio")
        assert audio.path.endswith("/audio.wav") and lib.session_audio(sid) == lib.absolute(audio)
        joined = read(lib.absolute(audio))
        assert len(joined) == round(1.25 * RATE)
        assert set(joined[:round(0.9 * RATE)]) == {1} and set(joined[round(0.9 * RATE):round(1.2 * RATE)]) == {2}
        assert set(joined[round(1.2 * RATE):]) == {3}
        s = lib.get_session(sid)
        assert (s.duration, s.status, s.title) == (pytest.approx(1.25), SessionState.NEW, "Standup")
        assert len(lib.sessions()) == 1


def test_continue_refuses_live_transcription(tmp_path, monkeypatch):
    with Library.open(tmp_path / "data") as lib:
        sid = record(lib, monkeypatch, 0.1)
        with pytest.raises(RecordingError):
            meeting_mod.Meeting(lib, continue_session=sid, engine=object()).start()


def test_a_crashed_continued_part_is_recovered_after_the_first_and_joined(tmp_path, monkeypatch):
    with Library.open(tmp_path / "data") as lib:
        sid = record(lib, monkeypatch, 0.6, 1)
        part = lib.media_dir(sid, create=False) / "recording-2"
        mix = write_wav(part / "mix.wav", 0.2, 5)
        for _ in range(2):  # a repair that runs twice attaches it once
            meeting_mod._attach(lib, sid, RecordingResult(part, 0.2, {}, mix, recovered=True))
        assert (part / "joined").read_text().strip() == "0.6" and len(lib.media(sid, "audio")) == 1
        assert lib.get_session(sid).duration == pytest.approx(0.8)
        assert len(read(lib.session_audio(sid))) == round(0.8 * RATE)
