"""A session's transcript as model context: timed lines, and parts that fit a token budget.

Every understanding job (summaries, questions about a meeting, video questions)
shows the model the transcript the same way, one line per segment::

    [03:07] Ana: we keep the budget as it is
    [1:02:03] S2: agreed                 (past an hour: h:mm:ss)

The speaker is the name the user gave, else the diarization label; a segment
without a speaker has no name part. Times are seconds from the session start,
so an answer that cites ``[03:07]`` can be turned back into an offset with
``parse_time``.

``split_to_budget`` cuts such lines into time-ordered parts that each fit a
token budget, counting with the engine's own tokenizer (``text_counter``): it
counts the whole text once, packs lines by an estimate from that count, then
checks each part for real and splits any part that is still too big, so a long
transcript costs a handful of tokenizer calls, not one per line.

No Qt; nothing here evaluates the model.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from app.engine.messages import Message
from app.engine.protocol import ChatEngine

CountFn = Callable[[str], int]
T = TypeVar("T")

_TIME = re.compile(r"\[(?:(\d+):)?(\d{1,3}):(\d{2})\]")


def format_time(seconds: float) -> str:
    """``mm:ss`` below an hour, ``h:mm:ss`` from an hour on (no brackets)."""
    s = max(0, int(seconds))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m:02d}:{sec:02d}"


def parse_time(text: str) -> float | None:
    """Seconds of the first ``[mm:ss]`` or ``[h:mm:ss]`` in ``text``; None if there is none."""
    m = _TIME.search(text)
    if not m:
        return None
    h, mi, s = m.groups()
    return float(int(h or 0) * 3600 + int(mi) * 60 + int(s))


def find_times(text: str) -> list[float]:
    """Seconds of every ``[mm:ss]`` / ``[h:mm:ss]`` citation in ``text``, in order."""
    return [float(int(h or 0) * 3600 + int(mi) * 60 + int(s)) for h, mi, s in _TIME.findall(text)]


@dataclass(frozen=True)
class Line:
    """One transcript segment as the model reads it; ``str(line)`` is the rendered text."""
    start: float
    end: float
    text: str
    speaker: str | None = None
    segment_id: int | None = None

    def __str__(self) -> str:
        who = f"{self.speaker}: " if self.speaker else ""
        return f"[{format_time(self.start)}] {who}{self.text}"


def transcript_lines(lib, session_id: int, start: float | None = None,
                     end: float | None = None) -> list[Line]:
    """The session's segments (overlapping ``start``..``end`` seconds, if given) as
    time-ordered Lines; segments with no text are left out. Raises NotFound for an
    unknown session."""
    lib.get_session(session_id)
    out = []
    for g in lib.segments(session_id, start, end):
        text = " ".join(g.text.split())
        if text:
            out.append(Line(g.start, g.end, text, g.speaker, g.id))
    return out


def render(lines: Sequence[object]) -> str:
    """Lines (or any items whose ``str`` is a line) joined with newlines."""
    return "\n".join(str(x) for x in lines)


def span(lines: Sequence[Line]) -> tuple[float, float]:
    """(first start, last end) of some Lines; (0, 0) for none."""
    if not lines:
        return 0.0, 0.0
    return lines[0].start, max(x.end for x in lines)


def text_counter(engine: ChatEngine) -> CountFn:
    """``count(text)``: the tokens ``text`` takes inside a user message of ``engine``
    (an Engine or EngineHost: anything with ``count_tokens(messages)``), without the
    chat template's fixed cost, which is measured once."""
    base = engine.count_tokens([Message.user("")])

    def count(text: str) -> int:
        return max(0, engine.count_tokens([Message.user(text)]) - base)

    return count


def split_to_budget(lines: Sequence[T], count_fn: CountFn, budget: int) -> list[list[T]]:
    """Cut ``lines`` into consecutive, time-ordered parts whose rendered text
    (``render(part)``) takes at most ``budget`` tokens by ``count_fn``.

    Items are ``str`` or ``Line`` (anything whose ``str`` is its text). One line
    too long for the budget on its own is cut between words (a Line keeps its
    times and speaker in each piece). Returns ``[]`` for no lines."""
    if budget < 1:
        raise ValueError("the token budget must be at least 1")
    items = list(lines)
    if not items:
        return []
    total = count_fn(render(items))
    if total <= budget:
        return [items]
    chars = sum(len(str(x)) + 1 for x in items)
    per_char = total / max(1, chars)

    def est(x) -> int:
        return math.ceil((len(str(x)) + 1) * per_char)

    # pack by estimate, a little under the budget, then check each part for real
    target = max(1, int(budget * 0.9))
    parts: list[list[T]] = []
    cur: list[T] = []
    used = 0
    for x in items:
        e = est(x)
        if cur and used + e > target:
            parts.append(cur)
            cur, used = [], 0
        cur.append(x)
        used += e
    if cur:
        parts.append(cur)
    out: list[list[T]] = []
    for p in parts:
        out.extend(_fit(p, count_fn, budget))
    return out


def _fit(part: list[T], count_fn: CountFn, budget: int) -> list[list[T]]:
    if count_fn(render(part)) <= budget:
        return [part]
    if len(part) == 1:
        return [[piece] for piece in _cut_line(part[0], count_fn, budget)]
    mid = len(part) // 2
    return _fit(part[:mid], count_fn, budget) + _fit(part[mid:], count_fn, budget)


def _cut_line(x: T, count_fn: CountFn, budget: int) -> list[T]:
    """Pieces of one over-long line, cut between words (or characters, for a
    word longer than the budget), each within ``budget``."""
    text = x.text if isinstance(x, Line) else str(x)
    prefix = len(str(x)) - len(text)  # the "[mm:ss] Name: " part a Line adds

    def make(t: str) -> T:
        return replace(x, text=t) if isinstance(x, Line) else t  # type: ignore[return-value]

    n = count_fn(str(x))
    # characters per piece, from the line's own ratio, with a margin
    size = max(1, int((len(text) + prefix) * budget / max(1, n) * 0.85) - prefix)
    pieces: list[T] = []
    pos = 0
    while pos < len(text):
        end = min(len(text), pos + size)
        if end < len(text):
            space = text.rfind(" ", pos + 1, end + 1)
            end = space if space > pos else end
        while count_fn(str(make(text[pos:end].strip()))) > budget and end - pos > 1:
            end = pos + max(1, (end - pos) * 3 // 4)  # the estimate was off: shrink
        chunk = text[pos:end].strip()
        if chunk:
            pieces.append(make(chunk))
        pos = end
        while pos < len(text) and text[pos] == " ":
            pos += 1
    return pieces
