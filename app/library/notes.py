"""A session as a Markdown note with YAML front matter, in a folder of notes (an Obsidian vault).

    path = export_note(lib, session_id, folder)

The note: front matter (``minutely_session``, title, date, duration, attendees, speakers, tags,
action items with owner and due date), then the Markdown export (summary, action items,
transcript), then a marker line. Exporting again finds the note by its ``minutely_session``
key — in any ``.md`` file of the folder or its subfolders, so a renamed or moved note is still
the one — and rewrites it in place: the user's own keys and tags in the front matter are kept,
and so is everything written below the marker. A new note is named ``<date> <title>.md``, made
safe for every file system, never over another file.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from app.fsutil import atomic_write_text

from .export import ExportError, _clock, _duration, _speaker_list, safe_filename, to_markdown
from .models import SessionDetail

KEY = "minutely_session"
TAGS = ["meeting", "minutely"]
MARKER = "%% minutely: write below this line; re-exporting keeps it %%"
HEAD_BYTES = 4096         # how much of each note is read to find its key (we write it first)
_FRONT = re.compile(r"\A---\r?\n(.*?)\r?\n---\r?\n?", re.S)


def _local(created: str) -> datetime | None:
    try:
        return datetime.fromisoformat(created.strip().replace("Z", "+00:00")).astimezone()
    except ValueError:
        return None


def front_matter(detail: SessionDetail, attendees: list[str]) -> dict[str, Any]:
    s = detail.session
    when = _local(s.created)
    items = [{"text": " ".join(i.text.split()), "owner": i.owner or None, "due": i.due or None, "done": i.done}
             for i in detail.action_items if i.text and i.text.strip()]
    return {KEY: s.id, "title": s.title or f"Session {s.id}",
            "date": when.strftime("%Y-%m-%d") if when else s.created[:10],
            "time": when.strftime("%H:%M") if when else s.created[11:16],
            "duration": _clock(_duration(detail)), "attendees": attendees,
            "speakers": _speaker_list(detail), "tags": list(TAGS), "action_items": items}


def render_note(detail: SessionDetail, attendees: list[str], old: str = "") -> str:
    """The note's text; ``old``: the note as it is now (its extra keys, tags and own notes are kept)."""
    meta = front_matter(detail, attendees)
    body_old = old
    m = _FRONT.match(old)
    if m:
        body_old = old[m.end():]
        try:
            prev = yaml.safe_load(m.group(1))
        except yaml.YAMLError:
            prev = None
        if isinstance(prev, dict):
            tags = prev.get("tags")
            extra = [t for t in tags if isinstance(t, str) and t not in meta["tags"]] if isinstance(tags, list) else []
            meta["tags"] += extra
            meta.update({k: v for k, v in prev.items() if k not in meta})
    mine = body_old.split(MARKER, 1)[1].lstrip("\n") if MARKER in body_old else ""
    head = yaml.safe_dump(meta, allow_unicode=True, sort_keys=False, width=1000)
    return f"---\n{head}---\n\n{to_markdown(detail)}\n{MARKER}\n{mine}"


def _has_key(path: Path, key: re.Pattern[str]) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            head = f.read(HEAD_BYTES)
    except OSError:
        return False
    m = _FRONT.match(head)
    return bool(m and key.search(m.group(1)))


def find_note(folder: Path, session_id: int, likely: str | None = None) -> Path | None:
    """The note of this session in ``folder`` (subfolders too; hidden ones like .obsidian skipped);
    ``likely``: the name it was given, looked at first."""
    key = re.compile(rf"^{KEY}:\s*['\"]?{int(session_id)}['\"]?\s*$", re.M)
    if likely and _has_key(folder / likely, key):
        return folder / likely
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.lower().endswith(".md") and _has_key(Path(root) / name, key):
                return Path(root) / name
    return None


def note_name(detail: SessionDetail) -> str:
    when = _local(detail.session.created)
    day = when.strftime("%Y-%m-%d") if when else detail.session.created[:10]
    return safe_filename(f"{day} {(detail.session.title or '').strip() or f'Session {detail.session.id}'}", "md")


def export_note(lib, session_id: int, folder: str | Path) -> Path:
    """Write (or rewrite) the session's note in ``folder``; returns its path. ExportError (one
    line) for a missing folder or a write that fails."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ExportError(f"notes folder not found: {folder}")
    detail = lib.session_detail(session_id)
    attendees = [a.display for a in lib.events.session_attendees(session_id)]
    path = find_note(folder, session_id, note_name(detail))
    try:
        old = path.read_text(encoding="utf-8", errors="replace") if path else ""
        if path is None:
            stem = note_name(detail)[:-3]
            path = folder / f"{stem}.md"
            n = 2
            while path.exists():
                path, n = folder / f"{stem} ({n}).md", n + 1
        return atomic_write_text(path, render_note(detail, attendees, old))
    except OSError as e:
        raise ExportError(f"cannot write the note into {folder}: {e.strerror or e}") from None
