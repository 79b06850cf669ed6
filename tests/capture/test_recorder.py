"""The recorder: unit tests with a fake `sd`, then real devices through a private PulseAudio."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from app.capture import recorder as rec_mod
from app.capture.recorder import (
    Recorder,
    RecordingError,
    find_input,
    find_system_audio,
    find_unfinished,
    list_inputs,
    recover,
)
from app.capture.tracks import Resampler
from tests.support import ROOT
from tests.support.audio import aligned_corr

RATE = 16000


# --- a fake sounddevice ----------------------------------------------------------------------

class PortAudioError(Exception):
    pass


class CallbackAbort(Exception):
    pass


class Flags:
    def __init__(self, overflow=False):
        self.input_overflow = overflow

    def __bool__(self):
        return self.input_overflow


class TimeInfo:
    def __init__(self, latency):
        self.currentTime = time.monotonic()
        self.inputBufferAdcTime = self.currentTime - latency


def saw(start: int, n: int) -> np.ndarray:
    """A known signal, sample i a function of i alone."""
    i = np.arange(start, start + n)
    return (((i * 7) % 2000) / 2000.0 - 0.5).astype(np.float32) * 0.8


class FakeStream:
    def __init__(self, sd, dev, channels, samplerate, callback, finished_callback, **_):
        self.sd, self.dev, self.channels, self.rate = sd, dev, channels, samplerate
        self.callback, self.finished_callback = callback, finished_callback
        self._active = False
        self.closed = False
        self.raise_on_active = False
        self.hang = threading.Event() if dev.get("hang") else None
        self.fed = 0

    @property
    def active(self):
        if self.raise_on_active:
            raise PortAudioError("Unanticipated host error")
        return self._active

    def start(self):
        self._active = True
        self.t0 = time.monotonic()
        self.late = 0.0
        if self.sd.autoplay:  # a device that delivers the known signal at `speed` x real time
            threading.Thread(target=self._play, daemon=True).start()

    def _play(self, block=160):
        while self._active:  # paced by the clock, as a sound card is
            if self.late:  # the audio thread was not scheduled: the backlog comes in a burst
                time.sleep(self.late)
                self.late = 0.0
            due = self.t0 + (self.fed + block) / self.rate / self.sd.speed
            time.sleep(max(0.0, due - time.monotonic()))
            self.push(saw(self.fed, block))

    def restart(self, seconds):
        """What PortAudio + PulseAudio do when a source goes away: stall, restart, and never
        deliver the stalled audio."""
        self.t0 += seconds / self.sd.speed

    def stop(self):
        self._active = False

    def abort(self):
        if self.hang is not None:
            self.hang.wait()  # a driver that never returns
        self._active = False

    def close(self):
        self.closed = True

    def push(self, x: np.ndarray, overflow: bool = False, latency: float | None = None):
        """Deliver frames as the audio thread would (nothing once the stream is stopped)."""
        if not self._active:
            return
        data = np.repeat(np.asarray(x, np.float32).reshape(-1, 1), self.channels, axis=1)
        t = TimeInfo(latency) if latency is not None else None
        try:
            self.callback(data, len(data), t, Flags(overflow))
        except CallbackAbort:
            self.die()
        self.fed += len(data)

    def die(self):
        """What PortAudio does after a host error or a CallbackAbort."""
        self._active = False
        self.finished_callback()


class FakeSD:
    PortAudioError = PortAudioError
    CallbackAbort = CallbackAbort

    def __init__(self, devices=None, autoplay=False, speed=1.0):
        self.devices = devices if devices is not None else [
            {"name": "Fake Mic", "max_input_channels": 1, "default_samplerate": 16000.0},
            {"name": "Fake Monitor of Speakers", "max_input_channels": 2, "default_samplerate": 16000.0}]
        for d in self.devices:
            d.setdefault("hostapi", 0)
            d.setdefault("max_output_channels", 0)
        self.autoplay, self.speed = autoplay, speed
        self.streams: dict[str, FakeStream] = {}

    def query_hostapis(self):
        return [{"name": "ALSA", "default_input_device": 0, "default_output_device": -1}]

    def query_devices(self, device=None, kind=None):
        if kind == "input":
            if not self.devices:
                raise PortAudioError("no default input")
            return dict(self.devices[0], index=0)
        if device is not None:
            return dict(self.devices[device], index=device)
        return [dict(d, index=i) for i, d in enumerate(self.devices)]

    def InputStream(self, device=None, channels=1, samplerate=None, callback=None, finished_callback=None, **kw):
        dev = self.devices[device if device is not None else 0]
        if dev.get("rates") and samplerate not in dev["rates"]:
            raise PortAudioError("Invalid sample rate")
        s = FakeStream(self, dev, channels, samplerate, callback, finished_callback, **kw)
        self.streams[dev["name"]] = s
        return s


def wait_for(cond, timeout=10.0, what="condition"):
    """Poll for a condition (never a fixed sleep); fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, RATE)
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32767.0


def sidecar(folder: Path) -> dict:
    return json.loads((folder / "recording.json").read_text())


Q = 1.5 / 32767  # int16 quantization


# --- unit tests with the fake ----------------------------------------------------------------

def test_record_two_tracks_and_finalize(tmp_path):
    sd = FakeSD()
    folder = tmp_path / "m1"
    r = Recorder(folder, mic="Fake Mic", system="auto", sd=sd, stall_timeout=30)
    r.start()
    assert r.tracks == ["mic", "system"] and r.state == "recording"
    mic, system = sd.streams["Fake Mic"], sd.streams["Fake Monitor of Speakers"]
    a = saw(0, 8000)
    b = (0.5 * np.sin(2 * np.pi * 1000 * np.arange(8000) / RATE)).astype(np.float32)
    for i in range(0, 8000, 160):
        mic.push(a[i:i + 160])
        system.push(b[i:i + 160])
    meta = sidecar(folder)
    assert meta["state"] == "recording" and meta["rate"] == RATE and meta["sample_format"] == "s16le"
    res = r.stop()
    assert res.error is None and not res.recovered and res.overflows == 0
    assert res.tracks == {"mic": folder / "mic.wav", "system": folder / "system.wav"}
    ma, sy, mix = read_wav(res.tracks["mic"]), read_wav(res.tracks["system"]), read_wav(res.mix)
    assert len(ma) == 8000 and np.abs(ma - a).max() < Q
    assert abs(len(sy) - 8000) <= 2  # the later track is aligned by capture time (microseconds here)
    n = min(len(ma), len(sy))
    assert np.abs(mix[:n] - (ma[:n] + sy[:n]) / 2).max() < 2 * Q  # summed with 6 dB headroom
    assert res.duration == pytest.approx(len(mix) / RATE)
    meta = sidecar(folder)
    assert meta["state"] == "finished" and meta["tracks"]["mic"]["frames"] == 8000
    assert not list(folder.glob("*.pcm")) and not (folder / "recording.lock").exists()
    assert r.stop() is res  # idempotent


def test_tracks_share_a_timeline(tmp_path):
    sd = FakeSD()
    chunks = []
    r = Recorder(tmp_path / "m", mic="Fake Mic", system="Monitor", sd=sd, stall_timeout=30,
                 on_audio=lambda track, pos, x: chunks.append((track, pos, len(x))))
    r.start()
    mic, system = sd.streams["Fake Mic"], sd.streams["Fake Monitor of Speakers"]
    mic.push(saw(0, 160), latency=0.5)  # its first sample was captured 0.5 s ago
    system.push(saw(0, 160), latency=0.0)  # this one just now: it starts 0.5 s later
    res = r.stop()
    sy = read_wav(res.tracks["system"])
    lead = len(sy) - 160
    assert abs(lead - 8000) <= 16 and not sy[:lead].any()
    assert sorted(chunks) == [("mic", 0, 160), ("system", lead, 160)]  # live consumers get timeline positions


def test_pause_resume(tmp_path):
    sd = FakeSD()
    folder = tmp_path / "p"
    r = Recorder(folder, mic="Fake Mic", sd=sd, stall_timeout=30)
    r.start()
    mic = sd.streams["Fake Mic"]
    mic.push(saw(0, 4000))
    r.pause()
    assert r.state == "paused"
    wait_for(lambda: sidecar(folder)["state"] == "paused", what="the sidecar to say paused")
    mic.push(saw(4000, 3200))  # not written
    r.resume()
    mic.push(saw(7200, 4000))
    res = r.stop()
    x = read_wav(res.tracks["mic"])
    assert len(x) == 8000
    assert np.abs(x - np.concatenate([saw(0, 4000), saw(7200, 4000)])).max() < Q
    (span,) = sidecar(folder)["paused"]
    assert span["at"] == 0.25 and span["seconds"] >= 0


def test_stop_while_paused(tmp_path):
    sd = FakeSD()
    r = Recorder(tmp_path / "p", mic="Fake Mic", sd=sd, stall_timeout=30)
    r.start()
    sd.streams["Fake Mic"].push(saw(0, 1600))
    r.pause()
    res = r.stop()
    (span,) = sidecar(tmp_path / "p")["paused"]
    assert span["at"] == 0.1 and span["seconds"] is not None and res.duration == 0.1


def test_levels_come_from_the_writer_thread(tmp_path):
    sd = FakeSD()
    seen = []
    callback_thread = threading.current_thread()  # the fake's "audio thread" is this one
    r = Recorder(tmp_path / "l", mic="Fake Mic", sd=sd, stall_timeout=30,
                 on_level=lambda t, rms, peak: seen.append((t, rms, peak, threading.current_thread())))
    r.start()
    mic = sd.streams["Fake Mic"]
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(1600) / RATE)).astype(np.float32)
    mic.push(tone)
    wait_for(lambda: any(s[0] == "mic" and s[2] > 0.2 for s in seen), what="a level")
    _, rms, peak, _ = next(s for s in seen if s[0] == "mic" and s[2] > 0.2)
    assert rms == pytest.approx(0.3 / np.sqrt(2), rel=0.02) and peak == pytest.approx(0.3, rel=0.01)
    assert all(s[3] is not callback_thread for s in seen)
    n = len(seen)
    wait_for(lambda: len(seen) >= n + 4, what="~20 level updates a second")
    r.stop()


def test_a_failing_listener_does_not_stop_the_recording(tmp_path):
    sd = FakeSD()
    r = Recorder(tmp_path / "f", mic="Fake Mic", sd=sd, stall_timeout=30, on_level=lambda *a: 1 / 0,
                 on_audio=lambda *a: 1 / 0)
    r.start()
    sd.streams["Fake Mic"].push(saw(0, 1600))
    wait_for(lambda: r.notices, what="a notice")
    sd.streams["Fake Mic"].push(saw(1600, 1600))
    res = r.stop()
    assert res.error is None and len(read_wav(res.tracks["mic"])) == 3200
    assert res.notices == ["a listener failed: ZeroDivisionError('division by zero')"]


def test_overflows_and_dropped_frames_are_counted(tmp_path):
    sd = FakeSD()
    r = Recorder(tmp_path / "o", mic="Fake Mic", sd=sd, stall_timeout=30, buffer_seconds=0.05)  # 800 frames
    r.start()
    mic = sd.streams["Fake Mic"]
    mic.push(saw(0, 160), overflow=True)
    mic.push(saw(160, 160), overflow=True)
    mic.push(saw(320, 2000))  # more than the ring holds before the writer drains it
    res = r.stop()
    assert r.overflows == 2 and res.overflows == 2
    assert res.dropped_frames >= 2000 - 800 and r.frames_written["mic"] == 2320 - res.dropped_frames
    assert sidecar(tmp_path / "o")["counters"]["overflows"] == 2


def test_device_refusing_16k_is_resampled(tmp_path):
    sd = FakeSD([{"name": "USB Mic 48k", "max_input_channels": 2, "default_samplerate": 48000.0,
                  "rates": {48000}}])
    r = Recorder(tmp_path / "r", mic="usb mic", sd=sd, stall_timeout=30)
    r.start()
    s = sd.streams["USB Mic 48k"]
    assert s.rate == 48000
    t = np.arange(48000) / 48000
    x = (0.5 * np.sin(2 * np.pi * 1000 * t) + 0.3 * np.sin(2 * np.pi * 15000 * t)).astype(np.float32)
    for i in range(0, len(x), 441):  # odd block sizes
        s.push(x[i:i + 441])
    res = r.stop()
    y = read_wav(res.tracks["mic"])
    assert abs(len(y) - 16000) <= 70  # minus the filter's delay
    want = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(len(y)) / RATE)  # 15 kHz is above Nyquist: filtered out
    assert np.corrcoef(y[200:-200], want[200:-200])[0, 1] > 0.99
    assert np.abs(y[200:-200] - want[200:-200]).max() < 0.05
    assert sidecar(tmp_path / "r")["tracks"]["mic"]["resampled"] is True


def test_resampler_streaming_matches_one_shot():
    x = np.random.default_rng(0).normal(0, 0.1, 44100).astype(np.float32)
    one = Resampler(44100, 16000)(x)
    r = Resampler(44100, 16000)
    parts = [r(x[i:i + 1000]) for i in range(0, len(x), 1000)]
    assert np.allclose(np.concatenate(parts), one, atol=1e-5)


@pytest.mark.parametrize("how", ["finished", "inactive", "exception", "stall", "callback_abort"])
def test_device_failure_stops_cleanly(tmp_path, how):
    sd = FakeSD()
    stopped = []
    # a long stall timeout unless the stall is the failure: each way must be noticed on its own
    r = Recorder(tmp_path / how, mic="Fake Mic", sd=sd, stall_timeout=0.3 if how == "stall" else 30,
                 on_stop=stopped.append)
    r.start()
    mic = sd.streams["Fake Mic"]
    mic.push(saw(0, 3200))
    wait_for(lambda: r.frames_written.get("mic") == 3200, what="frames on disk")
    if how == "finished":
        mic.die()
    elif how == "inactive":
        mic._active = False
    elif how == "exception":
        mic.raise_on_active = True
    elif how == "callback_abort":
        mic.callback = lambda *a: (_ for _ in ()).throw(CallbackAbort())
        mic.push(saw(3200, 160))
    res = r.wait(10)  # "stall": no more callbacks at all
    assert res is not None, "the recorder did not stop by itself"
    assert res.error == "the microphone 'Fake Mic' disappeared; the recording was stopped and saved"
    assert "\n" not in res.error and r.error == res.error and stopped == [res]
    assert len(read_wav(res.tracks["mic"])) == 3200
    meta = sidecar(tmp_path / how)
    assert meta["state"] == "finished" and meta["error"] == res.error
    assert r.stop() is res


@pytest.mark.slow
def test_audio_lost_without_an_overflow_means_the_device_is_gone(tmp_path):
    sd = FakeSD(autoplay=True)
    r = Recorder(tmp_path / "lost", mic="Fake Mic", sd=sd)
    r.start()
    mic = sd.streams["Fake Mic"]
    wait_for(lambda: r.duration >= 2.2, what="2 s of history")
    mic.late = 0.6  # a late audio thread loses nothing: the recording goes on
    wait_for(lambda: not mic.late, what="the late thread")
    at = r.duration
    wait_for(lambda: r.duration >= at + 0.6, what="more audio")
    assert r.state == "recording" and r.error is None
    mic.restart(0.5)  # a restarted stream that lost 0.5 s: the device is gone
    res = r.wait(5)
    assert res is not None and res.error == "the microphone 'Fake Mic' disappeared; the recording was stopped and saved"
    assert r.overflows == 0
    x = read_wav(res.tracks["mic"])
    assert np.abs(x - saw(0, len(x))).max() < Q  # everything delivered was kept, in order


def test_a_stream_that_hangs_on_close_does_not_hang_the_recorder(tmp_path):
    sd = FakeSD([{"name": "Fake Mic", "max_input_channels": 1, "default_samplerate": 16000.0, "hang": True}])
    r = Recorder(tmp_path / "h", mic="Fake Mic", sd=sd, stall_timeout=0.3)
    r.close_timeout = 0.5
    r.start()
    mic = sd.streams["Fake Mic"]
    mic.push(saw(0, 1600))
    try:
        res = r.wait(10)
        assert res is not None and "disappeared" in res.error and len(read_wav(res.tracks["mic"])) == 1600
        assert any("did not close in time" in n for n in res.notices)
    finally:
        mic.hang.set()


def test_losing_system_audio_keeps_the_microphone(tmp_path):
    sd = FakeSD()
    r = Recorder(tmp_path / "s", mic="Fake Mic", system="auto", sd=sd, stall_timeout=30)
    r.start()
    mic, system = sd.streams["Fake Mic"], sd.streams["Fake Monitor of Speakers"]
    mic.push(saw(0, 1600))
    system.push(saw(0, 1600))
    system.die()
    wait_for(lambda: r.notices, what="a notice")
    mic.push(saw(1600, 1600))
    res = r.stop()
    assert res.error is None and r.state == "stopped"
    assert res.notices == ["the system audio 'Fake Monitor of Speakers' disappeared; "
                           "the recording goes on with the microphone only"]
    assert len(read_wav(res.tracks["mic"])) == 3200 and len(read_wav(res.mix)) == 3200


def test_max_seconds_stores_exactly_that_much_counted_from_the_first_audio(tmp_path):
    sd = FakeSD()
    ready, stopped = [], []
    r = Recorder(tmp_path / "n", mic="Fake Mic", system="auto", sd=sd, stall_timeout=30, max_seconds=0.5,
                 on_ready=lambda: ready.append(dict(r.frames_written)), on_stop=stopped.append)
    r.start()
    mic, system = sd.streams["Fake Mic"], sd.streams["Fake Monitor of Speakers"]
    mic.push(saw(0, 1600))
    wait_for(lambda: r.frames_written["mic"] == 1600, what="the microphone's first block on disk")
    assert ready == [] and r.state == "recording"  # the system audio has not delivered yet
    system.push(saw(0, 1600))
    wait_for(lambda: ready, what="on_ready once every device delivered")
    for i in range(1600, 16000, 1600):  # far more than 0.5 s: the rest is not stored
        mic.push(saw(i, 1600))
        system.push(saw(i, 1600))
    res = r.wait(10)
    assert res is not None and r.state == "stopped" and stopped == [res], "it did not end by itself"
    assert res.error is None and res.duration == 0.5 and len(ready) == 1
    mic_wav = read_wav(res.tracks["mic"])
    assert len(mic_wav) == 8000 and np.abs(mic_wav - saw(0, 8000)).max() < Q
    assert len(read_wav(res.tracks["system"])) == 8000 and len(read_wav(res.mix)) == 8000
    assert sidecar(tmp_path / "n")["duration"] == 0.5
    assert r.stop() is res


def test_start_errors_and_notices(tmp_path):
    with pytest.raises(RecordingError, match="no microphone named 'Nope' \\(inputs: 'Fake Mic', 'Fake Monitor"):
        Recorder(tmp_path / "a", mic="Nope", sd=FakeSD()).start()
    assert not (tmp_path / "a" / "recording.json").exists()
    with pytest.raises(RecordingError, match="nothing to record"):
        Recorder(tmp_path / "b", mic=None, system=None, sd=FakeSD()).start()
    sd = FakeSD([{"name": "Fake Mic", "max_input_channels": 1, "default_samplerate": 16000.0}])
    r = Recorder(tmp_path / "c", mic="default", system="auto", sd=sd, stall_timeout=30)
    r.start()  # no system audio on this machine: a notice, not a failure
    assert r.tracks == ["mic"] and "system audio needs PulseAudio" in r.notices[0]
    with pytest.raises(RecordingError, match="already holds a recording|being recorded"):
        Recorder(tmp_path / "c", mic="Fake Mic", sd=FakeSD()).start()
    assert r.stop().notices == r.notices
    sd = FakeSD([{"name": "Broken", "max_input_channels": 1, "default_samplerate": 16000.0, "rates": {8000}}])
    with pytest.raises(RecordingError, match="cannot open the microphone 'Broken'"):
        Recorder(tmp_path / "d", mic="Broken", sd=sd).start()


def test_device_listing_with_a_fake():
    sd = FakeSD([{"name": "Built-in Mic", "max_input_channels": 2, "default_samplerate": 48000.0},
                 {"name": "HDMI out", "max_input_channels": 0, "default_samplerate": 48000.0},
                 {"name": "pulse", "max_input_channels": 32, "default_samplerate": 44100.0}])
    assert [d.name for d in list_inputs(sd)] == ["Built-in Mic", "pulse"]
    d = find_input("built-in", sd)
    assert (d.name, d.index, d.channels, d.default_rate, d.hostapi) == ("Built-in Mic", 0, 2, 48000.0, "ALSA")
    assert find_input("nothing", sd) is None
    if sys.platform.startswith("linux"):
        src, why = find_system_audio(sd)  # no monitor device: the pulse device with the default monitor
        assert src.device == 2 and src.env == {"PULSE_SOURCE": "@DEFAULT_MONITOR@"} and "monitor" in why
        src = rec_mod.resolve("mic", "pulse:alsa_input.usb-mic", sd)
        assert src.device == 2 and src.env == {"PULSE_SOURCE": "alsa_input.usb-mic"}


def child_record(folder: str, mode: str) -> None:
    """Run in a subprocess by the crash tests: record until killed."""
    if mode == "fake":
        r = Recorder(Path(folder), mic="Fake Mic", sd=FakeSD(autoplay=True, speed=4.0), stall_timeout=30)
    else:
        r = Recorder(Path(folder), mic="virtmic", system="sysaudio")
    r.start()
    print("recording", flush=True)
    threading.Event().wait()


def spawn_recorder(folder: Path, mode: str, env: dict | None = None) -> subprocess.Popen:
    code = "import sys; from tests.capture.test_recorder import child_record; child_record(sys.argv[1], sys.argv[2])"
    env = {**(env or os.environ), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", code, str(folder), mode], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def kill_when_on_disk(p: subprocess.Popen, pcm: Path, nbytes: int, timeout: float) -> None:
    try:
        wait_for(lambda: p.poll() is not None or (pcm.exists() and pcm.stat().st_size >= nbytes),
                 timeout, f"{nbytes} bytes in {pcm.name}")
        assert p.poll() is None, f"the recorder died: {p.stderr.read().decode()[-2000:]}"
    finally:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
        p.wait(10)


@pytest.mark.slow
def test_crash_recovery_after_kill_9(tmp_path):
    folder = tmp_path / "meetings" / "2024-05-01-standup"
    p = spawn_recorder(folder, "fake")
    pcm = folder / "mic.pcm"
    try:
        wait_for(lambda: (pcm.exists() and pcm.stat().st_size > 0) or p.poll() is not None, 20, "the recording")
        assert p.poll() is None, p.stderr.read().decode()[-2000:]
        assert find_unfinished(tmp_path) == []  # live: its lock is held
    finally:
        kill_when_on_disk(p, pcm, 3 * RATE * 2, 30)
    assert p.returncode == -signal.SIGKILL
    size = pcm.stat().st_size
    with open(pcm, "ab") as f:
        f.write(b"\x01")  # a write cut short mid-sample
    assert sidecar(folder)["state"] == "recording"
    assert find_unfinished(tmp_path) == [folder]
    res = recover(folder)
    assert res.recovered and res.error is None and res.duration >= 3.0
    x = read_wav(res.tracks["mic"])
    assert len(x) >= size // 2 and np.abs(x - saw(0, len(x))).max() < Q
    assert sidecar(folder)["state"] == "recovered" and len(read_wav(res.mix)) == len(x)
    assert find_unfinished(tmp_path) == []


# --- real devices through a private PulseAudio -----------------------------------------------

@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    from tests.support.meetings import SENTENCES, VOICES, have_tools, speak, write_wav

    if not have_tools():
        pytest.skip("espeak-ng and sox are needed for speech signals")
    d = tmp_path_factory.mktemp("speech")
    a = speak(SENTENCES[4], VOICES[0], d / "cache")[:int(1.6 * RATE)]  # short: the tests run in real time
    b = speak(SENTENCES[12], VOICES[1], d / "cache")[:int(1.6 * RATE)]
    return {"a": (write_wav(d / "a.wav", a), a), "b": (write_wav(d / "b.wav", b), b)}




def record_while_playing(folder, pulse, plays, **kw):
    r = Recorder(folder, **kw)
    r.start()
    assert r.wait_ready(15), "no audio from the devices"
    players = [pulse.play(wav, sink) for wav, sink in plays]
    for p in players:
        assert p.wait(30) == 0, p.stderr.read()
    played_out_at = r.duration
    wait_for(lambda: r.duration >= played_out_at + 0.3, 5, "the tail to reach the disk")
    return r.stop()


@pytest.mark.slow
def test_real_microphone(tmp_path, pulse, speech):
    wav, a = speech["a"]
    res = record_while_playing(tmp_path / "real", pulse, [(wav, "micfeed")], mic=pulse.mic)
    assert res.error is None and list(res.tracks) == ["mic"]
    corr, lag = aligned_corr(read_wav(res.tracks["mic"]), a)
    print(f"virtual mic: correlation {corr:.4f} at {lag / RATE:.3f} s, overflows {res.overflows}")
    assert corr >= 0.95


@pytest.mark.slow
def test_real_microphone_and_system_audio(tmp_path, pulse, speech):
    (wav_a, a), (wav_b, b) = speech["a"], speech["b"]
    res = record_while_playing(tmp_path / "both", pulse, [(wav_a, "micfeed"), (wav_b, "speaker")],
                               mic=pulse.mic, system="auto")  # auto: pulse + PULSE_SOURCE=@DEFAULT_MONITOR@
    assert res.error is None and set(res.tracks) == {"mic", "system"} and res.notices == []
    mic, system = read_wav(res.tracks["mic"]), read_wav(res.tracks["system"])
    own = aligned_corr(mic, a)[0], aligned_corr(system, b)[0]
    cross = aligned_corr(mic, b)[0], aligned_corr(system, a)[0]
    print(f"mic+system: own {own[0]:.4f} {own[1]:.4f}, cross {cross[0]:.4f} {cross[1]:.4f}")
    assert min(own) >= 0.95 and max(abs(c) for c in cross) < 0.3
    mix = read_wav(res.mix)
    assert aligned_corr(mix, a)[0] > 0.5 and aligned_corr(mix, b)[0] > 0.5


@pytest.mark.slow
def test_real_kill_9_then_recover(tmp_path, pulse):
    folder = tmp_path / "crash"
    p = spawn_recorder(folder, "real", env=pulse.child_env())
    kill_when_on_disk(p, folder / "mic.pcm", 8 * RATE * 2, 40)
    assert find_unfinished(tmp_path) == [folder]
    res = recover(folder)
    print(f"recovered {res.duration:.2f} s (mic {len(read_wav(res.tracks['mic'])) / RATE:.2f} s)")
    assert res.recovered and res.duration >= 7.0 and set(res.tracks) == {"mic", "system"}


@pytest.mark.slow
def test_real_unplugged_microphone(tmp_path, pulse, speech):
    wav, a = speech["a"]
    r = Recorder(tmp_path / "unplug", mic=pulse.mic)
    r.start()
    try:
        assert r.wait_ready(15)
        assert pulse.play(wav, "micfeed").wait(30) == 0
        played_out_at = r.duration
        wait_for(lambda: r.duration >= played_out_at + 0.3, 5, "the tail to reach the disk")
        pulse.unload_virtmic()
        res = r.wait(15)
    finally:
        pulse.load_virtmic()
        r.stop()
    assert res is not None, "the recorder did not notice the unplugged microphone"
    assert res.error == "the microphone 'virtmic' disappeared; the recording was stopped and saved"
    assert sidecar(tmp_path / "unplug")["state"] == "finished"
    corr, _ = aligned_corr(read_wav(res.tracks["mic"]), a)
    assert corr >= 0.95
