"""Full-text search over segment text, session titles, summaries and attendees (FTS5).

The user's words are quoted before they reach FTS5 (no query syntax errors, no
operators typed by accident), all must match, and the last one matches as a
prefix so results appear while typing.

Speed: ranking every match of a common word ("budget" in 100,000 segments) with
bm25 takes most of a second. So each table is asked for its most recent
``CANDIDATES`` matches (FTS5 walks its index newest first and stops), those are
ranked by bm25, and snippets are made for the best ``limit`` only. A rare
query is ranked over all its matches; a common one over the newest
``CANDIDATES`` — recent meetings first, which is also what people look for.
Snippets are cut in Python from the row's text: FTS5's snippet() with a prefix
query re-reads the whole prefix doclist for every row (~27 ms a row for a
common word over 500,000 segments).
"""

from __future__ import annotations

import re
import sqlite3
import unicodedata

from .models import SearchHit

_WORD = re.compile(r"\w+", re.UNICODE)
TITLE_BOOST = 2.0  # a hit in a title counts double
CANDIDATES = 1000  # newest matches ranked per table


def fts_query(text: str, prefix: bool = True) -> str | None:
    words = _WORD.findall(text or "")
    if not words:
        return None
    quoted = [f'"{w}"' for w in words]
    if prefix:
        quoted[-1] += "*"
    return " ".join(quoted)


def search(conn: sqlite3.Connection, query: str, *, limit: int = 50,
           highlight: tuple[str, str] = ("[", "]"), session_id: int | None = None) -> list[SearchHit]:
    q = fts_query(query)
    if q is None:
        return []
    hits: list[SearchHit] = []
    scope, scope_params = "", []
    if session_id is not None:
        scope, scope_params = " AND rowid IN (SELECT id FROM segments WHERE session_id = ?)", [session_id]
    best = _ranked(conn, "segments_fts", q, limit, highlight, scope, scope_params)
    if best:
        rows = _rows_by_id(conn, """
            SELECT g.id, g.session_id, s.title, g.start, COALESCE(sp.name, sp.label)
            FROM segments g JOIN sessions s ON s.id = g.session_id
            LEFT JOIN speakers sp ON sp.id = g.speaker_id WHERE g.id IN ({})""", list(best))
        for gid, (rank, snip) in best.items():
            if gid in rows:
                _, sid, title, start, speaker = rows[gid]
                hits.append(SearchHit(session_id=sid, session_title=title, source="segment", segment_id=gid,
                                      offset=start, snippet=snip, rank=rank, speaker=speaker))
    if session_id is None:
        best = _ranked(conn, "sessions_fts", q, limit, highlight, "", [], whole=True)
        rows = _rows_by_id(conn, "SELECT id, title FROM sessions WHERE id IN ({})", list(best))
        for sid, (rank, snip) in best.items():
            if sid in rows:
                hits.append(SearchHit(session_id=sid, session_title=rows[sid][1], source="title",
                                      snippet=snip, offset=0.0, rank=rank * TITLE_BOOST))
    if session_id is None:  # the people a session's calendar event invited
        best = _ranked(conn, "session_attendees_fts", q, limit, highlight, "", [], whole=True)
        rows = _rows_by_id(conn, """SELECT a.id, a.session_id, s.title FROM session_attendees a
                                   JOIN sessions s ON s.id = a.session_id WHERE a.id IN ({})""", list(best))
        for aid, (rank, snip) in best.items():
            if aid in rows:
                hits.append(SearchHit(session_id=rows[aid][1], session_title=rows[aid][2], source="attendee",
                                      snippet=snip, offset=0.0, rank=rank * TITLE_BOOST))
    scope = "" if session_id is None else " AND rowid IN (SELECT id FROM summaries WHERE session_id = ?)"
    best = _ranked(conn, "summaries_fts", q, limit, highlight, scope, scope_params)
    rows = _rows_by_id(conn, """SELECT m.id, m.session_id, s.title FROM summaries m
                               JOIN sessions s ON s.id = m.session_id WHERE m.id IN ({})""", list(best))
    for mid, (rank, snip) in best.items():
        if mid in rows:
            hits.append(SearchHit(session_id=rows[mid][1], session_title=rows[mid][2], source="summary",
                                  snippet=snip, rank=rank))
    hits.sort(key=lambda h: h.rank)  # bm25: more negative is better
    return hits[:limit]


def fold(word: str) -> str:
    """Case- and accent-insensitive form, as FTS5's unicode61 remove_diacritics tokenizer sees it."""
    return "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c)).casefold()


def make_snippet(text: str, query_words: list[str], highlight: tuple[str, str],
                 width: int | None = 12) -> str:
    """Highlight the query's words in ``text`` (the last as a prefix), cut to ``width`` words
    around the first hit with '…' where text was left out; ``width=None`` keeps it all."""
    terms = [fold(w) for w in query_words]
    if not terms:
        return text
    *exact, last = terms
    toks = list(_WORD.finditer(text))

    def hit(tok: str) -> bool:
        f = fold(tok)
        return f in exact or f.startswith(last)

    hits = [i for i, t in enumerate(toks) if hit(t.group())]
    lo, hi = 0, len(toks)
    if width is not None and len(toks) > width:
        first = hits[0] if hits else 0
        lo = max(0, min(first - width // 3, len(toks) - width))
        hi = lo + width
    if not toks:
        return text
    a, b = highlight
    out, pos = [], toks[lo].start() if lo else 0
    for i in range(lo, hi):
        t = toks[i]
        out.append(text[pos:t.start()])
        out.append(f"{a}{t.group()}{b}" if i in hits else t.group())
        pos = t.end()
    out.append(text[pos:] if hi == len(toks) else "")
    s = "".join(out)
    return ("…" if lo > 0 else "") + s + ("…" if hi < len(toks) else "")


def _ranked(conn: sqlite3.Connection, table: str, q: str, limit: int, highlight: tuple[str, str],
            scope: str, scope_params: list, whole: bool = False) -> dict[int, tuple[float, str]]:
    """rowid -> (bm25 rank, snippet) for the best ``limit`` of the newest CANDIDATES matches.

    The exact words are tried first: when they alone fill the candidates (a
    common word), the prefix form — which merges the index entries of every
    word it begins (~30 ms for "budget*" over 500,000 segments) — is skipped."""
    sql = (f"SELECT rowid, bm25({table}) FROM {table} WHERE {table} MATCH ?{scope} "
           f"ORDER BY rowid DESC LIMIT {CANDIDATES}")
    exact = q[:-1] if q.endswith("*") else q
    cand = conn.execute(sql, [exact, *scope_params]).fetchall()
    if len(cand) < CANDIDATES and exact != q:
        cand = conn.execute(sql, [q, *scope_params]).fetchall()
    if not cand:
        return {}
    best = sorted(cand, key=lambda r: r[1])[:limit]
    source, column = _SOURCES[table]
    ids = ", ".join(str(int(r[0])) for r in best)  # integers from the index itself
    texts = dict(conn.execute(f'SELECT id, "{column}" FROM {source} WHERE id IN ({ids})').fetchall())
    words = _WORD.findall(q)
    return {rowid: (rank, make_snippet(texts.get(rowid, ""), words, highlight, None if whole else 12))
            for rowid, rank in best}


_SOURCES = {"segments_fts": ("segments", "text"), "sessions_fts": ("sessions", "title"),
            "summaries_fts": ("summaries", "text"), "session_attendees_fts": ("session_attendees", "person")}


def _rows_by_id(conn: sqlite3.Connection, sql: str, ids: list[int]) -> dict[int, tuple]:
    if not ids:
        return {}
    rows = conn.execute(sql.format(", ".join("?" for _ in ids)), ids).fetchall()
    return {r[0]: r for r in rows}
