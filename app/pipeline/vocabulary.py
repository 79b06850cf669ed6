"""The team's words: spelling hints for the model and literal replacements after it.

Hints (the settings' glossary, plus a session's attendees) are one sentence the transcription
instruction and the summary prompt carry. Replacement rules ("Mini Lee" -> "Minutely") are
applied to each segment's text after transcription: whole words only, matched without regard
to case (and to how much space separates the words), written exactly as the replacement is
spelled. Whether hints change what the model writes is not measured.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping

MAX_HINTS = 60           # terms in one hint sentence (the instruction stays a short shared prefix)
MAX_HINT_CHARS = 1200
HINT = "Names and terms that may come up, spelled like this: {terms}."


def terms(*groups: Iterable[str]) -> list[str]:
    """The terms of all groups, in order, each once (case-insensitively), blanks left out."""
    out: list[str] = []
    seen: set[str] = set()
    for group in groups:
        for t in group or ():
            t = " ".join(str(t).split())
            if t and t.casefold() not in seen:
                seen.add(t.casefold())
                out.append(t)
    return out


def hint_sentence(words: Iterable[str]) -> str:
    """One sentence naming the terms ("" for none), cut at MAX_HINTS terms / MAX_HINT_CHARS."""
    kept: list[str] = []
    size = 0
    for t in terms(words)[:MAX_HINTS]:
        size += len(t) + 2
        if size > MAX_HINT_CHARS:
            break
        kept.append(t)
    return HINT.format(terms=", ".join(kept)) if kept else ""


def _pattern(src: str) -> re.Pattern[str]:
    words = [re.escape(w) for w in src.split()]
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", re.IGNORECASE)


def _literal(repl: str) -> Callable[[re.Match[str]], str]:
    """The replacement as written (no backslash or group processing)."""
    return lambda _m: repl


class Replacements:
    """Compiled rules; the longest source first, so "Mini Lee app" wins over "Mini Lee"."""

    def __init__(self, rules: Mapping[str, str] | None):
        pairs = [(" ".join(str(k).split()), str(v)) for k, v in (rules or {}).items()]
        pairs = [(k, v) for k, v in pairs if k]
        pairs.sort(key=lambda kv: -len(kv[0]))
        self._rules = [(_pattern(k), v) for k, v in pairs]

    def __bool__(self) -> bool:
        return bool(self._rules)

    def apply(self, text: str) -> str:
        for pat, repl in self._rules:
            text = pat.sub(_literal(repl), text)
        return text


def replace(text: str, rules: Mapping[str, str] | None) -> str:
    return Replacements(rules).apply(text)
