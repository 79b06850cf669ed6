"""How an engine is built: context size, threads, GPU layers, batch, parallel sequences."""

from __future__ import annotations

import os
from dataclasses import dataclass

from app import defaults


@dataclass
class EngineConfig:
    n_ctx: int = defaults.N_CTX
    n_threads: int = 0          # 0: a sensible default for this machine
    n_gpu_layers: int = 0       # -1: all layers on the GPU
    n_batch: int = defaults.N_BATCH
    full_swa_cache: bool = True  # needed to reuse a prefix longer than the sliding window
    image_tokens: int | None = None  # None: the model's own; the app passes settings (defaults.IMAGE_TOKENS)
    n_parallel: int = defaults.N_PARALLEL  # sequences decoded together by chat_batch
    n_draft: int = defaults.N_DRAFT  # tokens the MTP drafter proposes per step; 0: drafter off

    def threads(self) -> int:
        if self.n_threads > 0:
            return self.n_threads
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        # Leave a core for the UI and the recorder; spin-waiting threads on a
        # busy machine are far slower than one fewer thread.
        return max(1, min(8, n - 1))

    @classmethod
    def from_settings(cls, settings) -> EngineConfig:
        """The engine the user configured (``app.settings.Settings``)."""
        return cls(n_ctx=settings.n_ctx, n_threads=settings.n_threads,
                   n_gpu_layers=settings.n_gpu_layers, image_tokens=settings.image_tokens,
                   n_draft=defaults.N_DRAFT if settings.use_drafter else 0)
