"""Single instance: a second start hands its arguments to the running app and exits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid

import pytest

from app.ui.single_instance import SingleInstance, server_name
from tests.support import ROOT
from tests.support.single_instance import CLIENT, child_env

SERVER = textwrap.dedent("""
    import sys, time
    from PySide6.QtCore import QCoreApplication
    from app.ui.single_instance import SingleInstance
    app = QCoreApplication([])
    guard = SingleInstance(sys.argv[1])
    print("listening" if guard.listen() else "refused", flush=True)
    time.sleep(600)
""")


# A second start's connection still open when the running instance lets go of its guard (a test's
# teardown; the app's shutdown): the socket going away afterwards must not take the guard, its
# server and so the socket itself down a second time. Run in its own interpreter: the bug was a
# segfault, which would otherwise end the whole test run instead of failing this test.
OPEN_AT_DROP = textwrap.dedent("""
    import gc, json, sys
    from PySide6.QtCore import QCoreApplication, QEvent, QEventLoop, QTimer
    from PySide6.QtNetwork import QLocalSocket
    from app.ui.single_instance import SingleInstance

    app = QCoreApplication([])

    def spin_until(cond, ms=10_000):
        deadline = QTimer(); deadline.setSingleShot(True); deadline.start(ms)
        while not cond() and deadline.isActive():
            loop = QEventLoop(); QTimer.singleShot(5, loop.quit); loop.exec()
            QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete.value)
        return cond()

    guard = SingleInstance(sys.argv[1])
    assert guard.listen()
    got = []
    guard.received.connect(got.append)
    client = QLocalSocket()
    client.connectToServer(guard.name)
    assert client.waitForConnected(5000)
    client.write(json.dumps({"args": ["a.wav"]}).encode() + b"\\n")
    assert spin_until(lambda: bool(got) and client.bytesAvailable() > 0), "no hand-over"
    accepted = [s for s in guard.findChildren(QLocalSocket)]
    assert accepted, "the server side of the connection"
    gone = []
    accepted[0].destroyed.connect(lambda *_: gone.append(1))
    guard.close()
    del guard, accepted
    gc.collect()
    client.disconnectFromServer()
    assert spin_until(lambda: bool(gone)), "the accepted socket was never deleted"
    print("ok", got[0])
""")


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
                              cwd=tmp_path, env=child_env(), stderr=subprocess.PIPE, text=True)
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
    crashed = subprocess.Popen([sys.executable, "-c", SERVER, name], env=child_env(),
                               stdout=subprocess.PIPE, text=True)
    try:
        assert crashed.stdout.readline().strip() == "listening"
        os.kill(crashed.pid, signal.SIGKILL)
        crashed.wait(timeout=10)
    finally:
        if crashed.poll() is None:
            crashed.kill()
    assert guard.listen(), "the stale socket should have been removed"
    client = subprocess.Popen([sys.executable, "-c", CLIENT, name, "hello"], cwd=tmp_path, env=child_env())
    try:
        with qtbot.waitSignal(guard.received, timeout=30000) as got:
            pass
        assert client.wait(timeout=30) == 0
    finally:
        if client.poll() is None:
            client.kill()
    assert got.args[0] == ["hello"]


def test_letting_go_of_the_guard_with_a_connection_open_does_not_crash(name):
    p = subprocess.run([sys.executable, "-X", "faulthandler", "-c", OPEN_AT_DROP, name], env=child_env(), cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"exit {p.returncode}: {p.stderr[-2000:]}"
    assert p.stdout.strip() == "ok ['a.wav']"


def test_the_name_is_per_data_folder(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert server_name(a) == server_name(a)
    assert server_name(a) != server_name(b)
    assert server_name(a).startswith("minutely-")
