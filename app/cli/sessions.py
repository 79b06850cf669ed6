"""``python main.py sessions list | show | search | export | rename-speaker | delete`` and the
transcript corrections: ``edit-segment | restore-segment | replace | set-speaker | split |
merge-segment | undo | redo`` (``show ID --ids`` gives the segment numbers they take).

``export -f md-note`` writes the session as a note with YAML front matter into a folder of notes (an
Obsidian vault); exporting again updates that note."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from functools import wraps
from pathlib import Path

from ..fmt import clock
from .common import EXIT_OK, UsageError, add_action, add_actions, load_settings, open_library


def register(sub) -> None:
    actions = add_actions(sub, "sessions", "the library: list, show, search, export, rename, delete, "
                          "correct transcripts", "sessions_command")
    p = add_action(actions, "list", "all sessions, newest first", _list)
    p.add_argument("--json", action="store_true")
    p = add_action(actions, "show", "one session with its transcript", _show)
    p.add_argument("id", type=int)
    p.add_argument("--json", action="store_true")
    p.add_argument("--ids", action="store_true",
                   help="number each segment (what the correcting actions take); * marks a corrected one")
    p = add_action(actions, "search", "full-text search over transcripts, titles and summaries", _search)
    p.add_argument("query")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--json", action="store_true")
    p = add_action(actions, "export", "export a session as Markdown, text, SRT, VTT or JSON, or as a note "
                                      "in a folder of notes (md-note)", _export)
    p.add_argument("id", type=int)
    p.add_argument("--format", "-f", required=True, help="md, txt, srt, vtt, json or md-note")
    p.add_argument("-o", "--output", help="a folder or file to write (default: standard output; md-note: the "
                                          "notes folder, default the settings' notes_folder)")
    p = add_action(actions, "rename-speaker", "give a speaker of a session a name", _rename)
    p.add_argument("id", type=int)
    p.add_argument("label", help="the speaker's label, e.g. S1")
    p.add_argument("name")
    p.add_argument("--save-voice", action="store_true",
                   help="remember this voice: later sessions name this speaker automatically")
    p = add_action(actions, "delete", "delete a session, its transcript and its media", _delete)
    p.add_argument("id", type=int)
    p.add_argument("--yes", action="store_true", help="really delete (required)")
    _register_corrections(actions)


def _register_corrections(actions) -> None:
    def segment_action(name: str, help: str, run):
        p = add_action(actions, name, help, run)
        p.add_argument("id", type=int, help="the session")
        p.add_argument("segment", type=int, help="the segment's number (sessions show ID --ids)")
        return p

    p = segment_action("edit-segment", "give a segment new words (the model's stay, for restore-segment)", _edit)
    p.add_argument("text")
    segment_action("restore-segment", "put back the model's words of a corrected segment", _restore)
    p = add_action(actions, "replace", "find and replace words in a session's transcript", _replace)
    p.add_argument("id", type=int)
    p.add_argument("find")
    p.add_argument("replace")
    p.add_argument("--case", action="store_true", help="match case exactly")
    p.add_argument("--anywhere", action="store_true", help="also inside longer words")
    p = segment_action("set-speaker", "give a segment to a speaker (a label, a name, or a new name)", _set_speaker)
    p.add_argument("name")
    p.add_argument("--following", action="store_true", help="and every later segment of its speaker")
    p = segment_action("split", "cut a segment in two at a time (at the nearest word)", _split)
    p.add_argument("--at", type=float, required=True, metavar="SECONDS", help="seconds from the session start")
    segment_action("merge-segment", "join a segment with the next one (same speaker)", _merge)
    p = add_action(actions, "undo", "take back the last correction of a session", _undo)
    p.add_argument("id", type=int)
    p = add_action(actions, "redo", "make the last undone correction again", _redo)
    p.add_argument("id", type=int)


def _with_library(action: Callable[..., int]) -> Callable[[argparse.Namespace], int]:
    """``action(lib, args)`` as a command: the library opened around it, its errors exit 2."""

    @wraps(action)
    def run(args: argparse.Namespace) -> int:
        from ..library import LibraryError

        try:
            with open_library() as lib:
                return action(lib, args)
        except LibraryError as e:
            raise UsageError(str(e)) from None

    return run


def _rows(items: list, args, empty: str, line: Callable[..., str]) -> int:
    """A list of records: as JSON with ``--json``, else one ``line(item)`` each (``empty`` if none)."""
    if args.json:
        print(json.dumps([asdict(i) for i in items], ensure_ascii=False, indent=2))
        return EXIT_OK
    if not items:
        print(empty)
    for i in items:
        print(line(i))
    return EXIT_OK


@_with_library
def _list(lib, args) -> int:
    return _rows(lib.sessions(), args, "no sessions yet",
                 lambda s: f"{s.id:>5}  {s.created[:16].replace('T', ' ')}  {clock(s.duration):>8}  "
                           f"{s.kind:<9} {s.status:<12} {s.title}")


@_with_library
def _show(lib, args) -> int:
    d = lib.session_detail(args.id)
    if args.json:
        print(d.to_json())
        return EXIT_OK
    s = d.session
    print(f"{s.title}\n{s.created[:16].replace('T', ' ')} UTC · {clock(s.duration)} · {s.kind} · {s.status}")
    if d.speakers:
        print("speakers: " + ", ".join(f"{sp.label}={sp.display}" if sp.name else sp.label
                                       for sp in d.speakers))
    if d.summaries:
        print("\n" + d.summaries[-1].text)
    print()
    for g in d.segments:
        print(_line(g) if args.ids else f"[{clock(g.start)}] {g.speaker + ': ' if g.speaker else ''}{g.text}")
    return EXIT_OK


def _line(g) -> str:
    """A segment with its number (``*``: corrected), as the correcting actions print it."""
    return f"#{g.id}{'*' if g.edited else ''} [{clock(g.start)}] {g.speaker + ': ' if g.speaker else ''}{g.text}"


@_with_library
def _search(lib, args) -> int:
    tty = sys.stdout.isatty()
    hl = ("\x1b[1m", "\x1b[0m") if tty and not args.json else ("[", "]")

    def line(h) -> str:
        where = f"[{clock(h.offset)}]" if h.source == "segment" else f"({h.source})"
        who = f" {h.speaker}:" if h.speaker else ""
        return f"{h.session_id:>5}  {h.session_title[:30]:<30}  {where}{who} {h.snippet}"

    return _rows(lib.search(args.query, limit=args.limit, highlight=hl), args, "no matches", line)


@_with_library
def _export(lib, args) -> int:
    from ..library.export import ExportError, export_session, render

    if args.format.strip().lower() == "md-note":  # a note with front matter, updated in place
        from ..library.notes import export_note

        folder = args.output or load_settings().notes_folder
        if not folder:
            raise UsageError("md-note needs the notes folder: -o FOLDER (or notes_folder in the settings)")
        try:
            print(export_note(lib, args.id, Path(folder).expanduser()))
        except ExportError as e:
            raise UsageError(str(e)) from None
        return EXIT_OK
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


@_with_library
def _rename(lib, args) -> int:
    if args.save_voice:  # names the speaker and keeps the voice
        from ..pipeline.speakers import save_voice

        try:
            save_voice(lib, args.id, args.label, args.name)
        except ValueError as e:
            raise UsageError(str(e)) from None
        sp = lib.speaker(args.id, args.label)
    else:
        sp = lib.edits.rename_speaker(args.id, args.label, args.name)
    print(f"{sp.label} is now {sp.display}" + (" (voice saved)" if args.save_voice else ""))
    return EXIT_OK


@_with_library
def _delete(lib, args) -> int:
    s = lib.get_session(args.id)
    if not args.yes:
        raise UsageError(f"this deletes session {s.id} ('{s.title}') and its media; add --yes to confirm")
    lib.delete_session(s.id)
    print(f"deleted session {s.id} ('{s.title}')")
    return EXIT_OK


# ---------------------------------------------------------------- corrections

def _segment(lib, args):
    """The segment ``args.segment`` of session ``args.id`` (one-line errors otherwise)."""
    lib.get_session(args.id)
    g = lib.segment(args.segment)
    if g.session_id != args.id:
        raise UsageError(f"segment {g.id} belongs to session {g.session_id}, not {args.id}")
    return g


@_with_library
def _edit(lib, args) -> int:
    print(_line(lib.edits.edit_segment(_segment(lib, args).id, args.text)))
    return EXIT_OK


@_with_library
def _restore(lib, args) -> int:
    print(_line(lib.edits.restore_segment(_segment(lib, args).id)))
    return EXIT_OK


@_with_library
def _replace(lib, args) -> int:
    n = lib.edits.replace_in_session(args.id, args.find, args.replace, whole_word=not args.anywhere,
                                     case=args.case)
    print(f"replaced {n} time{'' if n == 1 else 's'}" if n else f"'{args.find}' not found")
    return EXIT_OK


@_with_library
def _set_speaker(lib, args) -> int:
    for gid in lib.edits.set_segment_speaker(_segment(lib, args).id, args.name, following=args.following):
        print(_line(lib.segment(gid)))
    return EXIT_OK


@_with_library
def _split(lib, args) -> int:
    from ..library.edits import word_cut

    g = _segment(lib, args)
    if not g.start < args.at < g.end:
        raise UsageError(f"{args.at:g}s is outside segment {g.id} ({g.start:g}s to {g.end:g}s)")
    cut = word_cut(g.text, (args.at - g.start) / (g.end - g.start))
    if cut is None:
        raise UsageError(f"segment {g.id} is one word: nothing to split")
    for half in lib.edits.split_segment(g.id, cut, at_seconds=args.at):
        print(_line(half))
    return EXIT_OK


@_with_library
def _merge(lib, args) -> int:
    print(_line(lib.edits.merge_with_next(_segment(lib, args).id)))
    return EXIT_OK


def _step(lib, args, undo: bool) -> int:
    from ..errors import MinutelyError

    what = lib.edits.undo(args.id) if undo else lib.edits.redo(args.id)
    if what is None:  # a failure (exit 1), not a usage error: the command was right, there was nothing
        raise MinutelyError(f"nothing to {'undo' if undo else 'redo'} in session {args.id}")
    print(f"{'undone' if undo else 'redone'}: {what}")
    return EXIT_OK


@_with_library
def _undo(lib, args) -> int:
    return _step(lib, args, undo=True)


@_with_library
def _redo(lib, args) -> int:
    return _step(lib, args, undo=False)
