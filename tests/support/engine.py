"""The engine as the tests load it: one thread, on the CPU unless asked otherwise."""

from __future__ import annotations

import os

# MINUTELY_TEST_GPU_LAYERS=-1 runs the engine tests with every layer offloaded
# (on a machine with a GPU build of llama.cpp); the default is the CPU.
GPU_LAYERS = int(os.environ.get("MINUTELY_TEST_GPU_LAYERS", "0"))


def engine_config(n_ctx: int = 8192):
    from app.engine.engine import EngineConfig

    return EngineConfig(n_ctx=n_ctx, n_threads=1, n_gpu_layers=GPU_LAYERS)
