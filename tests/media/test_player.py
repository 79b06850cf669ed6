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
from tests.support.sounddevice import FakeOutput

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


def _peak_hz(x: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.fft.rfftfreq(x.size, 1 / rate)[int(np.argmax(spec))])


@pytest.mark.parametrize("speed", [0.75, 1.5, 2.0])
def test_speed_changes_the_pace_not_the_pitch(tmp_path, speed):
    t = np.arange(16000 * 6) / 16000
    wav = write_wav(tmp_path / "tone.wav", 0.3 * np.sin(2 * np.pi * 440 * t))
    out = FakeOutput(keep=True)
    p = Player(sd=out)
    p.play(wav, start=1.0, speed=speed)
    assert p.wait(30) and p.error is None
    heard = np.concatenate(out.blocks)
    assert heard.size / out.rate == pytest.approx(5.0 / speed, rel=0.03)   # 5 s of the file
    assert _peak_hz(heard[out.rate // 2: -out.rate // 2], out.rate) == pytest.approx(440, abs=5)
    assert p.position == pytest.approx(6.0, abs=0.05)


def test_halt_returns_at_once_and_the_old_run_stays_quiet(tmp_path):
    import threading
    import time

    class Slow(FakeOutput):
        def OutputStream(self, **kw):  # noqa: N802
            stream = super().OutputStream(**kw)
            write = stream.write

            def slow(a):
                time.sleep(0.3)
                write(a)

            stream.write = slow
            return stream

    wav = write_wav(tmp_path / "tone.wav", np.zeros(16000 * 4, np.float32))
    done: list = []
    p = Player(sd=Slow())
    p.play(wav, 0.0, on_done=done.append)
    time.sleep(0.1)
    t0 = time.perf_counter()
    at = p.halt()
    assert time.perf_counter() - t0 < 0.01 and not p.playing and at == p.position
    time.sleep(0.6)
    assert done == [] and p.position == at  # the halted thread neither calls back nor moves it
    assert not any(t.name == "minutely-player" and t.is_alive() for t in threading.enumerate())
