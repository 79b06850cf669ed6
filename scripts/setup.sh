#!/usr/bin/env bash
# Set up Minutely on a Debian/Ubuntu machine: system packages, a virtual
# environment in .venv, and the Python packages (llama-cpp-python compiles
# llama.cpp from source: about 5 minutes on 2 cores, once; pip caches it).
#
#   bash scripts/setup.sh            # what the app needs
#   bash scripts/setup.sh --test     # plus what the tests need
#
# GPU builds: CMAKE_ARGS="-DGGML_CUDA=on" (or -DGGML_VULKAN=on, -DGGML_METAL=on
# on macOS) with REBUILD_LLAMA=1 to rebuild an already installed CPU build.
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
APT_TEST=(xvfb xauth pulseaudio pulseaudio-utils libasound2-plugins espeak-ng sox)

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
if [[ "${REBUILD_LLAMA:-0}" == 1 ]]; then
  "$VPY" -m pip install --force-reinstall --no-cache-dir "llama-cpp-python==0.3.36"
fi
extras="."
[[ $WANT_TEST == 1 ]] && extras=".[test,package,bench]"  # the bundle is built by tests/test_packaging.py; Gemma 3 270M (bench) checks summary quality
"$VPY" -m pip install -q -e "$extras"
echo "setup: ready (.venv)"
