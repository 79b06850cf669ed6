"""Route llama.cpp and mtmd log output into Python logging.

llama.cpp prints to stderr by default; a desktop app and a CLI that prints
answers to stdout want neither. The last lines are kept so an error that
llama.cpp only explains in its log (e.g. a projector that does not fit the
model) can be reported in one line. The ctypes callback must stay referenced
for the life of the process, or the next log line segfaults.
"""

from __future__ import annotations

import collections
import ctypes
import logging
import threading

log = logging.getLogger("minutely.llama")

_LEVELS = {0: logging.CRITICAL, 1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING,
           4: logging.ERROR}  # ggml: NONE, DEBUG, INFO, WARN, ERROR, CONT
_recent: collections.deque[str] = collections.deque(maxlen=40)
_lock = threading.Lock()
_installed = False
_callback = None  # the ctypes callback; kept alive on purpose
_partial = [""]
_last_level = [logging.DEBUG]


def _on_log(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
    try:
        s = text.decode("utf-8", errors="replace") if text else ""
    except Exception:  # never raise into C
        return
    lvl = _last_level[0] if level == 5 else _LEVELS.get(level, logging.DEBUG)
    _last_level[0] = lvl
    buf = _partial[0] + s
    *lines, rest = buf.split("\n")
    _partial[0] = rest
    for line in lines:
        if line.strip():
            _recent.append(line.strip())
            if log.isEnabledFor(lvl):
                log.log(lvl, "%s", line)


def install() -> None:
    """Install the log callback for llama.cpp and mtmd once per process."""
    global _installed, _callback
    with _lock:
        if _installed:
            return
        import os

        import llama_cpp
        import llama_cpp.mtmd_cpp as mtmd

        if os.environ.get("MINUTELY_LLAMA_LOG") == "stderr":
            # debugging aid: leave llama.cpp's own logging to stderr in place
            llama_cpp.llama_backend_init()
            _installed = True
            return
        _callback = llama_cpp.llama_log_callback(_on_log)
        llama_cpp.llama_log_set(_callback, ctypes.c_void_p(0))
        mtmd.mtmd_log_set(_callback, ctypes.c_void_p(0))
        try:
            mtmd.mtmd_helper_log_set(_callback, ctypes.c_void_p(0))
        except AttributeError:
            pass
        llama_cpp.llama_backend_init()
        _installed = True


def recent_errors(n: int = 3) -> str:
    """The last few log lines that look like errors, joined into one line."""
    keys = ("error", "failed", "mismatch", "invalid", "unable", "not ")
    hits = [line for line in _recent if any(k in line.lower() for k in keys)]
    return "; ".join(hits[-n:])


def clear_recent() -> None:
    _recent.clear()
