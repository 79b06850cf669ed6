"""Recordings with a mic and a system track: the echo detector on arrays, per-track VAD live and
from the files (the same utterances), the local user's speaker, and the whole thing on the
private PulseAudio (remote voices into the speaker sink; the local voice plus an attenuated,
delayed, reverberant copy of the remote voices into the virtual microphone)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from app.capture.tracks import FORMAT, finalize, write_sidecar
from app.library import Library
from app.media import echo
from app.media.audio import SAMPLE_RATE
from app.pipeline import two_tracks
from app.pipeline.live import LiveSpeakers, LiveTranscriber
from app.pipeline.transcribe import TranscribeOptions, transcribe_file
from app.pipeline.two_tracks import LOCAL_LABEL, TrackSplitter, TrackUtterance

R = SAMPLE_RATE


def room(x: np.ndarray, delay: float, atten_db: float, rt60: float = 0.3, drr_db: float = 5.0,
         seed: int = 0) -> np.ndarray:
    """What a microphone hears of loudspeakers playing ``x``: a band-limited, slightly clipped
    loudspeaker, a room (direct path + exponentially decaying diffuse tail at ``drr_db`` below
    it), ``atten_db`` quieter and ``delay`` s later."""
    rng = np.random.default_rng(seed)
    y = x - np.convolve(x, np.ones(100) / 100, "same")  # no bass from a small loudspeaker
    y = np.tanh(2 * y) / 2
    n = int(0.6 * R)
    h = rng.normal(0, 1, n) * np.exp(-6.9 * np.arange(n) / R / rt60)
    h[:int(0.002 * R)] = 0
    h *= np.sqrt(10 ** (-drr_db / 10) / np.sum(h ** 2))
    h[0] = 1.0
    e = np.convolve(y, h)[:len(x)] * 10 ** (-atten_db / 20)
    d = int(delay * R)
    return np.concatenate([np.zeros(d), e[:len(e) - d]]).astype(np.float32)


@pytest.fixture(scope="module")
def voices(tmp_path_factory):
    from tests.support.meetings import SENTENCES, VOICES, have_tools, speak

    if not have_tools():
        pytest.skip("espeak-ng and sox are needed for speech")
    cache = tmp_path_factory.mktemp("two-track-voices")
    remote = [speak(SENTENCES[i], VOICES[v], cache) for i, v in ((2, 1), (5, 2), (9, 1), (13, 2))]
    local = [speak(SENTENCES[i], VOICES[0], cache) for i in (4, 7, 11)]
    return remote, local


# --- the echo detector on arrays --------------------------------------------------------------------

def _check(mic: np.ndarray, system: np.ndarray, s: int, e: int) -> echo.EchoCheck:
    a, b = s - two_tracks.BEFORE, e + two_tracks.AFTER
    ref = np.zeros(b - a, np.float32)
    lo, hi = max(0, a), min(len(system), b)
    ref[lo - a:hi - a] = system[lo:hi]
    return two_tracks.check_mic(mic[s:e], ref)


@pytest.mark.parametrize("delay", [0.02, 0.12, 0.3])
@pytest.mark.parametrize("atten", [6, 12, 20])
def test_echo_only_is_echo_and_local_speech_over_it_is_kept(voices, delay, atten):
    remote, local = voices
    rng = np.random.default_rng(int(delay * 100) + atten)
    pre = R
    system = np.concatenate([np.zeros(pre, np.float32), remote[0], np.zeros(R, np.float32)])
    heard = room(system, delay, atten, rt60=0.5, drr_db=0.0) + rng.normal(0, 0.002, len(system)).astype(np.float32)
    s, e = pre + int(delay * R) - int(0.2 * R), pre + int(delay * R) + len(remote[0]) + int(0.15 * R)
    only = _check(heard, system, s, e)
    talk = heard.copy()
    words = local[0][:len(remote[0]) - int(0.5 * R)]
    talk[pre + int(0.5 * R):pre + int(0.5 * R) + len(words)] += 0.5 * words
    both = _check(talk, system, s, e)
    print(f"delay {delay} s, {atten} dB: echo only {only.local_seconds:.2f} s local "
          f"(explained {only.explained:.2f}); with local speech {both.local_seconds:.2f} s")
    assert only.echo and abs(only.delay - delay) < 0.01
    assert not both.echo and both.local_seconds > 1.0
    # the residual keeps the local voice and loses most of the echo
    at = pre + int(0.5 * R) - s
    kept = both.residual[at:at + len(words)]
    assert np.corrcoef(kept, 0.5 * words[:len(kept)])[0, 1] > 0.9
    assert np.sum(only.residual ** 2) < 0.1 * np.sum(heard[s:e] ** 2)


def test_echo_ahead_of_the_system_track_is_found_too(voices):
    """Tracks a little out of line (the echo 0.58 s *before* its source on the timeline) are
    still within the lag window: echo only is echo."""
    remote, _ = voices
    pre = 2 * R
    system = np.concatenate([np.zeros(pre, np.float32), remote[3], np.zeros(2 * R, np.float32)])
    heard = room(system, 0.12, 12.0)
    heard = np.concatenate([heard[int(0.7 * R):], np.zeros(int(0.7 * R), np.float32)])  # mic 0.7 s early
    s, e = pre - int(0.58 * R) - int(0.2 * R), pre - int(0.58 * R) + len(remote[3]) + int(0.15 * R)
    c = _check(heard, system, s, e)
    assert c.echo and c.delay == pytest.approx(-0.58, abs=0.01)


def test_no_system_audio_means_no_echo(voices):
    _, local = voices
    mic = np.concatenate([np.zeros(R // 2, np.float32), 0.5 * local[1], np.zeros(R // 2, np.float32)])
    c = _check(mic, np.zeros(len(mic), np.float32), 0, len(mic))
    assert not c.echo and c.local_seconds == pytest.approx(len(mic) / R, abs=0.05)
    assert np.array_equal(c.residual, mic)


def test_unrelated_system_audio_does_not_make_local_speech_echo(voices):
    remote, local = voices
    mic = np.concatenate([np.zeros(R // 2, np.float32), 0.5 * local[2], np.zeros(R // 2, np.float32)])
    system = np.zeros(len(mic), np.float32)
    system[:len(remote[1])] = remote[1][:len(mic)]  # the other side talks, but the mic does not hear it
    c = _check(mic, system, 0, len(mic))
    assert not c.echo and c.local_seconds > 0.8 * len(local[2]) / R and c.explained < 0.2


# --- a two-track scene ---------------------------------------------------------------------------

@dataclass
class Scene:
    mic: np.ndarray       # local voice + echo of the system track
    system: np.ndarray
    local: list[tuple[float, float]]   # true turns of the local user
    remote: list[tuple[float, float]]  # true turns on the system track
    overlap: tuple[float, float]       # the local turn spoken over a remote one


def make_scene(voices, delay: float = 0.12, atten: float = 10.0, echo_path=True) -> Scene:
    """Remote turns on the system track; the local user answers in the gaps and once talks over
    a remote turn; the mic hears the local user and the loudspeakers."""
    remote, local = voices
    plan = [("r", 0), ("l", 0), ("r", 1), ("r", 2), ("l", 2)]  # the 2nd local turn lies over remote 2
    system, mic = [np.zeros(int(0.4 * R), np.float32)], [np.zeros(int(0.4 * R), np.float32)]
    t = int(0.4 * R)
    turns_l, turns_r = [], []
    over = None
    for who, i in plan:
        x = remote[i] if who == "r" else local[i]
        (system if who == "r" else mic).append(x)
        (mic if who == "r" else system).append(np.zeros(len(x), np.float32))
        (turns_r if who == "r" else turns_l).append((t / R, (t + len(x)) / R))
        if who == "r" and i == 2:  # the local user talks over this one, from 1 s in
            w = local[1][:len(x) - int(1.5 * R)]
            mic[-1] = mic[-1].copy()
            mic[-1][R:R + len(w)] += w
            over = ((t + R) / R, (t + R + len(w)) / R)
            turns_l.append(over)
        t += len(x)
        gap = np.zeros(int(0.8 * R), np.float32)
        system.append(gap)
        mic.append(gap)
        t += len(gap)
    s, m = np.concatenate(system) * 0.7, np.concatenate(mic) * 0.7
    if echo_path:
        m = m + room(s, delay, atten)
    m = m + np.random.default_rng(1).normal(0, 0.001, len(m)).astype(np.float32)
    return Scene(m.astype(np.float32), s.astype(np.float32), sorted(turns_l), turns_r, over)


def write_recording(folder: Path, mic: np.ndarray, system: np.ndarray) -> Path:
    """A finished recording folder (PCM -> WAVs + mix, as the recorder leaves it); its mix."""
    folder.mkdir(parents=True, exist_ok=True)
    n = max(len(mic), len(system))
    for name, x in (("mic", mic), ("system", system)):
        y = np.zeros(n, np.float32)
        y[:len(x)] = x
        (folder / f"{name}.pcm").write_bytes(np.rint(np.clip(y, -1, 1) * 32767).astype("<i2").tobytes())
    meta = {"format": FORMAT, "version": 1, "rate": R, "channels": 1, "sample_format": "s16le",
            "tracks": {"mic": {"pcm": "mic.pcm"}, "system": {"pcm": "system.pcm"}}, "paused": []}
    write_sidecar(folder, meta)
    return finalize(folder, meta).mix


def overlaps(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def test_scan_tracks_keeps_each_voice_once(tmp_path, voices):
    sc = make_scene(voices)
    mix = write_recording(tmp_path / "rec", sc.mic, sc.system)
    tracks = two_tracks.recording_tracks(mix)
    assert set(tracks) == {"mic", "system"}
    utts, duration, echoes = two_tracks.scan_tracks(tracks)
    print(f"{len(utts)} utterances, {echoes} echo-only mic utterances dropped")
    mic = [u for u in utts if u.track == "mic"]
    system = [u for u in utts if u.track == "system"]
    assert echoes >= 2 and duration == pytest.approx(len(sc.mic) / R, abs=0.01)
    assert utts == sorted(utts, key=lambda u: u.start)  # one timeline, both tracks interleaved
    for turn in sc.local:  # every local turn, the one over remote speech included, is the user's
        assert any(overlaps(turn, (u.start, u.end)) > 0.5 * (turn[1] - turn[0]) for u in mic), turn
    for turn in sc.remote:  # every remote turn once, from the system track; never as mic speech
        assert sum(overlaps(turn, (u.start, u.end)) > 0.5 for u in system) >= 1
    for u in mic:
        assert any(overlaps((u.start, u.end), t) > 0.5 * (u.end - u.start) for t in sc.local), u
    assert two_tracks.recording_tracks(tmp_path / "rec" / "mic.wav") is None  # only a mix has tracks


def test_live_splitter_finds_what_the_files_hold(tmp_path, voices):
    sc = make_scene(voices)
    mix = write_recording(tmp_path / "rec", sc.mic, sc.system)
    tracks = two_tracks.recording_tracks(mix)
    utts, _, echoes = two_tracks.scan_tracks(tracks)
    sp = TrackSplitter()
    rng = np.random.default_rng(0)
    got: list[tuple[TrackUtterance, np.ndarray]] = []
    i = {"mic": 0, "system": int(0.3 * R)}  # the system track's first 0.3 s (silence) comes as a gap
    src = {"mic": sc.mic, "system": sc.system}
    while any(i[n] < len(src[n]) for n in src):
        for n in src:  # blocks of uneven sizes, the tracks a little apart
            if i[n] < len(src[n]):
                k = int(rng.integers(400, 1400))
                got += sp.push(n, i[n], src[n][i[n]:i[n] + k])
                i[n] += k
    got += sp.flush()
    assert two_tracks.sort_timeline([u for u, _ in got]) == utts  # the same utterances, the same echoes
    assert sp.echoes == echoes
    for u, audio in got:
        ref = two_tracks.utterance_audio(tracks, u)
        assert np.array_equal(audio, ref), u  # the very samples a file transcription sends


# --- transcription (the tiny model) ------------------------------------------------------------------

class Heard:
    """The tiny model, made to hear something in every utterance (its random weights answer ""
    now and then, and a segment without text is not stored): these tests are about who spoke."""

    def __init__(self, engine):
        self.engine = engine

    def chat_batch(self, conversations, **kw):
        from app.engine.generation import Reply

        return [Reply(text=r.text.strip() or "(words)", finish_reason=r.finish_reason)
                for r in self.engine.chat_batch(conversations, **kw)]


def partition(segs) -> set[frozenset]:
    groups: dict[str, set] = {}
    for g in segs:
        groups.setdefault(g.speaker, set()).add((round(g.start, 3), round(g.end, 3)))
    return {frozenset(v) for v in groups.values()}


def assert_remote_once(segs, mine, theirs, sc: Scene, off: float = 0.0) -> None:
    """Every remote turn is covered by the others' segments, which never overlap each other (one
    copy), and the user's segments hold no remote turn but where the user talked over it."""
    for t in sc.remote:
        t = (t[0] + off, t[1] + off)
        own = [g for g in theirs if overlaps((g.start, g.end), t) > 0.3]
        assert own and sum(overlaps((g.start, g.end), t) for g in own) > 0.8 * (t[1] - t[0]), t
        assert all(overlaps((a.start, a.end), (b.start, b.end)) < 0.05 for a in own for b in own if a.id < b.id)
    over = (sc.overlap[0] + off, sc.overlap[1] + off)
    for g in mine:
        assert overlaps((g.start, g.end), over) > 0.5 * (g.end - g.start) or \
            not any(overlaps((g.start, g.end), (t[0] + off, t[1] + off)) > 0.3 for t in sc.remote), g


def test_file_transcription_knows_who_is_who(tmp_path, engine, voices):
    sc = make_scene(voices)
    mix = write_recording(tmp_path / "rec", sc.mic, sc.system)
    lib = Library.open(tmp_path / "lib")
    sid = transcribe_file(lib, Heard(engine), mix, TranscribeOptions(parallel=4, user_name="Ana"))
    segs = lib.segments(sid)
    mine = [g for g in segs if g.speaker == "Ana"]
    theirs = [g for g in segs if g.speaker != "Ana"]
    print([(round(g.start, 2), round(g.end, 2), g.speaker) for g in segs])
    assert mine and theirs and len(segs) >= len(sc.local) + len(sc.remote) - 1
    assert lib.speaker(sid, LOCAL_LABEL).name == "Ana"
    for g in mine:  # the user's segments are the user's speech, never the loudspeakers
        assert any(overlaps((g.start, g.end), t) > 0.5 * (g.end - g.start) for t in sc.local)
    assert any(overlaps((g.start, g.end), sc.overlap) > 1.0 for g in mine)  # talking over is kept...
    assert any(overlaps((g.start, g.end), sc.overlap) > 1.0 for g in theirs)  # ... and so is the remote turn
    assert_remote_once(segs, mine, theirs, sc)
    assert [g.start for g in segs] == sorted(g.start for g in segs)
    lib.close()


def test_live_final_pass_matches_a_file_transcription(tmp_path, engine, voices):
    sc = make_scene(voices)
    mix = write_recording(tmp_path / "rec", sc.mic, sc.system)
    lib = Library.open(tmp_path / "lib")
    sid = lib.create_session("live", "recording", status="recording").id
    shown = {}
    live = LiveTranscriber(lib, sid, Heard(engine), TranscribeOptions(parallel=4, user_name="Ana"),
                           on_segment=lambda g: shown.setdefault(g.id, g.speaker))
    live.set_tracks(["mic", "system"])
    live.start()
    for k in range(0, len(sc.mic), 800):  # as the recorder's writer thread: both tracks, block by block
        live.feed("mic", k, sc.mic[k:k + 800])
        live.feed("system", k, sc.system[k:k + 800])
    stats = live.finish(mix, timeout=300)
    segs = lib.segments(sid)
    assert stats.segments == len(segs) > 0 and stats.failed == 0
    assert all(shown[g.id] == "Ana" for g in segs if g.speaker == "Ana")  # shown as the user from the start
    other = Library.open(tmp_path / "lib2")
    fsid = transcribe_file(other, Heard(engine), mix, TranscribeOptions(parallel=4, user_name="Ana"))
    fsegs = other.segments(fsid)
    assert [(round(g.start, 3), round(g.end, 3)) for g in segs] == \
        [(round(g.start, 3), round(g.end, 3)) for g in fsegs]  # same segmentation
    assert partition(segs) == partition(fsegs)  # same speaker grouping (up to label names)
    assert {g.speaker for g in segs if g.speaker == "Ana"} == {g.speaker for g in fsegs if g.speaker == "Ana"}
    lib.close()
    other.close()


def test_a_mic_only_recording_live_matches_its_file_transcription(tmp_path, engine, voices):
    """No system track: the mix path, as before; its live final pass agrees with the file too."""
    sc = make_scene(voices)
    folder = tmp_path / "rec"
    folder.mkdir()
    (folder / "mic.pcm").write_bytes(np.rint(np.clip(sc.mic, -1, 1) * 32767).astype("<i2").tobytes())
    meta = {"format": FORMAT, "version": 1, "rate": R, "channels": 1, "sample_format": "s16le",
            "tracks": {"mic": {"pcm": "mic.pcm"}}, "paused": []}
    write_sidecar(folder, meta)
    mix = finalize(folder, meta).mix
    assert two_tracks.recording_tracks(mix) is None
    lib = Library.open(tmp_path / "lib")
    sid = lib.create_session("live", "recording", status="recording").id
    live = LiveTranscriber(lib, sid, Heard(engine), TranscribeOptions(parallel=4))
    live.set_tracks(["mic"])
    live.start()
    for k in range(0, len(sc.mic), 800):
        live.feed("mic", k, sc.mic[k:k + 800])
    live.finish(mix, timeout=300)
    segs = lib.segments(sid)
    other = Library.open(tmp_path / "lib2")
    fsegs = other.segments(transcribe_file(other, Heard(engine), mix, TranscribeOptions(parallel=4)))
    assert segs and [(round(g.start, 3), round(g.end, 3)) for g in segs] == \
        [(round(g.start, 3), round(g.end, 3)) for g in fsegs]
    assert partition(segs) == partition(fsegs)
    assert LOCAL_LABEL not in {g.speaker for g in segs}  # without system audio nobody is "the user"
    lib.close()
    other.close()


# --- provisional labels while recording ------------------------------------------------------------

def test_live_labels_of_shown_segments_never_change_and_voices_keep_theirs(tmp_path):
    from app.media.diarize import embed
    from tests.support.meetings import have_tools, make_meeting

    if not have_tools():
        pytest.skip("espeak-ng and sox are needed for speech")
    m = make_meeting(tmp_path, 3, 14, seed=5)
    x = m.samples()
    sp = LiveSpeakers()
    shown: list[str] = []
    for t in m.turns:  # one utterance at a time, as live transcription stores them
        seg = x[int(t.start * R):int(t.end * R)]
        before = list(sp.labels)
        shown += sp.assign([embed(seg, R)], [t.end - t.start])
        assert sp.labels[:len(before)] == before  # a label once shown is never changed
    by_voice: dict[str, set] = {}
    for t, lab in zip(m.turns, shown):
        by_voice.setdefault(t.speaker, set()).add(lab)
    print(by_voice)
    assert all(len(v) == 1 for v in by_voice.values())  # no flip-flop: one label per voice
    assert len({next(iter(v)) for v in by_voice.values()}) == 3


def test_live_labels_do_not_flip_back_when_two_voices_are_joined_for_a_while(tmp_path):
    """Four voices, two of them low male voices the clustering joins now and then: before, the
    Scottish voice went S4, S2, S4 (its utterance took the joined cluster's majority label)."""
    from app.media.diarize import embed
    from tests.support.meetings import have_tools, make_meeting

    if not have_tools():
        pytest.skip("espeak-ng and sox are needed for speech")
    m = make_meeting(tmp_path, 4, 20, seed=0)
    x = m.samples()
    sp = LiveSpeakers()
    shown: list[str] = []
    for t in m.turns:
        shown += sp.assign([embed(x[int(t.start * R):int(t.end * R)], R)], [t.end - t.start])
    seen: dict[str, list[str]] = {}
    for t, lab in zip(m.turns, shown):
        seen.setdefault(t.speaker, []).append(lab)
    print(seen)
    for labs in seen.values():  # a voice may get its own label once told apart, never go back
        assert not any(labs[i] != labs[i - 1] and labs[i] in labs[:i - 1] for i in range(2, len(labs))), labs
    assert seen["spk4"] == ["S4"] * len(seen["spk4"])


# --- on real devices: the private PulseAudio ----------------------------------------------------------

def play_together(pulse, plays: list[tuple[np.ndarray, str]]) -> None:
    """Play arrays into sinks starting together: one `pacat` per sink is started and connected
    first, then all get their audio at once. Even so the rig's two null sinks put them out
    -0.65..+0.6 s apart (measured: 4 runs; two tracks recorded from one sink lined up within
    40 ms, so that is the rig, not the recorder): the echo check's lag window covers it."""
    import subprocess
    import threading

    procs = [subprocess.Popen(["pacat", "--playback", f"--device={sink}", "--format=s16le", "--rate=16000",
                               "--channels=1", "--raw", "--latency-msec=50"],
                              stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=pulse.child_env())
             for _, sink in plays]
    pulse.players.extend(procs)  # stopped by the rig if anything goes wrong
    time.sleep(1.0)  # connected and waiting for data
    data = [np.rint(np.clip(x, -1, 1) * 32767).astype("<i2").tobytes() for x, _ in plays]

    def feed(p, b):
        p.stdin.write(b)
        p.stdin.close()

    threads = [threading.Thread(target=feed, args=(p, b)) for p, b in zip(procs, data)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for p in procs:
        assert p.wait(60) == 0, p.stderr.read()


@pytest.mark.slow
def test_record_two_tracks_with_echo_on_the_rig(tmp_path, pulse, engine, voices):
    """Remote voices play into the speaker sink (system audio); the virtual mic hears the local
    voice plus the remote voices 10 dB down, 120 ms late, through a room."""
    from app.pipeline.meeting import Meeting
    from tests.support.audio import aligned_corr

    sc = make_scene(voices, echo_path=False)
    feed = sc.mic + room(sc.system, 0.12, 10.0)
    lib = Library.open(tmp_path / "lib")
    m = Meeting(lib, mic=pulse.mic, system="auto", engine=Heard(engine),
                options=TranscribeOptions(parallel=4, user_name="Ana"))
    sid = m.start()
    try:
        assert m.wait_audio(15) and m.tracks == ["mic", "system"]
        play_together(pulse, [(sc.system, "speaker"), (feed, "micfeed")])
        at = m.position
        while m.position < at + 0.8:
            time.sleep(0.05)
    finally:
        res = m.stop(timeout=300)
    tracks = res.recording.tracks
    from tests.support.meetings import read_wav

    _, lag_sys = aligned_corr(read_wav(tracks["system"]), sc.system)
    _, lag_mic = aligned_corr(read_wav(tracks["mic"]), feed)
    off = lag_sys / R
    print(f"system at {off:.3f} s, mic at {lag_mic / R:.3f} s on the timeline; live {res.live}")
    segs = lib.segments(sid)
    print([(round(g.start - off, 2), round(g.end - off, 2), g.speaker) for g in segs])
    mine = [g for g in segs if g.speaker == "Ana"]
    theirs = [g for g in segs if g.speaker != "Ana"]
    assert mine and theirs
    def shift(t):
        return t[0] + off, t[1] + off

    for g in mine:
        assert any(overlaps((g.start, g.end), shift(t)) > 0.5 * (g.end - g.start) for t in sc.local), (g, off)
    for t in sc.local:
        assert any(overlaps((g.start, g.end), shift(t)) > 0.5 * (t[1] - t[0]) for g in mine), t
    assert_remote_once(segs, mine, theirs, sc, off)
    meta = json.loads((res.recording.folder / "recording.json").read_text())
    assert set(meta["tracks"]) == {"mic", "system"}
    lib.close()


# --- the setting ----------------------------------------------------------------------------------------

def test_user_name_setting_defaults_to_you_and_reaches_the_options(tmp_path):
    from app.settings import Settings

    assert Settings().user_name == "You" and TranscribeOptions().user_name == "You"
    path = tmp_path / "settings.json"
    Settings(user_name="Ana").save(path)
    assert Settings.load(path).user_name == "Ana"
    path.write_text(json.dumps({"user_name": 7}))
    assert Settings.load(path).user_name == "You"  # a hand edit of the wrong type: the default
    assert "user_name" not in TranscribeOptions(user_name="Ana").key()  # renaming never restarts a job
