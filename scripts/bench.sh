#!/usr/bin/env bash
# Set up and run the benchmarks (not part of the test suite). Results print as
# ratios measured side by side in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
.venv/bin/python -m pip install -q -e ".[bench]"
for b in bench/portable.py bench/engine_overhead.py bench/speculative.py bench/prefix_reuse.py bench/serve.py bench/library.py bench/vad.py bench/diarize.py bench/diarize_real.py bench/diarize_time.py bench/transcribe.py bench/ask.py bench/summarize.py bench/capture.py bench/dictation.py; do
  echo "== $b"
  .venv/bin/python "$b" "$@"
done
