"""A session as a Markdown note in a folder of notes (an Obsidian vault), updated in place."""

from __future__ import annotations

import pytest
import yaml

from app.library import Library
from app.library.export import ExportError
from app.library.models import Attendee, Event
from app.library.notes import MARKER, export_note


@pytest.fixture
def lib(tmp_path):
    with Library.open(tmp_path / "data") as lib:
        yield lib


def meeting(lib):
    s = lib.create_session("Budget: Q4 / review?", "recording", created="2026-10-26T08:31:00Z")
    lib.add_segments(s.id, [{"start": 0, "end": 4, "speaker": "S1", "text": "We ship on Friday."},
                            {"start": 5, "end": 9, "speaker": "S2", "text": "Ana sends the deck."}])
    lib.rename_speaker(s.id, "S1", "Bob Stone")
    sm = lib.summaries.start(s.id, "general")
    lib.summaries.finish(sm.id, "## Overview\nThe budget is fine.",
                         action_items=[{"text": "Send the deck", "owner": "Ana Lima", "due": "Friday"}])
    lib.events.link_session(s.id, Event(uid="u1", title="Budget review", start="2026-10-26T08:30:00Z",
                                        end="2026-10-26T09:00:00Z"),
                            [Attendee("Ana Lima", "ana@example.com"), Attendee("", "chen@example.com")])
    return s


def front(path):
    text = path.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    head, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(head), body


def test_a_note_with_front_matter_then_updated_in_place(lib, tmp_path):
    vault = tmp_path / "vault"
    vault.mkdir()
    s = meeting(lib)
    path = export_note(lib, s.id, vault)
    assert path.parent == vault and path.name.startswith("2026-10-26 Budget_ Q4 _ review_") and path.suffix == ".md"
    meta, body = front(path)
    assert meta["minutely_session"] == s.id and meta["title"] == "Budget: Q4 / review?"
    assert meta["date"] == "2026-10-26" and meta["duration"] == "0:09"
    assert meta["attendees"] == ["Ana Lima", "chen"] and meta["speakers"] == ["Bob Stone", "S2"]
    assert meta["tags"] == ["meeting", "minutely"]
    assert meta["action_items"] == [{"text": "Send the deck", "owner": "Ana Lima", "due": "Friday", "done": False}]
    assert body.index("## Summary") < body.index("The budget is fine.") < body.index("## Transcript") \
        < body.index("We ship on Friday.") < body.index(MARKER)
    # the user renames and moves the note, adds a tag, a key of their own and notes below the marker
    (vault / "meetings").mkdir()
    moved = vault / "meetings" / "my budget note.md"
    text = path.read_text(encoding="utf-8").replace("- minutely\n", "- minutely\n- finance\n", 1)
    text = text.replace("---\n", "---\nproject: Apollo\n", 1)
    moved.write_text(text + "My own thoughts.\n", encoding="utf-8")
    path.unlink()
    lib.update_session(s.id, title="Budget review")
    lib.add_segment(s.id, 10, 12, "One more thing.", speaker="S1")
    again = export_note(lib, s.id, vault)
    assert again == moved and sorted(p.name for p in vault.rglob("*.md")) == ["my budget note.md"]
    meta, body = front(moved)
    assert meta["title"] == "Budget review" and meta["project"] == "Apollo"
    assert meta["tags"] == ["meeting", "minutely", "finance"]
    assert "One more thing." in body and body.endswith(MARKER + "\nMy own thoughts.\n")


def test_another_sessions_note_of_the_same_name_is_not_overwritten(lib, tmp_path):
    vault = tmp_path / "vault"
    vault.mkdir()
    a = meeting(lib)
    b = meeting(lib)
    pa, pb = export_note(lib, a.id, vault), export_note(lib, b.id, vault)
    assert pa != pb and pb.name.endswith(" (2).md")
    assert front(pa)[0]["minutely_session"] == a.id and front(pb)[0]["minutely_session"] == b.id
    with pytest.raises(ExportError, match="notes folder not found"):
        export_note(lib, a.id, tmp_path / "nowhere")
