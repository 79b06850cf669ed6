"""Nearly empty inputs: a file with no speech in it (a truncated WAV header, a WAV whose header
claims far more data than it holds, silence) says so in one line and stores nothing; a directory
given as a file says it is a directory. Through the real CLI, as a user runs it."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from app.library import Library
from app.media.audio import write_wav
from tests.media_factory import make_video
from tests.test_cli import assert_one_line_error, model_args, run


def wav_header(data_bytes: int, rate: int = 16000) -> bytes:
    """A 44-byte PCM WAV header (mono, 16-bit) that announces ``data_bytes`` of samples."""
    return (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, 2 * rate, 2, 16)
            + b"data" + struct.pack("<I", data_bytes))


def truncated_wav(path: Path) -> Path:
    """60 bytes: the header of a one-second file and the first 8 samples (0.0005 s)."""
    path.write_bytes(wav_header(32_000) + bytes(16))
    assert path.stat().st_size == 60
    return path


def lying_wav(path: Path) -> Path:
    """2 KB: a header that claims 10 MB of samples (over 5 minutes), then 1,002 samples of sound."""
    pcm = (np.random.default_rng(0).normal(0, 0.1, 2000) * 32767).astype("<i2").tobytes()
    path.write_bytes((wav_header(10_000_000) + pcm)[:2048])
    return path


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


def no_speech_file(kind: str, f: Path) -> Path:
    """A file a user might give that holds no speech: truncated, lying, silent, or a folder."""
    if kind == "truncated":
        truncated_wav(f)
    elif kind == "lying":
        lying_wav(f)
    elif kind == "silence":
        write_wav(f, np.zeros(3 * 16000, np.float32))
    else:
        f.mkdir()
    return f


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
