"""Qt objects die on their own thread: the workers never hold the last reference to a Task, and the
services form no reference cycle (the cycle collector would free them on whatever thread runs it).

A QObject deleted on a thread other than its own can be deleted while its thread delivers an event
to it; the single-instance socket that deleted its own guard is in tests/test_single_instance.py.
"""

from __future__ import annotations

import gc
import threading
import weakref

from app.ui.bootstrap import build_services
from app.ui.tasks import CANCELLED, DONE, Task


def _watched(title: str, fn, freed: list) -> Task:
    task = Task(title, fn, needs_model=False)
    weakref.finalize(task, lambda: freed.append((title, threading.current_thread() is threading.main_thread())))
    return task


def test_finished_and_cancelled_tasks_are_let_go_on_the_main_thread(qtbot, tmp_path):
    services = build_services(tmp_path / "home")
    try:
        freed: list[tuple[str, bool]] = []
        first = services.io.submit(_watched("first", lambda ctx: 1, freed))
        qtbot.waitUntil(lambda: first.finished, timeout=10_000)
        assert first.state == DONE and first.result == 1
        del first  # the worker still held it until its next task (and freed it there)

        running, go = threading.Event(), threading.Event()

        def block(ctx):
            running.set()
            go.wait(10)
            return 2

        second = services.io.submit(_watched("second", block, freed))
        assert running.wait(10)
        third = services.io.submit(_watched("third", lambda ctx: 3, freed))
        third.cancel()  # still queued: it never runs
        go.set()
        qtbot.waitUntil(lambda: second.finished and third.finished, timeout=10_000)
        assert (second.state, third.state) == (DONE, CANCELLED)
        del second, third
        qtbot.waitUntil(lambda: len(freed) == 3, timeout=10_000)
        assert sorted(freed) == [("first", True), ("second", True), ("third", True)]
    finally:
        services.close()


def test_closed_services_go_away_without_the_cycle_collector(qapp, tmp_path):
    services = build_services(tmp_path / "home")
    services.close()
    objects = [services.model, services.io, services.model._relay, services.io._relay]
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
