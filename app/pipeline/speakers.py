"""Who spoke: cluster a session's voices into speakers, recognise known voices, keep a voice the
user named (a voice profile). Used after a file transcription, after a live recording, and when
the user names a speaker.

A session's segments carry one kind of embedding (``diarize.embedder``: MFCC or CAM++, told apart
by their length): a resumed transcription or a continued recording embeds the way the session
started (``session_embedder``). Should a session still hold both (CAM++'s weights went missing
half-way), only the kind most of its segments have is clustered (``one_kind``); the others keep
the speaker they had. Voice profiles of the other kind are kept but not compared."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from app.media.diarize import centroids, cluster, embedder, match_profiles, session_kind, update_profile

log = logging.getLogger("minutely.pipeline.speakers")

Row = tuple[int, float, float, bytes | None]


def session_embedder(lib, session_id: int) -> Callable[[np.ndarray, int], np.ndarray]:
    """The embedding function for new segments of a session: the kind its stored segments have,
    or (none yet) the configured one (``MINUTELY_EMBED``)."""
    return embedder(session_kind([r[3] for r in lib.segment_embeddings(session_id)]))


def one_kind(rows: list[Row]) -> list[tuple[int, float, float, bytes]]:
    """The rows with an embedding of the length most of them have (all of them, normally)."""
    kept = [(i, a, b, e) for i, a, b, e in rows if e]
    sizes = [len(r[3]) for r in kept]
    if len(set(sizes)) <= 1:
        return kept
    size = max(set(sizes), key=sizes.count)
    log.warning("a session with two kinds of speaker embedding: %d of %d segments are clustered",
                sizes.count(size), len(kept))
    return [r for r, n in zip(kept, sizes, strict=True) if n == size]


def diarize_session(lib, session_id: int, n_speakers: int | None = None) -> int:
    """Cluster the session's segment embeddings into speakers; name known voices.
    Returns the number of speakers."""
    rows = one_kind(lib.segment_embeddings(session_id))
    if not rows:
        return 0
    emb = np.stack([np.frombuffer(r[3], "<f4") for r in rows])
    durations = np.array([r[2] - r[1] for r in rows])
    labels = cluster(emb, n_speakers=n_speakers, durations=durations)
    # segments whose speaker the user chose keep it; a cluster of only such segments has no speaker
    kept = lib.assign_speakers(session_id, {r[0]: f"S{int(k) + 1}" for r, k in zip(rows, labels, strict=True)})
    cents = centroids(emb, labels)
    known = lib.voice_profiles()
    profiles = [(p.id, np.frombuffer(p.embedding, "<f4")) for p in known if p.embedding]
    matches = match_profiles(cents, profiles) if profiles else {}
    names = {p.id: p.name for p in known}
    for k in range(len(cents)):
        if f"S{k + 1}" not in kept:
            continue
        sp = lib.speaker(session_id, f"S{k + 1}")
        pid = matches.get(k)
        lib.set_speaker_voice(sp.id, cents[k], name=names.get(pid) if pid else None, profile_id=pid)
    return len(cents)


def save_voice(lib, session_id: int, label: str, name: str) -> int:
    """Name a speaker and keep their voice as a profile (new, or merged into one of that name).
    The naming is a step of the session's undo history (``lib.edits``); the saved voice is not.
    A speaker without voice data (ValueError) is left as it was."""
    sp = lib.speaker(session_id, label)
    if not sp.embedding:
        raise ValueError(f"speaker {label} has no voice data (transcribe the session first)")
    emb = np.frombuffer(sp.embedding, "<f4")
    n = sum(1 for g in lib.segments(session_id) if g.speaker_id == sp.id)
    # a profile of that name with the other kind of embedding is kept as it is; this one joins it
    existing = next((p for p in lib.voice_profiles()
                     if p.name == name and p.embedding and len(p.embedding) == len(sp.embedding)), None)
    if existing:
        merged = update_profile(np.frombuffer(existing.embedding, "<f4"), existing.samples, emb, n)
        prof = lib.update_voice_profile(existing.id, embedding=merged.astype("<f4"),
                                        samples=existing.samples + n)
    else:
        prof = lib.add_voice_profile(name, emb.astype("<f4"), samples=n)
    lib.edits.rename_speaker(session_id, label, name, profile_id=prof.id)
    return prof.id


def mark_overlaps(lib, session_id: int, audio: Path | None, cancel: threading.Event | None = None,
                  found: list[tuple[float, float]] | None = None, offset: float = 0.0) -> int:
    """Mark where a second person speaks over the session's labelled segments: the stretches
    ``found`` where two speak (when a scan found them already), else found now by reading
    ``audio`` with the segmentation model (``changes.read_changes``); each gets the nearest other
    speaker (``overlap.second_voices``) and the session's marks are replaced. Returns how many
    were marked; 0, leaving the marks as they were, when the model is not installed, the audio is
    missing or cannot be read again (the transcript is never touched), or ``cancel`` is set.
    ``offset``: where ``audio`` starts in the session (a continued recording's part: only the
    marks from there on are replaced); ``found`` is on the session's timeline."""
    from app.media import overlap
    from app.pipeline.changes import read_changes

    if found is None:
        read = read_changes(audio, cancel) if audio is not None else None
        if read is None:
            return 0
        found = [(a + offset, b + offset) for a, b in read[0]]
    segs = [(g.start, g.end, g.speaker_id) for g in lib.segments(session_id) if g.speaker_id is not None]
    return lib.set_overlaps(session_id, overlap.second_voices(segs, found), after=offset)
