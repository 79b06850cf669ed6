"""`Meeting(continue_session=sid)`: a false auto-stop is undone by recording a further part into the
same session: its audio in `recording-2/`, placed after the first part; the session's length grows,
and its one "audio" media becomes `audio.wav`, every part at its offset (what transcription and
playback use)."""

from __future__ import annotations

import wave

import numpy as np
import pytest

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


class SpeakingRecorder(FakeRecorder):
    """Hands `samples` to the live transcriber in the writer's 50 ms blocks, then stores them as
    its mix.wav (what the real Recorder does, without the devices)."""

    def __init__(self, folder, *, samples, on_audio=None, **kw):
        super().__init__(folder, duration=len(samples) / RATE, value=0, **kw)
        self.samples, self.on_audio = samples, on_audio

    def start(self):
        super().start()
        if self.on_audio is not None:
            for i in range(0, len(self.samples), 800):
                self.on_audio("mic", i, self.samples[i:i + 800])

    def stop(self):
        mix = self.folder / "mix.wav"
        with wave.open(str(mix), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes((np.clip(self.samples, -1, 1) * 32767).astype("<i2").tobytes())
        return RecordingResult(self.folder, self.seconds, {}, mix)


def live_part(lib, monkeypatch, engine, samples, **kw):
    from app.pipeline.utterances import TranscribeOptions

    monkeypatch.setattr(meeting_mod, "Recorder", lambda folder, **k: SpeakingRecorder(folder, samples=samples, **k))
    seen: list = []
    m = meeting_mod.Meeting(lib, mic="default", title="Standup", engine=engine,
                            options=TranscribeOptions(parallel=2), on_segment=seen.append, **kw)
    sid = m.start()
    return sid, m.stop(timeout=120), seen


def test_a_continued_part_is_transcribed_live_after_the_first(tmp_path, monkeypatch, engine):
    """The tiny model transcribes both parts live; the second part's segments land in the same
    session at its offset, after the first part's, whose words and times stay as they were."""
    from app.media.vad import segment
    from tests.support.meetings import have_tools, make_meeting

    if not have_tools():
        pytest.skip("espeak-ng and sox are needed for speech")
    talk = make_meeting(tmp_path / "talk", 2, 4, seed=5, gap=(0.6, 0.9))
    x = talk.samples()
    starts = sorted(round(u.start, 2) for u in segment(x) if u.duration >= 0.05)
    with Library.open(tmp_path / "data") as lib:
        sid, first, _ = live_part(lib, monkeypatch, engine, x)
        before = [(g.id, g.start, g.end, g.text) for g in lib.segments(sid)]
        assert first.live is not None and first.live.segments == len(before) >= 2
        offset = lib.get_session(sid).duration
        assert offset == pytest.approx(talk.duration, abs=0.01)

        again, second, seen = live_part(lib, monkeypatch, engine, x, continue_session=sid)
        assert again == sid and len(lib.sessions()) == 1
        assert second.live is not None and second.live.segments == len(seen) >= 2
        segs = lib.segments(sid)
        assert [(g.id, g.start, g.end, g.text) for g in segs[:len(before)]] == before  # the first part intact
        added = segs[len(before):]
        assert [g.id for g in added] == [g.id for g in seen] and all(g.session_id == sid for g in seen)
        assert min(g.start for g in added) >= offset - 0.01
        assert all(round(g.start - offset, 2) in starts for g in added)  # each at its utterance, shifted
        assert [round(g.start - offset, 2) for g in added] == [round(g.start, 2) for g in segs[:len(before)]]
        assert all(g.speaker for g in segs)  # speakers clustered over the whole session
        s = lib.get_session(sid)
        assert s.status == SessionState.READY and s.duration == pytest.approx(2 * talk.duration, abs=0.02)


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
