"""Summaries with their structured results: the Library methods for them (a mixin).

A summary row holds readable Markdown and a ``status``: ``writing`` while the
model writes it (the text grows as it streams), then ``done``, ``failed`` or
``cancelled`` (what was written so far is kept). Its action items
(``action_items``) and its decisions and open questions (``summary_points``)
are rows tied to it; ``finish_summary`` stores the final text and all of them in
one transaction, so a reader never sees a summary half-finished. A new summary
never replaces an old one: regenerating with another template adds a row.
"""

from __future__ import annotations

from typing import Any, Iterable

from .db import LibraryError
from .models import POINT_KINDS, SUMMARY_STATES, ActionItem, Summary, SummaryPoint


def _clean(text: Any) -> str:
    return " ".join(str(text or "").split())


class SummaryMixin:
    """Methods of ``Library`` (see library.py) for summaries and their results."""

    def summary(self, summary_id: int) -> Summary:
        return Summary(**self._one("summaries", summary_id, "summary"))

    def start_summary(self, session_id: int, template: str, model: str | None = None) -> Summary:
        """A new, empty summary in state ``writing`` (older summaries are kept)."""
        self.get_session(session_id)
        from .library import now_iso

        sid = self._insert("summaries", {"session_id": session_id, "template": template, "text": "",
                                         "model": model, "created": now_iso(), "updated": now_iso(),
                                         "status": "writing"})
        return self.summary(sid)

    def write_summary(self, summary_id: int, text: str, status: str | None = None) -> None:
        """Replace the text written so far (streaming); optionally change the status."""
        from .library import now_iso

        row: dict[str, Any] = {"text": text, "updated": now_iso()}
        if status is not None:
            if status not in SUMMARY_STATES:
                raise LibraryError(f"unknown summary status '{status}'")
            row["status"] = status
        self._update("summaries", summary_id, row)

    def finish_summary(self, summary_id: int, text: str, *, action_items: Iterable[dict] = (),
                       decisions: Iterable[str] = (), questions: Iterable[str] = (),
                       status: str = "done") -> Summary:
        """Store the final text and the structured results together (one transaction).

        ``action_items`` are dicts with ``text`` and optional ``owner`` and ``due``;
        empty texts are skipped. Results stored for this summary before are replaced."""
        s = self.summary(summary_id)
        with self.transaction():
            self.write_summary(summary_id, text, status)
            self.conn.execute("DELETE FROM action_items WHERE summary_id = ?", (summary_id,))
            self.conn.execute("DELETE FROM summary_points WHERE summary_id = ?", (summary_id,))
            for a in action_items:
                t = _clean(a.get("text"))
                if t:
                    self._insert("action_items", {"session_id": s.session_id, "summary_id": summary_id,
                                                  "text": t, "owner": _clean(a.get("owner")) or None,
                                                  "due": _clean(a.get("due")) or None, "done": 0})
            for kind, texts in (("decision", decisions), ("question", questions)):
                pos = 0
                for t in texts:
                    t = _clean(t)
                    if t:
                        self._insert("summary_points", {"session_id": s.session_id, "summary_id": summary_id,
                                                        "kind": kind, "text": t, "position": pos})
                        pos += 1
        return self.summary(summary_id)

    def latest_summary(self, session_id: int, template: str | None = None) -> Summary | None:
        """The newest summary of the session (of that template, if given), or None."""
        sql, params = "SELECT * FROM summaries WHERE session_id = ?", [session_id]
        if template is not None:
            sql += " AND template = ?"
            params.append(template)
        rows = self._rows(sql + " ORDER BY created DESC, id DESC LIMIT 1", params)
        return Summary(**rows[0]) if rows else None

    def summary_points(self, summary_id: int, kind: str | None = None) -> list[SummaryPoint]:
        if kind is not None and kind not in POINT_KINDS:
            raise LibraryError(f"unknown summary point kind '{kind}'")
        sql, params = "SELECT * FROM summary_points WHERE summary_id = ?", [summary_id]
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        return [SummaryPoint(**r) for r in self._rows(sql + " ORDER BY kind, position, id", params)]

    def decisions(self, summary_id: int) -> list[SummaryPoint]:
        return self.summary_points(summary_id, "decision")

    def open_questions(self, summary_id: int) -> list[SummaryPoint]:
        return self.summary_points(summary_id, "question")

    def summary_action_items(self, summary_id: int) -> list[ActionItem]:
        """The action items one summary produced (``action_items(session)`` has all of them)."""
        return [ActionItem(**{**r, "done": bool(r["done"])}) for r in self._rows(
            "SELECT * FROM action_items WHERE summary_id = ? ORDER BY id", (summary_id,))]

    def delete_summary(self, summary_id: int) -> None:
        """Remove a summary with its action items, decisions and open questions."""
        self.summary(summary_id)
        with self.transaction():
            self.conn.execute("DELETE FROM action_items WHERE summary_id = ?", (summary_id,))
            self.conn.execute("DELETE FROM summaries WHERE id = ?", (summary_id,))

    def mark_unfinished_summaries(self) -> list[int]:
        """At start: summaries left ``writing`` by a process that died become ``failed``
        (their text so far is kept). Returns their ids."""
        ids = [r[0] for r in self.conn.execute("SELECT id FROM summaries WHERE status = 'writing'")]
        for i in ids:
            self._update("summaries", i, {"status": "failed"})
        return ids
