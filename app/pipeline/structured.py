"""Structured summary results: the JSON schema the model is held to, and what to do with its answer.

The model writes action items, decisions and open questions as JSON under a
JSON-schema grammar, so its answer is always a valid *prefix* of a matching
document. Strings and lists are bounded in the schema so a complete answer fits
the token budget; should the budget still cut it short, ``complete_json`` closes
the document after its last complete value, so the answer always parses and
nothing is read out of prose. Results of several parts of a long meeting are
merged with near-duplicates removed (``merge``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

TEXT_MAX = 240      # characters of one item
NAME_MAX = 60       # an owner
DUE_MAX = 40        # a due date as said ("Friday", "end of May")


def _strings(max_items: int, max_len: int = TEXT_MAX) -> dict:
    return {"type": "array", "maxItems": max_items,
            "items": {"type": "string", "minLength": 1, "maxLength": max_len}}


def items_schema(fields: Iterable[str], max_items: int = 12, notes: int = 0) -> dict:
    """A JSON schema for the structured results named in ``fields`` (see
    summary_templates.FIELDS); ``notes`` > 0 adds a first list of that many notes
    (the map step of a long meeting)."""
    fields = list(fields)
    props: dict[str, Any] = {}
    if notes:
        props["notes"] = _strings(notes)
    if "action_items" in fields:
        props["action_items"] = {"type": "array", "maxItems": max_items, "items": {
            "type": "object",
            "properties": {"text": {"type": "string", "minLength": 1, "maxLength": TEXT_MAX},
                           "owner": {"type": "string", "maxLength": NAME_MAX},
                           "due": {"type": "string", "maxLength": DUE_MAX}},
            "required": ["text", "owner", "due"], "additionalProperties": False}}
    if "decisions" in fields:
        props["decisions"] = _strings(max_items)
    if "open_questions" in fields:
        props["open_questions"] = _strings(max_items)
    return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}


def complete_json(text: str) -> Any:
    """Parse ``text``, a JSON document possibly cut short; if it is cut, keep it up to
    its last complete value and close what is open. Raises ValueError if not even
    the first bracket is there."""
    try:
        return json.loads(text, strict=False)
    except ValueError:
        pass
    stack: list[list] = []  # [opener, expecting a key (objects)]
    in_str = esc = False
    best: tuple[int, str] | None = None

    def closers() -> str:
        return "".join("}" if f[0] == "{" else "]" for f in reversed(stack))

    def value_done(i: int) -> None:
        nonlocal best
        if not stack:
            best = (i, "")
            return
        top = stack[-1]
        if top[0] == "{":
            top[1] = True
        best = (i, closers())

    for i, ch in enumerate(text):
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
                if stack and stack[-1][0] == "{" and stack[-1][1]:
                    stack[-1][1] = False  # that was a key; its value comes next
                else:
                    value_done(i + 1)
            continue
        if ch == '"':
            in_str = True
        elif ch in "{[":
            stack.append([ch, ch == "{"])
            best = (i + 1, closers())
        elif ch in "}]":
            if stack:
                stack.pop()
            value_done(i + 1)
    if best is None:
        raise ValueError("no JSON document in the answer")
    cut, close = best
    return json.loads(text[:cut] + close, strict=False)


def _clean(x: Any) -> str:
    """One line of text; a lone surrogate (a JSON "\\udxxx" escape) becomes U+FFFD, since
    the library stores UTF-8."""
    if not isinstance(x, (str, int, float)):
        return ""
    t = str(x).encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return " ".join(t.split())


def normalize(data: Any, fields: Iterable[str]) -> dict[str, list]:
    """The results as plain lists, whatever shape a cut answer left: ``action_items``
    as {text, owner, due} dicts (owner/due may be ""), the others as strings; empty
    entries dropped; ``notes`` kept when present."""
    data = data if isinstance(data, dict) else {}
    out: dict[str, list] = {}
    for f in ["notes", *fields]:
        raw = data.get(f) or []
        raw = raw if isinstance(raw, list) else []
        if f == "action_items":
            items = []
            for a in raw:
                a = a if isinstance(a, dict) else {"text": a}
                t = _clean(a.get("text", ""))
                if t:
                    items.append({"text": t, "owner": _clean(a.get("owner", "")), "due": _clean(a.get("due", ""))})
            out[f] = items
        elif f != "notes" or "notes" in data:
            out[f] = [t for t in (_clean(x) for x in raw) if t]
    return out


def _words(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"\w+", text.casefold()))


def same(a: str, b: str, threshold: float = 0.8) -> bool:
    """Whether two items say the same thing (equal words, or nearly the same set of words)."""
    wa, wb = _words(a), _words(b)
    if not wa or not wb:
        return a.strip().casefold() == b.strip().casefold()
    return len(wa & wb) / len(wa | wb) >= threshold


def merge(results: Iterable[dict[str, list]], fields: Iterable[str]) -> dict[str, list]:
    """Results of consecutive parts as one, in order, near-duplicates removed; a merged
    action item keeps an owner and due date that either copy had."""
    fields = list(fields)
    out: dict[str, list] = {f: [] for f in fields}
    for r in results:
        for f in fields:
            for item in r.get(f, []):
                text = item["text"] if isinstance(item, dict) else item
                twin = next((x for x in out[f] if same(x["text"] if isinstance(x, dict) else x, text)), None)
                if twin is None:
                    out[f].append(dict(item) if isinstance(item, dict) else item)
                elif isinstance(twin, dict):
                    for k in ("owner", "due"):
                        if not twin.get(k) and item.get(k):
                            twin[k] = item[k]
    return out


def markdown_sections(results: dict[str, list], fields: Iterable[str]) -> str:
    """The structured results as Markdown sections (only those with something in them)."""
    parts = []
    fields = list(fields)
    if results.get("action_items") and "action_items" in fields:
        lines = []
        for a in results["action_items"]:
            extra = ", ".join(x for x in (a.get("owner"), f"due {a['due']}" if a.get("due") else "") if x)
            lines.append(f"- [ ] {a['text']}" + (f" ({extra})" if extra else ""))
        parts.append("## Action items\n" + "\n".join(lines))
    for f, title in (("decisions", "Decisions"), ("open_questions", "Open questions")):
        if results.get(f) and f in fields:
            parts.append(f"## {title}\n" + "\n".join(f"- {t}" for t in results[f]))
    return "\n\n".join(parts)
