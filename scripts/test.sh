#!/usr/bin/env bash
# Set up (first time) and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
export QT_QPA_PLATFORM=${QT_QPA_PLATFORM:-offscreen}
# -m: every test, the slow ones too (a plain `pytest` leaves them out: pyproject.toml); later -m args win
exec .venv/bin/python -m pytest -m "not bench" "$@"
