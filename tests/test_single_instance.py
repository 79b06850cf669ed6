"""Single instance: a second start hands its arguments to the running app and exits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from app.ui.single_instance import SingleInstance, server_name

ROOT = Path(__file__).resolve().parent.parent

CLIENT = textwrap.dedent("""
    import sys
    from PySide6.QtCore import QCoreApplication
    from app.ui.single_instance import SingleInstance
    app = QCoreApplication([])
    sys.exit(0 if SingleInstance(sys.argv[1]).send_to_running(sys.argv[2:], 20000) else 1)
""")

SERVER = textwrap.dedent("""
    import sys, time
    from PySide6.QtCore import QCoreApplication
    from app.ui.single_instance import SingleInstance
    app = QCoreApplication([])
    guard = SingleInstance(sys.argv[1])
    print("listening" if guard.listen() else "refused", flush=True)
    time.sleep(600)
""")


def _env():
    return dict(os.environ, PYTHONPATH=str(ROOT), QT_QPA_PLATFORM="offscreen")


@pytest.fixture
def name():
    return f"minutely-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def guard(qapp, name):
    g = SingleInstance(name)
    yield g
    g.close()


def test_a_second_start_hands_its_files_to_the_running_instance(guard, name, qtbot, tmp_path):
    assert guard.listen()
    (tmp_path / "talk.m4a").write_bytes(b"x")
    client = subprocess.Popen([sys.executable, "-c", CLIENT, name, "talk.m4a", "--flag"],
                              cwd=tmp_path, env=_env(), stderr=subprocess.PIPE, text=True)
    try:
        with qtbot.waitSignal(guard.received, timeout=30000) as got:
            pass
        assert client.wait(timeout=30) == 0, client.stderr.read()
    finally:
        if client.poll() is None:
            client.kill()
    # the running app has another working folder: the path arrives absolute
    assert got.args[0] == [str((tmp_path / "talk.m4a").resolve()), "--flag"]


def test_the_first_start_finds_nobody_and_becomes_the_instance(guard):
    assert guard.send_to_running(["x"], timeout_ms=500) is False
    assert guard.listen() and guard.listening


def test_a_second_server_on_the_same_name_is_refused(guard, name, qapp):
    assert guard.listen()
    second = SingleInstance(name)
    try:
        assert second.listen() is False
        assert guard.listening
    finally:
        second.close()


@pytest.mark.skipif(sys.platform == "win32", reason="named pipes leave nothing behind")
def test_a_socket_left_by_a_crashed_instance_is_replaced(guard, name, qtbot, tmp_path):
    crashed = subprocess.Popen([sys.executable, "-c", SERVER, name], env=_env(),
                               stdout=subprocess.PIPE, text=True)
    try:
        assert crashed.stdout.readline().strip() == "listening"
        os.kill(crashed.pid, signal.SIGKILL)
        crashed.wait(timeout=10)
    finally:
        if crashed.poll() is None:
            crashed.kill()
    assert guard.listen(), "the stale socket should have been removed"
    client = subprocess.Popen([sys.executable, "-c", CLIENT, name, "hello"], cwd=tmp_path, env=_env())
    try:
        with qtbot.waitSignal(guard.received, timeout=30000) as got:
            pass
        assert client.wait(timeout=30) == 0
    finally:
        if client.poll() is None:
            client.kill()
    assert got.args[0] == ["hello"]


def test_the_name_is_per_data_folder(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert server_name(a) == server_name(a)
    assert server_name(a) != server_name(b)
    assert server_name(a).startswith("minutely-")
