"""The runner (app/ui/runner.py): model work on the model worker, other work on the pool, and every
result, error and progress tick as a signal on the main thread."""

from __future__ import annotations

import threading
import time

import pytest
from PySide6.QtCore import QTimer

from app.ui.bootstrap import build_services
from app.ui.jobs_panel import JobsPanel
from app.ui.runner import Runner
from app.ui.tasks import CANCELLED, DONE, FAILED, QUEUED, RUNNING, Task, TaskState


def on_main() -> bool:
    return threading.current_thread() is threading.main_thread()


@pytest.fixture
def services(qapp, tmp_path):
    s = build_services(tmp_path / "home")
    yield s
    s.close()


def test_states_are_a_str_enum_with_the_old_values():
    assert [s.value for s in TaskState] == ["queued", "waiting for a model", "running", "done", "failed",
                                            "cancelled"]
    assert DONE == "done" and isinstance(CANCELLED, str) and TaskState("failed") is FAILED


def test_pool_results_errors_and_progress_arrive_on_the_main_thread(qtbot, services):
    runner: Runner = services.runner
    seen: list = []
    worker_threads: list[str] = []

    def work(ctx):
        worker_threads.append(threading.current_thread().name)
        ctx.count(5, 10)
        ctx.note("a note")
        return 42

    ok = runner.run("adds up", work, on_done=lambda r: seen.append(("done", r, on_main())))
    ok.amount.connect(lambda d, t: seen.append(("amount", d, t, on_main())))
    bad = Task("breaks", lambda ctx: open("/nonexistent/file"), needs_model=False)
    bad.failed.connect(lambda msg: seen.append(("failed", msg, on_main())))
    runner.submit(bad)
    qtbot.waitUntil(lambda: ok.finished and bad.finished, timeout=10_000)
    assert (ok.state, ok.result, bad.state) == (DONE, 42, FAILED)
    assert ("done", 42, True) in seen
    assert ("failed", "/nonexistent/file: No such file or directory", True) in seen  # one line, no [Errno]
    assert worker_threads and worker_threads[0].startswith("minutely-io")  # the pool, not the model worker
    with pytest.raises(ValueError):
        runner.submit(Task("needs a model", lambda ctx: None))  # model work goes to submit_model


def test_cancelling_a_queued_task_shows_cancelled_at_once(qtbot, services):
    """It used to stay "queued" in the Jobs panel until the worker got to it."""
    panel = JobsPanel()
    qtbot.addWidget(panel)
    go, ran = threading.Event(), []
    first = services.runner.submit_model(Task("first", lambda ctx: go.wait(10), needs_model=False))
    queued = services.runner.submit_model(Task("second", lambda ctx: ran.append(1), needs_model=False))
    row = panel.add_task(queued)
    try:
        qtbot.waitUntil(lambda: first.state == RUNNING, timeout=10_000)
        assert queued.state == QUEUED and row.state.text() == "queued"
        row.cancel.click()
        assert queued.state == CANCELLED and row.state.text() == "cancelled"  # without waiting for the worker
        assert not row.cancel.isVisibleTo(row) and first.state == RUNNING
    finally:
        go.set()
    qtbot.waitUntil(lambda: first.finished, timeout=10_000)
    assert ran == [] and queued.wait(0)


def test_model_and_pool_tasks_run_side_by_side_and_the_ui_keeps_ticking(qtbot, services):
    """A long model task does not hold up pool work (nor the other way round), and the main thread
    stays free: a 10 ms timer keeps firing throughout."""
    pool_started, model_started = threading.Event(), threading.Event()

    def model_work(ctx):
        model_started.set()
        assert pool_started.wait(10), "the pool task did not run while the model task did"
        time.sleep(0.3)
        return "model"

    def pool_work(ctx):
        pool_started.set()
        assert model_started.wait(10), "the model task did not run while the pool task did"
        time.sleep(0.3)
        return "pool"

    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start()
    try:
        m = services.runner.submit_model(Task("model", model_work, needs_model=False))
        p = services.runner.run("pool", pool_work)
        qtbot.waitUntil(lambda: m.finished and p.finished, timeout=20_000)
    finally:
        timer.stop()
    assert (m.state, m.result, p.state, p.result) == (DONE, "model", DONE, "pool")
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    assert len(ticks) > 10 and max(gaps) < 0.25, max(gaps)


def test_the_pool_grows_while_work_waits(qtbot, services):
    release = threading.Event()
    running = []

    def hold(ctx):
        running.append(threading.current_thread().name)
        release.wait(10)

    tasks = [services.runner.run(f"hold {i}", hold) for i in range(3)]
    try:
        qtbot.waitUntil(lambda: len(running) == 3, timeout=10_000)  # three at once, not one by one
        assert len(set(running)) == 3
    finally:
        release.set()
    qtbot.waitUntil(lambda: all(t.finished for t in tasks), timeout=10_000)


def test_callback_brings_a_call_to_the_main_thread_and_holds_its_receiver_weakly(qtbot, services):
    from PySide6.QtWidgets import QLabel

    label = QLabel()
    qtbot.addWidget(label)
    got: list = []

    class Receiver:
        def called(self, text):
            got.append((text, on_main()))

    r = Receiver()
    call = services.runner.callback(r.called)
    threading.Thread(target=call, args=("from a thread",)).start()
    qtbot.waitUntil(lambda: bool(got), timeout=5_000)
    assert got == [("from a thread", True)]
    del r  # gone: a later call does nothing
    t = threading.Thread(target=call, args=("late",))
    t.start()
    t.join()
    qtbot.wait(50)
    assert got == [("from a thread", True)]
    services.runner.run_on_main(label.setText, "bounced")
    qtbot.waitUntil(lambda: label.text() == "bounced", timeout=5_000)
