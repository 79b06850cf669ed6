"""``python main.py sessions list | show | search | export | rename-speaker | delete``."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from .cli import EXIT_OK, UsageError


def add_parser(sub) -> None:
    sp = sub.add_parser("sessions", help="the library: list, show, search, export, rename, delete")
    ss = sp.add_subparsers(dest="sessions_command", metavar="ACTION", required=True)
    p = ss.add_parser("list", help="all sessions, newest first")
    p.add_argument("--json", action="store_true")
    p = ss.add_parser("show", help="one session with its transcript")
    p.add_argument("id", type=int)
    p.add_argument("--json", action="store_true")
    p = ss.add_parser("search", help="full-text search over transcripts, titles and summaries")
    p.add_argument("query")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--json", action="store_true")
    p = ss.add_parser("export", help="export a session as Markdown, text, SRT, VTT or JSON")
    p.add_argument("id", type=int)
    p.add_argument("--format", "-f", required=True, help="md, txt, srt, vtt or json")
    p.add_argument("-o", "--output", help="a folder or file to write (default: standard output)")
    p = ss.add_parser("rename-speaker", help="give a speaker of a session a name")
    p.add_argument("id", type=int)
    p.add_argument("label", help="the speaker's label, e.g. S1")
    p.add_argument("name")
    p.add_argument("--save-voice", action="store_true",
                   help="remember this voice: later sessions name this speaker automatically")
    p = ss.add_parser("delete", help="delete a session, its transcript and its media")
    p.add_argument("id", type=int)
    p.add_argument("--yes", action="store_true", help="really delete (required)")


def _clock(t: float | None) -> str:
    if t is None:
        return ""
    t = int(t)
    return f"{t // 3600}:{t // 60 % 60:02d}:{t % 60:02d}" if t >= 3600 else f"{t // 60:02d}:{t % 60:02d}"


def _open():
    from .library import Library

    lib = Library.open()
    if lib.notice:
        print(f"minutely: {lib.notice}", file=sys.stderr)
    return lib


def run_sessions(args: argparse.Namespace) -> int:
    from .library import LibraryError

    try:
        with _open() as lib:
            return _COMMANDS[args.sessions_command](lib, args)
    except LibraryError as e:
        raise UsageError(str(e)) from None


def _list(lib, args) -> int:
    sessions = lib.sessions()
    if args.json:
        print(json.dumps([asdict(s) for s in sessions], ensure_ascii=False, indent=2))
        return EXIT_OK
    if not sessions:
        print("no sessions yet")
    for s in sessions:
        print(f"{s.id:>5}  {s.created[:16].replace('T', ' ')}  {_clock(s.duration):>8}  {s.kind:<9} "
              f"{s.status:<12} {s.title}")
    return EXIT_OK


def _show(lib, args) -> int:
    d = lib.session_detail(args.id)
    if args.json:
        print(d.to_json())
        return EXIT_OK
    s = d.session
    print(f"{s.title}\n{s.created[:16].replace('T', ' ')} UTC · {_clock(s.duration)} · {s.kind} · {s.status}")
    if d.speakers:
        print("speakers: " + ", ".join(f"{sp.label}={sp.display}" if sp.name else sp.label
                                       for sp in d.speakers))
    if d.summaries:
        print("\n" + d.summaries[-1].text)
    print()
    for g in d.segments:
        print(f"[{_clock(g.start)}] {(g.speaker or '?') + ': ' if g.speaker else ''}{g.text}")
    return EXIT_OK


def _search(lib, args) -> int:
    tty = sys.stdout.isatty()
    hl = ("\x1b[1m", "\x1b[0m") if tty and not args.json else ("[", "]")
    hits = lib.search(args.query, limit=args.limit, highlight=hl)
    if args.json:
        print(json.dumps([asdict(h) for h in hits], ensure_ascii=False, indent=2))
        return EXIT_OK
    if not hits:
        print("no matches")
    for h in hits:
        where = f"[{_clock(h.offset)}]" if h.source == "segment" else f"({h.source})"
        who = f" {h.speaker}:" if h.speaker else ""
        print(f"{h.session_id:>5}  {h.session_title[:30]:<30}  {where}{who} {h.snippet}")
    return EXIT_OK


def _export(lib, args) -> int:
    from .library.export import ExportError, export_session, render

    d = lib.session_detail(args.id)
    try:
        if args.output:
            path = export_session(d, args.format, Path(args.output).expanduser())
            print(path)
        else:
            sys.stdout.write(render(d, args.format))
    except ExportError as e:
        raise UsageError(str(e)) from None
    return EXIT_OK


def _rename(lib, args) -> int:
    if args.save_voice:  # names the speaker and keeps the voice
        from .pipeline.speakers import save_voice

        try:
            save_voice(lib, args.id, args.label, args.name)
        except ValueError as e:
            raise UsageError(str(e)) from None
        sp = lib.speaker(args.id, args.label)
    else:
        sp = lib.rename_speaker(args.id, args.label, args.name)
    print(f"{sp.label} is now {sp.display}" + (" (voice saved)" if args.save_voice else ""))
    return EXIT_OK


def _delete(lib, args) -> int:
    s = lib.get_session(args.id)
    if not args.yes:
        raise UsageError(f"this deletes session {s.id} ('{s.title}') and its media; add --yes to confirm")
    lib.delete_session(s.id)
    print(f"deleted session {s.id} ('{s.title}')")
    return EXIT_OK


_COMMANDS = {"list": _list, "show": _show, "search": _search, "export": _export,
             "rename-speaker": _rename, "delete": _delete}
