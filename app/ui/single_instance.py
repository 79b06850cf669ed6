"""One Minutely window per user: a second start hands its arguments to the first.

The first instance listens on a local socket (QLocalServer: a Unix socket, a
named pipe on Windows) whose name is private to the user and the data folder.
A later start connects, sends its arguments (file paths made absolute, since the
two processes may have different working folders) as one JSON line, waits for
the running instance's acknowledgement, and exits. The running instance emits
``received(list)`` with those arguments; the main window connects it to
"raise the window and import these files".

Usage in the app's start-up, before any window is built::

    guard = SingleInstance()
    if guard.send_to_running(sys.argv[1:]):
        return 0                      # the open window got them
    guard.listen()                    # we are the first
    guard.received.connect(window.on_second_start)

A socket left behind by a crashed instance is detected (nothing answers) and
replaced. Only local sockets are opened; nothing reaches the network.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import os
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

log = logging.getLogger("minutely.ui.single")

_ACK = b"ok\n"
_MAX_MESSAGE = 1 << 20  # 1 MiB of arguments is plenty


def server_name(data_dir: str | os.PathLike | None = None) -> str:
    """The socket name for this user and data folder (two profiles may run side by side)."""
    if data_dir is None:
        from app import paths

        data_dir = paths.data_dir(create=False)
    try:
        user = getpass.getuser()
    except Exception:  # no user name in the environment (containers)
        user = str(os.getuid()) if hasattr(os, "getuid") else "user"
    key = hashlib.sha256(f"{user}\0{Path(data_dir).expanduser().resolve()}".encode()).hexdigest()[:16]
    return f"minutely-{key}"


def _absolute(args: list[str]) -> list[str]:
    out = []
    for a in args:
        if a and not a.startswith("-") and Path(a).exists():
            a = str(Path(a).resolve())
        out.append(a)
    return out


class SingleInstance(QObject):
    """Server side in the running app; ``send_to_running`` is the client side."""

    received = Signal(list)  # the arguments of a later start (file paths absolute)

    def __init__(self, name: str | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.name = name or server_name()
        self._server: QLocalServer | None = None
        self._buffers: dict[QLocalSocket, bytes] = {}

    # -- client ---------------------------------------------------------------
    def send_to_running(self, args: list[str], timeout_ms: int = 3000) -> bool:
        """Hand ``args`` to a running instance; True if it acknowledged them."""
        sock = QLocalSocket()
        sock.connectToServer(self.name)
        if not sock.waitForConnected(timeout_ms):
            return False
        data = json.dumps({"args": _absolute(list(args))}).encode() + b"\n"
        sock.write(data)
        ok = sock.waitForBytesWritten(timeout_ms)
        reply = b""
        while ok and not reply.endswith(b"\n") and sock.waitForReadyRead(timeout_ms):
            reply += bytes(sock.readAll().data())
        sock.disconnectFromServer()
        if reply != _ACK:
            log.warning("the running instance did not acknowledge (%r)", reply[:40])
            return False
        return True

    # -- server ---------------------------------------------------------------
    def listen(self) -> bool:
        """Become the running instance. False if another one answers on the name."""
        # Ask first: with access options Qt binds in a private folder and renames the
        # socket into place, which would silently take the name from a live instance.
        if self._someone_answers():
            return False
        server = QLocalServer(self)
        server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        if not server.listen(self.name):
            # A socket file left by an instance that crashed: nobody listens on it.
            QLocalServer.removeServer(self.name)
            if not server.listen(self.name):
                log.warning("single instance: cannot listen on %s: %s", self.name, server.errorString())
                return False
        server.newConnection.connect(self._on_connection)
        self._server = server
        return True

    @property
    def listening(self) -> bool:
        return self._server is not None and self._server.isListening()

    def close(self) -> None:
        """Stop listening and end the connections still open (nothing arrives after this)."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for sock in list(self._buffers):
            sock.abort()  # emits disconnected: _drop forgets it and deletes it later
            self._drop(sock)

    def _someone_answers(self) -> bool:
        probe = QLocalSocket()
        probe.connectToServer(self.name)
        alive = probe.waitForConnected(500)
        probe.abort()
        return alive

    def _on_connection(self) -> None:
        while self._server is not None and self._server.hasPendingConnections():
            sock = self._server.nextPendingConnection()
            self._buffers[sock] = b""
            # Bound methods, never lambdas holding `self`: a socket must not keep this object
            # alive. If it did, the socket's deferred deletion could release the last reference
            # to it, and its destructor would delete the server and with it the very socket
            # being deleted: a double delete, which segfaulted in the event loop.
            sock.readyRead.connect(self._sender_ready)
            sock.disconnected.connect(self._sender_gone)
            if sock.bytesAvailable():
                self._on_ready(sock)

    def _sender_ready(self) -> None:
        sock = self.sender()
        if isinstance(sock, QLocalSocket):
            self._on_ready(sock)

    def _sender_gone(self) -> None:
        sock = self.sender()
        if isinstance(sock, QLocalSocket):
            self._drop(sock)

    def _on_ready(self, sock: QLocalSocket) -> None:
        if sock not in self._buffers:
            return
        buf = self._buffers[sock] + bytes(sock.readAll().data())
        if len(buf) > _MAX_MESSAGE:
            self._drop(sock)
            sock.abort()
            return
        self._buffers[sock] = buf
        if not buf.endswith(b"\n"):
            return
        self._buffers[sock] = b""
        try:
            msg = json.loads(buf.decode("utf-8"))
            args = [str(a) for a in msg["args"]]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            log.warning("single instance: ignored a malformed message")
            sock.abort()
            return
        sock.write(_ACK)
        sock.flush()
        self.received.emit(args)

    def _drop(self, sock: QLocalSocket) -> None:
        if self._buffers.pop(sock, None) is not None:
            sock.deleteLater()
