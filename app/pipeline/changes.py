"""After a live recording: cut its segments where the voice changes without a pause, as a file
transcription does, so the meeting's final transcript agrees with one.

Live transcription sends each utterance to the model as soon as the VAD ends it (whole, so the
words appear within seconds); where two people hand over without a pause, that utterance holds
both. ``split_changes`` reads the finished recording once with the speaker segmentation model
(``media.overlap``: the same windows a file transcription's scan runs), and each of the part's
segments that holds a change of voice is transcribed again piece by piece and replaced by its
pieces (one transaction each). Segments the user edited stay whole (two-track recordings are
not cut: the local user's track is theirs); so does everything when the model is missing or the run is
cancelled -- nothing stored is lost. No Qt.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from app.media import overlap, segmentation
from app.media.audio import SAMPLE_RATE, MediaError, iter_audio, read_span

log = logging.getLogger("minutely.pipeline.changes")

Ask = Callable[[list[np.ndarray]], Sequence[str | None]]      # audio clips -> texts (None: cut short)


def read_changes(mix: Path, cancel: threading.Event | None = None
                 ) -> tuple[list[tuple[float, float]], list[float]] | None:
    """(overlap stretches, speaker changes) of a recording in seconds from its start, in one
    read; None when the model is missing, the file cannot be read, or ``cancel`` is set."""
    w = segmentation.load()
    if w is None or not Path(mix).is_file():
        return None
    det = overlap.OverlapDetector(w)
    try:
        for block in iter_audio(mix, block_seconds=10.0):
            if cancel is not None and cancel.is_set():
                return None
            det.push(block)
    except MediaError as e:
        log.warning("speaker changes not found: %s", e)
        return None
    return det.finish(), det.changes()


def split_changes(lib, session_id: int, mix: Path, ask: Ask, embed: Callable[[np.ndarray, int], np.ndarray],
                  *, offset: float = 0.0, parallel: int = 1, language: str | None = None,
                  cancel: threading.Event | None = None) -> list[tuple[float, float]] | None:
    """Cut the segments of the part recorded in ``mix`` (from ``offset`` s in the session) where
    the voice changes, transcribing the pieces with ``ask`` (``parallel`` at a time); segments
    the user edited stay whole. Returns the overlap stretches on the session's timeline (for
    ``speakers.mark_overlaps``), or None when nothing could be read."""
    read = read_changes(mix, cancel)
    if read is None:
        return None
    found, changes = read
    todo = []
    for g in lib.segments(session_id, start=offset):
        if g.start < offset or g.edited:
            continue
        pieces = overlap.split_at([(g.start - offset, g.end - offset)], changes)
        if len(pieces) > 1:
            todo.append((g, pieces))
    for k in range(0, len(todo), max(1, parallel)):
        if cancel is not None and cancel.is_set():
            break
        group = todo[k:k + max(1, parallel)]
        clips = [read_span(mix, a, b) for _, pieces in group for a, b in pieces]
        texts = list(ask(clips))
        if any(t is None for t in texts):     # stopped mid-answer: these stay whole
            break
        i = 0
        for g, pieces in group:
            rows = []
            for a, b in pieces:
                if texts[i]:
                    rows.append({"start": a + offset, "end": b + offset, "text": texts[i], "language": language,
                                 "embedding": embed(clips[i], SAMPLE_RATE)})
                i += 1
            if rows:
                lib.replace_segment(g.id, rows)
    return [(a + offset, b + offset) for a, b in found]
