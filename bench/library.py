"""Library speed: full-text search over 1,000 sessions x 500 segments, and loading
a 10,000-segment session. Goals: < 50 ms per query, < 300 ms per load.

The library is filled with meeting-like sentences (a Zipf-distributed
vocabulary, so some words are everywhere and some are rare). Each query kind is
timed over several rounds; a LIKE scan of the same words runs alongside as the
no-index baseline, so the figures read as ratios on a noisy machine too.

    python bench/library.py [--sessions 1000] [--segments 500] [--big 10000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

WORDS = ("budget quarter report team launch customer hiring roadmap design review deadline product "
         "marketing sales engineering office security survey contract invoice vendor meeting project "
         "release feature bug test plan goal metric revenue cost travel training onboarding feedback "
         "partner demo pricing support backlog sprint retro decision owner action follow").split()
FILLER = "the a we to and of is that it for on this with be as are have will not can so but".split()


def sentence(rng: random.Random, vocab: list[str]) -> str:
    n = rng.randint(6, 22)
    out = []
    for _ in range(n):
        if rng.random() < 0.45:
            out.append(rng.choice(FILLER))
        else:  # Zipf-like: low indexes far more often
            out.append(vocab[min(len(vocab) - 1, int(rng.paretovariate(1.1)) - 1)])
    return " ".join(out).capitalize() + "."


def build(data: Path, n_sessions: int, n_segments: int, big: int, seed: int = 7) -> tuple[int, float]:
    from app.library import Library

    rng = random.Random(seed)
    vocab = WORDS + [f"{w}{i}" for i in range(3000) for w in ("proj", "acct")][:6000]
    t = time.perf_counter()
    with Library.open(data) as lib:
        for i in range(n_sessions):
            s = lib.create_session(f"Meeting {i}: {rng.choice(WORDS)} {rng.choice(WORDS)}", "recording",
                                   created=f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}T10:00:00Z")
            lib.add_segments(s.id, ({"start": k * 4.0, "end": k * 4.0 + 3.5,
                                     "text": sentence(rng, vocab) + (" Zebracorn!" if k == i % 997 else ""),
                                     "speaker": f"S{1 + k % 4}"} for k in range(n_segments)))
        big_s = lib.create_session("The very long one", "file")
        lib.add_segments(big_s.id, ({"start": k * 2.0, "end": k * 2.0 + 1.9, "text": sentence(rng, vocab),
                                     "speaker": f"S{1 + k % 6}"} for k in range(big)))
        lib.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        lib.conn.execute("PRAGMA optimize")
        return big_s.id, time.perf_counter() - t


def timed(f, rounds: int) -> float:
    xs = []
    for _ in range(rounds):
        t = time.perf_counter()
        f()
        xs.append(time.perf_counter() - t)
    return statistics.median(xs) * 1000


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", type=int, default=1000)
    ap.add_argument("--segments", type=int, default=500)
    ap.add_argument("--big", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--keep", type=Path, help="build (or reuse) the library in this folder")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    from app.library import Library

    data = args.keep or Path(tempfile.mkdtemp(prefix="minutely-bench-"))
    build_s = None
    if not (data / "library.sqlite3").exists():
        big_id, build_s = build(data, args.sessions, args.segments, args.big)
    with Library.open(data) as lib:
        big_id = lib.conn.execute("SELECT id FROM sessions WHERE title = 'The very long one'").fetchone()[0]
        n_seg = lib.conn.execute("SELECT COUNT(*) FROM segments").fetchone()[0]
        queries = {"common word": "budget", "rare word": "zebracorn", "two words": "customer invoice",
                   "prefix": "onboa", "typing 2 chars": "bu", "three words": "we decided budget",
                   "no hit": "zzzqqq"}
        res: dict = {"sessions": args.sessions + 1, "segments": n_seg,
                     "build_s": None if build_s is None else round(build_s, 1), "search_ms": {},
                     "like_scan_ms": {}, "hits": {}}
        for name, q in queries.items():
            res["hits"][name] = len(lib.search(q, limit=50))
            res["search_ms"][name] = round(timed(lambda q=q: lib.search(q, limit=50), args.rounds), 2)
            word = q.split()[0]
            res["like_scan_ms"][name] = round(timed(lambda w=word: lib.conn.execute(
                "SELECT id FROM segments WHERE text LIKE ? LIMIT 50", (f"%{w}%",)).fetchall(), 3), 2)
        res["load_big_session_ms"] = round(timed(lambda: lib.session_detail(big_id), args.rounds), 1)
        res["big_session_segments"] = len(lib.segments(big_id))
        res["worst_search_ms"] = max(res["search_ms"].values())
    if args.json:
        print(json.dumps(res))
        return 0
    print(f"library: {res['sessions']} sessions, {n_seg:,} segments"
          + (f" (built in {build_s:.0f} s)" if build_s else ""))
    for name in queries:
        print(f"  search {name:<14} {res['search_ms'][name]:7.2f} ms  ({res['hits'][name]} hits; "
              f"LIKE scan {res['like_scan_ms'][name]:7.1f} ms)")
    print(f"  worst search {res['worst_search_ms']:.2f} ms  (goal < 50 ms)")
    print(f"  load a {res['big_session_segments']:,}-segment session: {res['load_big_session_ms']:.1f} ms "
          f"(goal < 300 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
