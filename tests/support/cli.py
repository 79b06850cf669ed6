"""The command line, run as a user runs it: `python main.py ...` in a subprocess (optionally under
the offline guard), and what every one-line error looks like."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support import ROOT


def run(*args, env_extra=None, guard=False, timeout=120):
    env = dict(os.environ)
    env.update(env_extra or {})
    env["PYTHONPATH"] = str(ROOT)
    cmd = [sys.executable] + (["-m", "tests.support.offline_guard"] if guard else []) + ["main.py", *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def model_args(tiny):
    return ["--model", str(tiny.model), "--mmproj", str(tiny.mmproj), "--threads", "1", "--ctx", "4096"]


def assert_one_line_error(p, code):
    assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("minutely: error: "), p.stderr
    assert "Traceback" not in p.stderr
