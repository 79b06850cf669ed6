"""The team's words: the glossary and the attendees reach the prompts (with the real tiny model,
the messages it is sent recorded), and replacement rules reach the stored segments.

The effect of the hints on the real model's spelling is not measured here (the tiny model's words
are noise): these tests check that the words get there and that the rules apply."""

from __future__ import annotations

import json
import re

import pytest

from app.library import Library
from app.library.models import Attendee, Event
from app.pipeline import utterances
from app.pipeline.summarize import SummaryOptions, summarize
from app.pipeline.transcribe import TranscribeOptions, prepare_file, transcribe_file
from app.pipeline.vocabulary import hint_sentence, replace
from app.settings import Settings
from tests.support.meetings import have_tools, make_meeting


def test_replacement_rules_are_whole_words_any_case_written_as_given():
    rules = {"Mini Lee": "Minutely", "okr": "OKR", "a\\1": "b\\2"}
    assert replace("mini  lee and MINI LEE, but not minilee or Mini Leeway", rules) == \
        "Minutely and Minutely, but not minilee or Mini Leeway"
    assert replace("our okrs and okr.", rules) == "our okrs and OKR."
    assert replace("x a\\1 y", rules) == "x b\\2 y"  # literal, no regex groups
    assert replace("nothing", {}) == "nothing"


def test_hint_sentence_names_each_term_once():
    assert hint_sentence([]) == ""
    assert hint_sentence(["Minutely", "minutely", " Ana  Lima ", ""]) == \
        "Names and terms that may come up, spelled like this: Minutely, Ana Lima."


def test_settings_keep_the_glossary_and_rules(_private_home):
    s = Settings(glossary=["Minutely", "OKR"], replacements={"Mini Lee": "Minutely"}, notes_folder="/v")
    s.save()
    assert Settings.load() == s
    path = _private_home / "settings.json"
    path.write_text(json.dumps({"glossary": "Minutely", "replacements": {"a": 1}, "notes_auto_export": True}))
    loaded = Settings.load()  # wrong types fall back to the defaults, the rest is kept
    assert loaded.glossary == [] and loaded.replacements == {} and loaded.notes_auto_export is True


class Recording:
    """The real engine, with every conversation it is sent kept."""

    def __init__(self, engine):
        self._engine, self.batches, self.streams = engine, [], []

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def chat_batch(self, convs, *a, **kw):
        self.batches.append([list(c) for c in convs])
        return self._engine.chat_batch(convs, *a, **kw)

    def stream(self, msgs, *a, **kw):
        self.streams.append(list(msgs))
        return self._engine.stream(msgs, *a, **kw)


def _texts(message):
    return " ".join(p.text for p in message.parts if hasattr(p, "text"))


@pytest.mark.skipif(not have_tools(), reason="needs espeak-ng and sox (scripts/setup.sh --test)")
def test_the_words_reach_the_prompt_and_the_rules_the_segments(engine, tmp_path):
    wav = make_meeting(tmp_path, 2, 4, seed=3).wav
    with Library.open(tmp_path / "data") as lib:
        def recorded(rules):
            s = lib.create_session("Stand-up", "recording")
            lib.events.link_session(s.id, Event(uid="u", title="Stand-up", start=s.created, end=s.created),
                                    [Attendee("Ana Lima", "ana@example.com"), Attendee("Chen Wei", "")])
            opts = TranscribeOptions(hints=["Minutely", "OKR"], replacements=rules, parallel=4)
            prepare_file(lib, wav, opts, session_id=s.id)
            rec = Recording(engine)
            transcribe_file(lib, rec, wav, opts)
            return s.id, rec

        sid, rec = recorded({})
        convs = [c for batch in rec.batches for c in batch]
        assert convs
        first = convs[0][0]
        text = _texts(first)
        assert "spelled like this: Minutely, OKR, Ana Lima, Chen Wei." in text
        # the hints are part of the instruction, before the audio, the same for every utterance
        assert type(first.parts[-1]).__name__ == "Audio" and text.startswith(utterances.INSTRUCTION[:20])
        assert {_texts(c[0]) for c in convs} == {text}
        assert len(lib.speakers(sid)) <= 2  # the attendees' number is the speaker count
        raw = [g.text for g in lib.segments(sid)]
        word = next(w for t in raw for w in re.findall(r"[^\W\d_]{3,}", t))
        # the same audio again, now with a rule for a word the model wrote: every one is replaced
        sid2, _ = recorded({word: "Minutely"})
        fixed = [g.text for g in lib.segments(sid2)]
        pat = re.compile(rf"(?<!\w){re.escape(word)}(?!\w)", re.I)
        assert fixed == [pat.sub("Minutely", t) for t in raw] and any("Minutely" in t for t in fixed)


def test_the_glossary_and_attendees_reach_the_summary_prompt(engine, tmp_path):
    vault = tmp_path / "vault"
    vault.mkdir()
    with Library.open(tmp_path / "data") as lib:
        s = lib.create_session("Budget review", "file")
        lib.add_segments(s.id, [{"start": i * 5.0, "end": i * 5.0 + 4, "speaker": "S1",
                                 "text": f"the mini lee budget item {i}"} for i in range(6)])
        lib.events.link_session(s.id, Event(uid="u", title="Budget review", start=s.created, end=s.created),
                                [Attendee("Ana Lima", "ana@example.com")])
        rec = Recording(engine)
        r = summarize(lib, rec, s.id, "general",
                      SummaryOptions(max_tokens=32, items_max_tokens=64, glossary=["Minutely"],
                                     notes_folder=str(vault)))
        first = _texts(rec.streams[0][0])
        assert "The attendees: Ana Lima." in first and "spelled like this: Minutely, Ana Lima." in first
        # the note follows the finished summary
        assert r.note is not None and r.note_error is None
        note = (vault / r.note.rsplit("/", 1)[-1]).read_text(encoding="utf-8")
        assert f"minutely_session: {s.id}" in note and "Ana Lima" in note


def test_transcribe_options_from_settings():
    s = Settings(language="de", glossary=["Minutely"], replacements={"Mini Lee": "Minutely"})
    o = TranscribeOptions.from_settings(s, language=None, speakers=3)
    assert (o.language, o.translate_to, o.speakers) == ("de", None, 3)
    assert o.hints == ["Minutely"] and o.replacements == {"Mini Lee": "Minutely"}
    assert TranscribeOptions.from_settings(s, language="fr").language == "fr"
