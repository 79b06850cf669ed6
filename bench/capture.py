"""Capture costs, measured side by side in one run on the private PulseAudio rig (tests/support/pulse.py):

1. recording alone: a Recorder on the virtual mic + system audio while an espeak-ng meeting
   plays into both in a loop -> CPU of the whole process as % of one core, overflows;
2. recording + live transcription (Meeting with the model): CPU split by thread (recorder +
   PortAudio vs VAD vs model), overflows, and the live queue's latency: time from an utterance's
   end to its segment in the library, next to the model's own time for its batch;
3. recording + a file transcription job running at the same time (transcribe_file in a loop)
   -> the recording's overflows and dropped frames under model load;
4. screen grabs under a private Xvfb (1600x1000): ms per grab (QScreen grab + scale + to PIL) and
   ms per kept / skipped grab in the ScreenKeeper.

    python bench/capture.py [--seconds 300] [--model M --mmproj P] [--json]

Without --model the tiny random Gemma 4 of the tests is used (its text is noise; its speed is not
the real model's, so read latency as overhead = latency - model time).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import llama_cpp  # noqa: E402,F401  before numpy (see app/engine/__init__.py)

TICK = os.sysconf("SC_CLK_TCK")


def thread_names() -> dict[int, str]:
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            out[int(tid)] = open(f"/proc/self/task/{tid}/comm").read().strip()
        except OSError:
            pass
    return out


def thread_cpu() -> dict[int, float]:
    """CPU seconds per thread (native id) of this process, from /proc."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            f = open(f"/proc/self/task/{tid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(tid)] = (int(f[11]) + int(f[12])) / TICK
    return out


class Looper:
    """paplay a WAV into a sink again and again until stopped."""

    def __init__(self, rig, wav: Path, sink: str):
        self.rig, self.wav, self.sink = rig, wav, sink
        self.stop = threading.Event()
        self.t = threading.Thread(target=self._run, name="bench-looper", daemon=True)
        self.t.start()

    def _run(self):
        while not self.stop.is_set():
            p = self.rig.play(self.wav, self.sink)
            while p.poll() is None:
                if self.stop.wait(0.1):
                    p.terminate()
                    p.wait(5)
                    return

    def close(self):
        self.stop.set()
        self.t.join(10)


def measure(seconds: float, rec_ready, threads_of) -> dict:
    """Run for `seconds` after the recording is ready; CPU of the process and per thread group."""
    assert rec_ready(30), "no audio from the rig"
    c0, w0, p0 = thread_cpu(), time.monotonic(), time.process_time()
    time.sleep(seconds)
    c1, wall, proc = thread_cpu(), time.monotonic() - w0, time.process_time() - p0
    groups, named_ids = {}, set()
    for name, ids in {**threads_of(), "bench players (not the recorder)": named("bench-looper"),
                      "bench main": [threading.main_thread().native_id]}.items():
        groups[name] = sum(c1.get(i, 0) - c0.get(i, 0) for i in ids) / wall * 100
        named_ids.update(ids)
    by_comm: dict[str, float] = {}  # the rest: PortAudio/ALSA/libpulse threads, the main thread...
    names = thread_names()
    for i, c in c1.items():
        if i not in named_ids and c - c0.get(i, 0) > 0:
            k = names.get(i, str(i))
            by_comm[k] = by_comm.get(k, 0) + (c - c0.get(i, 0)) / wall * 100
    groups["other threads"] = {k: round(v, 2) for k, v in sorted(by_comm.items(), key=lambda kv: -kv[1])}
    return {"wall_s": round(wall, 1), "process_cpu_pct": round(proc / wall * 100, 2),
            "threads_cpu_pct": {k: (round(v, 2) if isinstance(v, float) else v) for k, v in groups.items()}}


def named(prefix: str) -> list[int]:
    return [t.native_id for t in threading.enumerate() if t.name.startswith(prefix) and t.native_id]


def phase_record(rig, meeting, seconds, tmp, **rec_kw) -> dict:
    from app.capture.recorder import Recorder

    loops = [Looper(rig, meeting.wav, "micfeed"), Looper(rig, meeting.wav, "speaker")]
    r = Recorder(tmp / f"alone-{len(list(tmp.glob('alone*')))}", mic=rig.mic, system=rig.system, **rec_kw)
    r.start()
    try:
        m = measure(seconds, r.wait_ready, lambda: {"recorder": named("minutely-recorder")})
    finally:
        res = r.stop()
        for lp in loops:
            lp.close()
    m.update(overflows=res.overflows, dropped_frames=res.dropped_frames, recorded_s=round(res.duration, 1))
    return m


def phase_live(rig, meeting, seconds, tmp, engine, opts) -> dict:
    from app.library import Library
    from app.pipeline.meeting import Meeting

    lib = Library.open(tmp / "home-live")
    loops = [Looper(rig, meeting.wav, "micfeed")]
    mt = Meeting(lib, mic=rig.mic, system=rig.system, engine=engine, options=opts)
    mt.start()
    try:
        m = measure(seconds, mt.recorder.wait_ready,
                    lambda: {"recorder": named("minutely-recorder"), "vad": named("minutely-live-vad"),
                             "model": named("minutely-live-model")})
    finally:
        for lp in loops:
            lp.close()
        t0 = time.monotonic()
        res = mt.stop()
        drain = time.monotonic() - t0
    s = res.live
    lat, model = s.latencies, s.model_seconds
    m.update(overflows=res.recording.overflows, dropped_frames=res.recording.dropped_frames,
             utterances=s.utterances, segments=s.segments, queue_dropped=s.dropped, batches=len(model),
             latency_median_s=round(statistics.median(lat), 3) if lat else None,
             latency_p90_s=round(sorted(lat)[int(round(0.9 * (len(lat) - 1)))], 3) if lat else None,
             vad_delay_median_s=round(statistics.median(s.vad_delays), 3) if s.vad_delays else None,
             queue_wait_median_s=round(statistics.median(s.queue_waits), 3) if s.queue_waits else None,
             model_median_s=round(statistics.median(model), 3) if model else None,
             stop_and_drain_s=round(drain, 2))
    if lat and model and s.vad_delays:  # what the queue + storing add beyond the VAD's wait and the model
        m["queue_overhead_median_s"] = round(statistics.median(lat) - statistics.median(s.vad_delays)
                                             - statistics.median(model), 3)
    lib.close()
    return m


def phase_with_job(rig, meeting, seconds, tmp, engine, opts) -> dict:
    from app.capture.recorder import Recorder
    from app.library import Library
    from app.pipeline.transcribe import transcribe_file

    stop = threading.Event()
    jobs = [0]

    def job():
        lib = Library.open(tmp / "home-job")
        while not stop.is_set():
            transcribe_file(lib, engine, meeting.wav, opts)
            jobs[0] += 1
            lib.conn.execute("DELETE FROM jobs")  # the same file again: a new job, not a resume
        lib.close()

    loops = [Looper(rig, meeting.wav, "micfeed"), Looper(rig, meeting.wav, "speaker")]
    r = Recorder(tmp / "with-job", mic=rig.mic, system=rig.system)
    r.start()
    t = threading.Thread(target=job, name="bench-transcribe-job", daemon=True)
    t.start()
    try:
        m = measure(seconds, r.wait_ready, lambda: {"recorder": named("minutely-recorder"),
                                                    "job": named("bench-transcribe-job")
                                                    + named("transcribe-prepare")})
    finally:
        stop.set()
        res = r.stop()
        for lp in loops:
            lp.close()
        t.join(300)
    m.update(overflows=res.overflows, dropped_frames=res.dropped_frames, files_transcribed=jobs[0])
    return m


def phase_screen(n: int, tmp: Path) -> dict:
    """In a child process (Qt's platform is chosen once per process) under a private Xvfb."""
    code = f"""
import json, sys, time
sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})
from PySide6.QtGui import QGuiApplication
app = QGuiApplication([])
from app.capture.screen import grab
from app.capture.screenshots import ScreenKeeper
from app.library import Library
from tests.support.screen import slide
lib = Library.open({str(tmp / 'home-screen')!r}); sid = lib.create_session('s', 'recording').id
keeper = ScreenKeeper(lib, sid)
grab()
g = []
for i in range({n}):
    t = time.perf_counter(); img = grab(); g.append(time.perf_counter() - t)
kept, skipped = [], []
for i in range({n}):
    im = slide(i // 2)  # a new slide, then the same one again (unchanged screen)
    t = time.perf_counter(); k = keeper.offer(im, float(i))
    (kept if k else skipped).append(time.perf_counter() - t)
med = lambda xs: round(sorted(xs)[len(xs) // 2] * 1000, 2)
print(json.dumps({{"screen": list(img.size), "grab_ms": med(g), "keep_ms": med(kept), "skip_ms": med(skipped),
                  "kept": len(kept), "skipped": len(skipped),
                  "kb_per_kept": round(keeper.used_bytes / max(1, len(keeper.kept)) / 1024, 1)}}))
"""
    import random

    for num in random.sample(range(200, 900), 20):
        if not Path(f"/tmp/.X11-unix/X{num}").exists():
            break
    x = subprocess.Popen(["Xvfb", f":{num}", "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while not Path(f"/tmp/.X11-unix/X{num}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        env = {**os.environ, "DISPLAY": f":{num}", "QT_QPA_PLATFORM": "xcb", "MINUTELY_HOME": str(tmp)}
        p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
        if p.returncode:
            return {"error": p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"exit {p.returncode}"}
        return json.loads(p.stdout.strip().splitlines()[-1])
    finally:
        x.terminate()
        x.wait(10)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="length of each recording phase")
    ap.add_argument("--model", type=Path)
    ap.add_argument("--mmproj", type=Path)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--grabs", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    from app.engine.engine import Engine, EngineConfig
    from app.pipeline.transcribe import TranscribeOptions
    from tests.support.meetings import make_meeting
    from tests.support.pulse import missing, reinit_portaudio, start_pulse, stop_pulse

    why = missing()
    if why:
        raise SystemExit(why)
    tmp = Path(tempfile.mkdtemp(prefix="minutely-bench-capture-"))
    os.environ["MINUTELY_HOME"] = str(tmp / "home")
    if args.model is None:
        from tests.support.tiny_model import write_pair

        args.model, args.mmproj = write_pair(tmp / "tiny")
    meeting = make_meeting(tmp / "meeting", 3, 10, seed=5)
    rig = start_pulse()
    os.environ.update(rig.env)
    reinit_portaudio()
    engine = Engine(args.model, args.mmproj, EngineConfig(n_ctx=8192, n_threads=args.threads, n_parallel=2))
    opts = TranscribeOptions(parallel=2)
    out = {"seconds_per_phase": args.seconds, "model": args.model.name, "cores": os.cpu_count()}
    try:
        out["record_alone"] = phase_record(rig, meeting, args.seconds, tmp)
        # the same with PortAudio's own block size (what the recorder did before 100 ms blocks)
        out["record_alone_portaudio_blocks"] = phase_record(rig, meeting, args.seconds, tmp, block_seconds=0)
        out["record_live"] = phase_live(rig, meeting, args.seconds, tmp, engine, opts)
        out["record_with_job"] = phase_with_job(rig, meeting, args.seconds, tmp, engine, opts)
    finally:
        engine.close()
        stop_pulse(rig)
    out["screen"] = phase_screen(args.grabs, tmp)
    a, b = out["record_alone"], out["record_live"]
    out["summary"] = {
        "recording_cpu_pct_of_one_core": a["process_cpu_pct"],
        "recording_cpu_pct_with_portaudio_blocks": out["record_alone_portaudio_blocks"]["process_cpu_pct"],
        "live_vad_cpu_pct": b["threads_cpu_pct"].get("vad"),
        "live_latency_vs_model_s": [b.get("latency_median_s"), b.get("model_median_s")],
        "overflows": [a["overflows"], b["overflows"], out["record_with_job"]["overflows"]],
        "grab_ms": out["screen"].get("grab_ms"),
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(json.dumps(out, indent=1))
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
