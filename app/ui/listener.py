"""Hold a key, hear the microphone: the recorder behind the dictation pad and every F10 voice edit.

Audio comes from the microphone in the settings through the same Recorder the
meetings use (a temporary folder, removed after), so device names, PulseAudio
sources and unplugged devices behave the same way. Stopping (the recorder
finalizes its files) runs as a task on the runner's pool, never on the UI
thread; ``finished`` then brings the audio to the main thread.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from app.errors import one_line

from .tasks import Task

if TYPE_CHECKING:
    from app.media.vad import Segmenter


class Listener(QObject):
    """Records the microphone into memory while a key is held (and cuts utterances in continuous mode).

    Its signals name the listener itself, so a receiver needs no lambda that holds it (a lambda
    naming the listener, connected to the listener's own signal, would keep it for good)."""

    utterance = Signal(object, float, float)  # one utterance (continuous mode): audio, start, end (s)
    finished = Signal(object, object)  # this listener, np.ndarray of everything heard (None on failure)
    failed = Signal(str)
    ready = Signal(object)          # this listener: the first audio arrived, speech from now on is heard

    def __init__(self, services, recorder_factory=None, continuous: bool = False, mode: str = "talk"):
        super().__init__()
        self.services = services
        self.factory = recorder_factory
        self.continuous = continuous
        self.mode = mode                # what the holder does with the audio ("talk", "edit", "continuous")
        self._blocks: list[np.ndarray] = []
        self._lock = threading.Lock()
        self._folder = Path(tempfile.mkdtemp(prefix="dictation-", dir=services.data_dir))
        self._seg: Segmenter | None = None
        self._offset = 0                # stream position of _blocks[0] (continuous mode drops cut audio)
        self._got_audio = False
        self.recorder: Any = None       # a capture Recorder, or what the test factory makes
        self.result = None              # the RecordingResult: continuous mode keeps its WAV (see stop)
        self._stopping = False

    def start(self) -> None:
        from app.capture.recorder import Recorder

        mic = self.services.settings.mic_device or "default"
        make = self.factory or (lambda folder, mic, on_audio: Recorder(folder, mic=mic, system=None,
                                                                        on_audio=on_audio))
        if self.continuous:
            from app.media.vad import Segmenter

            self._seg = Segmenter()
        self.recorder = make(self._folder / "rec", mic, self._on_audio)
        try:
            self.recorder.start()
        except Exception as e:  # noqa: BLE001 - no microphone: one line
            self._cleanup()
            raise RuntimeError(one_line(e)) from None

    def _on_audio(self, track: str, position: int, x: np.ndarray) -> None:  # recorder's writer thread
        if not self._got_audio:
            self._got_audio = True
            self.ready.emit(self)
        with self._lock:
            self._blocks.append(np.asarray(x, np.float32).reshape(-1).copy())
            if self._seg is not None:
                for u in self._seg.push(x):
                    self._emit_utterance(u)

    def _emit_utterance(self, u) -> None:
        """Cut one utterance out of the blocks, then drop the blocks before its end: the next
        utterance starts after it, so a long continuous dictation keeps only the audio not yet cut
        (concatenating everything heard for each utterance grew without bound)."""
        a, b = int(u.start * 16000) - self._offset, int(u.end * 16000) - self._offset
        pos, parts, keep = 0, [], 0
        for i, blk in enumerate(self._blocks):
            lo, hi = pos, pos + len(blk)
            if hi > a and lo < b:
                parts.append(blk[max(0, a - lo):b - lo])
            if hi <= b:
                keep = i + 1
            pos = hi
        self.utterance.emit(np.concatenate(parts) if parts else np.zeros(0, np.float32), u.start, u.end)
        dropped = self._blocks[:keep]
        del self._blocks[:keep]
        self._offset += sum(len(x) for x in dropped)

    def stop(self) -> Task | None:
        """Stop on the runner's pool; ``finished`` brings the audio. In continuous mode the take's
        recording stays on disk for the session (``result``) until ``discard_files()``. (The task
        holds this listener, never the other way round: two QObjects in a reference cycle would
        be freed by the cycle collector on whichever thread it runs.)"""
        if self._stopping:
            return None
        self._stopping = True
        task = Task("Stopping the microphone", self._stop_work, kind="listen", needs_model=False)
        task.done.connect(self._stopped)
        task.failed.connect(self._stop_failed)
        return self.services.runner.submit(task)

    def _stop_work(self, ctx) -> np.ndarray:  # the pool
        keep = False
        try:
            if self.recorder is not None:
                self.result = self.recorder.stop()
                keep = self.continuous
            with self._lock:
                audio = np.concatenate(self._blocks) if self._blocks else np.zeros(0, np.float32)
                if self._seg is not None:
                    for u in self._seg.flush():
                        self._emit_utterance(u)
            return audio
        finally:
            if not keep:
                self._cleanup()

    def _stopped(self, audio) -> None:  # main thread
        self.recorder = None  # it holds this listener (its audio callback): no cycle is left behind
        self.finished.emit(self, audio)

    def _stop_failed(self, message: str) -> None:
        self.recorder = None
        self.failed.emit(message)
        self.finished.emit(self, None)

    def recording(self) -> Path | None:
        """The take's WAV (continuous mode, after stop)."""
        tracks = getattr(self.result, "tracks", None) or {}
        return tracks.get("mic") or next(iter(tracks.values()), None)

    def _cleanup(self) -> None:
        shutil.rmtree(self._folder, ignore_errors=True)

    discard_files = _cleanup


class HoldsAListener:
    """For a QObject with a ``message`` signal that listens while a key is held (the dictation pad,
    an F10 voice-edit key): at most one ``listener`` at a time; release stops it."""

    listener: Listener | None = None
    message: Any  # the host's Signal(str)

    def _release_listener(self) -> None:
        listener, self.listener = self.listener, None
        if listener is not None:
            self.message.emit("Working…")
            listener.stop()

    def _listen_failed(self, message: str) -> None:
        self.message.emit(f"Recording failed: {message}")


__all__ = ["Listener", "HoldsAListener"]
