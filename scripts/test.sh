#!/usr/bin/env bash
# Set up (first time), check the code (ruff, mypy, import contracts: seconds) and run the whole
# test suite. Extra arguments go to pytest. A failing check stops here, before the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
export QT_QPA_PLATFORM=${QT_QPA_PLATFORM:-offscreen}
echo "test: ruff"
.venv/bin/ruff check app bench scripts tests main.py
echo "test: mypy"
.venv/bin/mypy
echo "test: import contracts"
.venv/bin/lint-imports --no-cache >/dev/null || .venv/bin/lint-imports --no-cache
# -m: every test, the slow ones too (a plain `pytest` leaves them out: pyproject.toml); later -m args win
exec .venv/bin/python -m pytest -m "slow or not slow" "$@"
