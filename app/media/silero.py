"""Silero VAD (a pretrained speech detector) on onnxruntime, without torch.

Why: earshot's score with thresholds set on loud synthetic voices missed a third of the speech
of real meetings (quiet, distant voices). Silero VAD is trained on real recordings in many
languages and conditions; its published defaults are used unchanged (0.5 on, 0.35 off, speech
>= 250 ms, silences >= 100 ms, 30 ms pads), nothing is fitted to our data.

Where the weights come from: the PyPI wheel ``silero-vad`` ships them as package data
(``silero_vad/data/*.onnx``). That package's ``__init__`` imports torch, so it is installed
without its dependencies and never imported: ``importlib.util.find_spec`` only locates it.
The sequence export (``silero_vad_16k_sequence.onnx``: one call for up to 512 windows, the
LSTM's h/c carried between calls) gives the streaming model's probabilities per window
(checked in tests/media/test_silero.py); the streaming export (input, state, sr) is the
fallback when a wheel lacks it. Each 512-sample window (32 ms at 16 kHz) is preceded by the
64 samples before it, as silero's own ``OnnxWrapper`` does. One thread (intra-op 1).

``load()`` returns None, with one warning line, when onnxruntime or the model file is missing:
callers fall back to earshot.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np

log = logging.getLogger("minutely.media.silero")

RATE = 16_000
WINDOW = 512          # samples per probability (32 ms)
CONTEXT = 64          # samples of the previous window prepended to each one
BLOCK = 512           # windows per call of the sequence model
# silero's get_speech_timestamps defaults
ONSET, OFFSET = 0.5, 0.35
MIN_SPEECH, MIN_SILENCE, PAD = 0.25, 0.1, 0.03   # seconds

SEQUENCE, STREAMING = "silero_vad_16k_sequence.onnx", "silero_vad.onnx"
_warned = False
_sessions: dict = {}


def model_dir() -> Path | None:
    """The folder holding silero's ONNX files (the package located, never imported; in the
    PyInstaller bundle, ``silero_vad/data`` beside the app's modules)."""
    import sys

    frozen = getattr(sys, "_MEIPASS", None)
    if frozen and (Path(frozen) / "silero_vad" / "data").is_dir():
        return Path(frozen) / "silero_vad" / "data"
    try:
        spec = importlib.util.find_spec("silero_vad")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(next(iter(spec.submodule_search_locations))) / "data"
    return d if d.is_dir() else None


class SileroVAD:
    """Speech probability per 32-ms window of a 16 kHz stream; state carried across calls.

    As a detector of ``vad.Segmenter`` and ``speakers.Frames`` (16-ms frames): ``window`` says
    frames must come in pairs, ``predict_frames`` gives both frames of a window its probability."""

    window = WINDOW
    onset, offset = ONSET, OFFSET

    def __init__(self, path: Path | None = None) -> None:
        import onnxruntime as ort

        d = model_dir()
        if path is None:
            if d is None:
                raise FileNotFoundError("the silero-vad package (its ONNX files) is not installed")
            path = d / SEQUENCE if (d / SEQUENCE).is_file() else d / STREAMING
        key = str(path)
        if key not in _sessions:  # one session per model file (run() is thread-safe); state is ours
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            opts.inter_op_num_threads = 1
            opts.log_severity_level = 3
            _sessions[key] = ort.InferenceSession(key, sess_options=opts, providers=["CPUExecutionProvider"])
        self.session = _sessions[key]
        self.sequence = {i.name for i in self.session.get_inputs()} == {"input", "h", "c"}
        self.reset()

    def reset(self) -> None:
        self._context = np.zeros(CONTEXT, np.float32)
        self._h = np.zeros((1, 1, 128), np.float32)
        self._c = np.zeros((1, 1, 128), np.float32)
        self._state = np.zeros((2, 1, 128), np.float32)

    def probs(self, samples: np.ndarray) -> np.ndarray:
        """Probabilities of the next ``len(samples) // 512`` windows (a multiple of 512 samples
        is expected; a remainder is ignored)."""
        x = np.asarray(samples, np.float32).reshape(-1)
        n = len(x) // WINDOW
        if not n:
            return np.zeros(0, np.float32)
        win = x[:n * WINDOW].reshape(n, WINDOW)
        ctx = np.empty((n, CONTEXT), np.float32)
        ctx[0] = self._context
        ctx[1:] = win[:-1, -CONTEXT:]
        self._context = win[-1, -CONTEXT:].copy()
        inp = np.concatenate([ctx, win], axis=1)
        out = []
        if self.sequence:
            for i in range(0, n, BLOCK):
                p, self._h, self._c = self.session.run(["speech_probs", "hn", "cn"],
                                                       {"input": inp[i:i + BLOCK], "h": self._h, "c": self._c})
                out.append(np.asarray(p, np.float32).reshape(-1))
        else:
            sr = np.array(RATE, np.int64)
            for row in inp:
                p, self._state = self.session.run(None, {"input": row[None], "state": self._state, "sr": sr})
                out.append(np.asarray(p, np.float32).reshape(-1))
        return np.concatenate(out)

    def predict_frames(self, frames: np.ndarray) -> np.ndarray:
        """Per 256-sample frame (an even number of them): its window's probability."""
        return np.repeat(self.probs(np.asarray(frames).reshape(-1)), 2)


def load() -> SileroVAD | None:
    """Silero VAD, or None (one warning line, once) when onnxruntime or its model is missing."""
    global _warned
    try:
        return SileroVAD()
    except Exception as e:  # ImportError, a missing or unreadable model file
        if not _warned:
            log.warning("Silero VAD unavailable (%s); using earshot for speech detection",
                        str(e).splitlines()[0] if str(e) else type(e).__name__)
            _warned = True
        return None


def speech_mask(p: np.ndarray, per_second: float) -> np.ndarray:
    """silero's get_speech_timestamps on a probability per frame (``per_second`` frames a
    second): hysteresis ONSET/OFFSET, a silence ends speech once ``MIN_SILENCE`` long, speech
    under ``MIN_SPEECH`` dropped, ``PAD`` added each side (a short gap shared)."""
    n = len(p)
    mask = np.zeros(n, bool)
    min_sil, min_sp, pad = (max(1, int(round(s * per_second))) for s in (MIN_SILENCE, MIN_SPEECH, PAD))
    on = False
    start = end_tmp = 0
    spans: list[tuple[int, int]] = []
    for i, v in enumerate(p.tolist()):
        if v >= ONSET:
            end_tmp = 0
            if not on:
                on, start = True, i
            continue
        if on and v < OFFSET:
            if not end_tmp:
                end_tmp = i
            if i - end_tmp >= min_sil:
                if end_tmp - start > min_sp:
                    spans.append((start, end_tmp))
                on, end_tmp = False, 0
    if on and n - start > min_sp:
        spans.append((start, n))
    for a, b in spans:
        mask[max(0, a - pad):min(n, b + pad)] = True
    return mask
