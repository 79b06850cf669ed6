"""Qt objects die on their own thread: the workers never hold the last reference to a Task, and the
services form no reference cycle (the cycle collector would free them on whatever thread runs it).

A QObject deleted on a thread other than its own can be deleted while its thread delivers an event
to it; the single-instance socket that deleted its own guard is in tests/ui/test_single_instance.py.
"""

from __future__ import annotations

import gc
import threading
import time
import weakref

from app.ui.bootstrap import build_services
from app.ui.tasks import CANCELLED, DONE, FAILED, ModelService, Task


def _watched(title: str, fn, freed: list) -> Task:
    task = Task(title, fn, needs_model=False)
    weakref.finalize(task, lambda: freed.append((title, threading.current_thread() is threading.main_thread())))
    return task


def test_finished_and_cancelled_tasks_are_let_go_on_the_main_thread(qtbot, tmp_path):
    services = build_services(tmp_path / "home")
    try:
        freed: list[tuple[str, bool]] = []
        # the model worker: one thread, so "third" stays queued behind "second" (the pool would start it)
        first = services.model.submit(_watched("first", lambda ctx: 1, freed))
        qtbot.waitUntil(lambda: first.finished, timeout=10_000)  # noqa: F821 (deleted below on purpose)
        assert first.state == DONE and first.result == 1
        del first  # the worker still held it until its next task (and freed it there)

        running, go = threading.Event(), threading.Event()

        def block(ctx):
            running.set()
            go.wait(10)
            return 2

        second = services.model.submit(_watched("second", block, freed))
        assert running.wait(10)
        third = services.model.submit(_watched("third", lambda ctx: 3, freed))
        third.cancel()  # still queued: it never runs
        assert third.state == CANCELLED and not second.finished  # at once, not when the worker gets to it
        go.set()
        qtbot.waitUntil(lambda: second.finished and third.finished, timeout=10_000)  # noqa: F821 (deleted below)
        assert (second.state, third.state) == (DONE, CANCELLED)
        del second, third
        qtbot.waitUntil(lambda: len(freed) == 3, timeout=10_000)
        assert sorted(freed) == [("first", True), ("second", True), ("third", True)]
    finally:
        services.close()


def test_closed_services_go_away_without_the_cycle_collector(qapp, tmp_path):
    services = build_services(tmp_path / "home")
    services.close()
    objects = [services.model, services.io, services.model._relay, services.io._relay, services.runner,
               services.runner._bounce]
    refs = [weakref.ref(o) for o in objects]
    del objects
    gc.disable()
    try:
        del services
        assert [r() for r in refs] == [None] * len(refs)
    finally:
        gc.enable()


def test_the_settings_a_worker_reads_are_the_current_ones(qapp, tmp_path):
    services = build_services(tmp_path / "home")
    try:
        from app.settings import Settings

        replaced = Settings()
        services.settings = replaced  # the settings dialog may replace the object
        assert services.model._settings_fn() is replaced and services.io._settings_fn() is replaced
    finally:
        services.close()


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def test_a_worker_that_outlives_the_join_frees_its_service_on_the_main_thread(qtbot, tmp_path):
    """Shutdown waits `timeout` for the workers; one still running then (a stuck task) held the
    service through its thread, and dropped it there when it ended: a QObject freed off its thread."""
    svc = ModelService(tmp_path, lambda: None, workers=1)
    freed: list[bool] = []
    weakref.finalize(svc, lambda: freed.append(_main_thread()))
    started = threading.Event()

    def stuck(ctx):
        started.set()
        time.sleep(0.8)  # ignores the cancel flag
        return 1

    svc.submit(Task("stuck", stuck, needs_model=False))
    assert started.wait(10)
    svc.shutdown(timeout=0.05)
    del svc
    qtbot.waitUntil(lambda: bool(freed), timeout=10_000)
    assert freed == [True]


def test_a_job_row_does_not_keep_its_task(qtbot, tmp_path):
    """The Jobs panel's row followed its task through lambdas that named the task, connected to the
    task's own signals: the task could never be freed."""
    from app.ui.jobs_panel import JobsPanel

    services = build_services(tmp_path / "home")
    panel = JobsPanel()
    qtbot.addWidget(panel)
    try:
        freed: list = []
        task = services.runner.submit(_watched("listed", lambda ctx: ctx.progress(0.5, "half") or 5, freed))
        row = panel.add_task(task)
        qtbot.waitUntil(lambda: task.finished, timeout=10_000)  # noqa: F821 (deleted below on purpose)
        assert task.state == DONE and row.state.text() == "done" and row.bar.value() == 1000
        row.dismiss.click()
        del task, row
        qtbot.waitUntil(lambda: bool(freed), timeout=10_000)  # no gc.collect(): no cycle holds it
        assert freed == [("listed", True)]
    finally:
        services.close()


class FakeRecorder:
    """Stands in for the microphone: one block of audio on start, a result on stop."""

    def __init__(self, folder, mic, on_audio):
        self.on_audio = on_audio

    def start(self):
        import numpy as np

        self.on_audio("mic", 0, np.zeros(1600, np.float32))

    def stop(self):
        return None


def test_a_listener_is_stopped_on_the_pool_and_let_go(qtbot, tmp_path):
    """Stopping the microphone ran on a thread of its own; the pad followed the listener through
    lambdas naming it, on its own signals: every listener was kept for good."""
    from app.ui.dictation_pad import DictationPad

    services = build_services(tmp_path / "home")
    pad = DictationPad(services, recorder_factory=FakeRecorder)
    qtbot.addWidget(pad)
    try:
        assert pad.begin("talk")
        lst = pad.listener
        freed: list[bool] = []
        weakref.finalize(lst, lambda: freed.append(_main_thread()))
        kinds: list[str] = []
        services.runner.task_added.connect(lambda t: kinds.append(t.kind))  # (holding no task)
        threads: list = []
        lst.finished.connect(lambda _l, audio: threads.append((_main_thread(), len(audio))))
        pad.end()
        assert kinds == ["listen"]  # the stop is a pool task
        qtbot.waitUntil(lambda: bool(threads), timeout=10_000)
        assert threads == [(True, 1600)]
        # the audio went on as a dictation, which waits for a model
        qtbot.waitUntil(lambda: pad.status.text().startswith("No model yet"), timeout=10_000)
        del lst
        gc.disable()
        try:
            qtbot.waitUntil(lambda: bool(freed), timeout=10_000)
        finally:
            gc.enable()
        assert freed == [True]
    finally:
        pad.shutdown()
        services.close()


def test_a_summary_task_is_not_kept_by_its_tab(qtbot, tmp_path):
    from app.ui.summary_tab import SummaryTab

    services = build_services(tmp_path / "home")
    tab = SummaryTab(services)
    qtbot.addWidget(tab)
    try:
        sid = services.library.create_session("Weekly", "file", status="ready").id
        tab.load(sid)
        task = tab.summarize("general")  # no model configured: it waits, and is cancelled
        freed: list[bool] = []
        weakref.finalize(task, lambda: freed.append(_main_thread()))
        assert tab.run_button.text() == "Stop"
        tab.toggle()
        assert task.state == CANCELLED and tab.run_button.text() == "Summarize"
        del task
        tab.task = None
        gc.disable()
        try:
            qtbot.waitUntil(lambda: bool(freed), timeout=10_000)
        finally:
            gc.enable()
        assert freed == [True]
    finally:
        services.close()


def test_a_recording_is_let_go_on_the_main_thread(qtbot, tmp_path, monkeypatch):
    """A recording ran on a thread of its own, joined for 5 s at the end: a stop that took longer
    freed the MeetingThread on that thread. Now it is a pool task, held by the main thread until
    its end arrives."""
    import app.pipeline.meeting as meeting_mod
    from app.ui.recording_bar import RecordingBar

    class Result:
        session_id, live, error = 7, None, None

    class SlowMeeting:
        def __init__(self, lib, engine=None, on_segment=None, on_notice=None, on_state=None, **kw):
            self.on_state, self.state, self.position, self.levels = on_state, "recording", 0.0, {}

        def start(self):
            self.on_state("recording")
            return 7

        def wait_ended(self, timeout):
            return False

        def stop(self):
            time.sleep(0.3)
            return Result()

    monkeypatch.setattr(meeting_mod, "Meeting", SlowMeeting)
    services = build_services(tmp_path / "home")
    bar = RecordingBar(services)
    qtbot.addWidget(bar)
    try:
        with qtbot.waitSignal(bar.session_started, timeout=10_000):
            bar.start()
        run = bar.runner
        freed: list[bool] = []
        weakref.finalize(run, lambda: freed.append(_main_thread()))
        weakref.finalize(run.task, lambda: freed.append(_main_thread()))
        with qtbot.waitSignal(bar.session_finished, timeout=10_000) as finished:
            bar.stop()
        assert finished.args == [7, False] and bar.runner is None
        del run
        qtbot.waitUntil(lambda: len(freed) == 2, timeout=10_000)
        assert freed == [True, True]
    finally:
        services.close()


def test_the_importer_reports_progress_from_the_main_thread(qtbot, tmp_path, monkeypatch):
    """The transcription's progress hook emitted the Importer's signal on the model worker: the
    Importer belongs to the window, which may be gone by then. Now the task's own signal carries it."""
    import app.pipeline.transcribe as transcribe_mod
    from app.ui.imports import Importer
    from app.ui.jobs_panel import JobsPanel

    def fake_transcribe(lib, engine, path, opts=None, *, progress=None, cancel=None):
        for i in (1, 2):
            progress(transcribe_mod.Progress(i / 2, i, 2, sid))
            time.sleep(0.1)  # past the progress throttle
        return sid

    monkeypatch.setattr(transcribe_mod, "transcribe_file", fake_transcribe)
    services = build_services(tmp_path / "home")
    monkeypatch.setattr(services.model, "has_model", lambda: True)
    panel = JobsPanel()
    qtbot.addWidget(panel)
    importer = Importer(services, panel)
    try:
        sid = services.library.create_session("Call", "file", status="transcribing").id
        emitted: list[bool] = []
        from PySide6.QtCore import Qt

        importer.session_changed.connect(lambda _sid: emitted.append(_main_thread()),
                                         Qt.ConnectionType.DirectConnection)  # runs where it is emitted
        with qtbot.waitSignal(importer.transcribed, timeout=10_000):
            task = importer.transcribe(tmp_path / "call.wav", sid)
        qtbot.waitUntil(lambda: task.finished, timeout=10_000)
        assert task.state == DONE and len(emitted) >= 3 and all(emitted)
        assert task.state != FAILED
    finally:
        services.close()


def test_a_voice_edit_lets_go_of_its_task_when_it_is_over(qtbot, tmp_path):
    """An edit is its field's child for as long as the field lives; its task (holding the spoken
    instruction's audio) is let go once the edit is over, here superseded by another."""
    import numpy as np
    from PySide6.QtWidgets import QPlainTextEdit

    from app.ui.voice_edit import VoiceEdit

    services = build_services(tmp_path / "home")  # no model: the edit's task waits
    field = QPlainTextEdit("alpha beta")
    qtbot.addWidget(field)
    try:
        ed = VoiceEdit(field, services, (0, 5, "alpha"))
        task = ed.submit(np.zeros(16000, np.float32), None)
        freed: list[bool] = []
        weakref.finalize(task, lambda: freed.append(_main_thread()))
        ed.drop()
        assert task.state == CANCELLED and ed.task is None
        del task
        qtbot.waitUntil(lambda: bool(freed), timeout=10_000)
        assert freed == [True]
    finally:
        services.close()
