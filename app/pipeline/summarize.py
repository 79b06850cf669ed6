"""Summarize a session: readable Markdown, streamed into the library, plus structured results.

One pass while it fits: the transcript and the template's instruction go to the
model, which writes the Markdown (streamed into the summary row as it comes);
then, in the same conversation (the transcript is already evaluated: prefix
reuse), it lists the action items, decisions and open questions as JSON under a
JSON-schema grammar. Those become rows, and Markdown sections made from the
rows are appended to the text, so prose and rows always agree.

Past what fits the context (``SummaryOptions.context``, else the engine's
n_ctx, less room for the answers): map-reduce. The transcript is cut into
time-ordered parts that fit (``context.split_to_budget``); for each, the model
writes notes and that part's structured results as one JSON answer; the notes
(condensed again, group by group, should even they not fit) are then turned
into the Markdown, streamed as above, and the parts' results are merged with
near-duplicates removed. The user never sees a context error.

Each run is a job row (kind ``summarize``) with progress, and a new summary row:
regenerating with another template keeps the older summaries. Cancelling keeps
what was written (status ``cancelled``). No Qt here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from app import defaults
from app.engine.messages import Message
from app.engine.protocol import EngineSource, loaded
from app.errors import MinutelyError
from app.library.jobs import JobRun
from app.library.models import JobKind, SummarizeResume, SummaryState
from app.pipeline.context import Line, format_time, render, span, split_to_budget, text_counter, transcript_lines
from app.pipeline.structured import complete_json, items_schema, markdown_sections, merge, normalize
from app.pipeline.summary_templates import Template, TemplateError, Templates, load_templates
from app.pipeline.vocabulary import hint_sentence, terms

log = logging.getLogger("minutely.summarize")

JOB_KIND = JobKind.SUMMARIZE
SYSTEM = ("Below is a meeting transcript; each line is [time] speaker: words. Use only what it says, "
          "and write in the language it is in.")
EXTRACT = ("Now list, from the transcript, {what}. Use the speakers' names for owners; leave owner or due "
           "empty when nobody said. Write each item once, briefly. Answer in JSON only.")
WHAT = {"action_items": "the action items (tasks someone agreed to do: text, owner, due date as said)",
        "decisions": "the decisions that were made",
        "open_questions": "the questions left open"}
MAP = ("This is part {i} of {n} of a longer meeting. Write up to {k} short notes on what this part says "
       "(topics, facts, who said what), then list {what} found in this part. Answer in JSON only.")
CONDENSE = ("These are notes on a long meeting, taken part by part. Merge them into at most {k} shorter notes, "
            "keeping the facts, names and times. Answer in JSON only.")
NOT_LISTS = ("Do not list action items, decisions or open questions: they are collected separately. "
             "Write the Markdown only, with no introduction.")
NOTES = "{system}\n\nNotes on the meeting \"{title}\", taken part by part:\n{notes}\n\n{task}"
MARGIN = 32  # tokens kept free for template and tokenizer differences


class SummarizeError(MinutelyError, ValueError):
    """Bad input for a summary (no transcript, an unusable template): one line for the user."""


class SummaryCancelled(Exception):
    """The summary was cancelled; what was written so far is kept."""


@dataclass
class SummaryOptions:
    max_tokens: int = 1024        # the Markdown
    items_max_tokens: int = 768   # the structured results (JSON)
    notes_max_tokens: int = 640   # a part's notes and results (map step)
    context: int | None = None    # tokens a summary may use; None: the engine's context size
    max_items: int = 12           # per list
    notes_per_part: int = 10
    temperature: float = 0.3
    seed: int = 0
    model: str | None = None      # model name stored with the summary
    flush_seconds: float = 0.25   # how often streamed text is written to the library
    glossary: list[str] = field(default_factory=list)  # the team's words: spellings for the prompt
    notes_folder: str | None = None  # when the summary is done, export the session's note there


@dataclass
class SummaryProgress:
    summary_id: int
    job_id: int
    stage: str                    # "summarizing", "part", "condensing", "collecting", "done"
    fraction: float
    part: int = 0                 # map step: the part being read (1-based) of ``parts``
    parts: int = 0


@dataclass
class SummaryResult:
    summary_id: int
    job_id: int
    template: str
    text: str
    action_items: list[dict] = field(default_factory=list)   # {text, owner, due}
    decisions: list[str] = field(default_factory=list)
    open_questions: list[str] = field(default_factory=list)
    mode: str = "one-pass"        # or "map-reduce"
    parts: int = 1
    replies: list[Any] = field(default_factory=list)         # every model call's Reply (timings)
    note: str | None = None       # the note written (SummaryOptions.notes_folder)
    note_error: str | None = None  # why it could not be (the summary is kept all the same)

    def to_dict(self) -> dict:
        return {"summary_id": self.summary_id, "job_id": self.job_id, "template": self.template,
                "mode": self.mode, "parts": self.parts, "text": self.text, "action_items": self.action_items,
                "decisions": self.decisions, "open_questions": self.open_questions, "note": self.note}


def resolve_template(template: str | Template, templates: Templates | None = None) -> Template:
    if isinstance(template, Template):
        return template
    try:
        return (templates or load_templates()).get(template)
    except TemplateError as e:
        raise SummarizeError(str(e)) from None


def system_text(attendees: Sequence[str] = (), glossary: Sequence[str] = ()) -> str:
    """SYSTEM, with the meeting's attendees and the team's words (spellings) when there are any."""
    extra = [f"The attendees: {', '.join(attendees)}."] if attendees else []
    hint = hint_sentence(terms(glossary, attendees))
    return " ".join([SYSTEM, *extra, *([hint] if hint else [])])


def transcript_prompt(session, lines: list[Line], instruction: str, part: tuple[int, int] | None = None,
                      system: str = SYSTEM) -> str:
    """The user message: the transcript first (a prefix shared by every template), then the task.

    The standing instruction (SYSTEM) opens the user message rather than a system
    turn: every chat template has user turns, not all have a system role."""
    dur = format_time(session.duration) if session.duration else format_time(span(lines)[1])
    head = f'{system}\n\nTranscript of "{session.title}" ({session.created[:10]}, {dur})'
    if part is not None:
        a, b = span(lines)
        head = f"{system}\n\nPart {part[0]} of {part[1]} ({format_time(a)}-{format_time(b)}) of the " \
               f'transcript of "{session.title}"'
    return f"{head}:\n{render(lines)}\n\n{instruction}"


def summarize(lib, engine: EngineSource, session_id: int, template: str | Template = "general",
              opts: SummaryOptions | None = None, *, templates: Templates | None = None,
              progress: Callable[[SummaryProgress], None] | None = None,
              on_text: Callable[[int, str], None] | None = None,
              cancel: threading.Event | None = None) -> SummaryResult:
    """Summarize session ``session_id`` with ``template`` into a new summary row.

    ``engine``: an Engine or EngineHost, or a callable returning one (called only
    once the session and template are known good). ``progress`` gets
    SummaryProgress ticks; ``on_text(summary_id, text)`` the text each time it is
    written to the library while streaming. ``cancel``: set it (and call
    ``engine.cancel()`` to stop a prompt evaluation at once) to stop; the summary
    is kept as ``cancelled`` and SummaryCancelled is raised. Raises NotFound for
    an unknown session, SummarizeError for no transcript or a bad template."""
    opts = opts or SummaryOptions()
    session = lib.get_session(session_id)
    tpl = resolve_template(template, templates)
    lines = transcript_lines(lib, session_id)
    if not lines:
        raise SummarizeError(f"session {session_id} has no transcript to summarize")
    eng = loaded(engine)
    summary = lib.summaries.start(session_id, tpl.name, opts.model)
    stops = (SummaryCancelled, KeyboardInterrupt)
    with lib.jobs.run(JOB_KIND, session_id, SummarizeResume(summary_id=summary.id, template=tpl.name),
                      cancelled=stops) as job:
        run = _Run(lib, eng, session, tpl, opts, summary.id, job, progress, on_text, cancel)
        try:
            result = run.go(lines)
        except BaseException as e:
            try:  # the text so far is kept; the job records the end itself
                lib.summaries.write(summary.id, run.text,
                                    SummaryState.CANCELLED if isinstance(e, stops) else SummaryState.FAILED)
            except Exception:  # the library itself failed: the original error matters more
                log.exception("could not record the end of summary %d", summary.id)
            raise
    if opts.notes_folder:  # the note follows its summary; a failed export never fails the summary
        from app.library.notes import export_note

        try:
            result.note = str(export_note(lib, session_id, opts.notes_folder))
        except MinutelyError as e:
            result.note_error = str(e)
            log.warning("note not exported: %s", e)
    return result


class _Run:
    def __init__(self, lib, eng, session, tpl: Template, opts: SummaryOptions, summary_id: int, job: JobRun,
                 progress, on_text, cancel):
        self.lib, self.eng, self.session, self.tpl, self.opts = lib, eng, session, tpl, opts
        self.summary_id, self.job, self.job_id = summary_id, job, job.id
        self._progress, self._on_text, self._cancel = progress, on_text, cancel
        self.text = ""
        self.replies: list[Any] = []
        people = [a.display for a in lib.events.session_attendees(session.id)]
        self.system = system_text(people, opts.glossary)
        ctx = int(getattr(eng, "n_ctx", 0) or 0) or defaults.N_CTX
        self.ctx = min(ctx, opts.context) if opts.context else ctx
        # answers never take more than a quarter of the context each: a small context still works
        q = max(64, self.ctx // 4)
        self.md_tokens = min(opts.max_tokens, q)
        self.items_tokens = min(opts.items_max_tokens, q)
        self.notes_tokens = min(opts.notes_max_tokens, q)

    # -- model calls ----------------------------------------------------------
    def _check(self) -> None:
        if self._cancel is not None and self._cancel.is_set():
            raise SummaryCancelled("summary cancelled")

    def _call(self, msgs: list[Message], max_tokens: int, *, schema: dict | None = None,
              on_piece: Callable[[str], None] | None = None):
        self._check()
        stream = self.eng.stream(msgs, max_tokens=max_tokens, json_schema=schema,
                                 temperature=self.opts.temperature, seed=self.opts.seed)
        try:
            for piece in stream:
                if self._cancel is not None and self._cancel.is_set():
                    self.eng.cancel()
                if on_piece is not None:
                    on_piece(piece)
        finally:
            stream.close()
        reply = stream.reply
        if reply is None or reply.finish_reason == "cancelled":
            raise SummaryCancelled("summary cancelled")
        self.replies.append(reply)
        self._check()
        return reply

    def _json(self, msgs: list[Message], max_tokens: int, schema: dict) -> dict[str, list]:
        reply = self._call(msgs, max_tokens, schema=schema)
        try:
            data = complete_json(reply.text)
        except ValueError:
            log.warning("structured answer had no JSON (%d tokens); treated as empty", reply.generated_tokens)
            data = {}
        return normalize(data, self.tpl.fields)

    def _tick(self, stage: str, fraction: float, part: int = 0, parts: int = 0) -> None:
        self.job.progress(fraction)
        if self._progress:
            self._progress(SummaryProgress(self.summary_id, self.job_id, stage, fraction, part, parts))

    def _write_markdown(self, msgs: list[Message], f0: float, f1: float, stage: str) -> str:
        """Stream the Markdown answer into the summary row (throttled)."""
        parts: list[str] = []
        last = [time.monotonic()]

        def piece(p: str) -> None:
            parts.append(p)
            now = time.monotonic()
            if now - last[0] >= self.opts.flush_seconds:
                last[0] = now
                self.text = "".join(parts).strip()  # always a prefix of the final text
                self.lib.summaries.write(self.summary_id, self.text)
                if self._on_text:
                    self._on_text(self.summary_id, self.text)
                self._tick(stage, f0 + (f1 - f0) * min(1.0, len(parts) / self.md_tokens))

        reply = self._call(msgs, self.md_tokens, on_piece=piece)
        self.text = reply.text.strip()
        self.lib.summaries.write(self.summary_id, self.text)
        if self._on_text:
            self._on_text(self.summary_id, self.text)
        return self.text

    # -- the two ways ---------------------------------------------------------
    def _what(self) -> str:
        return "; ".join(WHAT[f] for f in self.tpl.fields) or "nothing more"

    def go(self, lines: list[Line]) -> SummaryResult:
        instruction = f"{self.tpl.instruction}\n\n{NOT_LISTS}"
        msgs = [Message.user(transcript_prompt(self.session, lines, instruction, system=self.system))]
        extract = Message.user(EXTRACT.format(what=self._what()))
        base = self.eng.count_tokens([Message.user("")])
        reserve = self.md_tokens + self.eng.count_tokens([Message.user(extract.text)]) - base + \
            self.items_tokens + MARGIN
        self._tick("summarizing", 0.0)
        if self.eng.count_tokens(msgs) + reserve <= self.ctx:
            markdown = self._write_markdown(msgs, 0.0, 0.8, "summarizing")
            if self.tpl.fields:
                self._tick("collecting", 0.85)
                follow = [*msgs, Message.assistant(markdown), extract]
                results = merge([self._json(follow, self.items_tokens,
                                            items_schema(self.tpl.fields, self.opts.max_items))], self.tpl.fields)
            else:
                results = {}
            return self._finish(markdown, results, "one-pass", 1)
        return self._map_reduce(lines, instruction)

    def _map_reduce(self, lines: list[Line], instruction: str) -> SummaryResult:
        count = text_counter(self.eng)
        k = self.opts.notes_per_part
        fields = self.tpl.fields
        schema = items_schema(fields, self.opts.max_items, notes=k)
        # the prompt around a part's lines, measured with the longest header it can have
        probe = transcript_prompt(self.session, [Line(86399, 86399, "")], MAP.format(
            i=999, n=999, k=k, what=self._what()), system=self.system)
        overhead = self.eng.count_tokens([Message.user(probe)])
        budget = self.ctx - overhead - self.notes_tokens - MARGIN
        parts = split_to_budget(lines, count, max(16, budget))
        n = len(parts)
        log.info("summary %d: %d parts of at most %d tokens", self.summary_id, n, budget)
        results, notes = [], []
        for i, part in enumerate(parts, 1):
            self._tick("part", 0.6 * (i - 1) / n, i, n)
            task = MAP.format(i=i, n=n, k=k, what=self._what())
            msgs = [Message.user(transcript_prompt(self.session, part, task, (i, n), self.system))]
            r = self._json(msgs, self.notes_tokens, schema)
            a, b = span(part)
            notes.append(f"Part {i} ({format_time(a)}-{format_time(b)}):")
            notes.extend(f"- {t}" for t in r.pop("notes", []))
            results.append(r)
        notes = self._condense(notes, instruction)
        text = NOTES.format(system=self.system, title=self.session.title, notes="\n".join(notes), task=instruction)
        markdown = self._write_markdown([Message.user(text)], 0.7, 0.95, "summarizing")
        return self._finish(markdown, merge(results, fields), "map-reduce", n)

    def _condense(self, notes: list[str], instruction: str) -> list[str]:
        """Notes short enough for the final call: condensed group by group while they are not."""
        count = text_counter(self.eng)
        fixed = self.eng.count_tokens([Message.user(NOTES.format(system=self.system, title=self.session.title,
                                                                  notes="",
                                                                  task=instruction))])
        budget = self.ctx - fixed - self.md_tokens - MARGIN
        schema = items_schema((), notes=self.opts.notes_per_part)
        task_tokens = self.eng.count_tokens([Message.user(f"{self.system}\n\n\n\n{CONDENSE.format(k=99)}")])
        group_budget = max(16, self.ctx - task_tokens - self.notes_tokens - MARGIN)
        for round_ in range(4):
            if count("\n".join(notes)) <= budget:
                return notes
            groups = split_to_budget(notes, count, group_budget)
            self._tick("condensing", 0.6 + 0.1 * round_ / 4, 0, len(groups))
            out: list[str] = []
            for g in groups:
                msg = Message.user(f"{self.system}\n\n{render(g)}\n\n{CONDENSE.format(k=self.opts.notes_per_part)}")
                out.extend(f"- {t}" for t in self._json([msg], self.notes_tokens, schema).get("notes", []))
            notes = out
        # still too long (a tiny context): keep what fits, in time order
        kept = split_to_budget(notes, count, max(16, budget))
        return kept[0] if kept else []

    def _finish(self, markdown: str, results: dict[str, list], mode: str, parts: int) -> SummaryResult:
        fields = self.tpl.fields
        results = {f: results.get(f, []) for f in fields}
        extra = markdown_sections(results, fields)
        self.text = f"{markdown}\n\n{extra}".strip() if extra else markdown
        self.lib.summaries.finish(self.summary_id, self.text, action_items=results.get("action_items", []),
                                  decisions=results.get("decisions", []),
                                  questions=results.get("open_questions", []))
        if self._on_text:
            self._on_text(self.summary_id, self.text)
        self._tick("done", 1.0)
        return SummaryResult(self.summary_id, self.job_id, self.tpl.name, self.text,
                             results.get("action_items", []), results.get("decisions", []),
                             results.get("open_questions", []), mode, parts, self.replies)
