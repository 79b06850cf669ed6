"""Asking the model for the words of utterances: what file transcription and live transcription
share (the instruction, the prompt, the answer budget, cleaning the answer).

Every utterance is asked with the same instruction, written before the audio, so the instruction
is a prompt prefix the engine evaluates once per batch and shares among its parallel sequences.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from app import defaults
from app.engine.cancel import Cancellable
from app.engine.messages import Audio, Message
from app.engine.protocol import ChatEngine
from app.media.audio import SAMPLE_RATE
from app.pipeline.vocabulary import Replacements, hint_sentence

INSTRUCTION = ("Transcribe the speech in this audio exactly as spoken{lang}. Write only the words that "
               "are said, with punctuation: no comments, no timestamps, no speaker names.")
TRANSLATE = ("Translate the speech in this audio into {target}{lang}. Write only the translation: "
             "no comments, no timestamps, no speaker names.")


@dataclass
class TranscribeOptions:
    title: str | None = None
    speakers: int | None = None          # known number of speakers, else automatic
    language: str | None = None          # language of the speech, if known
    translate_to: str | None = None      # write the text in this language instead
    parallel: int = defaults.N_PARALLEL  # utterances decoded together (2.1x one-by-one on 2 CPU threads)
    tokens_per_second: float = 8.0       # answer budget per second of speech (+ a base)
    hints: list[str] = field(default_factory=list)  # spellings: the glossary, the session's attendees
    replacements: dict[str, str] = field(default_factory=dict)  # "Mini Lee" -> "Minutely", after the model
    user_name: str = defaults.USER_NAME  # the local user's speaker name (mic track of a two-track recording)

    @classmethod
    def from_settings(cls, settings, **given) -> TranscribeOptions:
        """The user's standing choices (language, translation, glossary, replacement rules, their
        name), then ``given`` (a command's options; None values are left to the settings)."""
        base = {"language": settings.language or None, "translate_to": settings.translate_to or None,
                "hints": list(settings.glossary), "replacements": dict(settings.replacements),
                "user_name": settings.user_name or defaults.USER_NAME}
        return cls(**{**base, **{k: v for k, v in given.items() if v is not None}})

    def key(self) -> dict:
        """What must match for a run to resume another (the text depends on these)."""
        return {"language": self.language, "translate_to": self.translate_to}

    @property
    def text_language(self) -> str | None:
        """The language the stored text is in."""
        return self.translate_to or self.language


def instruction(opts: TranscribeOptions) -> str:
    """The text before the audio: the same for every utterance of a session (a shared prefix),
    the spelling hints included."""
    lang = f" (the speech is in {opts.language})" if opts.language else ""
    text = TRANSLATE.format(target=opts.translate_to, lang=lang) if opts.translate_to \
        else INSTRUCTION.format(lang=lang)
    hints = hint_sentence(opts.hints)
    return f"{text} {hints}" if hints else text


def prompt_for(audio: np.ndarray, opts: TranscribeOptions) -> list[Message]:
    return [Message.user(instruction(opts), Audio(audio))]


def clean_text(text: str) -> str:
    t = " ".join(text.split())
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "\"'“”":
        t = t[1:-1].strip()
    return re.sub(r"^(transcript|transcription)\s*:\s*", "", t, flags=re.I)


def ask(engine: ChatEngine, audios: Sequence[np.ndarray], opts: TranscribeOptions,
        cancel: Cancellable | None = None) -> list[str | None]:
    """The cleaned text of each utterance ("" when the model heard no words), the replacement rules
    applied, asked together as parallel sequences; None for one whose answer was cut short by
    ``cancel`` (never store it: a cut answer is a truncated transcript)."""
    longest = max(len(a) for a in audios) / SAMPLE_RATE
    replies = engine.chat_batch([prompt_for(a, opts) for a in audios],
                                max_tokens=int(16 + opts.tokens_per_second * longest), cancel=cancel)
    fix = Replacements(opts.replacements)
    return [None if r.finish_reason == "cancelled" else fix.apply(clean_text(r.text)) for r in replies]
