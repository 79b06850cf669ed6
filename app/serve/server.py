"""Binding and running the server: uvicorn over our own socket, in the foreground or on a thread.

The server listens only where it is told: 127.0.0.1 by default. Any other address (a LAN address,
0.0.0.0) needs a bearer token; ``check_binding`` refuses to start without one, so the model is
never open to the network by accident. The socket is bound here (port 0 picks a free port), so
the address printed is the one really listening.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import socket
import threading
from dataclasses import dataclass
from typing import Any

from app.errors import MinutelyError

from .app import MAX_BODY, build_app
from .gate import ModelGate

log = logging.getLogger("minutely.serve")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


class ServeError(MinutelyError):
    """The server cannot start as asked (no token for a non-loopback address, a port in use)."""


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    return secrets.token_urlsafe(24)


def check_binding(host: str, token: str | None) -> None:
    """Refuse an address beyond this computer without a bearer token."""
    if token is not None and not token.strip():
        raise ServeError("the bearer token is empty")
    if not is_loopback(host) and token is None:
        raise ServeError(f"{host} is reachable from other computers: give a bearer token (--token TOKEN, "
                         "or --token generate) or serve on 127.0.0.1")


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    # proto named: asyncio sets TCP_NODELAY only on accepted sockets whose proto is IPPROTO_TCP; without
    # it a kept-alive connection waits ~40 ms per response (Nagle against the client's delayed ACK)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as e:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


@dataclass
class Server:
    """A bound server over a gate; ``run()`` in the foreground, or ``start()``/``stop()`` on a thread."""

    gate: ModelGate
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token: str | None = None
    max_body: int = MAX_BODY

    def __post_init__(self) -> None:
        import uvicorn

        check_binding(self.host, self.token)
        self._sock = bind(self.host, self.port)
        self.port = self._sock.getsockname()[1]
        config = uvicorn.Config(build_app(self.gate, token=self.token, max_body=self.max_body),
                                log_level="warning", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=2)
        self._uv = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    def run(self) -> None:
        """Serve until interrupted (Ctrl-C) — the CLI's foreground."""
        try:
            self._uv.run(sockets=[self._sock])
        finally:
            self._sock.close()

    def start(self) -> None:
        """Serve on a thread of its own (the window)."""
        # uvicorn installs signal handlers only on the main thread: Ctrl-C stays the window's
        self._thread = threading.Thread(target=self.run, name="minutely-serve-http", daemon=True)
        self._thread.start()

    @property
    def started(self) -> bool:
        return bool(self._uv.started)

    def stop(self, timeout: float = 5.0) -> None:
        self._uv.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        else:
            self._sock.close()

    def describe(self) -> dict[str, Any]:
        return {"url": self.url, "model": self.gate.model_id(), "token": self.token is not None}
