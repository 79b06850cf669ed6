"""Recordings with a microphone track and a system-audio track: who is who.

The mic track is the person at this computer; the system track is everyone else (what the
computer plays). When a recording has both, live transcription and a later transcription of the
recording do the same thing, with the same code, on the same samples:

- speech detection per track (one ``Segmenter`` each), so two people talking at once on
  different tracks are both kept;
- a mic utterance is checked against the system track around it (``app.media.echo``): echo only
  (the loudspeakers heard again) is dropped, the system track's copy is the one kept; otherwise
  it is the local user's, transcribed from the mic with the fitted echo taken out;
- mic utterances get the local user's speaker (label ``LOCAL_LABEL``, named from the settings'
  ``user_name``), never clustered with anyone; system utterances are clustered among themselves
  (``diarize_tracks``).

Live, the recorder's float blocks are quantized to 16 bits exactly as the track WAVs store them,
so the live VAD, echo checks and embeddings see the samples a later file transcription reads.
Sessions without a system track (or without a mic) are transcribed from the mix, as before.
"""

from __future__ import annotations

import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.capture.tracks import SIDECAR, read_sidecar
from app.library.db import NotFound
from app.media import echo
from app.media.audio import SAMPLE_RATE
from app.media.diarize import centroids, cluster, match_profiles
from app.media.vad import Segmenter
from app.pipeline.speakers import one_kind

MIC, SYSTEM = "mic", "system"
LOCAL_LABEL = "You"  # the local user's speaker label in every two-track session (named from settings)
BEFORE = int(echo.MAX_LAG * SAMPLE_RATE)   # system samples before a mic utterance its echo can come from
AFTER = int(-echo.MIN_LAG * SAMPLE_RATE)   # ... and after it (the tracks' alignment error)
TRIM_PAD = 0.2  # seconds kept around the local speech of a mic utterance trimmed of echo


@dataclass(frozen=True)
class TrackUtterance:
    start: float   # seconds on the recording's timeline
    end: float
    track: str     # MIC or SYSTEM


def quantize(x: np.ndarray) -> np.ndarray:
    """Float samples as the recorder stores them and a WAV reader gives them back."""
    return (np.rint(np.clip(x, -1.0, 1.0) * 32767.0) / 32768.0).astype(np.float32)


def recording_tracks(path: str | Path) -> dict[str, Path] | None:
    """{"mic": mic.wav, "system": system.wav} when ``path`` is the mix of a finished recording
    that has both tracks; else None."""
    path = Path(path)
    side = path.parent / SIDECAR
    if not side.is_file():
        return None
    try:
        meta = read_sidecar(path.parent)
    except (OSError, ValueError):
        return None
    if path.name != meta.get("mix", "mix.wav"):
        return None
    tracks = {}
    for name in (MIC, SYSTEM):
        t = meta.get("tracks", {}).get(name)
        wav = path.parent / (t.get("wav") or f"{name}.wav") if isinstance(t, dict) else None
        if wav is None or not wav.is_file():
            return None
        tracks[name] = wav
    return tracks


def read_samples(wav: Path, a: int, b: int) -> np.ndarray:
    """Samples ``a``..``b`` of a 16-bit mono WAV as float32; silence outside the file."""
    out = np.zeros(max(0, b - a), np.float32)
    with wave.open(str(wav), "rb") as w:
        n = w.getnframes()
        lo, hi = max(0, a), min(n, b)
        if hi > lo:
            w.setpos(lo)
            x = np.frombuffer(w.readframes(hi - lo), "<i2").astype(np.float32) / 32768.0
            out[lo - a:lo - a + len(x)] = x
    return out


def wav_blocks(wav: Path, seconds: float = 10.0) -> Iterator[np.ndarray]:
    with wave.open(str(wav), "rb") as w:
        n = int(seconds * w.getframerate())
        while True:
            data = w.readframes(n)
            if not data:
                return
            yield np.frombuffer(data, "<i2").astype(np.float32) / 32768.0


def span(u: TrackUtterance | tuple[float, float]) -> tuple[int, int]:
    s, e = (u.start, u.end) if isinstance(u, TrackUtterance) else u
    return round(s * SAMPLE_RATE), round(e * SAMPLE_RATE)


def check_mic(mic: np.ndarray, system_around: np.ndarray) -> echo.EchoCheck:
    """The echo check of one mic utterance, given the system track from ``BEFORE`` samples
    before it to ``AFTER`` samples after it."""
    return echo.check(mic, system_around, BEFORE)


Reader = Callable[[int, int], np.ndarray]  # timeline samples a..b of a track (silence where it has none)


def judge(u: TrackUtterance, mic: Reader, system: Reader) -> TrackUtterance | None:
    """A mic utterance as the local user's (trimmed to where their speech is, so the echo the VAD
    joined to it is not theirs), or None for echo only. System utterances are kept as they are."""
    if u.track != MIC:
        return u
    a, b = span(u)
    c = check_mic(mic(a, b), system(a - BEFORE, b + AFTER))
    if c.echo:
        return None
    s = max(u.start, round(float(u.start + c.local_from - TRIM_PAD), 3))
    e = min(u.end, round(float(u.start + c.local_to + TRIM_PAD), 3))
    if (s - u.start) + (u.end - e) < 2 * TRIM_PAD or e - s < 0.5:
        return u
    return TrackUtterance(s, e, MIC)


def model_audio(u: TrackUtterance, mic: Reader, system: Reader) -> np.ndarray:
    """What the model hears for an utterance: its track's samples, a mic utterance's with the
    fitted echo of the system track taken out."""
    a, b = span(u)
    if u.track != MIC:
        return system(a, b)
    return check_mic(mic(a, b), system(a - BEFORE, b + AFTER)).residual


def _file_reader(wav: Path) -> Reader:
    return lambda a, b: read_samples(wav, a, b)


def scan_tracks(tracks: dict[str, Path], vad_options: dict | None = None
                ) -> tuple[list[TrackUtterance], float, int]:
    """The utterances of a two-track recording in timeline order (VAD per track, echo-only mic
    utterances dropped), its duration, and how many mic utterances were echo."""
    found: list[TrackUtterance] = []
    duration = 0.0
    for name in (MIC, SYSTEM):
        seg = Segmenter(**(vad_options or {}))
        total = 0
        utts = []
        for block in wav_blocks(tracks[name]):
            total += len(block)
            utts += seg.push(block)
        utts += seg.flush()
        duration = max(duration, total / SAMPLE_RATE)
        found += [TrackUtterance(u.start, u.end, name) for u in utts]
    kept = [judge(u, _file_reader(tracks[MIC]), _file_reader(tracks[SYSTEM])) for u in found]
    return sort_timeline([u for u in kept if u is not None]), duration, kept.count(None)


def sort_timeline(utts: list[TrackUtterance]) -> list[TrackUtterance]:
    return sorted(utts, key=lambda u: (u.start, u.end, u.track))


def utterance_audio(tracks: dict[str, Path], u: TrackUtterance) -> np.ndarray:
    """What the model hears for an utterance: its track's samples, a mic utterance's with the
    fitted echo of the system track taken out."""
    return model_audio(u, _file_reader(tracks[MIC]), _file_reader(tracks[SYSTEM]))


def cut_tracks(tracks: dict[str, Path], utts: list[TrackUtterance], start_index: int
               ) -> Iterator[tuple[int, np.ndarray]]:
    """(index, audio) of each utterance from ``start_index`` (as ``transcribe.cut`` for a mix)."""
    for i in range(start_index, len(utts)):
        yield i, utterance_audio(tracks, utts[i])


# --- live: the same, block by block -------------------------------------------------------------

class _Track:
    def __init__(self, vad_options: dict):
        self.seg = Segmenter(**vad_options)
        self.hist = np.zeros(0, np.float32)
        self.start = 0   # timeline sample of hist[0]
        self.end = 0     # timeline samples fed so far (gaps included)

    def read(self, a: int, b: int) -> np.ndarray:
        """Timeline samples a..b from the history; silence where it has none."""
        out = np.zeros(max(0, b - a), np.float32)
        lo, hi = max(a, self.start), min(b, self.start + len(self.hist))
        if hi > lo:
            out[lo - a:hi - a] = self.hist[lo - self.start:hi - self.start]
        return out


class TrackSplitter:
    """Per-track VAD and echo checks on the recorder's blocks: ``push`` returns the utterances
    (with the audio the model hears) that are known, ``flush`` the rest at the end. A mic
    utterance waits until the system track has reached ``AFTER`` past its end, or lags the mic by
    more than ``max_skew`` s (it stopped: silence there)."""

    def __init__(self, vad_options: dict | None = None, keep_seconds: float = 40.0, max_skew: float = 1.0):
        self.tracks = {MIC: _Track(vad_options or {}), SYSTEM: _Track(vad_options or {})}
        self.keep, self.skew = int(keep_seconds * SAMPLE_RATE), int(max_skew * SAMPLE_RATE)
        self.waiting: list[TrackUtterance] = []
        self.echoes = 0

    def push(self, name: str, position: int, x: np.ndarray) -> list[tuple[TrackUtterance, np.ndarray]]:
        t = self.tracks.get(name)
        if t is None:
            return []
        x = quantize(np.asarray(x, np.float32))
        if position > t.end:  # a gap the recorder padded with silence: the WAV has it too
            x = np.concatenate([np.zeros(position - t.end, np.float32), x])
        elif position < t.end:
            x = x[t.end - position:]
        if not len(x):
            return []
        t.hist = np.concatenate([t.hist, x])
        t.end += len(x)
        utts = [TrackUtterance(u.start, u.end, name) for u in t.seg.push(x)]
        return self._take(utts, final=False)

    def flush(self) -> list[tuple[TrackUtterance, np.ndarray]]:
        utts = []
        for name, t in self.tracks.items():
            utts += [TrackUtterance(u.start, u.end, name) for u in t.seg.flush()]
        return self._take(utts, final=True)

    def _take(self, utts: list[TrackUtterance], final: bool) -> list[tuple[TrackUtterance, np.ndarray]]:
        out = []
        for u in utts:
            if u.track == SYSTEM:
                out.append((u, model_audio(u, self.tracks[MIC].read, self.tracks[SYSTEM].read)))
            else:
                self.waiting.append(u)
        mic, system = self.tracks[MIC], self.tracks[SYSTEM]
        still = []
        for u in self.waiting:
            b = span(u)[1]
            if final or system.end >= b + AFTER or mic.end - system.end > self.skew:
                v = judge(u, mic.read, system.read)
                if v is None:
                    self.echoes += 1
                else:
                    out.append((v, model_audio(v, mic.read, system.read)))
            else:
                still.append(u)
        self.waiting = still
        self._trim()
        return out

    def _trim(self) -> None:
        oldest = min([span(u)[0] - BEFORE for u in self.waiting], default=None)
        for t in self.tracks.values():
            keep_from = t.end - self.keep if oldest is None else min(oldest, t.end - self.keep)
            drop = keep_from - t.start
            if drop > SAMPLE_RATE * 5:
                t.hist, t.start = t.hist[drop:], t.start + drop


# --- who is who -----------------------------------------------------------------------------------

def diarize_tracks(lib, session_id: int, n_speakers: int | None = None, user_name: str = "You") -> int:
    """Speakers of a two-track session: the local user's segments (label ``LOCAL_LABEL``) keep
    that speaker, named ``user_name``; the others are clustered among themselves (``n_speakers``
    counts everyone, the local user included) and known voices named. Returns the number of
    speakers."""
    rows = one_kind(lib.segment_embeddings(session_id))
    try:
        local_id = lib.speaker(session_id, LOCAL_LABEL).id
    except NotFound:
        local_id = None
    by_id = {g.id: g.speaker_id for g in lib.segments(session_id)}
    mine = [r for r in rows if local_id is not None and by_id.get(r[0]) == local_id]
    others = [r for r in rows if not (local_id is not None and by_id.get(r[0]) == local_id)]
    labels: dict[int, str] = {r[0]: LOCAL_LABEL for r in mine}
    cents = np.zeros((0, 0), np.float32)
    if others:
        emb = np.stack([np.frombuffer(r[3], "<f4") for r in others])
        n = None if not n_speakers else max(1, n_speakers - (1 if mine else 0))
        ks = cluster(emb, n_speakers=n, durations=np.array([r[2] - r[1] for r in others]))
        labels.update({r[0]: f"S{int(k) + 1}" for r, k in zip(others, ks, strict=True)})
        cents = centroids(emb, ks)
    if not labels:
        return 0
    with lib.transaction():
        lib.assign_speakers(session_id, labels)
        if mine:
            sp = lib.speaker(session_id, LOCAL_LABEL)
            own = centroids(np.stack([np.frombuffer(r[3], "<f4") for r in mine]), np.zeros(len(mine), int))
            lib.set_speaker_voice(sp.id, own[0], name=user_name)
        known = [p for p in lib.voice_profiles() if p.embedding and p.name != user_name]
        profiles = [(p.id, np.frombuffer(p.embedding, "<f4")) for p in known]
        matches = match_profiles(cents, profiles) if profiles and len(cents) else {}
        names = {p.id: p.name for p in known}
        for k in range(len(cents)):
            pid = matches.get(k)
            lib.set_speaker_voice(lib.speaker(session_id, f"S{k + 1}").id, cents[k],
                                  name=names.get(pid) if pid else None, profile_id=pid)
    return len(cents) + (1 if mine else 0)


def name_local(lib, session_id: int, user_name: str) -> None:
    """Give the local user's speaker its name (after mic segments were stored)."""
    sp = lib.speaker(session_id, LOCAL_LABEL)
    if sp.name != user_name:
        lib.rename_speaker(session_id, LOCAL_LABEL, user_name)
