"""Silero VAD on onnxruntime (app/media/silero.py): the same probabilities as silero's own
streaming model, quiet real speech still found, no torch, and a fallback when it is missing."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from app.media import silero
from app.media.vad import Combined, Segmenter, default_detector, segment
from tests.support import ROOT
from tests.support.meetings import read_wav

REAL = next((p / "shared" / "data" / "real-meetings" for p in (ROOT.parent, ROOT, ROOT.parent.parent)
             if (p / "shared" / "data" / "real-meetings").is_dir()), None)
needs_model = pytest.mark.skipif(silero.model_dir() is None, reason="silero-vad's model files not installed")
needs_real = pytest.mark.skipif(REAL is None, reason="no real meetings in shared/data")


def _tone_speech(seconds: float = 3.0) -> np.ndarray:
    """Something speech-like needs a real voice: the real clips when there, else silence checks."""
    return np.zeros(int(seconds * silero.RATE), np.float32)


@needs_model
def test_the_sequence_model_matches_the_streaming_one_block_by_block():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(40 * silero.WINDOW) * 0.05).astype(np.float32)
    if REAL is not None:
        x = read_wav(sorted(REAL.glob("*.wav"))[0])[:160 * silero.WINDOW]
    seq = silero.SileroVAD()
    assert seq.sequence
    stream = silero.SileroVAD(silero.model_dir() / silero.STREAMING)
    assert not stream.sequence
    whole = stream.probs(x)
    parts = np.concatenate([seq.probs(x[i:i + 37 * silero.WINDOW]) for i in range(0, len(x), 37 * silero.WINDOW)])
    assert len(parts) == len(whole) == len(x) // silero.WINDOW
    assert np.abs(parts - whole).max() < 1e-4


@needs_model
@needs_real
def test_quiet_real_speech_is_still_found():
    """A real meeting scaled down 20 dB: Silero still finds most of the speech it found at
    full level, and the transcription VAD still cuts utterances from it."""
    x = read_wav(REAL / "trn05.wav")
    loud = silero.speech_mask(silero.SileroVAD().probs(x), silero.RATE / silero.WINDOW)
    quiet = silero.speech_mask(silero.SileroVAD().probs(x * 0.1), silero.RATE / silero.WINDOW)
    assert loud.mean() > 0.5
    assert (quiet & loud).sum() >= 0.8 * loud.sum()
    utts = segment(x * 0.1, detector=silero.SileroVAD())
    assert sum(u.duration for u in utts) >= 0.5 * len(x) / silero.RATE


@needs_model
def test_silence_and_noise_are_no_speech():
    rng = np.random.default_rng(1)
    for x in (_tone_speech(), (rng.standard_normal(5 * silero.RATE) * 0.01).astype(np.float32)):
        assert not silero.speech_mask(silero.SileroVAD().probs(x), 31.25).any()
        assert segment(x, detector=silero.SileroVAD()) == []


def test_speech_mask_follows_silero_defaults():
    fps = 31.25  # one value per 32 ms
    p = np.zeros(100)
    p[10:30] = 0.9          # 640 ms of speech
    p[30:32] = 0.1          # a 64-ms dip: shorter than 100 ms, so still one stretch
    p[32:40] = 0.9
    p[60:64] = 0.9          # 128 ms: shorter than 250 ms, dropped
    p[80:90] = 0.4          # between the thresholds but never above 0.5: no speech
    m = silero.speech_mask(p, fps)
    runs = np.flatnonzero(np.diff(np.r_[0, m.astype(int), 0]))
    assert runs.tolist() == [9, 41]  # 30 ms pad each side (one value), one stretch


@needs_model
def test_default_detector_combines_and_honours_the_choice(monkeypatch):
    assert isinstance(default_detector(), Combined)
    monkeypatch.setenv("MINUTELY_VAD", "silero")
    assert isinstance(default_detector(), silero.SileroVAD)
    monkeypatch.setenv("MINUTELY_VAD", "earshot")
    assert type(default_detector()).__name__ == "Detector"
    assert Segmenter(detector=silero.SileroVAD()).onset == silero.ONSET


def test_a_missing_model_falls_back_to_earshot_with_one_warning(monkeypatch, caplog):
    monkeypatch.setattr(silero, "model_dir", lambda: None)
    monkeypatch.setattr(silero, "_warned", False)
    with caplog.at_level("WARNING", logger="minutely.media.silero"):
        a, b = default_detector(), default_detector()
    assert type(a).__name__ == type(b).__name__ == "Detector"
    lines = [r for r in caplog.records if "Silero VAD unavailable" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0].getMessage()
    assert Segmenter().onset == 0.7  # earshot's own thresholds


def test_media_imports_no_torch():
    code = ("import sys, app.media.vad, app.media.speakers, app.media.silero, app.pipeline.transcribe;"
            "from app.media.vad import default_detector; default_detector();"
            "assert 'torch' not in sys.modules and 'silero_vad' not in sys.modules, 'imported'")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)


@needs_model
@needs_real
def test_the_default_detector_keeps_real_speech_20_db_down():
    """Over the real clips, the utterances still cover most of the reference speech when the
    recording is 20 dB quieter; earshot alone loses about half of it (measured: earshot
    0.79 -> 0.38 of the speech, Silero + earshot 0.85 -> 0.64)."""
    def read_rttm(path):
        return [(float(p[3]), float(p[3]) + float(p[4]), p[7]) for p in map(str.split, path.read_text().splitlines())
                if p and p[0] == "SPEAKER"]

    def covered(kind: str, gain: float) -> float:
        found = total = 0
        for wav in sorted(REAL.glob("*.wav")):
            x = read_wav(wav)
            ref = np.zeros(len(x) // 160, bool)
            for a, b, _ in read_rttm(wav.with_suffix(".rttm")):
                ref[int(a * 100):int(b * 100)] = True
            hyp = np.zeros_like(ref)
            for u in segment(x * gain, detector=default_detector(kind)):
                hyp[int(u.start * 100):int(u.end * 100)] = True
            found, total = found + (ref & hyp).sum(), total + ref.sum()
        return found / total

    loud, quiet, earshot_quiet = covered("combined", 1.0), covered("combined", 0.1), covered("earshot", 0.1)
    assert quiet >= 0.7 * loud, (loud, quiet)
    assert quiet >= 1.3 * earshot_quiet, (quiet, earshot_quiet)


def test_warm_up_loads_the_detectors_once():
    from app.media import silero, vad

    vad.warm_up()
    assert silero._sessions  # the ONNX session is kept for every later detector
    n = len(silero._sessions)
    vad.warm_up()
    assert len(silero._sessions) == n
