"""Corrections that need the model: transcribe one segment again (say, in another language).

The user asks for it from a segment's context menu: the segment's stretch of the session's
audio is asked again with the file pipeline's instruction (``utterances.ask``), and the answer
replaces the segment's words through ``lib.edits`` — so it is marked edited (a later
re-transcription of the session leaves it), the earlier words stay restorable, and Undo takes
it back.
"""

from __future__ import annotations

from app.engine.cancel import Cancellable
from app.engine.errors import EngineError
from app.engine.protocol import ChatEngine
from app.library.models import Segment
from app.media.audio import SAMPLE_RATE, MediaError, decode_span
from app.pipeline import utterances
from app.pipeline.utterances import TranscribeOptions


class RetranscribeCancelled(Exception):
    """Cancelled while the model answered: the segment is unchanged."""


def retranscribe_segment(lib, engine: ChatEngine, segment_id: int, opts: TranscribeOptions,
                         cancel: Cancellable | None = None) -> Segment:
    """Ask the model for segment ``segment_id``'s words again with ``opts`` (language,
    translation, glossary); store them as the segment's words; return the segment."""
    g = lib.segment(segment_id)
    path = lib.session_audio(g.session_id, include_source=True)
    if path is None:
        raise MediaError("the audio of this session is missing or was moved")
    audio = decode_span(path, g.start, g.end)
    if len(audio) < SAMPLE_RATE // 20:
        raise MediaError(f"the audio of this session ends before {g.start:.1f} s")
    text = utterances.ask(engine, [audio], opts, cancel)[0]
    if text is None:
        raise RetranscribeCancelled("transcribing the segment again was cancelled")
    if not text:
        raise EngineError("the model heard no words in this segment; it is left as it was")
    return lib.edits.edit_segment(segment_id, text)
