"""Click a segment, hear it: the player plays a file from a time, through real PortAudio/PulseAudio.

The player's output goes to the rig's default sink ("speaker"); the system-audio monitor of that
sink is recorded at the same time, and what was heard must be the file's audio from that time.
"""

from __future__ import annotations

import numpy as np
import pytest

from app.capture.recorder import Recorder
from app.media.audio import MediaError, write_wav
from app.media.player import Player
from tests.support.audio import aligned_corr
from tests.support.meetings import SENTENCES, VOICES, have_tools, read_wav, speak

RATE = 16000


@pytest.fixture(scope="module")
def talk(tmp_path_factory):
    if not have_tools():
        pytest.skip("needs espeak-ng and sox")
    d = tmp_path_factory.mktemp("player")
    x = np.concatenate([speak(SENTENCES[i], VOICES[i % 2], d / "cache") for i in range(3)])
    return write_wav(d / "talk.wav", x), x


def test_plays_the_file_from_the_given_time(tmp_path, pulse, talk):
    wav, x = talk
    rec = Recorder(tmp_path / "heard", mic=None, system=pulse.system)
    rec.start()
    try:
        assert rec.wait_ready(15)
        done = []
        player = Player()
        player.play(wav, start=2.0, end=4.0, on_done=done.append)
        assert player.wait(30) and done == [None], player.error
        played_at = rec.duration
        while rec.duration < played_at + 0.5:  # the tail reaches the recording
            rec.wait(0.05)
    finally:
        res = rec.stop()
    heard = read_wav(res.tracks["system"])
    want = x[int(2.0 * RATE):int(4.0 * RATE)]
    corr, _ = aligned_corr(heard, want)
    other, _ = aligned_corr(heard, x[int(6.0 * RATE):int(8.0 * RATE)])
    print(f"heard vs the clip: {corr:.3f} (vs another part: {other:.3f})")
    assert corr >= 0.9 and other < 0.5


def test_a_missing_or_broken_file_is_one_line(tmp_path, pulse):
    bad = tmp_path / "gone.wav"
    p = Player()
    p.play(bad, 0.0)
    assert p.wait(10) and p.error and "not found" in p.error and "\n" not in p.error
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"nothing here" * 100)
    p.play(junk, 0.0)
    assert p.wait(10) and p.error and "junk.mp3" in p.error
    assert MediaError  # the error type behind those lines
