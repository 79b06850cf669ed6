"""Transcribe one segment again (issue 16): its own stretch of the session's audio goes to the model
with the language the user chose, the answer becomes the segment's words (marked edited, the earlier
words restorable, undoable), and a bad ending leaves the segment as it was with one line."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from app.engine.errors import EngineError
from app.engine.messages import Audio
from app.library import Library
from app.media.audio import MediaError, decode_audio, decode_span, write_wav
from app.pipeline.corrections import retranscribe_segment
from app.pipeline.utterances import TranscribeOptions
from tests.support.audio import tone


def session_with_audio(tmp_path, seconds: float = 12.0):
    lib = Library.open(tmp_path / "lib")
    sid = lib.create_session("Call", "recording").id
    x = np.concatenate([tone(4.0, 220), tone(4.0, 330), tone(seconds - 8.0, 440)])
    folder = tmp_path / "lib" / "media" / str(sid)
    folder.mkdir(parents=True, exist_ok=True)
    wav = write_wav(folder / "mix.wav", x)
    lib.add_media(sid, wav, "audio")
    [g1, g2] = lib.add_segments(sid, [{"start": 0.5, "end": 3.5, "text": "hello there", "speaker": "S1"},
                                      {"start": 4.2, "end": 7.7, "text": "the budjet", "speaker": "S2"}])
    return lib, sid, g2, x


class Recording:
    """The engine passed through, with what was asked kept."""

    def __init__(self, engine, answer: str | None = None):
        self.engine, self.answer, self.calls = engine, answer, []

    def chat_batch(self, conversations, **kw):
        self.calls.append(conversations)
        if self.answer is not None:  # a fixed answer: for the logic around the model
            return [SimpleNamespace(text=self.answer, finish_reason="stop") for _ in conversations]
        return self.engine.chat_batch(conversations, **kw)


def test_the_segments_audio_goes_to_the_model_with_the_chosen_language(tmp_path, engine):
    lib, sid, seg, x = session_with_audio(tmp_path)
    rec = Recording(engine)
    opts = TranscribeOptions(language="German")
    try:
        g = retranscribe_segment(lib, rec, seg, opts)
    except EngineError as e:  # the random tiny model may hear no words: then nothing changes
        assert "no words" in str(e)
        g = lib.segment(seg)
        assert g.text == "the budjet" and not g.edited
    else:
        assert g.edited and g.original_text == "the budjet" and g.text != "the budjet"
    [[msgs]] = rec.calls
    parts = msgs[-1].parts
    audio = [p for p in parts if isinstance(p, Audio)][0].samples
    assert abs(len(audio) - 3.5 * 16000) <= 160  # exactly the segment's 3.5 s
    expected = x[int(4.2 * 16000):int(7.7 * 16000)]
    n = min(len(audio), len(expected))
    assert np.corrcoef(audio[:n], expected[:n])[0, 1] > 0.99  # and from the right place
    assert "in German" in str(parts[0].text)
    lib.close()


def test_the_answer_replaces_the_words_and_undo_takes_it_back(tmp_path):
    lib, sid, seg, _ = session_with_audio(tmp_path)
    g = retranscribe_segment(lib, Recording(None, "the budget"), seg, TranscribeOptions())
    assert (g.text, g.edited, g.original_text) == ("the budget", True, "the budjet")
    assert [h.segment_id for h in lib.search("budget")] == [seg]  # searchable at once
    assert lib.edits.undo(sid) is not None
    assert lib.segment(seg).text == "the budjet"
    lib.close()


def test_no_words_or_no_audio_leave_the_segment_as_it_was(tmp_path):
    lib, sid, seg, _ = session_with_audio(tmp_path)
    with pytest.raises(EngineError, match="no words"):
        retranscribe_segment(lib, Recording(None, "   "), seg, TranscribeOptions())
    for m in lib.media(sid, "audio"):
        lib.absolute(m).unlink()
    with pytest.raises(MediaError, match="missing or was moved"):
        retranscribe_segment(lib, Recording(None, "x"), seg, TranscribeOptions())
    assert lib.segment(seg).text == "the budjet" and not lib.segment(seg).edited
    lib.close()


@pytest.mark.parametrize("start,end", [(0.0, 1.0), (3.3, 5.1), (9.0, 12.0)])
def test_a_span_decodes_like_that_part_of_the_whole(tmp_path, start, end):
    x = np.concatenate([tone(4.0, 220), tone(4.0, 330), tone(4.0, 440)])
    wav = write_wav(tmp_path / "a.wav", x)
    whole = decode_audio(wav)
    span = decode_span(wav, start, end)
    ref = whole[int(round(start * 16000)):int(round(end * 16000))]
    assert abs(len(span) - len(ref)) <= 1 and np.allclose(span[:len(ref)], ref[:len(span)], atol=1e-4)
