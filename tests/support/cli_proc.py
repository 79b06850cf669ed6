"""A `python main.py ...` child process whose stderr lines are collected as they come, and a
read-only look into the library it writes (for tests that watch a recording while it runs)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.support import ROOT


class CliProc:
    def __init__(self, *args: str, env: dict[str, str] | None = None, unset: tuple[str, ...] = (),
                 stdin: int | None = subprocess.DEVNULL):
        full = {**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)}
        for k in unset:
            full.pop(k, None)
        self.p = subprocess.Popen([sys.executable, "main.py", *args], cwd=ROOT, env=full, stdin=stdin,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()
        self._out: list[str] = []
        self._out_t = threading.Thread(target=lambda: self._out.extend(self.p.stdout), daemon=True)
        self._out_t.start()

    def _read(self) -> None:
        for line in self.p.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_line(self, fragment: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hit = next((x for x in self.lines if fragment in x), None)
            if hit is not None:
                return hit
            if self.p.poll() is not None:
                self._t.join(2)
                hit = next((x for x in self.lines if fragment in x), None)
                if hit is not None:
                    return hit
                raise AssertionError(f"exited {self.p.returncode} before '{fragment}':\n" + "\n".join(self.lines))
            time.sleep(0.05)
        raise AssertionError(f"no '{fragment}' within {timeout} s:\n" + "\n".join(self.lines))

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        self.p.wait(timeout)  # both pipes belong to reader threads (communicate() would race them)
        self._t.join(5)
        self._out_t.join(5)
        return self.p.returncode, "".join(self._out)

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(10)

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)


def wait_for(cond, timeout: float, what: str, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def db_rows(home: Path, sql: str, params=()) -> list[tuple]:
    """Query the library a running process writes (WAL: readers never block it)."""
    path = home / "library.sqlite3"
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError:  # the schema is being created
        return []
    finally:
        conn.close()
