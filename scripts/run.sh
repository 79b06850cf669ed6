#!/usr/bin/env bash
# Set up (first time) and start Minutely.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python main.py "$@"
