"""Dropping nearly empty files on the window (offscreen Qt, no model needed): the import job fails
with one line that says why, and the library gets no session."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from app.ui.tasks import DONE, FAILED
from tests.support.media_factory import make_video, no_speech_file


def drop(window, path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    window.dropEvent(QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                                Qt.KeyboardModifier.NoModifier))


@pytest.mark.parametrize("kind, said", [
    ("truncated", "no speech in short.wav (0.0005 s of audio)"),
    ("lying", "no speech in short.wav (0.06 s of audio)"),
    ("silence", "no speech in short.wav (3.00 s of audio)"),
    ("directory", "is a directory"),
])
def test_dropping_a_file_without_speech_fails_its_job_and_stores_nothing(window, qtbot, tmp_path, kind, said):
    f = no_speech_file(kind, tmp_path / "short.wav")
    messages: list[str] = []
    window.importer.error.connect(messages.append)
    drop(window, f)
    row = window.jobs.rows[-1]
    qtbot.waitUntil(lambda: bool(messages) and row.task.finished, timeout=30_000)
    said = f"{f} {said}" if kind == "directory" else said
    assert messages == [f"Could not import short.wav: {said}"]
    assert row.task.kind == "import" and row.task.state == FAILED
    assert said in row.state.text() and "\n" not in row.state.text()
    assert window.sessions.rowCount() == 0 and window.services.library.sessions() == []
    assert not any(r.task is not None and r.task.kind == "transcribe" for r in window.jobs.rows)


def test_dropping_a_video_with_a_silent_soundtrack_keeps_its_frames(window, qtbot, tmp_path):
    v = make_video(tmp_path / "screen.mp4", 2.0, fps=5, audio=np.zeros(2 * 16000, np.float32))
    drop(window, v)
    qtbot.waitUntil(lambda: any(r.task is not None and r.task.kind == "frames" and r.task.finished
                                for r in window.jobs.rows), timeout=30_000)
    lib = window.services.library
    (s,) = lib.sessions()
    assert len(lib.media(s.id, "frame")) >= 1 and lib.segments(s.id) == [] and s.status == "ready"
    frames = next(r.task for r in window.jobs.rows if r.task is not None and r.task.kind == "frames")
    assert frames.state == DONE
    assert not any(r.task is not None and r.task.kind == "transcribe" for r in window.jobs.rows)
