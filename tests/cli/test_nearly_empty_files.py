"""Nearly empty inputs: a file with no speech in it (a truncated WAV header, a WAV whose header
claims far more data than it holds, silence) says so in one line and stores nothing; a directory
given as a file says it is a directory. Through the real CLI, as a user runs it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.library import Library
from tests.support.cli import assert_one_line_error, model_args, run
from tests.support.media_factory import make_video, no_speech_file, truncated_wav


@pytest.fixture
def library(_private_home):
    """The test's data folder with one session already in it (so 'no new session' is visible)."""
    with Library.open(_private_home) as lib:
        lib.create_session("an earlier meeting", "file", status="ready")
    return _private_home


def session_titles(home: Path) -> list[str]:
    with Library.open(home) as lib:
        return sorted(s.title for s in lib.sessions())


def job_count(home: Path) -> int:
    with Library.open(home) as lib:
        return len(lib.jobs.find())


@pytest.mark.parametrize("kind, said", [
    ("truncated", "no speech in short.wav (0.0005 s of audio)"),
    ("lying", "no speech in short.wav (0.06 s of audio)"),
    ("silence", "no speech in short.wav (3.00 s of audio)"),
])
def test_transcribe_a_file_without_speech_says_so_and_stores_nothing(tiny_model, library, tmp_path, kind, said):
    f = no_speech_file(kind, tmp_path / "short.wav")
    p = run("transcribe", str(f), *model_args(tiny_model))
    assert_one_line_error(p, 2)
    assert p.stderr.strip() == f"minutely: error: {said}"
    assert p.stdout == ""
    assert session_titles(library) == ["an earlier meeting"] and job_count(library) == 0


def test_transcribe_a_directory_says_it_is_one(tiny_model, library, tmp_path):
    d = tmp_path / "recordings.wav"  # named like a file, but a folder
    d.mkdir()
    p = run("transcribe", str(d), *model_args(tiny_model))
    assert_one_line_error(p, 2)
    assert p.stderr.strip() == f"minutely: error: {d} is a directory"
    # even before a model is looked for: the same line with none configured
    p = run("transcribe", str(d))
    assert_one_line_error(p, 2)
    assert p.stderr.strip() == f"minutely: error: {d} is a directory"
    assert session_titles(library) == ["an earlier meeting"] and job_count(library) == 0


def test_dictate_a_file_without_speech_or_a_directory(tiny_model, library, tmp_path):
    f = truncated_wav(tmp_path / "note.wav")
    p = run("dictate", str(f), "--save", *model_args(tiny_model))
    assert p.returncode == 1 and p.stdout == ""  # exit 1: nothing was heard (README)
    assert p.stderr.strip() == "minutely: nothing was heard: no speech in note.wav (0.0005 s of audio)"
    d = tmp_path / "notes"
    d.mkdir()
    p = run("dictate", str(d), *model_args(tiny_model))
    assert_one_line_error(p, 2)
    assert p.stderr.strip() == f"minutely: error: {d} is a directory"
    assert session_titles(library) == ["an earlier meeting"]


def test_ask_video_a_directory_says_it_is_one(tiny_model, library, tmp_path):
    d = tmp_path / "clip.mp4"
    d.mkdir()
    p = run("ask", "--video", str(d), "What is shown?", *model_args(tiny_model))
    assert_one_line_error(p, 2)
    assert p.stderr.strip() == f"minutely: error: {d} is a directory"
    assert session_titles(library) == ["an earlier meeting"]


def test_a_video_with_a_silent_soundtrack_is_its_frames(tmp_path):
    """No speech is no transcript, but the picture is still worth asking about: frames only,
    and no model is needed to import it (engine None)."""
    from app.pipeline.video import import_video

    v = make_video(tmp_path / "screen.mp4", 2.0, fps=5, audio=np.zeros(2 * 16000, np.float32))
    with Library.open(tmp_path / "data") as lib:
        sid = import_video(lib, None, v)
        assert lib.segments(sid) == [] and len(lib.media(sid, "frame")) >= 1
        assert lib.get_session(sid).status == "ready"
        assert [j.kind for j in lib.jobs.find(session_id=sid)] == ["video_frames"]
