"""The window serving its model to other apps (app/ui/serving.py): the same server as `minutely
serve`, in-process on 127.0.0.1, its requests queued on the window's one model worker behind
meeting work."""

from __future__ import annotations

import socket
import threading

import openai
import pytest

from app.ui.bootstrap import build_services
from app.ui.serving import ModelServing
from app.ui.tasks import DONE, RUNNING, Task
from tests.support.serve import png_data_url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def services(qapp, tmp_path, tiny_model):
    s = build_services(tmp_path / "home")
    s.settings.model_path, s.settings.mmproj_path = str(tiny_model.model), str(tiny_model.mmproj)
    s.settings.n_threads, s.settings.n_ctx = 1, 4096
    yield s
    s.close()


def in_thread(fn):
    """Run a client call off the main thread (the main thread runs Qt's loop); its result or error."""
    out: dict = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def test_background_tasks_wait_for_the_apps_own_work(qtbot, services):
    go, order = threading.Event(), []
    first = services.runner.submit_model(Task("meeting", lambda ctx: go.wait(10), needs_model=False))
    qtbot.waitUntil(lambda: first.state == RUNNING, timeout=10_000)
    other = services.runner.submit_model(Task("other app", lambda ctx: order.append("other"), needs_model=False,
                                              background=True))
    later = services.runner.submit_model(Task("summary", lambda ctx: order.append("summary"), needs_model=False))
    go.set()
    qtbot.waitUntil(lambda: other.finished and later.finished, timeout=10_000)
    assert order == ["summary", "other"]  # queued after the other app's request, run before it


def test_the_setting_serves_the_windows_model_behind_meeting_work(qtbot, services):
    services.settings.serve_model, services.settings.serve_port = True, free_port()
    serving = ModelServing(services)
    lines: list[str] = []
    serving.changed.connect(lines.append)
    serving.apply()
    try:
        assert serving.url == f"http://127.0.0.1:{services.settings.serve_port}/v1" and "Serving" in lines[-1]
        qtbot.waitUntil(lambda: serving.server.started, timeout=10_000)
        client = openai.OpenAI(base_url=serving.url, api_key="local", max_retries=0, timeout=60)
        t, out = in_thread(lambda: [m.id for m in client.models.list()])
        qtbot.waitUntil(lambda: not t.is_alive(), timeout=10_000)
        assert out == {"value": ["tiny-gemma4"]}

        go = threading.Event()
        meeting = services.runner.submit_model(Task("meeting", lambda ctx: go.wait(30), needs_model=False))
        qtbot.waitUntil(lambda: meeting.state == RUNNING, timeout=10_000)
        t, out = in_thread(lambda: client.chat.completions.create(
            model="tiny-gemma4", max_tokens=4, messages=[{"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": png_data_url()}}]}]))
        t.join(1.0)
        assert t.is_alive() and not out  # waits while the meeting work runs
        go.set()
        qtbot.waitUntil(lambda: not t.is_alive(), timeout=60_000)
        assert meeting.state == DONE and "error" not in out, out
        assert out["value"].usage.completion_tokens >= 1 and out["value"].usage.prompt_tokens > 70
        # the window's own model answered: the one EngineHost the model worker holds
        host = services.model.shared_engine()
        assert host.alive and host.last.generated_tokens == out["value"].usage.completion_tokens

        def leave_mid_stream():
            stream = client.chat.completions.create(
                model="tiny-gemma4", max_tokens=3000, stream=True, extra_body={"ignore_eos": True},
                messages=[{"role": "user", "content": "Talk on."}])
            for i, _chunk in enumerate(stream):
                if i == 3:
                    break
            stream.close()

        t, out = in_thread(leave_mid_stream)
        qtbot.waitUntil(lambda: not t.is_alive(), timeout=60_000)
        assert "error" not in out, out
        qtbot.waitUntil(lambda: host.last.finish_reason == "cancelled", timeout=60_000)
        assert host.last.generated_tokens < 3000
        services.settings.serve_model = False
        serving.apply()
        assert serving.url is None and "Stopped" in lines[-1]
    finally:
        serving.stop()


def test_the_settings_checkbox_starts_and_stops_it_in_the_window(qtbot, window):
    import json
    import urllib.error
    import urllib.request

    port = free_port()
    d = window.settings_dialog()
    qtbot.addWidget(d)
    assert not d.serve_check.isChecked() and not d.serve_port_spin.isEnabled() and window.serving.url is None
    d.serve_check.setChecked(True)
    d.serve_port_spin.setValue(port)
    d.ok_button.click()
    url = f"http://127.0.0.1:{port}/v1"
    assert window.serving.url == url and url in window.statusBar().currentMessage()
    qtbot.waitUntil(lambda: window.serving.server.started, timeout=10_000)
    # no model set up yet: a clear JSON error, and the server stays up
    t, out = in_thread(lambda: urllib.request.urlopen(url + "/models", timeout=10))
    qtbot.waitUntil(lambda: not t.is_alive(), timeout=10_000)
    err = out["error"]
    assert isinstance(err, urllib.error.HTTPError) and err.code == 503
    assert "no model is set up" in json.loads(err.read())["error"]["message"]
    d = window.settings_dialog()
    qtbot.addWidget(d)
    assert d.serve_check.isChecked() and d.serve_port_spin.value() == port
    d.serve_check.setChecked(False)
    d.ok_button.click()
    assert window.serving.url is None
    with pytest.raises(OSError):  # nothing listens there any more
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_with_a_model_server_set_the_window_neither_serves_nor_claims_ready(qtbot, services):
    """The model is on a server the user named (here: nobody listens there): the window does not
    relay other apps to it (it could be this very window), and the model shows the server's error
    instead of "ready"."""
    services.settings.model_server = f"http://127.0.0.1:{free_port()}"
    services.settings.serve_model, services.settings.serve_port = True, free_port()
    serving = ModelServing(services)
    said: list[str] = []
    serving.changed.connect(said.append)
    serving.apply()
    assert serving.server is None and said and "Not serving" in said[-1] and "point other apps there" in said[-1]
    states: list[str] = []
    services.model.model_state.connect(states.append)
    services.model.preload()
    qtbot.waitUntil(lambda: any(s.startswith("error:") for s in states), timeout=30_000)
    assert "ready" not in states and "cannot reach" in states[-1]
