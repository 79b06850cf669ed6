"""Live transcription: the bounded queue, the track mixer, the transcriber with the tiny model,
and `record --live` end to end on the private PulseAudio (an espeak-ng meeting into the virtual
microphone while the recorder runs, the library watched from here)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from app.capture.tracks import mix_wavs
from app.library import Library
from app.media.audio import SAMPLE_RATE, write_wav
from app.media.vad import segment
from app.pipeline.live import LiveTranscriber, Mixer, Pending, UtteranceQueue
from app.pipeline.transcribe import TranscribeOptions
from tests.support.audio import aligned_corr
from tests.support.cli_proc import CliProc, db_rows, wait_for

RATE = SAMPLE_RATE


def p(start: float, end: float = None) -> Pending:
    return Pending(start, start + 1 if end is None else end, np.zeros(10, np.float32))


# --- the bounded queue ------------------------------------------------------------------------

def test_queue_drops_the_oldest_and_counts_when_full():
    q = UtteranceQueue(3)
    for i in range(5):
        t0 = time.perf_counter()
        q.put(p(i))
        assert time.perf_counter() - t0 < 0.05  # never waits for the consumer
    assert len(q) == 3 and q.dropped == 2 and q.dropped_spans == [(0, 1), (1, 2)]
    assert q.waiting_seconds == pytest.approx(3.0)
    assert [x.start for x in q.get_batch(2)] == [2, 3]
    assert q.high_water == 3


def test_queue_drains_after_close_then_ends():
    q = UtteranceQueue(4)
    q.put(p(0))
    q.put(p(1))
    q.close()
    assert not q.done
    assert q.put(p(2)) is None and len(q) == 2  # after close (cancel) nothing more goes in
    assert [x.start for x in q.get_batch(8, timeout=5)] == [0, 1]
    t0 = time.monotonic()
    assert q.get_batch(8, timeout=5) == [] and q.done
    assert time.monotonic() - t0 < 1.0  # closed: no waiting


def test_queue_get_waits_for_an_item():
    import threading

    q = UtteranceQueue(2)
    threading.Timer(0.2, lambda: q.put(p(7))).start()
    assert [x.start for x in q.get_batch(1, timeout=10)] == [7]


# --- mixing the tracks as mix.wav does --------------------------------------------------------

def test_mixer_matches_the_final_mix(tmp_path):
    rng = np.random.default_rng(0)
    mic = (rng.uniform(-0.5, 0.5, 3 * RATE)).astype(np.float32)
    system = (rng.uniform(-0.5, 0.5, 2 * RATE)).astype(np.float32)
    sys_start = RATE // 2  # system audio starts late (the recorder padded it with silence)
    m = Mixer(["mic", "system"])
    out = []
    i = j = 0
    while i < len(mic) or j < len(system):  # blocks of uneven sizes, interleaved
        if i < len(mic):
            n = int(rng.integers(300, 1500))
            out.append(m.push("mic", i, mic[i:i + n]))
            i += n
        if j < len(system) and i > RATE:
            n = int(rng.integers(300, 1500))
            out.append(m.push("system", sys_start + j, system[j:j + n]))
            j += n
    out.append(m.flush())
    got = np.concatenate(out)
    a = write_wav(tmp_path / "a.wav", mic)
    b = write_wav(tmp_path / "b.wav", np.concatenate([np.zeros(sys_start, np.float32), system]))
    mix_wavs([a, b], tmp_path / "mix.wav", RATE)
    from tests.support.meetings import read_wav

    ref = read_wav(tmp_path / "mix.wav")
    assert len(got) == len(ref) == 3 * RATE
    assert np.abs(got - ref).max() < 3 / 32768


def test_mixer_goes_on_when_a_track_stops():
    m = Mixer(["mic", "system"], max_skew=1.0)
    m.push("system", 0, np.ones(RATE // 2, np.float32))
    emitted = sum(len(m.push("mic", k, np.ones(1600, np.float32))) for k in range(0, 5 * RATE, 1600))
    assert 3.9 * RATE <= emitted <= 4.1 * RATE  # lags at most max_skew behind the live track


# --- the transcriber with the tiny model -------------------------------------------------------

class SlowEngine:
    """The real engine, made slower than speech (a model that falls behind)."""

    def __init__(self, engine, delay: float):
        self.engine, self.delay, self.calls = engine, delay, 0

    def chat_batch(self, conversations, **kw):
        self.calls += 1
        time.sleep(self.delay)
        return self.engine.chat_batch(conversations, **kw)


@pytest.fixture(scope="module")
def meeting(tmp_path_factory):
    from tests.support.meetings import have_tools, make_meeting

    if not have_tools():
        pytest.skip("espeak-ng and sox are needed for speech")
    return make_meeting(tmp_path_factory.mktemp("live-meeting"), 2, 6, seed=3, gap=(0.5, 0.9))


def feed_all(live: LiveTranscriber, x: np.ndarray, block: int = 800) -> np.ndarray:
    """Feed as the recorder's writer does (50 ms blocks), much faster than real time; returns
    how long each `feed` call took."""
    took = []
    for i in range(0, len(x), block):
        t0 = time.perf_counter()
        live.feed("mic", i, x[i:i + block])
        took.append(time.perf_counter() - t0)
    return np.array(took)


def test_a_model_that_falls_behind_loses_nothing(tmp_path, engine, meeting):
    lib = Library.open(tmp_path / "lib")
    sid = lib.create_session("live", "recording", status="recording").id
    x = meeting.samples()
    expected = [u for u in segment(x) if u.duration >= 0.05]
    seen = []
    live = LiveTranscriber(lib, sid, SlowEngine(engine, 0.5), TranscribeOptions(parallel=1), queue_size=1,
                           on_segment=seen.append)
    live.set_tracks(["mic"])
    live.start()
    took = feed_all(live, x)
    # the audio path never waits for the model: a feed is an append (the 99th percentile well
    # under a block's 50 ms); one call may still lose the GIL to another thread for a while on a
    # loaded machine (84 ms seen once in a whole run), which is no wait on the model
    assert np.percentile(took, 99) < 0.01 and took.max() < 0.25, (np.percentile(took, 99), took.max())
    wait_for(lambda: live.snapshot().utterances >= len(expected) - 1, 30, "the VAD to find the utterances")
    stats = live.finish(meeting.wav, speakers=None, timeout=120)
    print(f"utterances {stats.utterances}, dropped {stats.dropped}, segments {stats.segments}")
    assert stats.dropped >= 1  # fed faster than the model answers, with one place in the queue
    assert stats.utterances == len(expected) and stats.transcribed == len(expected) and stats.failed == 0
    segs = lib.segments(sid)
    assert len(segs) == stats.segments == len(seen) > 0
    starts = sorted(round(u.start, 2) for u in expected)
    assert all(round(g.start, 2) in starts for g in segs)  # dropped ones came back from the file
    assert all(g.speaker for g in segs) and lib.speakers(sid)  # re-clustered at the end
    lib.close()


def test_a_model_that_cannot_load_is_a_notice(tmp_path, meeting):
    lib = Library.open(tmp_path / "lib")
    sid = lib.create_session("live", "recording").id
    notices = []

    def broken():
        raise RuntimeError("the model file is damaged")

    live = LiveTranscriber(lib, sid, broken, on_notice=notices.append)
    live.set_tracks(["mic"])
    live.start()
    feed_all(live, meeting.samples()[:8 * RATE])
    stats = live.finish(None, timeout=60)
    assert stats.segments == 0 and lib.segments(sid) == []
    assert notices == ["live transcription is off: the model could not be loaded (the model file is damaged)"]
    lib.close()


# --- `record --live` on real devices ------------------------------------------------------------

def model_args(tiny):
    return ["--model", str(tiny.model), "--mmproj", str(tiny.mmproj), "--threads", "1", "--ctx", "4096"]


def pcm_seconds(home: Path, sid: int) -> float:
    pcm = home / "media" / str(sid) / "recording" / "mic.pcm"
    return pcm.stat().st_size / 2 / RATE if pcm.exists() else 0.0


@pytest.mark.slow
def test_record_live_segments_land_during_the_recording(tmp_path, pulse, tiny_model, meeting, _private_home):
    home = _private_home
    rec = CliProc("record", "--device", pulse.mic, "--live", "--title", "Live test", *model_args(tiny_model),
                  env=pulse.env)
    try:
        sid = int(rec.wait_line("recording session", 60).split("recording session ")[1].split()[0])
        wait_for(lambda: pcm_seconds(home, sid) > 0.5, 30, "the microphone's first audio")
        t_play = time.monotonic()
        player = pulse.play(meeting.wav, "micfeed")
        count = "SELECT count(*) FROM segments WHERE session_id = ?"
        first = wait_for(lambda: db_rows(home, count, (sid,))[0][0] and time.monotonic(), 60,
                         "a live segment in the library", every=0.1)
        assert player.wait(60) == 0, player.stderr.read()
        t_played = time.monotonic()
        during = db_rows(home, count, (sid,))[0][0]
        assert rec.p.poll() is None, rec.stderr
        at_end = pcm_seconds(home, sid)
        wait_for(lambda: pcm_seconds(home, sid) > at_end + 1.0, 20, "the tail on disk")
        rec.p.send_signal(signal.SIGINT)
        code, out = rec.finish(120)
    finally:
        rec.kill()
    assert code == 0, rec.stderr
    assert out.strip() == str(sid)
    lag = first - (t_play + meeting.turns[0].end)
    print(f"first segment {lag:.2f} s after its utterance ended; {during} segments while playing")
    assert first < t_played and during >= 2, "segments must land while the meeting runs"
    assert lag < 15.0
    with Library.open(home) as lib:
        s = lib.get_session(sid)
        assert (s.kind, s.status, s.title) == ("recording", "ready", "Live test")
        segs = lib.segments(sid)
        assert len(segs) >= during and all(g.speaker for g in segs)
        (audio,) = lib.media(sid, "audio")
        from tests.support.meetings import read_wav

        mix = read_wav(lib.absolute(audio))
        mic = read_wav(lib.absolute(audio).with_name("mic.wav"))
    corr_mic, _ = aligned_corr(mic, meeting.samples())
    corr_mix, lag_s = aligned_corr(mix, meeting.samples())
    print(f"stored audio vs source: mic {corr_mic:.4f}, mix {corr_mix:.4f}")
    assert corr_mic >= 0.95 and corr_mix >= 0.95
    span = (lag_s / RATE, lag_s / RATE + meeting.duration)
    assert all(span[0] - 0.5 <= g.start and g.end <= span[1] + 0.5 for g in segs)  # on the recording's timeline


def _live_part(pulse, tiny, wav, seconds: float, *extra: str) -> tuple[int, list[str]]:
    """One `record --live` run of `seconds` of audio with `wav` played into the virtual mic as soon
    as it says it records: (the session id, its stderr lines)."""
    rec = CliProc("record", "--device", pulse.mic, "--live", "--seconds", f"{seconds:.1f}", *model_args(tiny),
                  *extra, env=pulse.env)
    try:
        rec.wait_line("recording session", 60)
        assert pulse.play(wav, "micfeed").wait(60) == 0
        code, out = rec.finish(180)
    finally:
        rec.kill()
    assert code == 0 and out.strip().isdigit(), rec.stderr
    return int(out), rec.lines


@pytest.mark.slow
def test_record_continue_live_lands_after_the_first_part(pulse, tiny_model, meeting, _private_home):
    """`record --continue SID --live`: the second part is transcribed live into the same session,
    its segments after the first part's (at the part's offset), the first part's unchanged."""
    seconds = meeting.duration + 2.0
    sid, _ = _live_part(pulse, tiny_model, meeting.wav, seconds, "--title", "Two parts")
    with Library.open(_private_home) as lib:
        first = [(g.id, g.start, g.end, g.text) for g in lib.segments(sid)]
        offset = lib.get_session(sid).duration
    assert len(first) >= 2 and offset == pytest.approx(seconds, abs=0.2)
    again, lines = _live_part(pulse, tiny_model, meeting.wav, seconds, "--continue", str(sid))
    assert again == sid
    printed = [x.split("[", 1)[1].split("]", 1)[0] for x in lines if x.startswith("minutely: [")]
    at = [sum(int(v) * 60 ** k for k, v in enumerate(reversed(t.split(":")))) for t in printed]
    assert at and min(at) >= int(offset), printed  # printed as they landed, on the session's timeline
    with Library.open(_private_home) as lib:
        segs = lib.segments(sid)
        s = lib.get_session(sid)
        assert (s.status, s.title) == ("ready", "Two parts") and len(lib.sessions()) == 1
        assert s.duration == pytest.approx(2 * seconds, abs=0.4)
    assert [(g.id, g.start, g.end, g.text) for g in segs[:len(first)]] == first
    added = segs[len(first):]
    print(f"first part: {len(first)} segments; continued part: {len(added)} segments from {offset:.2f} s")
    assert len(added) >= 2 and min(g.start for g in added) >= offset
    # the same speech, so the same utterances, each shifted by the offset (PulseAudio's start differs a little)
    shift = [b.start - a.start for a, b in zip(segs[:len(first)], added, strict=False)]
    assert all(abs(d - shift[0]) < 0.3 for d in shift) and offset - 1.0 < shift[0] < offset + 1.0


@pytest.mark.slow
def test_record_kill_9_then_the_next_start_recovers_the_session(pulse, _private_home):
    home = _private_home
    rec = CliProc("record", "--device", pulse.mic, "--title", "Crashed", env=pulse.env)
    try:
        sid = int(rec.wait_line("recording session", 60).split("recording session ")[1].split()[0])
        wait_for(lambda: pcm_seconds(home, sid) >= 8.0, 40, "8 s of audio on disk", every=0.1)
    finally:
        if rec.p.poll() is None:
            os.kill(rec.p.pid, signal.SIGKILL)
        rec.p.wait(10)
    assert db_rows(home, "SELECT status FROM sessions WHERE id = ?", (sid,)) == [("recording",)]
    nxt = CliProc("record", "--device", pulse.mic, "--seconds", "0.5", env=pulse.env)
    code, out = nxt.finish(60)
    assert code == 0, nxt.stderr
    line = next((x for x in nxt.lines if "recovered" in x), nxt.stderr)
    assert line.endswith(f"into session {sid}"), line
    assert int(out.strip()) != sid
    with Library.open(home) as lib:
        s = lib.get_session(sid)
        print(f"recovered {s.duration:.2f} s: {line}")
        assert s.status == "new" and s.duration >= 7.0
        (audio,) = lib.media(sid, "audio")
        assert lib.absolute(audio).stat().st_size >= 7 * RATE * 2


def test_record_bad_arguments_are_one_line(pulse, tiny_model):
    rec = CliProc("record", "--device", "no-such-microphone", "--seconds", "1", env=pulse.env)
    code, out = rec.finish(60)
    assert code == 2 and out == ""
    lines = [x for x in rec.lines if x.startswith("minutely: error:")]
    assert len(lines) == 1 and "no microphone named 'no-such-microphone'" in lines[0], rec.stderr
    rec = CliProc("record", "--live", "--model", str(tiny_model.mmproj), "--mmproj", str(tiny_model.mmproj),
                  "--seconds", "1", env=pulse.env)
    code, _ = rec.finish(60)
    assert code == 3 and rec.lines[-1].startswith("minutely: error:") and "Traceback" not in rec.stderr


# --- the Meeting object the GUI drives ------------------------------------------------------------

@pytest.mark.slow
def test_meeting_pause_resume_and_system_audio_notice(tmp_path, pulse):
    from app.capture.recorder import RecordingError
    from app.pipeline.meeting import Meeting

    lib = Library.open(tmp_path / "lib")
    states, notices, levels = [], [], []
    m = Meeting(lib, mic=pulse.mic, system="no-such-loopback", title="Standup", on_state=states.append,
                on_notice=notices.append, on_level=lambda *a: levels.append(a))
    sid = m.start()
    assert lib.get_session(sid).status == "recording" and m.tracks == ["mic"]
    assert notices and "system audio" in notices[0] and "no-such-loopback" in notices[0]  # a notice, not a failure
    assert m.recorder.wait_ready(15)
    wait_for(lambda: m.position > 0.5, 15, "audio")
    m.pause()
    at = m.position
    wait_for(lambda: len(levels) > 20, 10, "level updates while paused")
    assert m.position - at < 0.2  # nothing recorded while paused
    m.resume()
    wait_for(lambda: m.position > at + 0.5, 15, "audio after resuming")
    res = m.stop()
    assert states == ["starting", "recording", "paused", "recording", "finishing", "stopped"]
    s = lib.get_session(sid)
    assert (s.status, s.title) == ("new", "Standup") and s.duration == pytest.approx(res.duration)
    assert [x.kind for x in lib.media(sid)] == ["audio"] and res.live is None
    assert m.stop() is res  # stopping twice is harmless
    bad = Meeting(lib, mic="no-such-microphone")
    with pytest.raises(RecordingError, match="no microphone named 'no-such-microphone'"):
        bad.start()
    assert [x.id for x in lib.sessions()] == [sid]  # a failed start leaves no session behind
    lib.close()


def test_live_marks_a_voice_talking_over_like_a_file_transcription(tmp_path, engine):
    """Transcribed live, the final pass after stop cuts the utterance where B takes over inside
    it and marks the overlap, just as a file transcription of the same audio does."""
    from app.media import segmentation
    from app.media.audio import write_wav
    from app.pipeline.transcribe import transcribe_file
    from tests.support.meetings import have_tools, talk_over

    if not have_tools() or segmentation.checkpoint_path() is None:
        pytest.skip("needs espeak-ng, sox and the segmentation checkpoint")
    x, truth = talk_over(tmp_path)
    wav = write_wav(tmp_path / "mix.wav", x)
    lib = Library.open(tmp_path / "lib")
    sid = lib.create_session("live", "recording", status="recording").id
    live = LiveTranscriber(lib, sid, engine, TranscribeOptions(parallel=2))
    live.set_tracks(["mic"])
    live.start()
    feed_all(live, x)
    wait_for(lambda: live.snapshot().segments >= 3, 60, "the live segments")
    assert len(lib.segments(sid)) == 3                     # live: whole utterances, A's holds B's start
    live.finish(wav, speakers=2, timeout=120)
    segs = lib.segments(sid)
    assert len(segs) == 4                                  # A's utterance cut where B goes on alone
    marks = [(m.start, m.end) for m in lib.overlaps(sid)]
    assert marks and marks[0][0] > truth[0] - 0.3 and marks[-1][1] < truth[1] + 0.3
    filed = transcribe_file(lib, engine, wav, TranscribeOptions(speakers=2, title="file"))
    assert [(g.start, g.end) for g in lib.segments(filed)] == [(g.start, g.end) for g in segs]
    assert [(m.start, m.end) for m in lib.overlaps(filed)] == marks
    lib.close()
