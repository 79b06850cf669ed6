#!/usr/bin/env bash
# Prints the CMake flags of Minutely's portable llama.cpp build for this platform.
# One definition for everyone: scripts/setup.sh (development and `scripts/run.sh`),
# packaging/ (the bundle, .deb, .tar.gz) and packaging/ci/package.yml use it, so
# what users install never carries the build machine's instruction set.
#
#   x86-64: -march=native off; one CPU backend per instruction-set level
#           (GGML_BACKEND_DL + GGML_CPU_ALL_VARIANTS: x64, sse42, sandybridge,
#           haswell, skylakex, icelake, zen4, alderlake, sapphirerapids, ...), all
#           installed into llama_cpp/lib; app/engine/backends.py loads the best one
#           that app/engine/cpucheck.py saw run a quantized matrix product here.
#   arm64 Linux: the NEON baseline (armv8-a) — runs on every 64-bit ARM board.
#   macOS: -march=native off; Metal stays on (llama-cpp-python's default there).
#
# Building for your own machine only (a little faster on some CPUs, never for
# packaging): MINUTELY_LLAMA_NATIVE=1 bash scripts/setup.sh. GPU flags go in
# CMAKE_ARGS and are added to these (README: GPU builds).
set -euo pipefail
if [[ "${MINUTELY_LLAMA_NATIVE:-0}" == 1 ]]; then
  echo "-DGGML_NATIVE=ON"
  exit 0
fi
case "$(uname -s)/$(uname -m)" in
  Darwin/*)
    echo "-DGGML_NATIVE=OFF" ;;
  */x86_64 | */amd64 | */AMD64)
    echo "-DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON -DCMAKE_INSTALL_BINDIR=llama_cpp/lib" ;;
  */aarch64 | */arm64)
    echo "-DGGML_NATIVE=OFF -DGGML_CPU_ARM_ARCH=armv8-a" ;;
  *)
    echo "-DGGML_NATIVE=OFF" ;;
esac
