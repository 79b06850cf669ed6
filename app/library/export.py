"""Export one session as Markdown, plain text, SubRip, WebVTT or JSON (no Qt, no I/O).

``render`` turns a :class:`SessionDetail` into text; ``export_session`` writes that
text atomically into a folder: never outside it, never over an existing file.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import unicodedata
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import count
from pathlib import Path
from typing import Any

from app.errors import MinutelyError
from app.fsutil import atomic_write_text
from app.library.models import Segment, SessionDetail, marks_on_segments

FORMATS = ("md", "txt", "srt", "vtt", "json")
LINE_WIDTH = 42        # subtitle characters per line
MAX_LINES = 2          # subtitle lines per cue: a longer segment becomes several cues
MIN_CUE_MS = 500       # a zero-length segment lasts this long (or until the next cue starts)
MIN_SPLIT_MS = 300     # a segment is split into several cues only if each piece gets this long
MAX_NAME_BYTES = 120   # UTF-8 bytes of a file name before its extension


class ExportError(MinutelyError):
    """An export that cannot be done; the message is one line for the user."""


# ---------------------------------------------------------------- shared helpers

def _one_line(text: str | None) -> str:
    """All whitespace (newlines, blank lines, tabs) as single spaces; no control characters."""
    s = " ".join((text or "").split())
    return "".join(ch for ch in s if unicodedata.category(ch) not in ("Cc", "Cs"))


def _ms(value: Any) -> int:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return 0
    return max(0, round(v * 1000)) if math.isfinite(v) else 0


def _clock(seconds: float, mm: bool = False) -> str:
    """m:ss (mm:ss with mm=True), or h:mm:ss from an hour on."""
    h, rest = divmod(_ms(seconds) // 1000, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60:0{2 if mm else 1}d}:{rest % 60:02d}"


def _iso_utc(created: str | None) -> str:
    try:
        dt = datetime.fromisoformat((created or "").strip())
    except ValueError:
        return _one_line(created)
    dt = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _segments(detail: SessionDetail) -> list[tuple[Segment, str | None, str]]:
    """(segment, speaker name, one-line text) in time order, blank segments left out."""
    names = {sp.id: sp.display for sp in detail.speakers}
    out = []
    for seg in sorted(detail.segments, key=lambda s: _ms(s.start)):
        text = _one_line(seg.text)
        if text:
            name = _one_line(seg.speaker) or _one_line(names.get(seg.speaker_id))  # type: ignore[arg-type]
            out.append((seg, name or None, text))
    return out


def _talking_over(detail: SessionDetail) -> dict[int, str]:
    """Segment id -> who else speaks over it ("Bea", "Bea, S3"), from the overlap marks."""
    segs = sorted(detail.segments, key=lambda s: (s.start, s.id))
    return {gid: ", ".join(dict.fromkeys(_one_line(m.speaker) or "someone" for m in marks))
            for gid, marks in marks_on_segments(segs, detail.overlaps).items()}


def _speaker_list(detail: SessionDetail) -> list[str]:
    names = [_one_line(sp.display) for sp in detail.speakers]
    if not any(names):
        names = [name for _, name, _ in _segments(detail) if name]
    return [n for i, n in enumerate(names) if n and n not in names[:i]]


def _duration(detail: SessionDetail) -> float:
    d = detail.session.duration
    if isinstance(d, (int, float)) and math.isfinite(d) and d > 0:
        return float(d)
    return max((_ms(s.end) / 1000 for s in detail.segments), default=0.0)


# ---------------------------------------------------------------- Markdown and text

_MD_INLINE = re.compile(r"[\\`*_\[\]<]|&(?=#?\w+;)")     # & only where it would be an entity
_MD_BLOCK_START = re.compile(r"(?:[#>+=~|-]|\d+[.)])")
_MD_HEADING = re.compile(r"(#{1,6})(?=\s|$)")


def _md(text: str | None) -> str:
    """One line of user text that cannot open a block nor emphasis, links or HTML."""
    s = _MD_INLINE.sub(lambda m: "\\" + m.group(0), _one_line(text))
    m = _MD_BLOCK_START.match(s)
    return s[:m.end() - 1] + "\\" + s[m.end() - 1:] if m else s


def _md_summary(text: str) -> str:
    """The summary's own Markdown, its headings pushed below the export's ``##``."""
    out, fence = [], ""
    for line in text.strip().splitlines():
        stripped = line.lstrip()
        if stripped.startswith(("```", "~~~")):
            fence = "" if fence and stripped.startswith(fence) else fence or stripped[:3]
        elif not fence and (m := _MD_HEADING.match(stripped)):
            line = "#" * min(6, len(m.group(1)) + 2) + stripped[m.end():]
        out.append(line.rstrip())
    return "\n".join(out)


def to_markdown(detail: SessionDetail) -> str:
    s = detail.session
    title = _md(s.title) or f"Session {s.id}"
    if title.endswith("#"):
        title = title[:-1] + "\\#"
    meta = [f"**Date:** {_iso_utc(s.created)}", f"**Duration:** {_clock(_duration(detail))}",
            f"**Kind:** {_md(s.kind)}"]
    speakers = _speaker_list(detail)
    if speakers:
        meta.append("**Speakers:** " + ", ".join(_md(n) for n in speakers))
    parts = [f"# {title}", " · ".join(meta)]
    summary = next((x.text for x in reversed(detail.summaries) if x.text and x.text.strip()), None)
    if summary:
        parts += ["## Summary", _md_summary(summary)]
    items = []
    for item in detail.action_items:
        if not _one_line(item.text):
            continue
        extra = [f"{k}: {_md(v)}" for k, v in (("owner", item.owner), ("due", item.due)) if _one_line(v)]
        items.append(f"- [{'x' if item.done else ' '}] {_md(item.text)}"
                     + (f" ({'; '.join(extra)})" if extra else ""))
    if items:
        parts += ["## Action items", "\n".join(items)]
    parts.append("## Transcript")
    groups: list[tuple[str | None, float, list[str]]] = []
    over = _talking_over(detail)
    for seg, name, words in _segments(detail):
        text = _md(words) + (f" *({_md(over[seg.id])} talking over)*" if seg.id in over else "")
        if groups and groups[-1][0] == name:
            groups[-1][2].append(text)
        else:
            groups.append((name, seg.start, [text]))
    for name, start, texts in groups:
        head = f"**{_md(name)}** [{_clock(start, mm=True)}]" if name else f"[{_clock(start, mm=True)}]"
        parts.append(f"{head}\n{' '.join(texts)}")
    if not groups:
        parts.append("*No transcript.*")
    return "\n\n".join(parts) + "\n"


def to_text(detail: SessionDetail) -> str:
    s = detail.session
    meta = [f"Date: {_iso_utc(s.created)}", f"Duration: {_clock(_duration(detail))}"]
    speakers = _speaker_list(detail)
    if speakers:
        meta.append("Speakers: " + ", ".join(speakers))
    lines = [_one_line(s.title) or f"Session {s.id}", "   ".join(meta), ""]
    over = _talking_over(detail)
    for seg, name, text in _segments(detail):
        clock = _clock(seg.start, mm=True)
        if seg.id in over:
            text += f" ({over[seg.id]} talking over)"
        lines.append(f"[{clock}] {name}: {text}" if name else f"[{clock}] {text}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- subtitles

@dataclass(frozen=True)
class _Cue:
    start: int                # milliseconds
    end: int                  # milliseconds, always > start
    speaker: str | None
    lines: tuple[str, ...]    # never empty, no empty line


def _no_arrow(text: str) -> str:
    while "-->" in text:
        text = text.replace("-->", "->")
    return text


def _wrap(prefix: str, text: str) -> list[list[str]]:
    """Greedy lines of LINE_WIDTH characters, MAX_LINES a chunk, each chunk's first line prefixed."""
    words: list[str] = []
    for word in text.split(" "):
        while len(word) > LINE_WIDTH:
            words.append(word[:LINE_WIDTH])
            word = word[LINE_WIDTH:]
        words.append(word)
    chunks: list[list[str]] = []
    lines: list[str] = []
    line, fresh = prefix, True
    for word in words:
        if fresh or len(line) + 1 + len(word) <= LINE_WIDTH:
            line, fresh = (line + word if fresh else f"{line} {word}"), False
            continue
        lines.append(line)
        if len(lines) == MAX_LINES:
            chunks.append(lines)
            lines, line = [], prefix + word
        else:
            line = word
    chunks.append(lines + [line])
    return chunks


def _cues(detail: SessionDetail, name_in_text: bool) -> list[_Cue]:
    """One cue per non-blank segment (more for long ones), in start order, each end > start.

    Overlapping segments stay overlapping (both formats allow it); a segment with no
    length gets MIN_CUE_MS, cut short where the next later-starting cue begins.
    """
    items = [(_ms(seg.start), _ms(seg.end), name, text) for seg, name, text in _segments(detail)]
    starts = [it[0] for it in items]
    cues: list[_Cue] = []
    for start, end, name, text in items:
        if end <= start:
            end = start + MIN_CUE_MS
            j = bisect_right(starts, start)
            if j < len(starts) and starts[j] < end:
                end = starts[j]
        if name_in_text:
            name, text = (_no_arrow(name) if name else None), _no_arrow(text)
        chunks = _wrap(f"{name}: " if name and name_in_text else "", text)
        n = len(chunks)
        if n > 1 and end - start < n * MIN_SPLIT_MS:      # too short to split: one tall cue
            chunks, n = [[line for chunk in chunks for line in chunk]], 1
        weights = [sum(len(line) for line in chunk) for chunk in chunks]
        total, spare, done, t0 = sum(weights), end - start - n * MIN_SPLIT_MS, 0, start
        for k, chunk in enumerate(chunks):
            done += weights[k]
            t1 = end if k == n - 1 else start + (k + 1) * MIN_SPLIT_MS + spare * done // total
            cues.append(_Cue(t0, t1, name, tuple(chunk)))
            t0 = t1
    return cues


def _stamp(ms: int, sep: str) -> str:
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    return f"{h:02d}:{m:02d}:{rest // 1000:02d}{sep}{rest % 1000:03d}"


def to_srt(detail: SessionDetail) -> str:
    return "".join(f"{i}\n{_stamp(c.start, ',')} --> {_stamp(c.end, ',')}\n" + "\n".join(c.lines) + "\n\n"
                   for i, c in enumerate(_cues(detail, name_in_text=True), 1))


def to_vtt(detail: SessionDetail) -> str:
    blocks = ["WEBVTT"]
    for i, c in enumerate(_cues(detail, name_in_text=False), 1):
        lines = [html.escape(line, quote=False) for line in c.lines]
        if c.speaker:
            lines[0] = f"<v {html.escape(c.speaker, quote=False)}>{lines[0]}"
        blocks.append(f"{i}\n{_stamp(c.start, '.')} --> {_stamp(c.end, '.')}\n" + "\n".join(lines))
    return "\n\n".join(blocks) + "\n"


# ---------------------------------------------------------------- JSON

def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def to_json(detail: SessionDetail) -> str:
    data = {"format": "minutely-session", "version": 1, **json.loads(detail.to_json())}
    return json.dumps(_finite(data), ensure_ascii=False, indent=2, allow_nan=False) + "\n"


_RENDERERS: dict[str, Callable[[SessionDetail], str]] = {
    "md": to_markdown, "txt": to_text, "srt": to_srt, "vtt": to_vtt, "json": to_json}


def _fmt(fmt: str) -> str:
    key = str(fmt).strip().lower().lstrip(".")
    if key not in _RENDERERS:
        raise ExportError(f"unknown format {fmt!r}; use md, txt, srt, vtt or json")
    return key


def render(detail: SessionDetail, fmt: str) -> str:
    """The session in one of FORMATS; ExportError for any other."""
    return _RENDERERS[_fmt(fmt)](detail)


# ---------------------------------------------------------------- files

_INVALID = set('<>:"/\\|?*')
_BIDI = set("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_GLUE = set("\u200d\ufe0e\ufe0f") | {chr(c) for c in range(0x1F3FB, 0x1F400)}  # ZWJ, VS, skin tones
_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {p + d for p in ("COM", "LPT") for d in "123456789¹²³"}


def _cap(s: str, max_bytes: int) -> str:
    """At most max_bytes of UTF-8, never splitting a character from its marks or joiners."""
    if len(s.encode()) <= max_bytes:
        return s
    n = len(s.encode()[:max_bytes].decode("utf-8", "ignore"))
    while 0 < n < len(s) and (unicodedata.combining(s[n]) or s[n] in _GLUE):
        n -= 1
    while n > 0 and s[n - 1] == "\u200d":
        n -= 1
    return s[:n]


def _ext(ext: str | None) -> str:
    return re.sub(r"[^\w-]", "", ext or "")[:16]


def safe_filename(title: str, ext: str) -> str:
    """A file name valid on Windows, macOS and Linux: ``stem.ext``, stem never empty."""
    chars = []
    for ch in unicodedata.normalize("NFC", title or ""):
        if ch.isspace() or unicodedata.category(ch) in ("Zl", "Zp"):
            chars.append(" ")
        elif ch in _INVALID:
            chars.append("_")
        elif ch not in _BIDI and unicodedata.category(ch) not in ("Cc", "Cs"):
            chars.append(ch)
    stem = _cap(" ".join("".join(chars).split()).strip(" ."), MAX_NAME_BYTES).strip(" .")
    if not stem.strip("_-"):
        stem = "session"
    if stem.split(".")[0].rstrip(" ").upper() in _RESERVED:
        stem = "_" + stem
    ext = _ext(ext)
    return f"{stem}.{ext}" if ext else stem


def export_session(detail: SessionDetail, fmt: str, dest: Path) -> Path:
    """Write ``render(detail, fmt)`` into the folder ``dest`` (or as the file ``dest``).

    The name is made safe; an existing file gets `` (2)``, `` (3)``... instead of being
    overwritten; ``..`` in ``dest`` or a symlink that leads out of the folder is refused.
    """
    key = _fmt(fmt)
    text = render(detail, key)
    dest = Path(dest)
    if ".." in dest.parts:
        raise ExportError(f"refusing a path with '..' in it: {dest}")
    if dest.is_dir():
        folder = dest
        name = safe_filename((detail.session.title or "").strip() or f"session-{detail.session.id}", key)
    else:
        folder = dest.parent
        stem, dot, ext = dest.name.rpartition(".")
        keep = bool(dot and stem.strip(" .") and _ext(ext))     # the caller's own extension
        name = safe_filename(stem, ext) if keep else safe_filename(dest.name, key)
        if not folder.is_dir():
            raise ExportError(f"folder not found: {folder}")
    stem, _, ext = name.rpartition(".")
    try:
        root = folder.resolve()
        for n in count(1):
            path = folder / (name if n == 1 else f"{stem} ({n}).{ext}")
            target = path.resolve()
            if target.parent != root:
                raise ExportError(f"refusing to write {path}: it leads outside {folder} (to {target})")
            try:        # claim the name first: no other writer can take it in between
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            except FileExistsError:
                continue
            try:
                return atomic_write_text(path, text)
            except BaseException:
                path.unlink(missing_ok=True)
                raise
    except (OSError, RuntimeError) as e:
        raise ExportError(f"cannot write into {folder}: {getattr(e, 'strerror', None) or e}") from None
    raise AssertionError("unreachable")
