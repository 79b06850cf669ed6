"""Dictation and voice edit through the real engine (tiny Gemma 4), the library and the CLI."""

from __future__ import annotations

import numpy as np
import pytest

from app.engine.messages import Audio, Text
from app.media.audio import write_wav
from app.pipeline.dictate import (
    EDIT_SCHEMA,
    DictationOptions,
    NothingHeard,
    apply_spoken_punctuation,
    clean_text,
    dictate,
    parse_edit,
    remove_fillers,
    save_dictation,
    tidy,
    voice_edit,
)
from tests.support.cli import assert_one_line_error, model_args, run
from tests.support.meetings import VOICES, have_tools, speak

needs_speech = pytest.mark.skipif(not have_tools(), reason="needs espeak-ng and sox")


class Recording:
    """The real engine, with every call's messages and options kept for inspection."""

    def __init__(self, engine):
        self.engine, self.calls = engine, []

    def chat(self, messages, **kw):
        self.calls.append((messages, kw))
        return self.engine.chat(messages, **kw)


@pytest.fixture(scope="module")
def said(tmp_path_factory):
    if not have_tools():
        pytest.skip("needs espeak-ng and sox")
    cache = tmp_path_factory.mktemp("speech")
    x = speak("Please send the budget report to Ana by Friday comma thanks", VOICES[0], cache)
    pad = np.zeros(8000, np.float32)
    return np.concatenate([pad, x, pad])


def test_spoken_punctuation_and_fillers_in_english():
    assert apply_spoken_punctuation("hello comma world period new paragraph next") == "Hello, world.\n\nNext"
    assert apply_spoken_punctuation("the period of growth was long") == "The period of growth was long"
    assert apply_spoken_punctuation("note colon new line buy milk period") == "Note:\nBuy milk."
    assert apply_spoken_punctuation("is it done question mark") == "Is it done?"
    assert remove_fillers("um so uh I think we should erm go") == "so I think we should go"
    assert remove_fillers("Umbrella and hummus") == "Umbrella and hummus"  # words that start like fillers
    # other languages: nothing is rewritten after the model
    assert tidy("hola comma um mundo", DictationOptions(language="es")) == "hola comma um mundo"
    assert tidy("hola comma mundo", DictationOptions(language="en")) == "Hola, mundo"


def test_text_for_a_field_has_plain_line_breaks_and_no_control_characters():
    # Qt turns \r and U+2028 into paragraph breaks: text holding them would not be what was inserted
    assert clean_text("a\r\nb\rc\u2028d\u2029e\x00f\x1b\tg") == "a\nb\nc\nd\ne" + "f\tg"
    assert tidy("one\rtwo\x07", DictationOptions(language="de")) == "one\ntwo"


def test_no_language_given_leaves_other_languages_words_alone():
    # the default setting is "detect": English word lists must not delete German "er"/"um",
    # Danish "er" or Portuguese "um" (all ordinary words there)
    for text in ("Ich glaube er kommt morgen", "Wir treffen uns um acht", "Det er en god idé",
                 "Eu comprei um carro ontem"):
        assert tidy(text, DictationOptions()) == text
    assert tidy("I think um we should uh go comma then stop", DictationOptions()) == \
        "I think we should go, then stop"
    assert tidy("hello comma world period", DictationOptions()) == "Hello, world."


@needs_speech
def test_dictation_sends_the_audio_and_returns_clean_text(engine, said):
    rec = Recording(engine)
    d = dictate(rec, said, DictationOptions(language="English"))
    (msgs, kw), = rec.calls
    parts = msgs[-1].parts
    audio = [p for p in parts if isinstance(p, Audio)]
    assert len(audio) == 1 and 0 < len(audio[0].samples) <= len(said)  # trimmed to the speech
    assert any(isinstance(p, Text) and "English" in p.text for p in parts)
    assert kw["max_tokens"] >= 32 and d.text == tidy(d.raw, DictationOptions(language="English"))
    assert d.seconds == pytest.approx(len(said) / 16000)


def test_silence_is_nothing_heard_and_no_model_call(engine):
    rec = Recording(engine)
    for audio in (np.zeros(16000 * 3, np.float32), np.zeros(0, np.float32),
                  (0.001 * np.random.default_rng(0).standard_normal(16000 * 2)).astype(np.float32)):
        with pytest.raises(NothingHeard):
            dictate(rec, audio)
    assert rec.calls == []


@needs_speech
def test_voice_edit_is_one_call_with_the_spoken_instruction_and_the_selection(engine, said):
    rec = Recording(engine)
    sel = "we has went to the meeting yesterday and it were good"
    out = voice_edit(rec, sel, instruction_audio=said)
    (msgs, kw), = rec.calls
    user = msgs[-1].parts
    assert any(isinstance(p, Audio) for p in user), "the instruction goes in as audio"
    assert any(isinstance(p, Text) and sel in p.text for p in user), "with the selection"
    assert kw["json_schema"] == EDIT_SCHEMA  # constrained: only the replacement can come back
    assert isinstance(out.text, str) and out.text == clean_text(parse_edit(rec.engine.last_text if hasattr(
        rec.engine, "last_text") else out.reply.text))


def test_typed_instruction_works_the_same_way(engine):
    rec = Recording(engine)
    out = voice_edit(rec, "hello world", instruction_text="make it formal")
    (msgs, kw), = rec.calls
    assert not any(isinstance(p, Audio) for p in msgs[-1].parts)
    assert any(isinstance(p, Text) and "make it formal" in p.text for p in msgs[-1].parts)
    assert isinstance(out.text, str)
    with pytest.raises(Exception, match="select the text"):
        voice_edit(rec, "   ", instruction_text="shorter")


def test_parse_edit_takes_only_the_text():
    assert parse_edit('{"text": "Hello, Ana."}') == "Hello, Ana."
    assert parse_edit('{"text": "cut off in the mid') == "cut off in the mid"


@needs_speech
def test_a_dictation_is_a_searchable_session(tmp_path, said):
    from app.library import Library

    with Library.open(tmp_path / "home") as lib:
        sid = save_dictation(lib, said, "Send the budget report to Ana by Friday.")
        s = lib.get_session(sid)
        assert s.kind == "dictation" and s.status == "ready" and s.duration == pytest.approx(len(said) / 16000)
        assert lib.absolute(lib.media(sid, "audio")[0]).exists()
        assert {h.session_id for h in lib.search("budget report")} == {sid}


@needs_speech
def test_cli_dictate_edit_and_their_errors(tmp_path, tiny_model, said):
    wav = write_wav(tmp_path / "d.wav", said)
    p = run("dictate", str(wav), "--save", *model_args(tiny_model))
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() and "saved as session" in p.stderr
    quiet = write_wav(tmp_path / "quiet.wav", np.zeros(32000, np.float32))
    p = run("dictate", str(quiet), *model_args(tiny_model))
    assert p.returncode == 1
    assert p.stderr.strip() == "minutely: nothing was heard: no speech in quiet.wav (2.00 s of audio)"
    text = tmp_path / "t.txt"
    text.write_text("we has went there")
    p = run("edit", "--text-file", str(text), "--instruction", "fix the grammar", *model_args(tiny_model))
    assert p.returncode == 0, p.stderr
    p = run("edit", "--text-file", str(text), "--instruction-audio", str(wav), *model_args(tiny_model))
    assert p.returncode == 0, p.stderr
    assert_one_line_error(run("edit", "--text-file", str(tmp_path / "none.txt"), "--instruction", "x",
                              *model_args(tiny_model)), 2)
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"not audio" * 50)
    assert_one_line_error(run("dictate", str(bad), *model_args(tiny_model)), 2)


def test_a_continuous_take_is_one_session_with_a_segment_per_utterance(tmp_path):
    from app.library import Library
    from app.pipeline.dictate import DictationTake

    with Library.open(tmp_path / "home") as lib:
        take = DictationTake(DictationOptions(language="en"))
        assert take.finish(lib, None) is None and lib.sessions() == []  # nothing heard: nothing kept
        sid = take.add(lib, 0.5, 2.0, "Budget first.")
        assert take.add(lib, 3.0, 4.5, "Then the schedule.") == sid
        wav = write_wav(tmp_path / "take.wav", np.zeros(16000 * 5, np.float32))
        assert take.finish(lib, wav, 5.0) == sid
        (s,) = lib.sessions()
        assert s.kind == "dictation" and s.title == "Dictation: Budget first." and s.duration == 5.0
        assert [(x.start, x.end, x.text) for x in lib.segments(sid)] == [(0.5, 2.0, "Budget first."),
                                                                      (3.0, 4.5, "Then the schedule.")]
        (m,) = lib.media(sid, "audio")
        assert lib.absolute(m).exists() and not wav.exists()  # moved into the session's folder
        assert {h.session_id for h in lib.search("schedule")} == {sid}
