"""``python main.py summarize ID [--template NAME] [--json]``: a session's summary and action items."""

from __future__ import annotations

import json
import sys

from .common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    UsageError,
    add_model_args,
    engine_config,
    load_settings,
    open_library,
    remote_engine,
    say,
)


def register(sub) -> None:
    p = sub.add_parser("summarize", help="summarize a session: Markdown plus action items, decisions, "
                                         "open questions")
    p.add_argument("session", nargs="?", type=int, metavar="ID", help="the session (see 'sessions list')")
    p.add_argument("--template", default="general", metavar="NAME",
                   help="summary template (default: general; see --list-templates)")
    p.add_argument("--list-templates", action="store_true", help="list the templates and exit")
    p.add_argument("--json", action="store_true", help="print the summary and its results as JSON")
    p.add_argument("--max-tokens", type=int, default=1024, help="length of the Markdown, in tokens")
    p.add_argument("--seed", type=int, default=0)
    add_model_args(p)
    p.set_defaults(run=run)


def _notices(templates, skip: str | None = None) -> None:
    """One line per user template that was skipped (not the chosen one: its error says it)."""
    for n in templates.notices:
        if skip is None or not n.startswith(f"template '{skip}' "):
            say(n)


def run(args) -> int:
    from ..library import LibraryError
    from ..pipeline.summarize import SummarizeError, SummaryCancelled, SummaryOptions, summarize
    from ..pipeline.summary_templates import load_templates

    templates = load_templates()
    if args.list_templates:
        _notices(templates)
        for t in templates:
            where = "" if t.builtin else f"  [{t.path}]"
            print(f"{t.name:<14} {t.title:<16} {t.description}{where}")
        return EXIT_OK
    if args.session is None:
        raise UsageError("give the session ID to summarize (see 'python main.py sessions list')")
    if args.max_tokens < 16:
        raise UsageError("--max-tokens must be at least 16")
    settings = load_settings()
    loaded = []

    def engine():  # loaded only once the session, its transcript and the template are known good
        from ..engine.engine import Engine
        from ..engine.resolve import resolve_model

        _notices(templates, skip=args.template)  # now, so an error stays one line
        remote = remote_engine(args, settings)
        if remote is not None:
            opts.model = remote.model  # stored with the summary
            loaded.append(remote)
            return remote
        choice = resolve_model(args.model, args.mmproj, settings)
        opts.model = choice.model.name  # stored with the summary
        loaded.append(Engine(choice.model, None, engine_config(args, settings),  # text only: no mmproj
                             drafter=choice.drafter))
        return loaded[-1]

    opts = SummaryOptions(max_tokens=args.max_tokens, seed=args.seed, glossary=list(settings.glossary),
                          notes_folder=settings.notes_folder if settings.notes_auto_export else None)
    shown = [""]

    def stream(_sid: int, text: str) -> None:
        if args.json:
            return
        if text.startswith(shown[0]):
            sys.stdout.write(text[len(shown[0]):])
            sys.stdout.flush()
            shown[0] = text

    with open_library() as lib:
        try:
            result = summarize(lib, engine, args.session, args.template, opts, templates=templates,
                               on_text=stream)
        except (LibraryError, SummarizeError) as e:
            raise UsageError(str(e)) from None
        except (KeyboardInterrupt, SummaryCancelled):
            print("\nminutely: stopped; what was written is kept as a cancelled summary", file=sys.stderr)
            return EXIT_INTERRUPTED
        finally:
            for eng in loaded:
                eng.close()
        if args.json:
            print(json.dumps({"session_id": args.session, **result.to_dict()}, ensure_ascii=False, indent=2))
        else:
            if not result.text.startswith(shown[0]):  # the final text differs (trimmed): print it whole
                sys.stdout.write("\n" + result.text)
            elif len(result.text) > len(shown[0]):
                sys.stdout.write(result.text[len(shown[0]):])
            sys.stdout.write("\n")
        if result.note:
            say(f"note written: {result.note}")
        elif result.note_error:
            say(f"note not written: {result.note_error}")
    return EXIT_OK
