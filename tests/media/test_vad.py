"""Voice activity detection and segmentation against synthetic meetings with exact truth.

The meetings are espeak-ng voices joined with known gaps (tests/support/meetings.py); the seeds
here (4, 5) are not the ones the parameters were chosen on (0-2). Metrics as in
bench/vad.py: frame accuracy vs the truth turns, and speaker changes cut apart.
"""

from __future__ import annotations

import numpy as np
import pytest

from app.media.vad import FPS, EnergyVAD, Segmenter, Utterance, frame_speech, segment, segment_file
from tests.support.meetings import covered_frames, have_tools, make_meeting

pytestmark = pytest.mark.skipif(not have_tools(), reason="needs espeak-ng and sox")

SPEAKERS = (2, 3, 4)
NOISES = (0.0, 0.02)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("vad-meetings")


@pytest.fixture(scope="module")
def meetings(cache):
    """(speakers, noise) -> (meeting, samples)."""
    out = {}
    for spk in SPEAKERS:
        for noise in NOISES:
            m = make_meeting(cache, spk, 12, seed=4, noise=noise, name=f"m{spk}-{noise}.wav")
            out[spk, noise] = (m, m.samples())
    return out


def truth_frames(turns, n: int) -> np.ndarray:
    return covered_frames(turns, n, FPS)


def covered(utts: list[Utterance], n: int) -> np.ndarray:
    return truth_frames(utts, n)  # same test: the frame's centre inside an utterance


def overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def boundary_splits(turns, utts, slack: float = 0.05) -> list[bool]:
    """Each change of speaker with a gap >= 0.3 s: True if no utterance holds > 50 ms of both."""
    return [not any(overlap(u.start, u.end, a.start, a.end) > slack and overlap(u.start, u.end, b.start, b.end) > slack
                    for u in utts)
            for a, b in zip(turns, turns[1:]) if a.speaker != b.speaker and b.start - a.end >= 0.3]


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


def check_well_formed(utts: list[Utterance], duration: float) -> None:
    for u in utts:
        assert 0.0 <= u.start < u.end <= duration + 1e-9
        assert u.duration <= 30.0 + 1e-6
    for a, b in zip(utts, utts[1:]):
        assert a.end <= b.start + 1e-9  # in order, never overlapping


@pytest.mark.parametrize("spk", SPEAKERS)
@pytest.mark.parametrize("noise", NOISES)
def test_frame_accuracy_beats_the_energy_baseline(meetings, spk, noise):
    m, x = meetings[spk, noise]
    n = len(x) // 256
    truth = truth_frames(m.turns, n)
    frames = (frame_speech(x) == truth).mean()
    utts = (covered(segment(x), n) == truth).mean()
    assert frames >= 0.90 and utts >= 0.90, (frames, utts)
    if noise:
        e_frames = (frame_speech(x, EnergyVAD()) == truth).mean()
        e_utts = (covered(segment(x, detector=EnergyVAD()), n) == truth).mean()
        assert frames > e_frames and utts > e_utts, (frames, e_frames, utts, e_utts)


def test_speaker_changes_are_cut_apart(meetings, cache):
    splits = []
    for m, x in meetings.values():
        splits += boundary_splits(m.turns, segment(x))
    for spk in SPEAKERS:  # the hardest case: every gap 0.3-0.4 s
        m = make_meeting(cache, spk, 12, seed=5, gap=(0.3, 0.4), noise=0.01, name=f"tight{spk}.wav")
        splits += boundary_splits(m.turns, segment(m.samples()))
    assert len(splits) >= 60
    assert np.mean(splits) >= 0.95, f"{sum(splits)}/{len(splits)}"


@pytest.mark.parametrize("noise", NOISES)
def test_a_pause_inside_a_turn_leaves_no_short_fragments(cache, noise):
    m = make_meeting(cache, 3, 12, seed=5, noise=noise, pause_in_turn=0.6, name=f"pause-{noise}.wav")
    utts = segment(m.samples())
    check_well_formed(utts, m.duration)
    assert min(u.duration for u in utts) >= 1.0, utts


def _cuts_are_quiet(m, x, utts, max_ratio: float) -> None:
    speech = rms(np.concatenate([x[int(t.start * 16000):int(t.end * 16000)] for t in m.turns]))
    for a, b in zip(utts, utts[1:]):
        if b.start - a.end < 0.05:  # cut inside speech, not at a pause between utterances
            around = x[int((a.end - 0.04) * 16000):int((a.end + 0.04) * 16000)]
            assert rms(around) <= max_ratio * speech, (a, b, rms(around), speech)


@pytest.mark.parametrize("noise", NOISES)
def test_a_long_monologue_is_cut_at_quiet_places_never_past_30s(cache, noise):
    m = make_meeting(cache, 1, 22, seed=4, gap=(0.15, 0.15), noise=noise, name=f"mono-{noise}.wav")
    x = m.samples()
    assert m.duration >= 70
    utts = segment(x)
    check_well_formed(utts, m.duration)
    assert len(utts) >= 3
    _cuts_are_quiet(m, x, utts, 0.1 if not noise else 0.4)
    # No pause short enough to end an utterance: only the 30 s limit cuts, at the quietest point.
    forced = segment(x, split_pause=0.8, min_gap=0.8)
    check_well_formed(forced, m.duration)
    assert max(u.duration for u in forced) > 15.0
    _cuts_are_quiet(m, x, forced, 0.1 if not noise else 0.4)
    if not noise:  # the quietest points are the 0.15 s gaps between sentences
        gaps = [(a.end, b.start) for a, b in zip(m.turns, m.turns[1:])]
        for u in forced[:-1]:
            assert any(g0 - 0.02 <= u.end <= g1 + 0.02 for g0, g1 in gaps), u


@pytest.mark.parametrize("spk", SPEAKERS)
def test_times_are_exact_on_clean_audio(meetings, spk):
    m, x = meetings[spk, 0.0]
    utts = segment(x)
    check_well_formed(utts, m.duration)
    for t in m.turns:
        cover = [u for u in utts if overlap(u.start, u.end, t.start, t.end) > 0]
        assert cover, t
        assert t.start - 0.25 <= cover[0].start <= t.start + 0.1, (t, cover[0])
        assert t.end - 0.1 <= cover[-1].end <= t.end + 0.3, (t, cover[-1])


def test_streaming_gives_the_same_utterances_for_any_block_size(meetings):
    m, x = meetings[3, 0.02]
    whole = segment(x)
    assert len(whole) >= 10
    for size in (1000, 4096, 16000, 777):
        seg = Segmenter()
        got: list[Utterance] = []
        for i in range(0, len(x), size):
            got += seg.push(x[i:i + size])
        got += seg.flush()
        assert got == whole, size
    assert segment(iter([x[:12345], x[12345:50000], x[50000:]])) == whole
    assert segment_file(m.wav) == whole


def test_live_push_returns_utterances_soon_after_they_end(meetings):
    m, x = meetings[4, 0.0]
    seg = Segmenter()
    step = 1600  # 0.1 s, as a recorder would push
    live: list[tuple[float, Utterance]] = []
    for i in range(0, len(x), step):
        now = (i + step) / 16000
        live += [(now, u) for u in seg.push(x[i:i + step])]
    rest = seg.flush()
    assert len(rest) <= 1 and len(live) >= 10
    assert [u for _, u in live] + rest == segment(x)
    gaps = [b.start - a.end for a, b in zip(m.turns, m.turns[1:])]
    for now, u in live:  # out within the next turn's first second, or a long pause
        assert now - u.end <= max(gaps) + 1.2, (now, u)


def test_silence_noise_and_empty_input_give_nothing():
    rng = np.random.default_rng(0)
    assert segment(np.zeros(0, np.float32)) == []
    assert segment(np.zeros(5 * 16000, np.float32)) == []
    assert segment(rng.normal(0, 0.01, 10 * 16000).astype(np.float32)) == []
    assert segment(iter([])) == []
    assert Segmenter().flush() == []


def test_a_push_after_flush_starts_a_new_stream(meetings):
    m, x = meetings[2, 0.0]
    seg = Segmenter()
    first = seg.push(x) + seg.flush()
    assert seg.frames == 0 and seg.samples == 0
    again = seg.push(x[:len(x) // 2]) + seg.push(x[len(x) // 2:]) + seg.flush()
    assert first == again and first
    assert first[0].start < 1.0  # times start at 0 again


def test_short_blocks_and_a_tail_shorter_than_a_frame(meetings):
    m, x = meetings[2, 0.02]
    tail = x[:len(x) // 256 * 256 + 100]  # 100 samples past the last whole frame
    seg = Segmenter()
    got = seg.push(tail[:10]) + seg.push(tail[10:300]) + seg.push(tail[300:]) + seg.flush()
    assert got == segment(tail)
    check_well_formed(got, len(tail) / 16000)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        Segmenter(onset=0.3, offset=0.6)
    with pytest.raises(ValueError):
        Segmenter(max_len=10.0, target=15.0)
    with pytest.raises(ValueError):
        Segmenter(pad_start=0.5, pad_end=0.5)
