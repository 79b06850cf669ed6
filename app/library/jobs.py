"""Jobs: ``library.jobs``, one persisted record per piece of long work.

A job row has a kind (``JobKind``), a state (``JobState``), progress 0..1, a
one-line error and a resume state: a typed dataclass per kind
(``TranscribeResume``, ``FramesResume``, ``SummarizeResume`` in models.py)
stored as the row's JSON, so a later run (after a crash, a cancel or a quit)
continues where this one stopped.

Pipelines run their work inside ``with lib.jobs.run(...) as job:``: the job is
``running`` inside; ``job.progress(fraction, resume)`` records how far it got; an
exception of one of the ``cancelled`` types leaves it ``cancelled``, any other
``failed`` with the exception as one line; leaving the block normally makes it
``done``. The resume state is kept in every case.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from app.errors import one_line

from .db import LibraryError
from .models import RESUME_TYPES, Job, JobKind, JobState, ResumeState, SessionState
from .store import Store, now_iso

log = logging.getLogger("minutely.library.jobs")


def _resume_json(resume: ResumeState | dict | None) -> str:
    if isinstance(resume, ResumeState):
        resume = resume.to_dict()
    return json.dumps(resume or {})


def _job(r: dict[str, Any]) -> Job:
    return Job(**{**r, "resume": json.loads(r["resume"] or "{}")})


@dataclass
class JobRun:
    """The handle ``Jobs.run`` gives the work inside its block."""
    jobs: Jobs
    id: int
    session_id: int | None
    resume: ResumeState | None       # the typed resume state the job started with

    def progress(self, fraction: float, resume: ResumeState | None = None) -> None:
        """Record progress (0..1) and, if given, the resume state (joins the caller's transaction)."""
        if resume is not None:
            self.resume = resume
        self.jobs.update(self.id, progress=fraction, resume=resume)

    @property
    def job(self) -> Job:
        return self.jobs.get(self.id)


class Jobs:
    def __init__(self, store: Store):
        self._store = store

    def create(self, kind: JobKind | str, session_id: int | None = None,
               resume: ResumeState | dict | None = None) -> Job:
        """A new job in state ``queued``."""
        jid = self._store.insert("jobs", {"kind": str(kind), "session_id": session_id, "state": JobState.QUEUED,
                                          "created": now_iso(), "updated": now_iso(),
                                          "resume": _resume_json(resume)})
        return self.get(jid)

    def get(self, job_id: int) -> Job:
        return _job(self._store.one("jobs", job_id, "job"))

    def find(self, states: Sequence[str] | None = None, session_id: int | None = None,
             kind: JobKind | str | None = None) -> list[Job]:
        """Jobs in any of ``states`` (all if None), of a session, of a kind; oldest first."""
        sql = "SELECT * FROM jobs WHERE 1"
        params: list[Any] = []
        if states:
            sql += f" AND state IN ({', '.join('?' for _ in states)})"
            params += [str(s) for s in states]
        if session_id is not None:
            sql += " AND session_id = ?"
            params.append(session_id)
        if kind is not None:
            sql += " AND kind = ?"
            params.append(str(kind))
        return [_job(r) for r in self._store.rows(sql + " ORDER BY id", params)]

    def update(self, job_id: int, *, state: JobState | str | None = None, progress: float | None = None,
               error: str | None = None, resume: ResumeState | dict | None = None) -> Job:
        row: dict[str, Any] = {"updated": now_iso()}
        if state is not None:
            try:
                state = JobState(state)
            except ValueError:
                raise LibraryError(f"unknown job state '{state}'") from None
            row["state"] = state
            if state == JobState.RUNNING:
                row["started"] = now_iso()
            if state.finished:
                row["finished"] = now_iso()
        if progress is not None:
            row["progress"] = max(0.0, min(1.0, float(progress)))
        if error is not None:
            row["error"] = error
        if resume is not None:
            row["resume"] = _resume_json(resume)
        self._store.update("jobs", job_id, row)
        return self.get(job_id)

    def mark_interrupted(self) -> list[Job]:
        """At start: jobs left ``running`` by a process that died are ``interrupted``."""
        running = self.find([JobState.RUNNING])
        for j in running:
            self.update(j.id, state=JobState.INTERRUPTED, error="Minutely stopped while this job ran")
        return [self.get(j.id) for j in running]

    @contextmanager
    def run(self, job: Job | JobKind | str, session_id: int | None = None,
            resume: ResumeState | None = None, *, cancelled: tuple[type[BaseException], ...] = (),
            session_busy: SessionState | None = None) -> Iterator[JobRun]:
        """Run work as a job: ``job`` is an existing job (resumed) or a kind (a new job
        of ``session_id`` with ``resume`` is created).

        Inside the block the job is ``running`` (an earlier error cleared). Leaving it
        by an exception of a ``cancelled`` type marks it ``cancelled``; by any other
        exception ``failed``, with the exception as one line; normally, ``done`` with
        progress 1. ``session_busy``: the session's status while the job runs (it
        becomes ``failed`` when the job fails). Exceptions are always re-raised; a
        failure to record the end is logged so the original error is what the
        caller sees."""
        if not isinstance(job, Job):
            job = self.create(job, session_id, resume)
        sid = job.session_id
        if resume is None and job.kind in RESUME_TYPES:
            resume = job.resume_state()
        handle = JobRun(self, job.id, sid, resume)
        self.update(job.id, state=JobState.RUNNING)
        if job.error:
            self._store.update("jobs", job.id, {"error": None})
        if session_busy is not None and sid is not None:
            self._set_session(sid, session_busy)
        try:
            yield handle
        except BaseException as e:
            try:
                if cancelled and isinstance(e, cancelled):
                    self.update(job.id, state=JobState.CANCELLED)
                else:
                    self.update(job.id, state=JobState.FAILED, error=one_line(e))
                    if session_busy is not None and sid is not None:
                        self._set_session(sid, SessionState.FAILED)
            except Exception:  # the library itself failed: the original error matters more
                log.exception("could not record the end of job %d", job.id)
            raise
        self.update(job.id, state=JobState.DONE, progress=1.0)

    def _set_session(self, session_id: int, status: SessionState) -> None:
        self._store.update("sessions", session_id, {"status": status, "updated": now_iso()})
