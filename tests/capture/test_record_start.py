"""`record --seconds N` on the private PulseAudio: it says "recording" only once audio flows, and it
stores N seconds of audio from then. A chirp played into the virtual microphone the moment the
line appears must be in the stored audio, whole, near its very start (PulseAudio takes 0.4-2 s to
deliver a new stream's first audio: a line printed when the device was merely opened made the
chirp, and the first seconds of a meeting, fall into that gap)."""

from __future__ import annotations

import time

import pytest

from app.library import Library
from tests.support.chirp import find_chirp, write_chirp
from tests.support.cli_proc import CliProc
from tests.support.meetings import read_wav

RATE = 16_000


@pytest.mark.slow
def test_record_seconds_stores_that_much_from_when_it_says_recording(tmp_path, pulse, _private_home):
    seconds = 3.0  # the bug lost the 1-2 s the devices took to start from any length
    wav = write_chirp(tmp_path / "chirp.wav")
    rec = CliProc("record", "--device", pulse.mic, "--seconds", str(seconds), "--title", "Chirp", env=pulse.env)
    try:
        line = rec.wait_line("recording session", 60)
        player = pulse.play(wav, "micfeed")  # the moment it says so, as a user would start talking
        t_line = time.monotonic()
        code, out = rec.finish(60)
        took = time.monotonic() - t_line
    finally:
        rec.kill()
    assert player.wait(30) == 0, player.stderr.read()
    assert code == 0 and out.strip().isdigit(), rec.stderr
    sid = int(out)
    assert line == f"minutely: recording session {sid} (microphone); Ctrl-C stops"
    with Library.open(_private_home) as lib:
        s = lib.get_session(sid)
        (audio,) = lib.media(sid, "audio")
        mix = read_wav(lib.absolute(audio))
        mic = read_wav(lib.absolute(audio).with_name("mic.wav"))
    onset, corr = find_chirp(mic)
    print(f"--seconds {seconds}: stored mic {len(mic) / RATE:.3f} s, mix {len(mix) / RATE:.3f} s, "
          f"session {s.duration:.3f} s; chirp at {onset:.3f} s (correlation {corr:.3f}); "
          f"exited {took:.2f} s after the line")
    for what, dur in (("mic.wav", len(mic) / RATE), ("mix.wav", len(mix) / RATE), ("the session", s.duration)):
        assert abs(dur - seconds) <= 0.1, f"{what} holds {dur:.3f} s, not {seconds} s"
    assert f"recorded {seconds:.1f} s into session {sid}" in rec.lines[-1], rec.stderr
    assert corr >= 0.95, f"the chirp played when it said 'recording' was not recorded whole ({corr:.3f})"
    assert onset < 1.0, f"the chirp came {onset:.2f} s into the recording: it said 'recording' too early"
