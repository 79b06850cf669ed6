"""Run a Python entry point with every non-loopback network access refused.

    python -m tests.support.offline_guard main.py ask ...

An audit hook (PEP 578) sees each socket.connect / getaddrinfo / sendto before
the system call happens, so a blocked attempt never leaves the machine. Each
block is reported on stderr as a line starting with ``OFFLINE-GUARD BLOCKED``
and raises ``PermissionError`` in the offending code.
"""

from __future__ import annotations

import runpy
import socket
import sys

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "ip6-localhost"}
MARK = "OFFLINE-GUARD BLOCKED"


def _is_loopback(host) -> bool:
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if host is None:
        return True  # getaddrinfo(None, port): the local wildcard
    h = str(host).strip("[]").lower()
    return h in LOOPBACK_NAMES or h.startswith("127.") or h == "0:0:0:0:0:0:0:1"


def _hook(event: str, args) -> None:
    if event in ("socket.connect", "socket.sendto", "socket.sendmsg"):
        sock, addr = args[0], args[1] if len(args) > 1 else None
        if getattr(sock, "family", None) == socket.AF_UNIX or addr is None:
            return
        host = addr[0] if isinstance(addr, tuple) else addr
        if not _is_loopback(host):
            _block(f"{event} {addr!r}")
    elif event in ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex",
                   "socket.gethostbyaddr"):
        if not _is_loopback(args[0]):
            _block(f"{event} {args[0]!r}")


def _block(what: str) -> None:
    sys.stderr.write(f"{MARK}: {what}\n")
    sys.stderr.flush()
    raise PermissionError(f"offline guard: network access refused ({what})")


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python -m tests.support.offline_guard SCRIPT [ARGS...]")
    sys.addaudithook(_hook)
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
