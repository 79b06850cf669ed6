"""Importing files: read on the io worker (the session appears at once), transcribe on the model worker.

A file's transcription waits in the model queue while no model is
configured, and survives a restart: jobs left queued are queued again at the
next start, and interrupted ones are offered for retry (they resume after
their last stored utterance).
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from app.library.models import JobKind, JobState, SessionState

from .tasks import Task

log = logging.getLogger("minutely.ui.import")


class Importer(QObject):
    session_created = Signal(int)
    session_changed = Signal(int)
    error = Signal(str)
    transcribed = Signal(int)          # session id, once its transcription is done

    def __init__(self, services, jobs_panel, parent=None):
        super().__init__(parent)
        self.services = services
        self.jobs = jobs_panel

    def _options(self):
        from app.pipeline.transcribe import TranscribeOptions

        s = self.services.settings
        return TranscribeOptions(language=s.language or None, translate_to=s.translate_to or None,
                                 user_name=s.user_name or "You")

    def import_file(self, path: Path) -> Task:
        from app.pipeline.transcribe import prepare_file

        path = Path(path)
        opts = self._options()

        def read(ctx):
            from app.media.audio import MediaError, NoSpeech
            from app.pipeline.video import probe

            try:
                info = probe(path)
            except MediaError:
                info = None  # no video track: an audio file (or not media, which prepare_file says)
            if info is not None and info.has_audio:
                try:
                    job = prepare_file(ctx.library, path, opts)
                    return job.session_id, True, True
                except NoSpeech:
                    pass  # a silent soundtrack: the video's frames alone
            if info is not None:
                s = ctx.library.create_session(opts.title or path.stem, "file", source=str(path.resolve()),
                                               status=SessionState.TRANSCRIBING)
                return s.id, True, False
            # an audio file: no speech (NoSpeech), or anything unreadable, fails here and stores nothing
            return prepare_file(ctx.library, path, opts).session_id, False, True

        task = Task(f"Reading {path.name}", read, kind="import", needs_model=False,
                    retry=lambda: self.import_file(path))
        task.done.connect(lambda r: self._read(r, path))
        task.failed.connect(lambda msg: self.error.emit(f"Could not import {path.name}: {msg}"))
        self.services.runner.submit(task)
        self.jobs.add_task(task)
        return task

    def _read(self, result, path: Path) -> None:
        session_id, video, audio = result
        self.session_created.emit(session_id)
        if audio:
            self.transcribe(path, session_id)
        if video:
            self.sample_frames(path, session_id)

    def sample_frames(self, path: Path, session_id: int) -> Task:
        """A video's frames, on the io worker beside its transcription (no model needed)."""
        from app.pipeline.video import add_frames

        def run(ctx):
            return add_frames(ctx.library, session_id, path, progress=lambda f: ctx.progress(f),
                              cancel=ctx.cancel_event)

        task = Task(f"Frames of {path.name}", run, kind="frames", needs_model=False, session_id=session_id,
                    retry=lambda: self.sample_frames(path, session_id))
        task.state_changed.connect(lambda _st: self.session_changed.emit(session_id))
        task.failed.connect(lambda msg: self.error.emit(f"Frames of {path.name} failed: {msg}"))
        self.services.runner.submit(task)
        self.jobs.add_task(task)
        return task

    def transcribe(self, path: Path, session_id: int) -> Task:
        from app.pipeline.transcribe import transcribe_file

        opts = self._options()
        title = self.services.library.get_session(session_id).title or path.name

        def run(ctx):  # the worker: only the task's own signals, never this window-owned object's
            def progress(p):
                ctx.progress(p.fraction, f"{p.done}/{p.total} utterances")

            sid = transcribe_file(ctx.library, lambda: ctx.engine, path, opts,
                                  progress=progress, cancel=ctx.cancel_event)
            ctx.progress(1.0, "speakers found")
            return sid

        task = Task(f"Transcribing {title}", run, kind="transcribe", session_id=session_id,
                    retry=lambda: self.transcribe(path, session_id))
        task.state_changed.connect(lambda _st: self.session_changed.emit(session_id))
        task.progress.connect(lambda _f: self.session_changed.emit(session_id))  # a group was stored
        task.done.connect(lambda _r: self.transcribed.emit(session_id))
        task.failed.connect(lambda msg: self.error.emit(f"Transcribing {title} failed: {msg}"))
        self.services.runner.submit_model(task)
        self.jobs.add_task(task)
        return task

    def transcribe_recording(self, session_id: int) -> Task | None:
        """A recording made without live transcription: transcribe its audio into the same session."""
        from app.pipeline.transcribe import prepare_file

        path = self.services.library.session_audio(session_id)
        if path is None:
            return None
        opts = self._options()

        def read(ctx):
            return prepare_file(ctx.library, path, opts, session_id=session_id).session_id

        task = Task("Reading the recording", read, kind="import", needs_model=False)
        task.done.connect(lambda sid: self.transcribe(path, sid))
        task.failed.connect(lambda msg: self.error.emit(f"Could not read the recording: {msg}"))
        self.services.runner.submit(task)
        self.jobs.add_task(task)
        return task

    def recover_recordings(self) -> Task:
        """At start: recordings a crash left unfinished become sessions again."""
        from app.pipeline.meeting import recover_unfinished

        def run(ctx):
            return [sid for sid, _res in recover_unfinished(ctx.library)]

        task = Task("Checking for unfinished recordings", run, kind="recover", needs_model=False)

        def done(sids):
            for sid in sids:
                self.session_created.emit(sid)
            if sids:
                self.error.emit(f"Recovered {len(sids)} recording(s) that were interrupted")
                for sid in sids:
                    if not self.services.library.segments(sid):
                        self.transcribe_recording(sid)

        task.done.connect(done)
        self.services.runner.submit(task)
        return task

    def add_interrupted_jobs(self) -> None:
        """Queue again what was waiting; offer a retry for what a crash or quit interrupted."""
        lib = self.services.library
        for job in lib.jobs.find([JobState.QUEUED, JobState.INTERRUPTED], kind=JobKind.TRANSCRIBE):
            src = job.resume_state().file
            if job.session_id is None or not src:
                continue
            path = Path(src)
            if job.state == JobState.QUEUED:
                self.transcribe(path, job.session_id)
            else:
                title = lib.get_session(job.session_id).title
                self.jobs.add_interrupted(f"Transcribing {title}", job.error or "interrupted", job.progress,
                                          lambda p=path, sid=job.session_id: self.transcribe(p, sid))
