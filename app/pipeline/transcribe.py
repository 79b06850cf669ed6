"""Transcribe an audio or video file into a session with speaker-labelled segments.

1. Decode the file (streaming) and cut speech into utterances with the VAD, and
   cut those again where the voice changes without a pause; note where two
   people speak at once (the speaker segmentation model, ``overlap``, in the same
   read). A file that cannot be decoded, or holds no speech, fails here, before
   anything is written.
2. Create the session and a job whose resume state holds the utterance list.
3. Decode again, utterance by utterance, and send them to the model in groups
   of ``parallel`` (one llama.cpp sequence each; ``utterances.ask``, as live
   transcription does). Each group's segments (with their speaker embedding:
   ``speakers.session_embedder``, the kind a resumed job started with)
   and the job's progress are stored in one transaction: if the process is
   killed, running the same command again continues after the last stored
   group.
4. Cluster all segments' embeddings into speakers, match known voices, store
   (``speakers.diarize_session``); then mark where a second person speaks over a
   segment (``speakers.mark_overlaps``, from what step 1 found).

No Qt here: the CLI and the app's job runner both call ``transcribe_file``.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.engine.protocol import ChatEngine, EngineSource, loaded
from app.library.jobs import JobRun
from app.library.models import JobKind, JobState, SessionState, TranscribeResume
from app.media.audio import SAMPLE_RATE, NoSpeech, check_file, iter_audio
from app.pipeline import two_tracks, utterances
from app.pipeline.calendar import session_options
from app.pipeline.speakers import diarize_session, mark_overlaps, session_embedder
from app.pipeline.utterances import TranscribeOptions

__all__ = ["JOB_KIND", "Progress", "TranscribeCancelled", "TranscribeOptions", "cut", "fingerprint",
           "prepare_file", "scan", "transcribe_file"]

log = logging.getLogger("minutely.transcribe")

JOB_KIND = JobKind.TRANSCRIBE
RESUMABLE = (JobState.QUEUED, JobState.RUNNING, JobState.INTERRUPTED, JobState.FAILED, JobState.CANCELLED)


class TranscribeCancelled(Exception):
    """The job was cancelled; its progress is kept and a later run resumes."""


@dataclass
class Progress:
    fraction: float            # of the audio's duration
    done: int                  # utterances transcribed
    total: int
    session_id: int


def fingerprint(path: Path) -> str:
    """Same file, same fingerprint (size, mtime, and its first and last MB)."""
    st = path.stat()
    h = hashlib.sha1(f"{st.st_size}:{st.st_mtime_ns}".encode())
    with open(path, "rb") as f:
        h.update(f.read(1 << 20))
        if st.st_size > 2 << 20:
            f.seek(-(1 << 20), 2)
            h.update(f.read())
    return h.hexdigest()


@dataclass
class Scan:
    """What one read of a file finds before anything is transcribed."""
    utterances: list[tuple[float, float]]   # cut at pauses, and where the voice changes without one
    duration: float                          # seconds of audio
    overlaps: list[tuple[float, float]] | None = None   # where two speak (None: no segmentation model)


def scan(path: Path) -> Scan:
    """Utterances (start, end), the duration and where two people speak, in one streaming read:
    the VAD cuts utterances at pauses; the speaker segmentation model, when installed, finds
    where the voice changes inside one (``overlap.split_at``) and where two speak at once."""
    from app.media import overlap, segmentation
    from app.media.vad import Segmenter

    seg = Segmenter()
    w = segmentation.load()
    det = overlap.OverlapDetector(w) if w is not None else None
    utts: list[tuple[float, float]] = []
    total = 0
    for block in iter_audio(path, block_seconds=10.0):
        total += len(block)
        utts.extend((u.start, u.end) for u in seg.push(block))
        if det is not None:
            det.push(block)
    utts.extend((u.start, u.end) for u in seg.flush())
    if det is None:
        return Scan(utts, total / SAMPLE_RATE)
    found = det.finish()
    return Scan(overlap.split_at(utts, det.changes()), total / SAMPLE_RATE, found)


def cut(path: Path, utts: list[tuple[float, float]], start_index: int) -> Iterator[tuple[int, np.ndarray]]:
    """(index, audio) of each utterance from ``start_index``, streaming the file again."""
    todo = list(enumerate(utts))[start_index:]
    if not todo:
        return
    buf = np.zeros(0, np.float32)
    buf_start = 0  # sample index of buf[0]
    k = 0
    for block in iter_audio(path, block_seconds=10.0):
        buf = np.concatenate([buf, block])
        buf_end = buf_start + len(buf)
        while k < len(todo):
            i, (s, e) = todo[k]
            a, b = int(round(s * SAMPLE_RATE)), int(round(e * SAMPLE_RATE))
            if b > buf_end:
                break
            yield i, buf[max(0, a - buf_start):b - buf_start].copy()
            k += 1
        # keep only what the next utterance still needs
        keep_from = int(round(todo[k][1][0] * SAMPLE_RATE)) if k < len(todo) else buf_end
        drop = max(0, min(keep_from, buf_end) - buf_start)
        buf, buf_start = buf[drop:], buf_start + drop
    while k < len(todo):  # the file ended early (truncated since the scan): use what is there
        i, (s, e) = todo[k]
        a = int(round(s * SAMPLE_RATE)) - buf_start
        if a < len(buf):
            yield i, buf[max(0, a):].copy()
        k += 1


def find_resumable(lib, fp: str, opts: TranscribeOptions):
    """The newest unfinished transcription of this file (fingerprint) with these options."""
    for job in reversed(lib.jobs.find(RESUMABLE, kind=JOB_KIND)):
        r = job.resume_state()
        if r.fingerprint == fp and r.options == opts.key():
            try:
                lib.get_session(job.session_id)
            except Exception:
                continue
            return job
    return None


def prepare_file(lib, path: str | Path, opts: TranscribeOptions | None = None, *,
                 session_id: int | None = None):
    """Read ``path`` and create its session and (queued) job, or find the job to resume.

    Needs no model: the app calls it as soon as a file is dropped, so the session
    appears at once and its transcription waits for the model. ``session_id``:
    transcribe into that existing session instead (a recording made without live
    transcription). A file that cannot be read raises MediaError and writes nothing;
    so does one without speech (NoSpeech): the VAD found no utterance in it (it keeps
    none with less than ``Segmenter.min_speech`` of speech, so a sliver of audio, like
    a truncated header, is no speech either)."""
    opts = opts or TranscribeOptions()
    given = check_file(path)
    path = given.resolve()
    fp = fingerprint(path)
    job = find_resumable(lib, fp, opts)
    if job is not None:
        return job
    extra: dict = {}
    tracks = two_tracks.recording_tracks(path)
    if tracks is not None:  # a recording with a mic and a system track: VAD per track, echo dropped
        on_tracks, duration, _ = two_tracks.scan_tracks(tracks)
        utts = [(u.start, u.end) for u in on_tracks]
        extra = {"tracks": [u.track for u in on_tracks]}
    else:
        read = scan(path)  # MediaError here: nothing is written
        utts, duration = read.utterances, read.duration
        if read.overlaps is not None:
            extra = {"overlaps": [list(o) for o in read.overlaps]}
    if not utts:
        raise NoSpeech(given.name, duration)
    state = TranscribeResume(file=str(path), fingerprint=fp, options=opts.key(),
                             utterances=[list(u) for u in utts], duration=duration, extra=extra)
    with lib.transaction():
        if session_id is None:
            s = lib.create_session(opts.title or path.stem, "file", source=str(path),
                                   status=SessionState.TRANSCRIBING)
        else:
            s = lib.update_session(session_id, status=SessionState.TRANSCRIBING)
        lib.update_session(s.id, duration=max(duration, s.duration))
        job = lib.jobs.create(JOB_KIND, s.id, resume=state)
    return job


def transcribe_file(lib, engine: EngineSource | None, path: str | Path,
                    opts: TranscribeOptions | None = None, *,
                    progress: Callable[[Progress], None] | None = None,
                    cancel: threading.Event | None = None) -> int:
    """Transcribe ``path`` into the library; return the session id.

    ``engine`` is an Engine (or EngineHost), or a callable that returns one: it is
    then called only once the file has been read and holds speech, so a bad file
    is reported without loading a model."""
    opts = opts or TranscribeOptions()
    job = prepare_file(lib, path, opts)
    state: TranscribeResume = job.resume_state()
    path = Path(path).expanduser().resolve()  # prepare_file checked it is a file
    session_id = job.session_id
    opts = session_options(lib, session_id, opts)  # a recording's attendees: hints, speaker count
    if state.done:
        log.info("resuming job %d at utterance %d of %d", job.id, state.done, len(state.utterances))
    with lib.jobs.run(job, cancelled=(TranscribeCancelled,), session_busy=SessionState.TRANSCRIBING) as run:
        _transcribe(lib, engine, path, state, opts, run, session_id, progress, cancel)
        if _track_plan(path, state) is not None:
            two_tracks.diarize_tracks(lib, session_id, opts.speakers, opts.user_name)
        else:
            diarize_session(lib, session_id, opts.speakers)
            known = state.extra.get("overlaps")   # found by the scan (a job from before: read again)
            mark_overlaps(lib, session_id, path, cancel,
                          found=[(a, b) for a, b in known] if known is not None else None)
    lib.update_session(session_id, status=SessionState.READY)
    return session_id


def _track_plan(path: Path, state: TranscribeResume
                ) -> tuple[dict[str, Path], list[two_tracks.TrackUtterance]] | None:
    """(track WAVs, utterances with their track) when the job is a two-track recording's."""
    names = state.extra.get("tracks")
    if not names or len(names) != len(state.utterances):
        return None
    tracks = two_tracks.recording_tracks(path)
    if tracks is None:
        return None
    return tracks, [two_tracks.TrackUtterance(s, e, t) for (s, e), t in zip(state.utterances, names, strict=True)]


def _prepared(path: Path, utts: list[tuple[float, float]], start: int,
              stop: threading.Event,
              plan: tuple[dict[str, Path], list[two_tracks.TrackUtterance]] | None = None,
              embed: Callable[[np.ndarray, int], np.ndarray] | None = None,
              ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(index, audio, speaker embedding) of each utterance, made by a helper thread.

    Decoding, cutting and the embedding (``embed``, default ``diarize.embedder()``) run while
    the model works on the previous group (llama.cpp releases the GIL), so on two cores they
    cost almost nothing."""
    import queue

    from app.media.diarize import embedder

    embed = embed or embedder()
    q: queue.Queue = queue.Queue(maxsize=16)
    end = object()

    def produce() -> None:
        try:
            source = cut(path, utts, start) if plan is None else two_tracks.cut_tracks(plan[0], plan[1], start)
            for i, audio in source:
                if stop.is_set():
                    return
                if len(audio) < SAMPLE_RATE // 20:  # < 50 ms left after truncation: nothing to hear
                    continue
                q.put((i, audio, embed(audio, SAMPLE_RATE)))
            q.put(end)
        except BaseException as e:  # handed to the consumer, raised there
            q.put(e)

    t = threading.Thread(target=produce, name="transcribe-prepare", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is end:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while t.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                t.join(0.05)


def _transcribe(lib, engine: EngineSource | None, path: Path, state: TranscribeResume,
                opts: TranscribeOptions, job: JobRun,
                session_id: int, progress, cancel) -> None:
    utts = state.utterances
    total = len(utts)
    group: list[tuple[int, np.ndarray, np.ndarray]] = []
    model: list[ChatEngine | None] = [None]
    plan = _track_plan(path, state)

    def flush() -> None:
        if cancel is not None and cancel.is_set():
            raise TranscribeCancelled("transcription cancelled")
        eng = model[0] = model[0] or loaded(engine)
        texts = utterances.ask(eng, [a for _, a, _ in group], opts, cancel)
        if any(t is None for t in texts):
            raise TranscribeCancelled("transcription cancelled")
        rows = []
        for (i, _, emb), text in zip(group, texts, strict=True):
            if text:
                s, e = utts[i]
                rows.append({"start": s, "end": e, "text": text, "language": opts.text_language,
                             "embedding": emb})
                if plan is not None and plan[1][i].track == two_tracks.MIC:
                    rows[-1]["speaker"] = two_tracks.LOCAL_LABEL
        state.done = group[-1][0] + 1
        frac = min(1.0, utts[state.done - 1][1] / state.duration) if state.duration else 1.0
        with lib.transaction():  # the segments and the job's position, together
            lib.add_segments(session_id, rows)
            if any(r.get("speaker") == two_tracks.LOCAL_LABEL for r in rows):
                two_tracks.name_local(lib, session_id, opts.user_name)
            job.progress(frac, state)
        if progress:
            progress(Progress(frac, state.done, total, session_id))
        group.clear()

    if progress:
        progress(Progress(utts[state.done - 1][1] / state.duration if state.done and state.duration else 0.0,
                          state.done, total, session_id))
    embed = session_embedder(lib, session_id)  # resumed: the kind already stored
    for item in _prepared(path, [(u[0], u[1]) for u in utts], state.done, threading.Event(), plan, embed):
        group.append(item)
        if len(group) >= max(1, opts.parallel):
            flush()
    if group:
        flush()
