"""Synthetic meetings with known truth: espeak-ng voices joined with sox.

    python -m tests.support.meetings OUTDIR --speakers 3 [--turns 12] [--seed 0] [--noise 0.01]

Each turn is spoken by espeak-ng in its speaker's voice, trimmed of espeak's
own silence with sox (so turn boundaries are exact), and joined with gaps
(and optional overlaps) into one 16 kHz mono WAV. The truth lists each turn's
start, end and speaker. Turns are cached by content, so building the same
meeting twice is fast. Needs Debian's espeak-ng and sox (scripts/setup.sh
--test installs them).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import subprocess
import wave
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from app.media.audio import write_wav

RATE = 16_000
# Clearly different voices (median pitch 213, 86, 235, 78 Hz measured here), then more.
VOICES = [("en-us+f2", 60, 165), ("en-gb+m3", 40, 150), ("en-us+f4", 75, 175),
          ("en-gb-scotland+m1", 30, 140), ("en-us+m7", 50, 160), ("en-gb+f5", 65, 155)]
SENTENCES = [
    "Good morning everyone, let's start with the budget for next quarter.",
    "I think marketing needs more money than we planned last month.",
    "The customer survey came back and the results look quite positive.",
    "Can we move the launch date by two weeks to finish testing?",
    "We should hire two more engineers before the end of the year.",
    "I will send the report to the whole team on Friday at noon.",
    "The office move is delayed because the contract is not signed yet.",
    "Security review found three issues, and two of them are already fixed.",
    "Let's decide today and write down who owns each action item.",
    "Travel costs went up, so we should meet online more often.",
    "The new pricing page converts better than the old one.",
    "Support tickets dropped after we shipped the latest release.",
    "Our partner wants a demo next Tuesday afternoon.",
    "I disagree, we need more data before we change the roadmap.",
    "That sounds fine to me, as long as the deadline stays the same.",
    "Please add the onboarding feedback to the backlog for the next sprint.",
]


@dataclass
class Turn:
    start: float
    end: float
    speaker: str
    text: str


@dataclass
class Meeting:
    wav: Path
    turns: list[Turn]
    duration: float

    def samples(self) -> np.ndarray:
        return read_wav(self.wav)

    def truth(self) -> list[tuple[float, float, str]]:
        return [(t.start, t.end, t.speaker) for t in self.turns]

    def save_truth(self, path: Path) -> None:
        path.write_text(json.dumps([asdict(t) for t in self.turns], indent=1))


def have_tools() -> bool:
    return bool(shutil.which("espeak-ng") and shutil.which("sox"))


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        assert w.getframerate() == RATE and w.getnchannels() == 1 and w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768.0


def covered_frames(spans, n: int, fps: float = 62.5) -> np.ndarray:
    """Per 16 ms frame: does its centre lie inside one of ``spans`` (anything with .start/.end)?"""
    c = (np.arange(n) + 0.5) / fps
    t = np.zeros(n, bool)
    for sp in spans:
        t |= (c >= sp.start) & (c < sp.end)
    return t


def speak(text: str, voice: tuple[str, int, int], cache: Path) -> np.ndarray:
    """One trimmed utterance in a voice (name, pitch, speed), cached by content."""
    name, pitch, speed = voice
    key = hashlib.sha1(f"{name}|{pitch}|{speed}|{text}".encode()).hexdigest()[:16]
    out = cache / f"turn-{key}.wav"
    if not out.exists():
        cache.mkdir(parents=True, exist_ok=True)
        raw = cache / f"raw-{key}.wav"
        subprocess.run(["espeak-ng", "-v", name, "-p", str(pitch), "-s", str(speed), "-w", str(raw), text],
                       check=True, capture_output=True)
        tmp = cache / f"tmp-{key}.wav"
        subprocess.run(["sox", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(tmp), "gain", "-n", "-3",
                        "silence", "1", "0.01", "0.5%", "reverse", "silence", "1", "0.01", "0.5%", "reverse"],
                       check=True, capture_output=True)
        tmp.replace(out)
        raw.unlink(missing_ok=True)
    return read_wav(out)


def make_meeting(outdir: Path, n_speakers: int, n_turns: int = 12, *, seed: int = 0,
                 gap: tuple[float, float] = (0.3, 0.9), noise: float = 0.0,
                 pause_in_turn: float = 0.0, name: str | None = None) -> Meeting:
    """A meeting of ``n_turns`` turns by ``n_speakers`` voices taking turns (never the same
    speaker twice in a row), gaps drawn from ``gap`` seconds, optional white ``noise``
    (RMS), and optionally a pause of ``pause_in_turn`` seconds inside every other turn
    (two sentences by one speaker: a pause that must not split the speaker)."""
    if not 1 <= n_speakers <= len(VOICES):
        raise ValueError(f"1 to {len(VOICES)} speakers")
    rng = random.Random(seed)
    outdir = Path(outdir)
    cache = outdir / "turn-cache"
    parts: list[np.ndarray] = []
    turns: list[Turn] = []
    t = 0.25
    parts.append(np.zeros(int(t * RATE), np.float32))
    prev = None
    for i in range(n_turns):
        choices = [s for s in range(n_speakers) if s != prev] if n_speakers > 1 else [0]
        spk = i if i < n_speakers else rng.choice(choices)  # everyone speaks early on
        prev = spk
        text = rng.choice(SENTENCES)
        audio = speak(text, VOICES[spk], cache)
        if pause_in_turn and i % 2 == 1:
            text2 = rng.choice(SENTENCES)
            audio = np.concatenate([audio, np.zeros(int(pause_in_turn * RATE), np.float32),
                                    speak(text2, VOICES[spk], cache)])
            text = f"{text} {text2}"
        turns.append(Turn(round(t, 4), round(t + len(audio) / RATE, 4), f"spk{spk + 1}", text))
        parts.append(audio)
        t += len(audio) / RATE
        g = rng.uniform(*gap)
        parts.append(np.zeros(int(g * RATE), np.float32))
        t += int(g * RATE) / RATE
    mix = np.concatenate(parts)
    if noise:
        mix = mix + np.random.default_rng(seed).normal(0, noise, len(mix)).astype(np.float32)
    wav = write_wav(outdir / (name or f"meeting-{n_speakers}spk-{n_turns}t-s{seed}.wav"), mix)
    return Meeting(wav, turns, len(mix) / RATE)


def transcript(n_lines: int) -> str:
    """A long meeting transcript; long enough to pass the sliding window many times."""
    names = ["Ana", "Ben", "Chloe", "Dev"]
    lines = []
    for i in range(n_lines):
        lines.append(f"[{i // 6:02d}:{(i * 10) % 60:02d}] {names[i % 4]}: we talk about the budget "
                     f"for the next quarter and item {i} of the report")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.support.meetings", description=__doc__.split("\n")[0])
    ap.add_argument("outdir", type=Path)
    ap.add_argument("--speakers", type=int, default=3)
    ap.add_argument("--turns", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--noise", type=float, default=0.0)
    args = ap.parse_args(argv)
    m = make_meeting(args.outdir, args.speakers, args.turns, seed=args.seed, noise=args.noise)
    m.save_truth(m.wav.with_suffix(".json"))
    print(f"{m.wav} ({m.duration:.1f} s, {len(m.turns)} turns)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def talk_over(cache: Path) -> tuple[np.ndarray, tuple[float, float]]:
    """Voice A speaks two sentences and voice B cuts in halfway through the second, then B and
    A each speak alone (pauses of 0.9 s between): the audio and the truth of the overlap."""
    a1, a2, a3 = (speak(SENTENCES[i], VOICES[0], cache) for i in (0, 1, 4))
    b1, b2 = (speak(SENTENCES[i], VOICES[1], cache) for i in (2, 3))
    gap = np.zeros(int(0.9 * RATE), np.float32)
    b_at = len(a1) + len(a2) - len(b1) // 2                  # B's first half over A's end
    first = np.zeros(b_at + len(b1), np.float32)
    first[:len(a1) + len(a2)] += np.concatenate([a1, a2])
    first[b_at:b_at + len(b1)] += b1
    x = np.concatenate([gap, first, gap, b2, gap, a3, gap])
    return x, ((len(gap) + b_at) / RATE, (len(gap) + len(a1) + len(a2)) / RATE)
