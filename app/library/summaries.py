"""Summaries with their structured results: ``library.summaries``.

A summary row holds readable Markdown and a ``status`` (``SummaryState``):
``writing`` while the model writes it (the text grows as it streams), then
``done``, ``failed`` or ``cancelled`` (what was written so far is kept). Its
action items (``action_items``) and its decisions and open questions
(``summary_points``) are rows tied to it; ``finish`` stores the final text and
all of them in one transaction, so a reader never sees a summary half-finished.
A new summary never replaces an old one: regenerating with another template adds
a row.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .db import LibraryError
from .models import POINT_KINDS, ActionItem, Summary, SummaryPoint, SummaryState
from .store import Store, now_iso


def _clean(text: Any) -> str:
    return " ".join(str(text or "").split())


def _action(r: dict[str, Any]) -> ActionItem:
    return ActionItem(**{**r, "done": bool(r["done"])})


class Summaries:
    """The summaries, action items, decisions and open questions of the library."""

    def __init__(self, store: Store):
        self._store = store

    def get(self, summary_id: int) -> Summary:
        return Summary(**self._store.one("summaries", summary_id, "summary"))

    def for_session(self, session_id: int) -> list[Summary]:
        """All of a session's summaries, oldest first."""
        return [Summary(**r) for r in self._store.rows(
            "SELECT * FROM summaries WHERE session_id = ? ORDER BY created, id", (session_id,))]

    def latest(self, session_id: int, template: str | None = None) -> Summary | None:
        """The newest summary of the session (of that template, if given), or None."""
        sql = "SELECT * FROM summaries WHERE session_id = ?"
        params: list[Any] = [session_id]
        if template is not None:
            sql += " AND template = ?"
            params.append(template)
        rows = self._store.rows(sql + " ORDER BY created DESC, id DESC LIMIT 1", params)
        return Summary(**rows[0]) if rows else None

    def start(self, session_id: int, template: str, model: str | None = None) -> Summary:
        """A new, empty summary in state ``writing`` (older summaries are kept)."""
        self._store.one("sessions", session_id, "session")
        sid = self._store.insert("summaries", {"session_id": session_id, "template": template, "text": "",
                                               "model": model, "created": now_iso(), "updated": now_iso(),
                                               "status": SummaryState.WRITING})
        return self.get(sid)

    def write(self, summary_id: int, text: str, status: str | None = None) -> None:
        """Replace the text written so far (streaming); optionally change the status."""
        row: dict[str, Any] = {"text": text, "updated": now_iso()}
        if status is not None:
            try:
                row["status"] = SummaryState(status)
            except ValueError:
                raise LibraryError(f"unknown summary status '{status}'") from None
        self._store.update("summaries", summary_id, row)

    def finish(self, summary_id: int, text: str, *, action_items: Iterable[dict] = (),
               decisions: Iterable[str] = (), questions: Iterable[str] = (),
               status: str = SummaryState.DONE) -> Summary:
        """Store the final text and the structured results together (one transaction).

        ``action_items`` are dicts with ``text`` and optional ``owner`` and ``due``;
        empty texts are skipped. Results stored for this summary before are replaced."""
        s = self.get(summary_id)
        store = self._store
        with store.transaction():
            self.write(summary_id, text, status)
            store.conn.execute("DELETE FROM action_items WHERE summary_id = ?", (summary_id,))
            store.conn.execute("DELETE FROM summary_points WHERE summary_id = ?", (summary_id,))
            for a in action_items:
                t = _clean(a.get("text"))
                if t:
                    store.insert("action_items", {"session_id": s.session_id, "summary_id": summary_id,
                                                  "text": t, "owner": _clean(a.get("owner")) or None,
                                                  "due": _clean(a.get("due")) or None, "done": 0})
            for kind, texts in (("decision", decisions), ("question", questions)):
                pos = 0
                for t in texts:
                    t = _clean(t)
                    if t:
                        store.insert("summary_points", {"session_id": s.session_id, "summary_id": summary_id,
                                                        "kind": kind, "text": t, "position": pos})
                        pos += 1
        return self.get(summary_id)

    def points(self, summary_id: int, kind: str | None = None) -> list[SummaryPoint]:
        if kind is not None and kind not in POINT_KINDS:
            raise LibraryError(f"unknown summary point kind '{kind}'")
        sql = "SELECT * FROM summary_points WHERE summary_id = ?"
        params: list[Any] = [summary_id]
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        return [SummaryPoint(**r) for r in self._store.rows(sql + " ORDER BY kind, position, id", params)]

    def decisions(self, summary_id: int) -> list[SummaryPoint]:
        return self.points(summary_id, "decision")

    def open_questions(self, summary_id: int) -> list[SummaryPoint]:
        return self.points(summary_id, "question")

    def action_items(self, summary_id: int) -> list[ActionItem]:
        """The action items one summary produced."""
        return [_action(r) for r in self._store.rows(
            "SELECT * FROM action_items WHERE summary_id = ? ORDER BY id", (summary_id,))]

    def session_action_items(self, session_id: int) -> list[ActionItem]:
        """All the action items of a session (of all its summaries)."""
        return [_action(r) for r in self._store.rows(
            "SELECT * FROM action_items WHERE session_id = ? ORDER BY id", (session_id,))]

    def set_action_done(self, item_id: int, done: bool = True) -> ActionItem:
        self._store.update("action_items", item_id, {"done": int(bool(done))})
        return _action(self._store.one("action_items", item_id, "action item"))

    def delete(self, summary_id: int) -> None:
        """Remove a summary with its action items, decisions and open questions."""
        self.get(summary_id)
        with self._store.transaction():
            self._store.conn.execute("DELETE FROM action_items WHERE summary_id = ?", (summary_id,))
            self._store.conn.execute("DELETE FROM summaries WHERE id = ?", (summary_id,))

    def mark_unfinished(self) -> list[int]:
        """At start: summaries left ``writing`` by a process that died become ``failed``
        (their text so far is kept). Returns their ids."""
        ids = [r[0] for r in self._store.conn.execute("SELECT id FROM summaries WHERE status = ?",
                                                      (SummaryState.WRITING,))]
        for i in ids:
            self._store.update("summaries", i, {"status": SummaryState.FAILED})
        return ids
