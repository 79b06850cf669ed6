"""The job API (``library.jobs``) and typed resume states, on a real SQLite file."""

from __future__ import annotations

import json

import pytest

from app.library import (
    FramesResume,
    JobKind,
    JobState,
    Library,
    LibraryError,
    SessionState,
    SummarizeResume,
    TranscribeResume,
)


class Stop(Exception):
    """Stands in for a pipeline's cancel exception."""


@pytest.fixture
def lib(tmp_path):
    with Library.open(tmp_path / "data") as lib:
        yield lib


def _resume() -> TranscribeResume:
    return TranscribeResume(file="/tmp/talk.wav", fingerprint="ab12", options={"language": "en", "translate_to": None},
                            utterances=[[0.0, 1.5], [2.0, 3.25], [4.0, 6.0]], duration=6.5)


def test_enum_values_are_the_strings_rows_store():
    assert [str(s) for s in SessionState] == ["new", "recording", "transcribing", "ready", "failed"]
    assert [str(s) for s in JobState] == ["queued", "running", "done", "failed", "cancelled", "interrupted"]
    assert [str(k) for k in JobKind] == ["transcribe", "video_frames", "summarize"]
    assert JobState.DONE == "done" and SessionState("ready") is SessionState.READY


def test_resume_state_round_trips_through_the_row(lib, tmp_path):
    s = lib.create_session("talk", "file")
    state = _resume()
    state.done = 2
    job = lib.jobs.create(JobKind.TRANSCRIBE, s.id, resume=state)
    assert job.state == JobState.QUEUED and job.kind == "transcribe"
    # stored as plain JSON with today's keys
    raw = lib.conn.execute("SELECT resume FROM jobs WHERE id = ?", (job.id,)).fetchone()[0]
    assert json.loads(raw)["utterances"] == [[0.0, 1.5], [2.0, 3.25], [4.0, 6.0]] and json.loads(raw)["done"] == 2
    with Library.open(tmp_path / "data") as other:  # another connection reads the same typed state
        back = other.jobs.get(job.id).resume_state()
    assert isinstance(back, TranscribeResume) and back == state
    # other kinds have their own types; unknown keys are ignored, missing ones default
    f = lib.jobs.create(JobKind.VIDEO_FRAMES, s.id, resume=FramesResume(fingerprint="ff", file="/v.mp4"))
    assert lib.jobs.get(f.id).resume_state() == FramesResume(fingerprint="ff", file="/v.mp4")
    old = lib.jobs.create("summarize", s.id, resume={"summary_id": 7, "template": "general", "later": 1})
    assert old.resume_state() == SummarizeResume(summary_id=7, template="general")
    assert lib.jobs.create("transcribe", s.id).resume_state() == TranscribeResume()


def test_a_job_that_succeeds_is_done(lib):
    s = lib.create_session("talk", "file")
    with lib.jobs.run(JobKind.TRANSCRIBE, s.id, _resume(), session_busy=SessionState.TRANSCRIBING) as job:
        assert lib.jobs.get(job.id).state == JobState.RUNNING and lib.jobs.get(job.id).started
        assert lib.get_session(s.id).status == SessionState.TRANSCRIBING
        job.resume.done = 1
        job.progress(0.3, job.resume)
        assert lib.jobs.get(job.id).progress == 0.3
    row = lib.jobs.get(job.id)
    assert row.state == JobState.DONE and row.progress == 1.0 and row.finished and not row.error
    assert row.resume_state().done == 1


def test_a_job_that_raises_is_failed_with_one_line_and_keeps_its_resume_state(lib):
    s = lib.create_session("talk", "file")
    job = lib.jobs.create(JobKind.TRANSCRIBE, s.id, resume=_resume())
    with pytest.raises(RuntimeError):
        with lib.jobs.run(job, cancelled=(Stop,), session_busy=SessionState.TRANSCRIBING) as run:
            st = run.resume
            st.done = 2
            run.progress(0.5, st)
            raise RuntimeError("the model process\nwas killed   by SIGSEGV")
    row = lib.jobs.get(job.id)
    assert row.state == JobState.FAILED and row.error == "the model process was killed by SIGSEGV"
    assert row.progress == 0.5 and row.resume_state().done == 2 and row.finished
    assert lib.get_session(s.id).status == SessionState.FAILED
    # an exception without text still gives a line
    with pytest.raises(KeyError):
        with lib.jobs.run(JobKind.SUMMARIZE, s.id, SummarizeResume(summary_id=None, template="general")):
            raise KeyError()
    (last,) = lib.jobs.find([JobState.FAILED], kind=JobKind.SUMMARIZE)
    assert last.error == "KeyError"
    # running it again resumes the same row: the old error is cleared while it runs
    with lib.jobs.run(lib.jobs.get(job.id)) as again:
        assert again.resume.done == 2 and lib.jobs.get(job.id).error is None
    assert lib.jobs.get(job.id).state == JobState.DONE


def test_a_cancelled_job_is_cancelled(lib):
    s = lib.create_session("talk", "file")
    lib.update_session(s.id, status=SessionState.READY)
    with pytest.raises(Stop):
        with lib.jobs.run(JobKind.VIDEO_FRAMES, s.id, FramesResume("ff", "/v.mp4"), cancelled=(Stop,),
                          session_busy=SessionState.TRANSCRIBING) as job:
            job.progress(0.25)
            raise Stop("cancelled by the user")
    row = lib.jobs.get(job.id)
    assert row.state == JobState.CANCELLED and not row.error and row.progress == 0.25
    assert row.resume_state() == FramesResume("ff", "/v.mp4")
    # a cancel leaves the session as the work left it (a later run continues it)
    assert lib.get_session(s.id).status == SessionState.TRANSCRIBING


def test_find_filters_and_interrupted_jobs(lib):
    a, b = lib.create_session("a", "file"), lib.create_session("b", "file")
    t = lib.jobs.create(JobKind.TRANSCRIBE, a.id)
    f = lib.jobs.create(JobKind.VIDEO_FRAMES, a.id)
    u = lib.jobs.create(JobKind.TRANSCRIBE, b.id)
    lib.jobs.update(t.id, state=JobState.RUNNING)
    assert [j.id for j in lib.jobs.find(session_id=a.id)] == [t.id, f.id]
    assert [j.id for j in lib.jobs.find(kind=JobKind.TRANSCRIBE)] == [t.id, u.id]
    assert [j.id for j in lib.jobs.find([JobState.QUEUED], kind="transcribe")] == [u.id]
    assert [j.id for j in lib.jobs.mark_interrupted()] == [t.id]
    assert lib.jobs.get(t.id).state == JobState.INTERRUPTED and lib.jobs.get(t.id).error
    with pytest.raises(LibraryError, match="unknown job state"):
        lib.jobs.update(t.id, state="exploded")


def test_session_queries_the_pipelines_use(lib):
    a = lib.create_session("Budget", "recording", status=SessionState.RECORDING, created="2026-10-01T09:00:00Z")
    b = lib.create_session("Launch", "file", created="2026-11-10T09:00:00Z")
    assert [s.id for s in lib.sessions(kind="recording", status=SessionState.RECORDING)] == [a.id]
    assert [s.id for s in lib.sessions(since="2026-11-01")] == [b.id]
    assert [s.id for s in lib.sessions(limit=1)] == [b.id]
    with pytest.raises(LibraryError, match="unknown session status"):
        lib.update_session(a.id, status="asleep")
    # a session's audio: its own recording first, else (if asked) the file it came from
    assert lib.session_audio(a.id) is None
    mix = lib.media_dir(a.id) / "mix.wav"
    mix.write_bytes(b"RIFF")
    lib.add_media(a.id, mix, "audio")
    assert lib.session_audio(a.id) == mix
    src = lib.data_dir.parent / "launch.mp4"
    src.write_bytes(b"x")
    lib.update_session(b.id, source=str(src))
    assert lib.session_audio(b.id) is None and lib.session_audio(b.id, include_source=True) == src
    mix.unlink()
    assert lib.session_audio(a.id, include_source=True) is None
    # frames are replaced as a whole; a chat is cleared
    for i in range(2):
        p = lib.media_dir(b.id) / f"{i}.jpg"
        p.write_bytes(b"jpg")
        lib.add_media(b.id, p, "frame", i)
    assert lib.delete_media(b.id, "frame") == 2 and lib.media(b.id, "frame") == []
    assert not list(lib.media_dir(b.id).glob("*.jpg"))
    lib.add_chat_message(b.id, "user", "hi")
    assert lib.clear_chat(b.id) == 1 and lib.chat(b.id) == []


def test_read_only_library_cannot_write(lib):
    import sqlite3

    lib.create_session("a", "file")
    ro = lib.read_only()
    try:
        assert [s.title for s in ro.sessions()] == ["a"]
        with pytest.raises(sqlite3.OperationalError):
            ro.create_session("b", "file")
    finally:
        ro.close()
