"""Dictation and voice editing with the one loaded model (no Qt).

Dictation: the recorded speech goes to the model as audio with a fixed
instruction (language, optional translation, filler words, spoken
punctuation) and the text comes back. Speech is checked with the VAD first,
so silence is "nothing was heard", never a call that makes text up.

Voice edit: the selected text and the spoken instruction go to the model in
ONE call — the instruction as *audio*, not transcribed first — and the answer
is constrained by a JSON schema to ``{"text": ...}``, so nothing but the
replacement can come back (no "Sure! Here is…"). A typed instruction works
the same way.

Deterministic clean-up after the model: spoken punctuation ("comma", "new
paragraph") and filler words ("um", "uh") are handled for English, where the
word lists are known; for other languages the instruction asks the model and
nothing is rewritten after it.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.engine.errors import EngineError
from app.engine.messages import Audio, Message, Text
from app.engine.protocol import ChatEngine
from app.library.models import SessionState
from app.media.audio import SAMPLE_RATE, write_wav
from app.media.vad import segment
from app.pipeline.structured import complete_json

EDIT_SCHEMA = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"],
               "additionalProperties": False}

DICTATE = ("Transcribe this dictation exactly as spoken{lang}, as text ready to paste into a document. "
           "Write only the dictated words with punctuation: no comments, no quotes around them.{extra}")
TRANSLATE = ("Translate this dictation into {target}{lang}, as text ready to paste into a document. "
             "Write only the translation: no comments, no quotes around it.{extra}")
FILLERS_HINT = " Leave out filler words and false starts (um, uh, er)."
PUNCT_HINT = (" When the speaker says a punctuation mark or layout command (\"comma\", \"period\", "
              "\"question mark\", \"new line\", \"new paragraph\"), write the mark or the line break instead "
              "of the word.")
EDIT_SYSTEM = ("You edit text for the user. You get the selected text and an instruction (spoken as audio, "
               "or typed). Apply the instruction to the selected text and answer with JSON "
               "{\"text\": \"...\"} holding ONLY the full replacement text: no explanations, no quotes, no "
               "markdown fences. Keep the selected text's language unless the instruction asks for another.")


class NothingHeard(EngineError):
    """The recording holds no speech: nothing is inserted."""


@dataclass
class DictationOptions:
    language: str | None = None        # of the speech, if known
    translate_to: str | None = None    # write the text in this language instead
    remove_fillers: bool = True
    spoken_punctuation: bool = True
    tokens_per_second: float = 8.0     # answer budget per second of speech (+ a base)


def _is_english(lang: str | None) -> bool:
    return lang is None or lang.strip().lower() in ("", "en", "eng", "english") or \
        lang.strip().lower().startswith("en-")


# Common English words: with no language given, the English clean-up runs only on text that holds
# enough of them. "um" is a German and Portuguese word, "er" German, Danish and Norwegian ("er kommt",
# "det er"): rewriting every unknown-language dictation with English word lists would delete them.
_EN_WORDS = frozenset("""a about all an and are as at be but by can do for from have he i if in is it me my
no not of on or our so that the then there they this to was we what when will with would you your
comma period colon semicolon new paragraph line question exclamation mark""".split())  # spoken marks too


def looks_english(text: str) -> bool:
    words = re.findall(r"[^\W\d_]+(?:'[^\W\d_]+)?", text.lower())
    if not words:
        return False
    hits = sum(w in _EN_WORDS or w.split("'")[0] in _EN_WORDS for w in words)
    return hits >= 1 and hits / len(words) >= 0.15


# -- spoken punctuation and fillers (English) -----------------------------------
_PUNCT = [  # longest first
    (r"new paragraph", "\n\n"), (r"new line|newline|next line", "\n"),
    (r"question mark", "?"), (r"exclamation (?:mark|point)", "!"), (r"full stop|period", "."),
    (r"semicolon|semi-colon", ";"), (r"colon", ":"), (r"comma", ","),
    (r"open (?:paren|parenthesis|bracket)", "("), (r"close (?:paren|parenthesis|bracket)", ")"),
]
# "period", "full stop" and "colon" are also ordinary words ("the period of growth"): they count as
# marks only at the end of the text or before another mark or a line break.
_AMBIGUOUS = r"full stop|period|colon"
_CLEAR = "|".join(p for p, _ in _PUNCT if p not in ("full stop|period", "colon"))
_PUNCT_RE = re.compile(r"[,.;:]?\s*\b(" + _CLEAR + r"|(?:" + _AMBIGUOUS + r")(?=\s*(?:[,.;:?!]|$|\n|\b(?:"
                       + _CLEAR + r")\b)))\b[,.;:]?", re.I)
_FILLER_RE = re.compile(r"(?<![\w'])(?:um+|uh+|erm+|er|uhm+|hmm+|mm+)(?![\w'])[,.]?\s*", re.I)


def _mark(word: str) -> str:
    w = word.lower()
    for pat, mark in _PUNCT:
        if re.fullmatch(pat, w):
            return mark
    return ""


def apply_spoken_punctuation(text: str) -> str:
    """'hello comma world period new paragraph next' -> 'hello, world.\\n\\nNext' (English words)."""
    out = _PUNCT_RE.sub(lambda m: "\x00" + _mark(m.group(1)) + "\x00", text)
    # attach marks to the word before; no space before closing marks, one after
    out = re.sub(r"\s*\x00([,.;:?!)])\x00\s*", r"\1 ", out)
    out = re.sub(r"\s*\x00\(\x00\s*", " (", out)
    out = re.sub(r"[ \t]*\x00(\n+)\x00[ \t]*", r"\1", out)
    out = re.sub(r"([,.;:?!])\s*([,.;:?!])", r"\2", out)  # "hello, comma" -> one mark
    out = re.sub(r"[ \t]+\n", "\n", out)
    out = re.sub(r"[ \t]{2,}", " ", out).strip()
    # capitalise after a sentence end or a paragraph
    return re.sub(r"(^|[.?!]\s+|\n)([a-z])", lambda m: m.group(1) + m.group(2).upper(), out)


def remove_fillers(text: str) -> str:
    out = _FILLER_RE.sub("", text)
    out = re.sub(r"[ \t]{2,}", " ", out).strip()
    return out[:1].upper() + out[1:] if out and text[:1].isupper() else out


_BREAKS = re.compile(r"\r\n|[\r\u2028\u2029\x85]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean_text(text: str) -> str:
    """Line breaks as \\n (what a text field holds; Qt turns \\r and U+2028 into paragraph breaks, so
    text with them would not match what was inserted) and no control characters."""
    return _CONTROL.sub("", _BREAKS.sub("\n", text))


def tidy(text: str, opts: DictationOptions) -> str:
    t = clean_text(text).strip()
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "\"'“”":
        t = t[1:-1].strip()
    lang = opts.translate_to or opts.language
    if (lang and _is_english(lang)) or (not lang and looks_english(t)):
        if opts.remove_fillers:
            t = remove_fillers(t)
        if opts.spoken_punctuation:
            t = apply_spoken_punctuation(t)
    return t


# -- the calls ---------------------------------------------------------------------
def speech_spans(audio: np.ndarray) -> list[tuple[float, float]]:
    return [(u.start, u.end) for u in segment(np.asarray(audio, np.float32))]


def instruction(opts: DictationOptions) -> str:
    lang = f" (the speech is in {opts.language})" if opts.language else ""
    extra = (FILLERS_HINT if opts.remove_fillers else "") + (PUNCT_HINT if opts.spoken_punctuation else "")
    if opts.translate_to:
        return TRANSLATE.format(target=opts.translate_to, lang=lang, extra=extra)
    return DICTATE.format(lang=lang, extra=extra)


def dictation_messages(audio: np.ndarray, opts: DictationOptions) -> list[Message]:
    return [Message.user(instruction(opts), Audio(np.asarray(audio, np.float32)))]


@dataclass
class Dictation:
    text: str
    raw: str                       # what the model wrote, before the clean-up
    seconds: float                 # of audio
    reply: object = None           # the engine's Reply (timings)
    model_seconds: float = 0.0


def dictate(engine: ChatEngine, audio: np.ndarray, opts: DictationOptions | None = None) -> Dictation:
    """The text of the dictated ``audio`` (16 kHz mono float32). NothingHeard if it has no speech."""
    opts = opts or DictationOptions()
    audio = np.asarray(audio, np.float32).reshape(-1)
    secs = len(audio) / SAMPLE_RATE
    spans = speech_spans(audio) if len(audio) else []
    if not spans:
        raise NothingHeard("nothing was heard (the recording has no speech)")
    a, b = spans[0][0], spans[-1][1]
    lo, hi = max(0, int((a - 0.2) * SAMPLE_RATE)), min(len(audio), int((b + 0.3) * SAMPLE_RATE))
    clip = audio[lo:hi]
    budget = int(32 + opts.tokens_per_second * len(clip) / SAMPLE_RATE)
    t0 = time.perf_counter()
    r = engine.chat(dictation_messages(clip, opts), max_tokens=budget, temperature=0.0)
    took = time.perf_counter() - t0
    if r.finish_reason == "cancelled":
        raise EngineError("dictation cancelled")
    return Dictation(tidy(r.text, opts), r.text, secs, r, took)


def edit_messages(selection: str, instruction_audio: np.ndarray | None = None,
                  instruction_text: str | None = None) -> list[Message]:
    if (instruction_audio is None) == (instruction_text is None):
        raise ValueError("give the instruction as audio or as text (one of them)")
    parts: list = [Text(f"Selected text:\n<<<\n{selection}\n>>>\n")]
    if instruction_audio is not None:
        parts += [Text("Instruction (spoken):"), Audio(np.asarray(instruction_audio, np.float32))]
    else:
        assert instruction_text is not None  # checked above: one of them
        parts.append(Text(f"Instruction: {instruction_text.strip()}"))
    return [Message.system(EDIT_SYSTEM), Message.user(*parts)]


def parse_edit(text: str) -> str:
    """The replacement from the model's JSON (closing a cut-off answer if it must)."""
    data = None
    for attempt in (text, text + '"}', text + '}'):  # an answer cut off inside its string: keep the text
        try:
            data = json.loads(attempt, strict=False)
            break
        except ValueError:
            continue
    if data is None:
        try:
            data = complete_json(text)
        except ValueError:
            data = None
    if not isinstance(data, dict) or not isinstance(data.get("text"), str):
        raise EngineError("the model gave no replacement text")
    return data["text"]


@dataclass
class Edit:
    text: str
    reply: object = None
    model_seconds: float = 0.0


def voice_edit(engine: ChatEngine, selection: str, instruction_audio: np.ndarray | None = None,
               instruction_text: str | None = None, *, max_tokens: int | None = None) -> Edit:
    """Apply a spoken (audio) or typed instruction to ``selection``; the replacement only."""
    if not selection.strip():
        raise EngineError("select the text to edit first")
    if instruction_audio is not None:
        audio = np.asarray(instruction_audio, np.float32).reshape(-1)
        spans = speech_spans(audio) if len(audio) else []
        if not spans:
            raise NothingHeard("no instruction was heard (the recording has no speech)")
        lo = max(0, int((spans[0][0] - 0.2) * SAMPLE_RATE))
        hi = min(len(audio), int((spans[-1][1] + 0.3) * SAMPLE_RATE))
        instruction_audio = audio[lo:hi]
    elif not (instruction_text or "").strip():
        raise EngineError("the instruction is empty")
    msgs = edit_messages(selection, instruction_audio, instruction_text)
    budget = max_tokens or int(64 + 2.5 * len(selection) / 3)  # room to rewrite, translate or expand
    t0 = time.perf_counter()
    r = engine.chat(msgs, max_tokens=budget, temperature=0.0, json_schema=EDIT_SCHEMA)
    took = time.perf_counter() - t0
    if r.finish_reason == "cancelled":
        raise EngineError("edit cancelled")
    return Edit(clean_text(parse_edit(r.text)), r, took)


def require_speech(audio: np.ndarray, what: str = "nothing was heard") -> None:
    """NothingHeard for a recording without speech. Called before the engine is touched, so
    silence never loads the model (seconds to a minute for the real one)."""
    audio = np.asarray(audio, np.float32).reshape(-1)
    if not len(audio) or not speech_spans(audio):
        raise NothingHeard(f"{what} (the recording has no speech)")


def edit_selection(engine: ChatEngine, selection: str, *, instruction_audio: np.ndarray | None = None,
                   instruction_text: str | None = None) -> str:
    """The replacement for ``selection`` by a spoken or typed instruction: the one voice-edit step
    every text field uses (the dictation pad's and any other). ``engine`` may be a function that
    gives the engine: a silent instruction is refused before it is called."""
    if instruction_audio is not None:
        require_speech(instruction_audio, "no instruction was heard")
    if callable(engine) and not hasattr(engine, "chat"):
        engine = engine()
    return voice_edit(engine, selection, instruction_audio=instruction_audio,
                      instruction_text=instruction_text).text


# -- the library -------------------------------------------------------------------
def save_dictation(lib, audio: np.ndarray, text: str, opts: DictationOptions | None = None,
                   title: str | None = None) -> int:
    """Keep a dictation as a session (kind 'dictation': its audio and its text), searchable."""
    opts = opts or DictationOptions()
    secs = len(audio) / SAMPLE_RATE
    title = title or dictation_title(text)
    with lib.transaction():
        s = lib.create_session(title, "dictation", status=SessionState.READY)
        path = lib.media_dir(s.id) / "dictation.wav"
        write_wav(path, np.asarray(audio, np.float32))
        lib.add_media(s.id, path, "audio", 0.0)
        lib.add_segment(s.id, 0.0, max(secs, 0.01), text)
        lib.update_session(s.id, duration=secs, language=opts.translate_to or opts.language)
    return s.id


def dictation_title(text: str) -> str:
    words = text.split()
    return "Dictation: " + " ".join(words[:8]) + ("…" if len(words) > 8 else "")


class DictationTake:
    """A continuous dictation kept as ONE session: a segment per utterance as each is written (times
    on the take's own timeline), then the take's whole recording as its audio. The session appears
    with the first utterance that has text; a take in which nothing was heard leaves nothing.
    ``add`` and ``finish`` run on the model worker, in the order the utterances were cut."""

    def __init__(self, opts: DictationOptions | None = None):
        self.opts = opts or DictationOptions()
        self.session_id: int | None = None
        self.end = 0.0

    def add(self, lib, start: float, end: float, text: str) -> int:
        with lib.transaction():
            if self.session_id is None:
                s = lib.create_session(dictation_title(text), "dictation", status=SessionState.READY)
                self.session_id = s.id
                lib.update_session(s.id, language=self.opts.translate_to or self.opts.language)
            lib.add_segment(self.session_id, start, end, text)
            self.end = max(self.end, end)
        return self.session_id

    def finish(self, lib, wav: Path | None, duration: float | None = None) -> int | None:
        """Move the take's recording (a WAV, on the same timeline) into the session's media."""
        if self.session_id is None or wav is None or not Path(wav).exists():
            return self.session_id
        import shutil

        dest = lib.media_dir(self.session_id) / "dictation.wav"
        shutil.move(str(wav), dest)
        with lib.transaction():
            lib.add_media(self.session_id, dest, "audio", 0.0)
            lib.update_session(self.session_id, duration=max(self.end, duration or 0.0))
        return self.session_id


def read_text_file(path: str | Path) -> str:
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"text file not found: {p}") from None
    except UnicodeDecodeError:
        raise ValueError(f"not a UTF-8 text file: {p.name}") from None
