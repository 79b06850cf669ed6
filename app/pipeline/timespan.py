"""Which part of a recording a question is about, from its time words.

    "what is on screen at 2:30?"          -> a window around 150 s
    "in the first minute"                 -> 0 .. 60
    "during the last 30 seconds"          -> duration-30 .. duration
    "at the end" / "at the beginning"     -> a window at either end
    "between 1:00 and 2:15"               -> 60 .. 135
    "in the second half" / "in the middle"
    "after 5 minutes", "at 90 seconds", "in minute 3"

``question_span(question, duration, window)`` returns ``(start, end)`` in
seconds, clipped to the recording, or None when the question names no time.
``window`` is how much to take around a single moment ("at 2:30"); callers size
it from what fits the model's context. English time words only; a question in
another language falls back to searching the transcript.
"""

from __future__ import annotations

import re

from app.library.search import fold

_NUM_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20,
    "thirty": 30, "forty": 40, "forty-five": 45, "fifty": 50, "sixty": 60, "ninety": 90,
    "couple of": 2, "few": 3,
}
_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
             "eighth": 8, "ninth": 9, "tenth": 10}
_UNITS = {"s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
          "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
          "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600}

_CLOCK = r"(?:(\d{1,2}):)?(\d{1,3}):(\d{2})"  # h:mm:ss or mm:ss (minutes may pass 59)
_NUM = r"(\d+(?:\.\d+)?|" + "|".join(sorted((re.escape(w) for w in _NUM_WORDS), key=len, reverse=True)) + ")"
_UNIT = r"(" + "|".join(sorted(_UNITS, key=len, reverse=True)) + r")\b"
_AMOUNT = _NUM + r"\s*-?\s*" + _UNIT + r"(?:\s+(?:and\s+)?(\d+)\s*(?:s|sec|secs|seconds?)\b)?"

_RANGE_CLOCK = re.compile(r"(?:between|from)?\s*\[?" + _CLOCK + r"\]?\s*(?:-|–|—|to|and|until|till)\s*\[?"
                          + _CLOCK + r"\]?")
_CLOCK_RE = re.compile(r"\[?" + _CLOCK + r"\]?")
_FIRST_LAST = re.compile(r"\b(first|last|final|opening|closing)\s+(?:" + _AMOUNT + r"|(" +
                         "|".join(_UNITS) + r")\b)")
_HALF = re.compile(r"\b(first|second|last|latter)\s+half\b")
_NTH_MINUTE = re.compile(r"\b(?:in\s+)?(?:minute\s+(\d+)|the\s+(" + "|".join(_ORDINALS) + r")\s+minute)\b")
_AFTER = re.compile(r"\b(after|before|at|around|about|near)\s+(?:the\s+)?" + _AMOUNT
                    + r"(?!\s+(?:long|left|before the end))")
_BEFORE_END = re.compile(_AMOUNT + r"\s+before\s+the\s+end")
_END = re.compile(r"\b(?:at|near|towards?|by|in|around)\s+the\s+(?:very\s+)?end\b|\bend\s+of\s+the\s+"
                  r"(?:video|meeting|recording|call|clip|talk|session)\b|\bat\s+the\s+close\b|\bending\b")
_START = re.compile(r"\b(?:at|near|in|towards?|around)\s+the\s+(?:very\s+)?(?:beginning|start|outset)\b|"
                    r"\b(?:beginning|start)\s+of\s+the\s+(?:video|meeting|recording|call|clip|talk|session)\b"
                    r"|\bopening\b|\bintro(?:duction)?\b")
_MIDDLE = re.compile(r"\b(?:in|around|at)\s+the\s+middle\b|\bmidway\b|\bhalfway\b")


def _number(word: str) -> float:
    w = word.lower().strip()
    if w in _NUM_WORDS:
        return float(_NUM_WORDS[w])
    return float(w)


def _amount(num: str | None, unit: str | None, extra_seconds: str | None = None) -> float:
    n = _number(num) if num else 1.0
    secs = n * _UNITS[unit.lower()] if unit else n
    if extra_seconds:
        secs += float(extra_seconds)
    return secs


def _clock(h: str | None, m: str, s: str) -> float:
    return int(h or 0) * 3600 + int(m) * 60 + int(s)


def _clip(a: float, b: float, duration: float) -> tuple[float, float] | None:
    a, b = max(0.0, min(float(a), duration)), max(0.0, min(float(b), duration))
    if b <= a:
        return None
    return a, float(b)


def _around(t: float, window: float, duration: float) -> tuple[float, float] | None:
    """``window`` seconds around ``t``, shifted (not shrunk) to stay inside the recording."""
    window = min(window, duration)
    a = t - window / 2
    a = max(0.0, min(a, duration - window))
    return _clip(a, a + window, duration)


def question_span(question: str, duration: float, window: float = 60.0) -> tuple[float, float] | None:
    """(start, end) seconds the question's time words point at, or None."""
    if duration <= 0:
        return None
    q = question.lower()
    window = max(1.0, window)

    m = _RANGE_CLOCK.search(q)
    if m:
        a, b = _clock(*m.groups()[:3]), _clock(*m.groups()[3:])
        return _clip(min(a, b), max(a, b), duration) or _around(min(a, b), window, duration)

    m = _HALF.search(q)
    if m:
        return (0.0, duration / 2) if m.group(1) == "first" else (duration / 2, duration)

    m = _FIRST_LAST.search(q)
    if m:
        which, num, unit, extra, bare_unit = m.groups()
        secs = _amount(num, unit or bare_unit, extra)
        if which in ("first", "opening"):
            return _clip(0.0, secs, duration)
        return _clip(duration - secs, duration, duration)

    m = _NTH_MINUTE.search(q)
    if m:
        n = int(m.group(1)) if m.group(1) else _ORDINALS[m.group(2)]
        return _clip((n - 1) * 60.0, n * 60.0, duration)

    m = _BEFORE_END.search(q)
    if m:
        return _around(duration - _amount(m.group(1), m.group(2), m.group(3)), window, duration)

    m = _CLOCK_RE.search(q)
    if m:
        t = _clock(*m.groups())
        before = q[:m.start()].rstrip()
        if before.endswith(("after", "since", "from")):
            return _clip(t, t + window, duration)
        if before.endswith(("before", "until", "till")):
            return _clip(t - window, t, duration)
        return _around(t, window, duration)

    m = _AFTER.search(q)
    if m:
        word = m.group(1)
        t = _amount(m.group(2), m.group(3), m.group(4))
        if word == "after":
            return _clip(t, t + window, duration)
        if word == "before":
            return _clip(t - window, t, duration)
        return _around(t, window, duration)

    if _END.search(q):
        return _around(duration, window, duration)
    if _START.search(q):
        return _around(0.0, window, duration)
    if _MIDDLE.search(q):
        return _around(duration / 2, window, duration)
    return None


# -- finding the part of a transcript a question is about ---------------------
_STOP = set("""
about above after again against all also and any are around because been before being below between
both but can could did does doing down during each few for from further had has have having her here
hers him his how into its itself just let like more most much must not now off once only other our out
over own said same say says she should some such than that the their them then there these they this
those through too under until very was were what when where which while who whom why will with would
you your yours we us me my mine i it is be do of to in on at by as an a or if so no yes
meeting video recording call clip talk session tell show please someone something anything everything
thing things people person time times minute minutes second seconds hour hours first last final
begin beginning start end ending middle half
""".split())
_WORDS = re.compile(r"\w+", re.UNICODE)


def keywords(question: str) -> list[str]:
    """The words of a question worth searching for (folded; no stop words, no time words)."""
    out = []
    for w in _WORDS.findall(question):
        f = fold(w)
        if len(f) >= 3 and f not in _STOP and not f.isdigit() and f not in _NUM_WORDS and f not in _UNITS:
            if f not in out:
                out.append(f)
    return out


def _matches(token: str, kw: str) -> bool:
    # plural and -ing forms: "budget" finds "budgets", "deciding" finds "decided"
    n = min(len(token), len(kw))
    return token == kw or (n >= 4 and token[:max(4, n - 2)] == kw[:max(4, n - 2)])


def keyword_span(items, question: str, window: float) -> tuple[float, float] | None:
    """The ``window``-second stretch of ``items`` (objects with start, end and text,
    e.g. transcript Lines) that mentions the question's keywords most; None
    when no line mentions any."""
    kws = keywords(question)
    if not kws or not items:
        return None
    scored = []
    for it in items:
        toks = [fold(t) for t in _WORDS.findall(it.text)]
        # each keyword counts once per line; rarer keywords are not weighed (short questions)
        score = sum(1 for kw in kws if any(_matches(t, kw) for t in toks))
        if score:
            scored.append((it.start, it.end, score))
    if not scored:
        return None
    best, best_at = -1.0, (0.0, 0.0)
    j = 0
    total = 0.0
    for i, (s, _, sc) in enumerate(scored):  # windows that start at a hit
        while j < len(scored) and scored[j][0] < s + window:
            total += scored[j][2]
            j += 1
        if total > best:
            last_end = max(e for _, e, _ in scored[i:j])
            best, best_at = total, (s, last_end)
        total -= sc
    a, b = best_at
    pad = max(0.0, (window - (b - a)) / 2)  # centre the hits in the window
    return max(0.0, a - pad), b + pad


def relevant_span(items, question: str, duration: float, window: float) -> tuple[float, float] | None:
    """Time words first ("at 2:30", "at the end"), else where the transcript talks
    about the question's words; None when neither says anything."""
    return question_span(question, duration, window) or keyword_span(items, question, window)
