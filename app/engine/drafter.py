"""Gemma 4's Multi-Token-Prediction drafter (arch ``gemma4-assistant``): speculative decoding.

The drafter is a small separate GGUF made for one target model. llama.cpp (the copy inside
llama-cpp-python 0.3.36) runs it in a second context of type ``LLAMA_CONTEXT_TYPE_MTP`` whose
``ctx_other`` is the target's context: it has no K/V projections of its own and attends to the
target's KV cache (its sliding-window layer reads the target's second-to-last layer, its full layer
the last), and it embeds tokens with the target's embedding table. What it needs per step is the
token and the target's hidden state at the position before (the post-norm state the LM head reads,
which the target exports when ``llama_set_embeddings_nextn(ctx, True, False)`` is on: one row per
batch token). Each draft step feeds the drafter's own next hidden state back in, at the same
position (the drafter writes no cache). This is the protocol of llama-cpp-python's example server
(``examples/server/server.py``, ``MTPDraftProvider`` with shared memory) and of llama.cpp's
``draft-mtp``; the bindings for the hidden states are ``llama_cpp.llama_cpp_ext``.

The drafter only proposes: ``decoder.generate`` verifies every proposal with the target, so the
output is the target's own (see there). Loading checks the header first (architecture, and that
its ``embedding_length_out`` is the target's width) so a wrong file is refused in one line.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

from . import native
from .errors import ModelError
from .gguf_check import check_drafter

DEFAULT_N_DRAFT = 3  # tokens proposed per step (llama.cpp's examples use 2-3 for Gemma 4)


class Drafter:
    """A loaded drafter bound to one target context (``dec``: the target's Decoder)."""

    def __init__(self, path: str | Path, dec: Any, *, n_gpu_layers: int, threads: int,
                 n_seq_max: int, swa_full: bool, n_draft: int = DEFAULT_N_DRAFT):
        import llama_cpp
        from llama_cpp import llama_cpp_ext

        self._llama, self._ext = llama_cpp, llama_cpp_ext
        self.dec = dec
        self.n_draft = max(1, n_draft)
        target_embd = int(llama_cpp.llama_model_n_embd(dec.model.model))
        check_drafter(path, target_embd)
        mp = llama_cpp.llama_model_default_params()
        mp.n_gpu_layers = n_gpu_layers
        self._model = llama_cpp.llama_model_load_from_file(str(path).encode(), mp)
        if not self._model:
            raise ModelError(f"llama.cpp could not load the drafter {Path(path).name}: "
                             f"{native.recent_errors() or 'see the log'}")
        self.n_embd = int(llama_cpp.llama_model_n_embd_out(self._model))
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(self._model)))
        target_vocab = int(llama_cpp.llama_vocab_n_tokens(dec.vocab))
        self._ctx = None
        self._batch = None
        if self.n_embd != target_embd or self.n_vocab != target_vocab:
            self.close()
            raise ModelError(f"the drafter {Path(path).name} was made for another model "
                             f"(width {self.n_embd}, vocabulary {self.n_vocab}; the model has "
                             f"{target_embd} and {target_vocab})")
        cp = llama_cpp.llama_context_default_params()
        cp.n_ctx = dec.n_ctx
        cp.n_batch = cp.n_ubatch = max(8, n_seq_max)  # llama.cpp sizes outputs by n_seq_max
        cp.n_seq_max = n_seq_max       # the same sequences as the target: it reads that cache
        cp.kv_unified = True
        cp.swa_full = swa_full
        cp.n_threads = cp.n_threads_batch = threads
        cp.ctx_type = llama_cpp.LLAMA_CONTEXT_TYPE_MTP
        cp.ctx_other = dec.ctx.ctx
        self._ctx = llama_cpp.llama_init_from_model(self._model, cp)
        if not self._ctx:
            self.close()
            raise ModelError(f"could not create the drafter's context: {native.recent_errors()}")
        if llama_cpp_ext.llama_get_ctx_other(self._ctx) != dec.ctx.ctx:
            self.close()
            raise ModelError("this llama.cpp does not share the model's cache with the drafter")
        llama_cpp_ext.llama_set_embeddings_nextn(self._ctx, True, True)
        # one row: a token id and the hidden state it continues from
        self._batch = llama_cpp.llama_batch_init(1, self.n_embd, 1)
        self._token = (llama_cpp.llama_token * 1)()
        self._batch.token = self._token
        self._greedy = llama_cpp.llama_sampler_init_greedy()

    def close(self) -> None:
        llama = self._llama
        if getattr(self, "_greedy", None):
            llama.llama_sampler_free(self._greedy)
            self._greedy = None
        if self._batch is not None:
            self._batch.token = ctypes.POINTER(llama.llama_token)()  # ours, not the batch's
            llama.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx:
            llama.llama_free(self._ctx)
            self._ctx = None
        if self._model:
            llama.llama_model_free(self._model)
            self._model = None

    def hidden(self, row: int) -> Any:
        """The target's hidden state at ``row`` of its last decode (a copy)."""
        import numpy as np

        p = self._ext.llama_get_embeddings_nextn_ith(self.dec.ctx.ctx, row)
        if not p:
            raise ModelError("the model gave no hidden state for the drafter")
        return np.ctypeslib.as_array(p, shape=(self.n_embd,)).copy()

    def draft(self, token: int, pos: int, seq: int, h: Any, n: int) -> list[int]:
        """Up to ``n`` tokens that may follow ``token`` (at ``pos``, not yet in the target's cache),
        given the target's hidden state ``h`` at ``pos - 1``. Greedy: the drafter's best guess."""
        import numpy as np

        llama, b = self._llama, self._batch
        assert b is not None
        out: list[int] = []
        for _ in range(n):
            b.n_tokens = 1
            b.token[0], b.pos[0], b.n_seq_id[0], b.logits[0] = token, pos, 1, True
            b.seq_id[0][0] = seq
            ctypes.memmove(b.embd, h.ctypes.data, self.n_embd * 4)
            if llama.llama_decode(self._ctx, b) != 0:
                break
            token = int(llama.llama_sampler_sample(self._greedy, self._ctx, 0))
            out.append(token)
            if len(out) < n:
                p = self._ext.llama_get_embeddings_nextn_ith(self._ctx, 0)
                if not p:
                    break
                h = np.ctypeslib.as_array(p, shape=(self.n_embd,))
        return out
