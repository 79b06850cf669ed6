"""`Meeting(continue_session=sid)`: a false auto-stop is undone by recording a further part into the
same session: its audio in `recording-2/`, placed after the first part; the session's length grows."""

from __future__ import annotations

import pytest

from app.capture.recorder import RecordingError
from app.capture.tracks import RecordingResult
from app.library import Library, SessionState
from app.pipeline import meeting as meeting_mod


class FakeRecorder:
    def __init__(self, folder, *, on_ready, duration, **_):
        self.folder, self.on_ready, self.seconds = folder, on_ready, duration
        self.tracks, self.notices, self.duration = ["mic"], [], 0.0

    def start(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        self.on_ready()

    def stop(self):
        mix = self.folder / "mix.wav"
        mix.write_bytes(b"RIFF")
        return RecordingResult(self.folder, self.seconds, {}, mix)


def record(lib, monkeypatch, seconds, **kw):
    monkeypatch.setattr(meeting_mod, "Recorder", lambda folder, **k: FakeRecorder(folder, duration=seconds, **k))
    m = meeting_mod.Meeting(lib, mic="default", title="Standup", **kw)
    sid = m.start()
    m.stop()
    return sid


def test_continue_appends_a_part_after_the_first(tmp_path, monkeypatch):
    with Library.open(tmp_path / "data") as lib:
        sid = record(lib, monkeypatch, 90.0)
        assert record(lib, monkeypatch, 30.0, continue_session=sid) == sid
        assert record(lib, monkeypatch, 5.0, continue_session=sid) == sid
        parts = lib.media(sid, "audio")
        assert [(m.offset, m.path.split("/")[-2]) for m in parts] == \
            [(0.0, "recording"), (90.0, "recording-2"), (120.0, "recording-3")]
        s = lib.get_session(sid)
        assert (s.duration, s.status, s.title) == (125.0, SessionState.NEW, "Standup")
        assert len(lib.sessions()) == 1


def test_continue_refuses_live_transcription(tmp_path, monkeypatch):
    with Library.open(tmp_path / "data") as lib:
        sid = record(lib, monkeypatch, 10.0)
        with pytest.raises(RecordingError):
            meeting_mod.Meeting(lib, continue_session=sid, engine=object()).start()


def test_a_crashed_continued_part_is_recovered_after_the_first(tmp_path, monkeypatch):
    with Library.open(tmp_path / "data") as lib:
        sid = record(lib, monkeypatch, 60.0)
        part = lib.media_dir(sid, create=False) / "recording-2"
        part.mkdir()
        (part / "mix.wav").write_bytes(b"RIFF")
        meeting_mod._attach(lib, sid, RecordingResult(part, 20.0, {}, part / "mix.wav", recovered=True))
        meeting_mod._attach(lib, sid, RecordingResult(part, 20.0, {}, part / "mix.wav", recovered=True))  # twice: once
        assert [m.offset for m in lib.media(sid, "audio")] == [0.0, 60.0]
        assert lib.get_session(sid).duration == 80.0
