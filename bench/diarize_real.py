"""Speaker attribution on real meetings: DER split into its parts, and speed.

    python bench/diarize_real.py [--folder ../shared/data/real-meetings] [--json] [--no-synthetic] [--pipeline]
                                 [--vad earshot,combined] [--embed mfcc,campp]

Per real meeting (WAV + RTTM reference turns): DER split into missed speech, false alarm and
speaker confusion (tests/support/der.py, 0.25 s collar, overlapped speech counted), with the speaker
count given and found automatically, through ``app.media.speakers.speaker_segments`` (speech
detection included); time per hour of audio. Then the same pipeline on synthetic meetings
(tests/support/meetings.py: 2-4 espeak-ng voices, seeds 10-12, clean and with white noise 0.01) so a
regression there shows beside it. ``--pipeline`` also scores what ``transcribe_file`` stores today
(the VAD's whole utterances, one embedding each, clustered), with a stand-in model, side by side;
``--embed mfcc,campp`` does that part once per speaker embedding (``MINUTELY_EMBED``), with the
time the embedding and clustering of those utterances take per hour of audio (one thread: run it
under ``taskset -c 0`` with ``OMP_NUM_THREADS=1``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


ROOT = Path(__file__).resolve().parent.parent
# ../shared beside the repository (a worktree may sit one level deeper), or shared/ inside it
_CANDIDATES = [p / "shared" / "data" / "real-meetings" for p in (ROOT.parent, ROOT, ROOT.parent.parent)]
FOLDER = next((p for p in _CANDIDATES if p.is_dir()), _CANDIDATES[0])


def read_rttm(path: Path) -> list[tuple[float, float, str]]:
    out = []
    for line in path.read_text().splitlines():
        p = line.split()
        if p and p[0] == "SPEAKER":
            out.append((float(p[3]), float(p[3]) + float(p[4]), p[7]))
    return out


def hypothesis(segs) -> list[tuple[float, float, str]]:
    return [(s.start, s.end, f"h{s.speaker}") for s in segs]


def real(folder: Path) -> tuple[list[dict], float]:
    from app.media.speakers import speaker_segments
    from tests.support.der import der_parts
    from tests.support.meetings import read_wav

    rows, seconds, audio_s = [], 0.0, 0.0
    for wav in sorted(folder.glob("*.wav")):
        ref = read_rttm(wav.with_suffix(".rttm"))
        x = read_wav(wav)
        n = len({s for *_, s in ref})
        row = {"file": wav.stem, "speakers": n}
        for key, k in (("given", n), ("auto", None)):
            t = time.perf_counter()
            segs = speaker_segments(x, k)
            seconds += time.perf_counter() - t
            audio_s += len(x) / 16000
            p = der_parts(ref, hypothesis(segs))
            row[key] = {"missed": p.missed, "fa": p.false_alarm, "confusion": p.confusion, "der": p.der,
                        "found": len({s.speaker for s in segs})}
        rows.append(row)
    return rows, 3600 * seconds / audio_s


class _Words:
    """A stand-in model that answers "words" to every utterance."""

    def chat_batch(self, convs, **_):
        from types import SimpleNamespace

        return [SimpleNamespace(text="words", finish_reason="stop") for _ in convs]


def stored_segments(wav: Path, k: int | None, marks: bool = False) -> list[tuple[float, float, str]]:
    """(start, end, speaker) of the segments ``transcribe_file`` stores for ``wav``; ``marks``:
    with its overlap marks (the second voice) as turns of their own."""
    from app.library import Library
    from app.media.audio import NoSpeech
    from app.pipeline.transcribe import TranscribeOptions, transcribe_file

    with tempfile.TemporaryDirectory() as d, Library.open(d) as lib:
        try:
            sid = transcribe_file(lib, _Words(), wav, TranscribeOptions(speakers=k))
        except NoSpeech:  # the VAD found nothing: all of the reference is missed
            return []
        out = [(g.start, g.end, g.speaker) for g in lib.segments(sid)]
        return out + ([(o.start, o.end, o.speaker) for o in lib.overlaps(sid)] if marks else [])


def embed_speed(folder: Path) -> float:
    """Seconds per hour of audio that embedding the VAD's utterances of the real meetings (with
    ``MINUTELY_EMBED``'s embedder, loaded beforehand) and clustering them take."""
    from app.media.diarize import cluster, embedder
    from app.pipeline.transcribe import cut, scan

    fn = embedder()
    seconds = audio_s = 0.0
    for wav in sorted(folder.glob("*.wav")):
        found = scan(wav)
        utts, duration = found.utterances, found.duration
        clips = [a for _, a in cut(wav, utts, 0)]
        t = time.perf_counter()
        emb = [fn(c, 16000) for c in clips]
        if emb:
            cluster(emb, None, [b - a for a, b in utts[:len(emb)]])
        seconds += time.perf_counter() - t
        audio_s += duration
    return 3600 * seconds / audio_s


def pipeline(folder: Path, marks: bool = False) -> list[dict]:
    """What a transcript stores: ``transcribe_file`` on each real meeting (a stand-in model that
    answers "words"), its segments' speakers scored like the above; ``marks``: and its
    overlap marks."""
    from tests.support.der import der_parts

    rows = []
    for wav in sorted(folder.glob("*.wav")):
        ref = read_rttm(wav.with_suffix(".rttm"))
        n = len({s for *_, s in ref})
        row: dict = {"file": wav.stem, "speakers": n}
        for key, k in (("given", n), ("auto", None)):
            p = der_parts(ref, stored_segments(wav, k, marks))
            row[key] = {"missed": p.missed, "fa": p.false_alarm, "confusion": p.confusion, "der": p.der}
        rows.append(row)
    return rows


def synthetic(outdir: Path, seeds=(10, 11, 12), speakers=(2, 3, 4), noises=(0.0, 0.01),
              stored: bool = False, segments: bool = True) -> list[dict]:
    """The same pipeline (speech detection included) on synthetic meetings (tests/support/meetings.py);
    ``stored``: also what ``transcribe_file`` stores for them; ``segments`` False: only that."""
    from app.media.speakers import speaker_segments
    from tests.support.der import der
    from tests.support.meetings import make_meeting

    rows = []
    for noise in noises:
        for n in speakers:
            for seed in seeds:
                m = make_meeting(outdir, n, 10 + 2 * n, seed=seed, noise=noise, name=f"syn-{n}-{seed}-{noise}.wav")
                rows.append({"speakers": n, "noise": noise, "seed": seed})
                if segments:
                    x = m.samples()
                    auto = speaker_segments(x)
                    rows[-1].update({"found": len({s.speaker for s in auto}),
                                     "der_auto": der(m.truth(), hypothesis(auto)),
                                     "der_given": der(m.truth(), hypothesis(speaker_segments(x, n)))})
                if stored:
                    rows[-1]["stored_given"] = der(m.truth(), stored_segments(m.wav, n, marks=True))
                    rows[-1]["stored_auto"] = der(m.truth(), stored_segments(m.wav, None, marks=True))
    return rows


def speed(outdir: Path) -> dict:
    """Time of ``speaker_segments`` on an ~11-minute 4-voice synthetic meeting (best of two)."""
    from app.media.speakers import speaker_segments
    from tests.support.der import der
    from tests.support.meetings import make_meeting

    m = make_meeting(outdir, 4, 140, seed=11, gap=(0.5, 2.0), name="syn-long.wav")
    x = m.samples()
    best = float("inf")
    for _ in range(2):
        t = time.perf_counter()
        segs = speaker_segments(x)
        best = min(best, time.perf_counter() - t)
    return {"audio_s": m.duration, "seconds": best, "per_hour": 3600 * best / m.duration,
            "found": len({s.speaker for s in segs}), "der_auto": der(m.truth(), hypothesis(segs))}


def table(rows: list[dict]) -> None:
    """Per file and mean: missed / false alarm / confusion / DER, count given and automatic."""
    print(f"{'file':<8}{'spk':>4} | {'given: miss   FA conf  DER':>28} | {'auto: miss   FA conf  DER found':>34}")
    for r in rows:
        g, a = r["given"], r["auto"]
        print(f"{r['file']:<8}{r['speakers']:>4} | {g['missed']:>11.2f} {g['fa']:>4.2f} {g['confusion']:>4.2f} "
              f"{g['der']:>4.2f} | {a['missed']:>10.2f} {a['fa']:>4.2f} {a['confusion']:>4.2f} {a['der']:>4.2f} "
              f"{a.get('found', ''):>5}")
    m = {k: {p: statistics.mean(r[k][p] for r in rows) for p in ("missed", "fa", "confusion", "der")}
         for k in ("given", "auto")}
    print(f"{'mean':<12} | {m['given']['missed']:>11.2f} {m['given']['fa']:>4.2f} {m['given']['confusion']:>4.2f} "
          f"{m['given']['der']:>4.2f} | {m['auto']['missed']:>10.2f} {m['auto']['fa']:>4.2f} "
          f"{m['auto']['confusion']:>4.2f} {m['auto']['der']:>4.2f}")


def report(rows: list[dict], per_hour: float, stored: list[dict], syn: list[dict], long: dict,
           marked: list[dict] | None = None) -> None:
    print("speaker_segments:")
    table(rows)
    if stored:
        print("stored segments (transcribe_file):")
        table(stored)
    if marked:
        print("stored segments and their overlap marks:")
        table(marked)
    for noise in sorted({r["noise"] for r in syn}):
        rs = [r for r in syn if r["noise"] == noise]
        right = sum(r["found"] == r["speakers"] for r in rs)
        given, auto = [r["der_given"] for r in rs], [r["der_auto"] for r in rs]
        print(f"synthetic, noise {noise}: {len(rs)} meetings of 2-4 voices, count right {right}, "
              f"DER given mean {statistics.mean(given):.3f} max {max(given):.3f}, "
              f"auto mean {statistics.mean(auto):.3f} max {max(auto):.3f}")
        if "stored_given" in rs[0]:
            sg, sa = [r["stored_given"] for r in rs], [r["stored_auto"] for r in rs]
            print(f"  stored segments: DER given mean {statistics.mean(sg):.3f} max {max(sg):.3f}, "
                  f"auto mean {statistics.mean(sa):.3f} max {max(sa):.3f}")
    print(f"time on the real clips: {per_hour:.1f} s per hour of audio ({per_hour / 36:.2f} % of its duration)")
    if long:
        print(f"time on a {long['audio_s'] / 60:.1f}-min 4-voice synthetic meeting: {long['seconds']:.2f} s = "
              f"{long['per_hour']:.1f} s per hour ({long['per_hour'] / 36:.2f} %; goal < 1 %); "
              f"found {long['found']} voices, DER {long['der_auto']:.3f}")


def side_by_side(results: dict) -> None:
    """The stored segments' means per run, one line each: DER and its parts, count given and
    automatic, the synthetic meetings' stored DER, the embedding's time."""
    print("===== stored segments (+ marks: with their overlap marks) side by side "
          "(mean over the real meetings; synthetic, with marks: mean / max)")
    print(f"{'run':<16} | {'given: miss    FA  conf   DER':>29} | {'auto: miss    FA  conf   DER':>28} | "
          f"{'syn given':>11} | {'syn auto':>11} | s/h audio")
    for kind, r in results.items():
        syn = r["synthetic"]
        sg = [x["stored_given"] for x in syn] or [float("nan")]
        sa = [x["stored_auto"] for x in syn] or [float("nan")]
        e = r["embed_seconds_per_hour"]
        for label, part in ((kind, r["stored"]), (kind + " + marks", r["marked"])):
            m = {k: {p: statistics.mean(x[k][p] for x in part) for p in ("missed", "fa", "confusion", "der")}
                 for k in ("given", "auto")}
            print(f"{label:<16} | {m['given']['missed']:>11.3f} {m['given']['fa']:>5.3f} "
                  f"{m['given']['confusion']:>5.3f} {m['given']['der']:>5.3f} | {m['auto']['missed']:>10.3f} "
                  f"{m['auto']['fa']:>5.3f} {m['auto']['confusion']:.3f} {m['auto']['der']:.3f} | "
                  + (f"{statistics.mean(sg):.3f}/{max(sg):.3f} | {statistics.mean(sa):.3f}/{max(sa):.3f} | "
                     f"{'' if e is None else f'{e:.1f}'}" if part is r["marked"] else ""))


def main(argv: list[str] | None = None) -> int:
    import os

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--folder", type=Path, default=FOLDER)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-synthetic", action="store_true", help="the real meetings only")
    ap.add_argument("--pipeline", action="store_true",
                    help="also score the segments transcribe_file stores today (whole utterances, clustered)")
    ap.add_argument("--vad", default="",
                    help="speech detectors to compare side by side, e.g. earshot,combined "
                         "(MINUTELY_VAD for each run; default: the app's default)")
    ap.add_argument("--embed", default="",
                    help="speaker embeddings to compare side by side in the stored segments, e.g. mfcc,campp "
                         "(MINUTELY_EMBED for each run; default: the app's default)")
    ap.add_argument("--keep", type=Path, help="build (or reuse) the synthetic meetings in this folder")
    args = ap.parse_args(argv)
    if not args.folder.is_dir():
        raise SystemExit(f"no real meetings at {args.folder} (--folder)")
    if not args.no_synthetic:
        from tests.support.meetings import have_tools

        if not have_tools():
            raise SystemExit("the synthetic meetings need espeak-ng and sox (or --no-synthetic)")
    results = {}
    saved = {k: os.environ.get(k) for k in ("MINUTELY_VAD", "MINUTELY_EMBED")}
    embeds = [k for k in args.embed.split(",") if k] or [""]
    with tempfile.TemporaryDirectory() as tmp:
        for vad in [k for k in args.vad.split(",") if k] or [""]:
            if vad:
                os.environ["MINUTELY_VAD"] = vad
            rows, per_hour = real(args.folder)  # speaker_segments: the same whatever the embedding
            base: list[dict] = []
            long: dict = {}
            if not args.no_synthetic:
                base = synthetic(args.keep or Path(tmp))
                long = speed(args.keep or Path(tmp))
            for emb in embeds:
                if emb:
                    os.environ["MINUTELY_EMBED"] = emb
                stored = pipeline(args.folder) if args.pipeline else []
                marked = pipeline(args.folder, marks=True) if args.pipeline else []
                syn = [dict(r) for r in base]
                if args.pipeline and syn:
                    for r, s in zip(syn, synthetic(args.keep or Path(tmp), stored=True, segments=False), strict=True):
                        r.update({k: v for k, v in s.items() if k.startswith("stored_")})
                key = "/".join(k for k in (vad, emb) if k) or "default"
                results[key] = {"files": rows, "seconds_per_hour": per_hour, "stored": stored,
                                "marked": marked, "synthetic": syn, "long": long,
                                "embed_seconds_per_hour": embed_speed(args.folder) if emb else None}
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    if args.json:
        print(json.dumps(results if len(results) > 1 else next(iter(results.values()))))
        return 0
    for kind, r in results.items():
        if len(results) > 1:
            print(f"===== speech detection / speaker embedding: {kind}")
        report(r["files"], r["seconds_per_hour"], r["stored"], r["synthetic"], r["long"], r["marked"])
        if r["embed_seconds_per_hour"] is not None:
            e = r["embed_seconds_per_hour"]
            print(f"embedding + clustering the stored utterances: {e:.1f} s per hour of audio ({e / 36:.2f} %)")
    if len(results) > 1 and args.pipeline:
        side_by_side(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
