"""Dictation latency: release of the talk key -> text at the cursor, vs the model's own time.

Runs the real dictation pad (offscreen Qt) on the private PulseAudio rig
(tests/support/pulse.py): 5 s of espeak-ng speech is played into the virtual mic while
the key is held; on release the pad stops the recorder, trims the speech with
the VAD, asks the model (an EngineHost child process, as in the app) and
inserts the text. Measured side by side for each round: the wall time from
release to insertion, and the model's own time for that same call (the
engine's prompt + generation time, and the call as seen from the worker).
The overhead goal is <= 10% of the model's time.

By default the model is a random Gemma 4 of ~130M parameters (so the model's
time is not negligible, as with the real 12B); --small uses the tiny test pair.

    python bench/dictation.py [--rounds 5] [--small] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=5.0, help="length of the dictated speech")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--small", action="store_true", help="the tiny test model (model time ~0)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    import llama_cpp  # noqa: F401  (before numpy: see app/engine/__init__.py)
    import numpy as np
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtWidgets import QApplication

    from app.media.audio import write_wav
    from app.ui.bootstrap import build_services
    from app.ui.dictation_pad import DictationPad
    from bench.common import median
    from tests.support import tiny_model as tm
    from tests.support.meetings import SENTENCES, VOICES, speak
    from tests.support.pulse import missing, start_pulse, stop_pulse

    why = missing()
    if why:
        print(f"cannot run: {why}", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="minutely-bench-dictation-"))
    os.environ["MINUTELY_HOME"] = str(tmp / "home")
    parts, n = [], 0
    while n < args.seconds * 16000:
        x = speak(SENTENCES[len(parts) % len(SENTENCES)], VOICES[0], tmp / "speech")
        parts += [x, np.zeros(3200, np.float32)]
        n += len(x) + 3200
    speech = np.concatenate(parts)[: int(args.seconds * 16000)]
    wav = write_wav(tmp / "say.wav", speech)
    if args.small:
        model, mmproj = tm.write_pair(tmp / "model")
    else:
        model = tm.write_model(tmp / "bench.gguf", n_embd=1024, n_layer=8, n_head=8, n_head_kv=4,
                               head_dim=128, n_ff=4096)
        mmproj = tm.write_mmproj(tmp / "bench-mmproj.gguf", projection_dim=1024)

    rig = start_pulse()
    os.environ.update(rig.env)
    import sounddevice as sd

    sd._terminate()
    sd._initialize()
    app = QApplication.instance() or QApplication([])
    services = build_services(tmp / "home")
    s = services.settings
    s.model_path, s.mmproj_path, s.n_threads, s.n_ctx = str(model), str(mmproj), args.threads, 4096
    s.mic_device = rig.mic
    pad = DictationPad(services)
    pad.show()

    def wait(cond, timeout: float) -> None:
        end = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > end:
                raise TimeoutError("timed out")
            app.processEvents()
            time.sleep(0.002)

    services.model.preload()
    wait(lambda: services.model.state == "ready", 300)
    rounds = []
    try:
        for i in range(args.rounds + 1):  # the first is a warm-up
            pad.editor.setPlainText("")
            done: dict = {}
            tasks = []
            pad.task_started.connect(tasks.append)
            pad.inserted.connect(lambda t: done.setdefault("t", time.perf_counter()))  # noqa: B023 - disconnected below
            assert pad.begin("talk"), pad.status.text()
            wait(lambda: pad.listener.recorder.wait_ready(0), 30)
            heard = lambda: sum(len(b) for b in pad.listener._blocks) / 16000  # noqa: E731
            rig.play(wav, "micfeed").wait(60)
            target = heard() + 0.5
            wait(lambda: heard() >= target, 30)  # noqa: B023 - called within this round
            t0 = time.perf_counter()
            pad.end()
            wait(lambda: "t" in done or (tasks and tasks[-1].finished and tasks[-1].error), 300)  # noqa: B023 - this round
            pad.task_started.disconnect()
            pad.inserted.disconnect()
            task = tasks[-1]
            if task.error:
                raise RuntimeError(task.error)
            d = task.result
            r = d.reply
            wall = done["t"] - t0
            own = r.prompt_seconds + r.generate_seconds
            if i:
                rounds.append({"release_to_text_s": wall, "model_own_s": own, "model_call_s": d.model_seconds,
                               "audio_tokens": sum(r.media_tokens), "generated": r.generated_tokens})
    finally:
        pad.shutdown()
        services.close()
        stop_pulse(rig)
        QCoreApplication.processEvents()
    wall = median([x["release_to_text_s"] for x in rounds])
    own = median([x["model_own_s"] for x in rounds])
    call = median([x["model_call_s"] for x in rounds])
    out = {"model": "tiny" if args.small else "random Gemma 4 ~130M", "speech_s": args.seconds,
           "rounds": rounds, "median_release_to_text_s": round(wall, 3), "median_model_own_s": round(own, 3),
           "median_model_call_s": round(call, 3),
           "overhead_vs_model_own_pct": round(100 * (wall - own) / own, 1) if own else None,
           "overhead_vs_model_call_pct": round(100 * (wall - call) / call, 1) if call else None}
    if args.json:
        print(json.dumps(out))
    else:
        print(json.dumps(out, indent=1))
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
