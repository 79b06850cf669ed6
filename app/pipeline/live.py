"""Live transcription while a meeting is recorded.

The recorder's writer thread hands every block it wrote (track, timeline position, samples) to
``LiveTranscriber.feed``, which only appends it to a list: nothing here can slow the audio path.
Two threads do the rest:

    minutely-live-vad    mixes the tracks on their shared timeline (as mix.wav will hold them),
                         runs the VAD (``Segmenter``) and cuts each finished utterance from a
                         rolling 40 s buffer into the bounded ``UtteranceQueue``
    minutely-live-model  takes up to ``parallel`` utterances at a time, asks the engine with the
                         file pipeline's prompt (``utterances.ask``: the instruction before
                         the audio is a shared KV prefix), and stores each segment (text, speaker
                         embedding, a provisional speaker label) in the library at once

The queue never blocks its producer: when the model falls behind by more than ``maxsize``
utterances, the oldest waiting one is dropped and counted; its time span is kept, and ``finish``
transcribes it from the finished mix.wav after the meeting, so a slow model delays text but never
loses it. ``finish`` drains the queue, does the missed spans, then clusters speakers over the whole
meeting (``diarize_session``) so labels are consistent.

With a mic and a system track the VAD thread runs ``two_tracks.TrackSplitter`` instead of the
mixer (a VAD per track, echo checks, the local user's speaker for the mic; see two_tracks.py) and
``finish`` ends with ``diarize_tracks``: the same utterances and grouping a transcription of the
finished recording gives. No Qt: callbacks are plain functions,
called from the model thread (the GUI turns them into signals).
"""

from __future__ import annotations

import collections
import copy
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.engine.cancel import CancelToken
from app.errors import one_line
from app.media.audio import SAMPLE_RATE, read_span
from app.media.diarize import cluster
from app.media.vad import Segmenter
from app.pipeline import utterances
from app.pipeline.changes import split_changes
from app.pipeline.speakers import diarize_session, mark_overlaps, session_embedder
from app.pipeline.two_tracks import (
    LOCAL_LABEL,
    MIC,
    SYSTEM,
    TrackSplitter,
    TrackUtterance,
    diarize_tracks,
    name_local,
    quantize,
    recording_tracks,
    utterance_audio,
)
from app.pipeline.utterances import TranscribeOptions

log = logging.getLogger("minutely.live")

KEEP_SECONDS = 40.0  # mixed audio kept for cutting: an utterance (<= 30 s) ends <= ~1 s before it is known


@dataclass
class Pending:
    """An utterance waiting for the model."""
    start: float              # seconds on the recording's timeline
    end: float
    audio: np.ndarray | None  # None: cut it from the finished recording
    ended_at: float = 0.0     # time.monotonic() when its last sample was recorded
    queued_at: float = 0.0    # time.monotonic() when the VAD put it in the queue
    track: str | None = None  # "mic" or "system" when the tracks are transcribed apart (else the mix)


class UtteranceQueue:
    """A bounded FIFO that never blocks `put`: when full, the oldest item is dropped, counted
    and its span remembered (`dropped_spans`). `get_batch` waits for items; after `close` it
    returns what is left, then []."""

    def __init__(self, maxsize: int = 16):
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self._items: collections.deque[Pending] = collections.deque()
        self._cond = threading.Condition()
        self.closed = False
        self.dropped = 0
        self.dropped_spans: list[tuple[float, float]] = []
        self.dropped_tracks: list[str | None] = []  # the track of each dropped span
        self.high_water = 0

    def put(self, item: Pending) -> Pending | None:
        """Add an item; returns the item dropped to make room, if any."""
        with self._cond:
            if self.closed:  # cancelled: nothing more is transcribed
                return None
            old = None
            if len(self._items) >= self.maxsize:
                old = self._items.popleft()
                self.dropped += 1
                self.dropped_spans.append((old.start, old.end))
                self.dropped_tracks.append(old.track)
            self._items.append(item)
            self.high_water = max(self.high_water, len(self._items))
            self._cond.notify()
        return old

    def get_batch(self, n: int, timeout: float | None = None) -> list[Pending]:
        """Up to `n` items, oldest first, waiting up to `timeout` for the first one."""
        with self._cond:
            if not self._items and not self.closed:
                self._cond.wait(timeout)
            out: list[Pending] = []
            while self._items and len(out) < n:
                out.append(self._items.popleft())
            return out

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    @property
    def done(self) -> bool:
        """Closed and empty: nothing more will come out."""
        with self._cond:
            return self.closed and not self._items

    def __len__(self) -> int:
        return len(self._items)

    @property
    def waiting_seconds(self) -> float:
        """Seconds of speech waiting for the model."""
        with self._cond:
            return sum(p.end - p.start for p in self._items)


class Mixer:
    """Sums the tracks' blocks on their shared timeline into one stream, in order, like
    `tracks.mix_wavs` (each track scaled by 1/number of tracks). A block is emitted once every
    track has reached it, or once the furthest track is `max_skew` seconds ahead (a track that
    stopped or lags counts as silence there). Gaps in a track (padding the recorder wrote
    without announcing it) are silence."""

    def __init__(self, tracks: list[str] | None = None, rate: int = SAMPLE_RATE, max_skew: float = 1.0):
        self.tracks = list(tracks) if tracks else None
        self.rate, self.skew = rate, int(max_skew * rate)
        self.out = 0  # timeline position of the next sample to emit
        self._buf: dict[str, np.ndarray] = {}  # from `out` on
        self._end: dict[str, int] = {}

    def push(self, name: str, position: int, x: np.ndarray) -> np.ndarray:
        b = self._buf.get(name, np.zeros(0, np.float32))
        have = self.out + len(b)
        if position > have:  # a gap: silence
            b = np.concatenate([b, np.zeros(position - have, np.float32)])
            have = position
        skip = have - position  # already covered (never expected; be safe)
        if skip < len(x):
            b = np.concatenate([b, np.asarray(x[max(0, skip):], np.float32)])
        self._buf[name] = b
        self._end[name] = self.out + len(b)
        return self._emit(final=False)

    def flush(self) -> np.ndarray:
        return self._emit(final=True)

    def _emit(self, final: bool) -> np.ndarray:
        if self.tracks is None or not self._end:
            return np.zeros(0, np.float32)
        ends = [self._end.get(t, self.out) for t in self.tracks]
        target = max(ends) if final else max(min(ends), max(ends) - self.skew)
        n = target - self.out
        if n <= 0:
            return np.zeros(0, np.float32)
        acc = np.zeros(n, np.float32)
        for t in self.tracks:
            b = self._buf.get(t)
            if b is None:
                continue
            k = min(n, len(b))
            acc[:k] += b[:k]
            self._buf[t] = b[k:]
            self._end[t] = max(self._end.get(t, 0), target)
        self.out = target
        if len(self.tracks) > 1:
            acc /= len(self.tracks)
        return acc


class LiveSpeakers:
    """Provisional speaker labels while the meeting runs: all embeddings so far are clustered
    (the same `cluster` the final pass uses) and each cluster keeps the label most of its
    already-labelled utterances have, so labels stay stable; new clusters get new labels. A
    label once shown is never changed. When the clustering joins voices that were shown apart
    (two labels, each with at least ``SPLIT_VOTES`` shown members, in one cluster), a new
    utterance there takes the nearer of those labels (centroid of its shown members) instead of
    the majority's: a voice does not flip to another label and back while the evidence that
    they are two people comes and goes."""

    window = 300  # recent utterances clustered (bounds the O(n^2) tree on long meetings)
    SPLIT_VOTES = 1

    def __init__(self):
        self.emb: list[np.ndarray] = []
        self.dur: list[float] = []
        self.labels: list[str] = []
        self._next = 1

    def assign(self, embeddings: list[np.ndarray], durations: list[float]) -> list[str]:
        self.emb += embeddings
        self.dur += durations
        lo = max(0, len(self.emb) - self.window)
        ids = cluster(np.stack(self.emb[lo:]), durations=np.array(self.dur[lo:]))
        known = len(self.labels) - lo  # ids[:known] already have labels
        mapping: dict[int, str] = {}
        votes = collections.Counter((int(k), lab) for k, lab in zip(ids[:known], self.labels[lo:], strict=True))
        for (k, lab), _ in votes.most_common():
            if k not in mapping and lab not in mapping.values():
                mapping[k] = lab
        joined: dict[int, list[str]] = {}
        for (k, lab), n in votes.items():
            if n >= self.SPLIT_VOTES:
                joined.setdefault(k, []).append(lab)
        out = []
        for i, k in enumerate(ids[known:]):
            k = int(k)
            if len(joined.get(k, [])) > 1:
                out.append(self._nearest(self.emb[lo + known + i], joined[k], lo))
                continue
            if k not in mapping:
                mapping[k] = f"S{self._next}"
                self._next += 1
            out.append(mapping[k])
        self.labels += out
        return out

    def _nearest(self, e: np.ndarray, labels: list[str], lo: int) -> str:
        def dist(lab: str) -> float:
            idx = [j for j in range(lo, len(self.labels)) if self.labels[j] == lab]
            w = np.array([self.dur[j] for j in idx])
            c = (np.stack([self.emb[j] for j in idx]) * w[:, None]).sum(0) / max(w.sum(), 1e-9)
            return float(np.sum((np.asarray(e, np.float64) - c) ** 2))
        return min(labels, key=dist)


@dataclass
class LiveStats:
    utterances: int = 0       # found by the VAD
    transcribed: int = 0      # answered by the model (while recording and after)
    segments: int = 0         # stored (utterances with text)
    dropped: int = 0          # dropped from the full queue (transcribed after the meeting instead)
    failed: int = 0           # the model failed on them
    queued: int = 0           # waiting now
    waiting_seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)    # utterance end -> segment stored (s)
    model_seconds: list[float] = field(default_factory=list)  # the model's time per batch
    vad_delays: list[float] = field(default_factory=list)     # utterance end -> queued (the VAD's wait)
    queue_waits: list[float] = field(default_factory=list)    # queued -> the model starts on it


class LiveTranscriber:
    """Feed it the recorder's blocks; it stores segments into `session_id` as utterances end.

    Times inside are the recording's own (its mix.wav); a segment is stored at `offset` + its time,
    so a part continued into a session lands after the parts before it.

    `engine` is an Engine / EngineHost (anything with `chat_batch`) or a callable returning one,
    called in the model thread when the first utterance arrives (a model that fails to load is a
    notice, the recording goes on)."""

    def __init__(self, lib, session_id: int, engine: Any, opts: TranscribeOptions | None = None, *,
                 on_segment: Callable[[Any], None] | None = None,
                 on_notice: Callable[[str], None] | None = None,
                 queue_size: int = 16, vad_options: dict | None = None, offset: float = 0.0):
        self.lib, self.session_id, self.opts = lib, session_id, opts or TranscribeOptions()
        self.offset = offset  # where this recording starts in the session (a continued part: after the first)
        self._engine_src = engine
        self._engine = engine if hasattr(engine, "chat_batch") else None
        self.on_segment, self.on_notice = on_segment, on_notice
        self.queue = UtteranceQueue(queue_size)
        self.mixer = Mixer()
        self.speakers = LiveSpeakers()
        self._embedder: Callable[[np.ndarray, int], np.ndarray] | None = None
        self.splitter: TrackSplitter | None = None  # VAD per track (a mic and a system track)
        self.stats = LiveStats()
        self._vad_options = vad_options or {}
        self._feed: collections.deque = collections.deque()
        self._feed_evt = threading.Event()
        self._fed_end = False
        self._hist = np.zeros(0, np.float32)
        self._hist_start = 0
        self._failed_spans: list[tuple[float, float, str | None]] = []
        self._model_broken = False
        self._cancel = CancelToken()  # live transcription's own: a file job's cancel never stops it
        self._lock = threading.Lock()
        self._vad_t = threading.Thread(target=self._vad_loop, name="minutely-live-vad", daemon=True)
        self._model_t = threading.Thread(target=self._model_loop, name="minutely-live-model", daemon=True)

    # --- the recorder's side ------------------------------------------------------------------
    def start(self) -> None:
        self._vad_t.start()
        self._model_t.start()

    def set_tracks(self, tracks: list[str]) -> None:
        """The recorder's track names (known once it has started)."""
        if {MIC, SYSTEM} <= set(tracks):
            self.splitter = TrackSplitter(self._vad_options, keep_seconds=KEEP_SECONDS)
        self.mixer.tracks = list(tracks)
        self._feed_evt.set()

    def feed(self, track: str, position: int, samples: np.ndarray) -> None:
        """The recorder's `on_audio` hook: O(1), never blocks."""
        self._feed.append((track, position, samples, time.monotonic()))
        self._feed_evt.set()

    def end_of_audio(self) -> None:
        """The recording has stopped: flush the VAD (its last utterances go to the queue)."""
        self._fed_end = True
        self._feed_evt.set()

    # --- VAD thread -----------------------------------------------------------------------------
    def _vad_loop(self) -> None:
        seg = Segmenter(**self._vad_options)
        try:
            while True:
                self._feed_evt.wait(0.5)
                self._feed_evt.clear()
                last_t = None
                while self.mixer.tracks is not None and self._feed:
                    track, pos, x, last_t = self._feed.popleft()
                    if self.splitter is not None:
                        self._queue_tracked(self.splitter.push(track, pos, x), last_t)
                        continue
                    mixed = self.mixer.push(track, pos, quantize(x))  # the samples the WAV will hold
                    if len(mixed):
                        self._vad(seg, seg.push(mixed), mixed, last_t)
                if self._fed_end and not self._feed and self.splitter is not None:
                    self._queue_tracked(self.splitter.flush(), time.monotonic())
                    return
                if self._fed_end and not self._feed:
                    rest = self.mixer.flush()
                    now = time.monotonic()
                    self._vad(seg, seg.push(rest), rest, now)
                    self._vad(seg, seg.flush(), np.zeros(0, np.float32), now)
                    return
        except Exception as e:  # a bug here must not touch the recording
            log.exception("live VAD failed")
            self._notice(f"live transcription stopped: {e}")
        finally:
            self.queue.close()

    def _vad(self, seg, utts, mixed: np.ndarray, t_now: float) -> None:
        if len(mixed):
            self._hist = np.concatenate([self._hist, mixed])
        end_pos = self._hist_start + len(self._hist)
        for u in utts:
            a = max(0, int(round(u.start * SAMPLE_RATE)) - self._hist_start)
            b = max(a, int(round(u.end * SAMPLE_RATE)) - self._hist_start)
            audio = self._hist[a:b].copy()
            self.stats.utterances += 1
            ended_at = t_now - max(0.0, end_pos / SAMPLE_RATE - u.end)
            if len(audio) < SAMPLE_RATE // 20:
                continue
            now = time.monotonic()
            self.queue.put(Pending(u.start, u.end, audio, ended_at, now))
            with self._lock:
                self.stats.vad_delays.append(now - ended_at)
        keep = int(KEEP_SECONDS * SAMPLE_RATE)
        if len(self._hist) > keep + SAMPLE_RATE * 5:
            drop = len(self._hist) - keep
            self._hist, self._hist_start = self._hist[drop:], self._hist_start + drop

    def _queue_tracked(self, found, t_now: float) -> None:
        """Utterances the per-track VAD finished (a mic one after its echo check)."""
        assert self.splitter is not None  # only called in per-track mode
        end = max(t.end for t in self.splitter.tracks.values()) / SAMPLE_RATE
        for u, audio in found:
            self.stats.utterances += 1
            if len(audio) < SAMPLE_RATE // 20:
                continue
            now = time.monotonic()
            ended_at = t_now - max(0.0, end - u.end)
            self.queue.put(Pending(u.start, u.end, audio, ended_at, now, track=u.track))
            with self._lock:
                self.stats.vad_delays.append(now - ended_at)

    # --- model thread ---------------------------------------------------------------------------
    def _model_loop(self) -> None:
        lib = self.lib.connect()
        try:
            while not self._cancel.is_set():
                batch = self.queue.get_batch(max(1, self.opts.parallel), timeout=0.5)
                if not batch:
                    if self.queue.done:
                        return
                    continue
                self._run_batch(lib, batch)
        finally:
            lib.close()

    def _get_engine(self):
        if self._engine is None and not self._model_broken:
            try:
                self._engine = self._engine_src()
            except Exception as e:
                self._model_broken = True
                self._notice(f"live transcription is off: the model could not be loaded ({e})")
        return self._engine

    def _run_batch(self, lib, batch: list[Pending]) -> None:
        engine = self._get_engine()
        if engine is None:
            with self._lock:
                self._failed_spans += [(p.start, p.end, p.track) for p in batch]
            return
        audios = [p.audio for p in batch if p.audio is not None]
        assert len(audios) == len(batch), "a batch holds utterances with their audio"
        t0 = time.monotonic()
        try:
            texts = utterances.ask(engine, audios, self.opts, self._cancel)
        except Exception as e:  # a crashed model process restarts on the next call (EngineHost)
            with self._lock:
                self._failed_spans += [(p.start, p.end, p.track) for p in batch]
                self.stats.failed += len(batch)
            self._notice(f"the model failed on {len(batch)} utterance(s) ({one_line(e)}); "
                         "they are tried again after the recording")
            return
        model_s = time.monotonic() - t0
        cut = [p for p, t in zip(batch, texts, strict=True) if t is None]
        if cut:  # stopped mid-answer: a cut-short text is never stored; the span is done again
            with self._lock:  # from the recording after the meeting (unless live itself stops)
                self._failed_spans += [(p.start, p.end, p.track) for p in cut]
        answered = [(p, t) for p, t in zip(batch, texts, strict=True) if t is not None]
        if self._embedder is None:  # decided once: a continued part embeds as the session did
            self._embedder = session_embedder(lib, self.session_id)
        embed = self._embedder
        rows: list[dict[str, Any]] = []
        kept: list[Pending] = []
        for p, text in answered:
            if text:
                assert p.audio is not None
                kept.append(p)
                rows.append({"start": p.start + self.offset, "end": p.end + self.offset, "text": text,
                             "embedding": embed(p.audio, SAMPLE_RATE),
                             "language": self.opts.text_language})
        others = [(r, p) for r, p in zip(rows, kept, strict=True) if p.track != MIC]
        if others:  # the local user (mic track of a two-track recording) is never clustered
            labels = self.speakers.assign([r["embedding"] for r, _ in others], [p.end - p.start for _, p in others])
            for (row, _), lab in zip(others, labels, strict=True):
                row["speaker"] = lab
        for row, p in zip(rows, kept, strict=True):
            if p.track == MIC:
                row["speaker"] = LOCAL_LABEL
        ids = []
        if rows:
            with lib.transaction():
                ids = lib.add_segments(self.session_id, rows)
                if any(p.track == MIC for p in kept):
                    name_local(lib, self.session_id, self.opts.user_name)
        now = time.monotonic()
        with self._lock:
            self.stats.transcribed += len(answered)
            self.stats.segments += len(ids)
            self.stats.model_seconds.append(model_s)
            self.stats.latencies += [now - p.ended_at for p, _ in answered if p.ended_at]
            self.stats.queue_waits += [t0 - p.queued_at for p, _ in answered if p.queued_at]
        if self.on_segment is not None:
            for sid in ids:
                try:
                    self.on_segment(lib.segment(sid))
                except Exception:
                    log.exception("on_segment listener failed")

    def _notice(self, text: str) -> None:
        log.warning("%s", text)
        if self.on_notice is not None:
            try:
                self.on_notice(text)
            except Exception:
                log.exception("on_notice listener failed")

    # --- after the recording --------------------------------------------------------------------
    def snapshot(self) -> LiveStats:
        with self._lock:
            s = copy.deepcopy(self.stats)  # numbers and lists of numbers
        s.dropped, s.queued, s.waiting_seconds = self.queue.dropped, len(self.queue), self.queue.waiting_seconds
        return s

    def finish(self, mix: Path | None, speakers: int | None = None, timeout: float | None = None) -> LiveStats:
        """After the recorder stopped: flush the VAD, drain the queue, transcribe the spans that
        were dropped or failed from `mix` (the finished mix.wav), then cluster speakers over the
        whole meeting. `cancel()` from another thread cuts it short (nothing stored is lost)."""
        self.end_of_audio()
        self._vad_t.join(timeout)
        self._model_t.join(timeout)
        dropped = zip(self.queue.dropped_spans, self.queue.dropped_tracks, strict=True)
        missed = sorted([(s, e, t) for (s, e), t in dropped] + self._failed_spans,
                        key=lambda m: (m[0], m[1], m[2] or ""))
        self._failed_spans = []
        tracks = recording_tracks(mix) if mix is not None and self.splitter is not None else None
        if missed and mix is not None and Path(mix).exists() and not self._cancel.is_set() \
                and self._get_engine() is not None:
            lib = self.lib.connect()
            try:
                step = max(1, self.opts.parallel)
                for i in range(0, len(missed), step):
                    if self._cancel.is_set():
                        break
                    batch = [Pending(s, e, read_span(Path(mix), s, e)) if t is None or tracks is None else
                             Pending(s, e, utterance_audio(tracks, TrackUtterance(s, e, t)), track=t)
                             for s, e, t in missed[i:i + step]]
                    self._run_batch(lib, [p for p in batch
                                          if p.audio is not None and len(p.audio) >= SAMPLE_RATE // 20])
            finally:
                lib.close()
        if not self._cancel.is_set():
            lib = self.lib.connect()
            try:
                if self.splitter is not None:
                    diarize_tracks(lib, self.session_id, speakers, self.opts.user_name)
                else:
                    found = self._split_changes(lib, mix)
                    diarize_session(lib, self.session_id, speakers)
                    mark_overlaps(lib, self.session_id, mix, self._cancel, found=found, offset=self.offset)
            finally:
                lib.close()
        return self.snapshot()

    def _split_changes(self, lib, mix: Path | None) -> list[tuple[float, float]] | None:
        """The part's segments cut where the voice changes, as a file transcription cuts them
        (``changes.split_changes``); the overlap stretches it found (None: not read)."""
        engine = self._get_engine() if mix is not None else None
        if engine is None or mix is None:
            return None

        def ask(clips):
            return utterances.ask(engine, clips, self.opts, self._cancel)

        embed = self._embedder or session_embedder(lib, self.session_id)  # the session's kind
        return split_changes(lib, self.session_id, Path(mix), ask, embed, offset=self.offset,
                             parallel=self.opts.parallel, language=self.opts.text_language, cancel=self._cancel)

    def cancel(self) -> None:
        """Stop transcribing now: the batch in flight is cut short and not stored (its speech
        stays in the recording); nothing stored is lost."""
        self._cancel.set()
        self.queue.close()
