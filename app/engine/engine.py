"""The Engine: one loaded Gemma 4 model (+ its mmproj) answering chat messages.

It drives llama.cpp through llama-cpp-python's low-level bindings and mtmd:

* validates the files from their GGUF headers before loading anything;
* renders the conversation with the chat template the GGUF carries;
* feeds text, audio (16 kHz float32, 25 tokens/s) and images (a token budget
  per image) through ``mtmd_tokenize`` and evaluates them in one context;
* keeps the KV cache between calls and evaluates only what differs from the
  previous prompt (prefix reuse: same transcript, new question);
* samples with temperature / top-k / top-p / min-p, an optional JSON-schema
  grammar and stop strings, streaming text pieces as they are decoded;
* stops within one token when ``cancel()`` is called from another thread.

One Engine is a single-owner resource: calls are serialised by a lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Iterable, Iterator
from pathlib import Path
from typing import Any

from . import batch, cpucheck, native
from .cancel import Cancellable, CancelToken
from .config import EngineConfig
from .decoder import Cancelled, Decoder, Seq, generate
from .drafter import Drafter
from .errors import ContextOverflow, EngineError, ModelError
from .generation import GenerateOptions, Reply, Stream, resolve_options
from .gguf_check import MODEL_ARCH, check_pair
from .messages import IMAGE_TOKENS_MIN, Audio, Image, Message, as_messages, clamp_image_tokens
from .prompt import Media, Prompt, Unit, audio_bitmap, image_bitmap, render, tokenize_multimodal


class Engine:
    """A loaded model pair. ``Engine(model, mmproj)``; ``mmproj=None`` is text-only.

    The context holds ``n_parallel + 1`` sequences in one KV cache: sequence 0 is the chat, whose
    cache is kept between calls (prefix reuse); 1..n are a batch's (``chat_batch``), removed when
    the batch ends, so live transcription during a meeting leaves the chat's prefix in place."""

    def __init__(self, model: str | Path, mmproj: str | Path | None = None,
                 config: EngineConfig | None = None, *, chat_template: str | None = None,
                 require_arch: str | None = MODEL_ARCH, drafter: str | Path | None = None):
        import llama_cpp
        import llama_cpp.mtmd_cpp as mtmd
        from llama_cpp import _internals

        self.config = config or EngineConfig()
        self.info = check_pair(model, mmproj, require_arch)
        self._template = chat_template or self.info.model.get("tokenizer.chat_template")
        if not self._template:
            raise ModelError(f"{Path(model).name} carries no chat template")
        native.install()
        native.clear_recent()
        cpucheck.ensure_backend()  # the CPU code that runs on this machine (checked once)
        self._llama, self._mtmd = llama_cpp, mtmd
        self.lock = threading.Lock()
        self._active: Cancellable | None = None  # the token of the request in flight
        self._closed = False
        self._dec: Decoder | None = None

        mp = llama_cpp.llama_model_default_params()
        mp.n_gpu_layers = self.config.n_gpu_layers
        try:
            self._model = _internals.LlamaModel(path_model=str(model), params=mp, verbose=False)
        except ValueError:
            raise ModelError(f"llama.cpp could not load {Path(model).name}"
                             f"{': ' + native.recent_errors() if native.recent_errors() else ''}") from None
        n_batch = max(self.config.n_batch, 1280)
        cp = llama_cpp.llama_context_default_params()
        cp.n_ctx = self.config.n_ctx
        cp.n_batch = n_batch
        cp.n_ubatch = n_batch
        self.n_parallel = max(1, self.config.n_parallel)
        cp.n_seq_max = self.n_parallel + 1  # the chat's sequence and a batch's
        # one KV buffer for all sequences: a single chat can still use the whole context
        cp.kv_unified = True
        threads = self.config.threads()
        cp.n_threads = threads
        cp.n_threads_batch = threads
        cp.swa_full = self.config.full_swa_cache
        cp.no_perf = False
        try:
            self._ctx = _internals.LlamaContext(model=self._model, params=cp, verbose=False)
        except ValueError:
            self._model.close()
            raise ModelError(f"could not create a context of {self.config.n_ctx} tokens "
                             f"(out of memory?): {native.recent_errors()}") from None
        self.n_ctx = llama_cpp.llama_n_ctx(self._ctx.ctx)
        self.n_batch = n_batch
        self._vocab = self._model.vocab
        self._n_swa = llama_cpp.llama_model_n_swa(self._model.model)
        self._mctx = None
        if mmproj is not None:
            mcp = mtmd.mtmd_context_params_default()
            mcp.use_gpu = self.config.n_gpu_layers != 0
            mcp.print_timings = False
            mcp.n_threads = threads
            mcp.warmup = False
            self._mctx = mtmd.mtmd_init_from_file(str(mmproj).encode(), self._model.model, mcp)
            if not self._mctx:
                self.close()
                raise ModelError(f"could not load the projector {Path(mmproj).name}: "
                                 f"{native.recent_errors() or 'it does not fit this model'}")
            self._marker = mtmd.mtmd_default_marker().decode()
        else:
            self._marker = "<__media__>"
        self._dec = Decoder(llama_cpp, mtmd, self._model, self._ctx, self._mctx, n_batch)
        self._drafter: Drafter | None = None
        if drafter is not None and self.config.n_draft > 0:
            try:
                self._drafter = Drafter(drafter, self._dec, n_gpu_layers=self.config.n_gpu_layers,
                                        threads=threads, n_seq_max=cp.n_seq_max,
                                        swa_full=cp.swa_full, n_draft=self.config.n_draft)
            except BaseException:
                self.close()
                raise
        self._bos = self._piece(llama_cpp.llama_vocab_bos(self._vocab))
        self._eos = self._piece(llama_cpp.llama_vocab_eos(self._vocab))
        self._cached: list[Unit] = []   # units of sequence 0 whose KV entries are in the cache
        self._n_past = 0
        self.last: Reply | None = None

    # -- capabilities -------------------------------------------------------
    @property
    def supports_audio(self) -> bool:
        return bool(self._mctx) and bool(self._mtmd.mtmd_support_audio(self._mctx))

    @property
    def supports_vision(self) -> bool:
        return bool(self._mctx) and bool(self._mtmd.mtmd_support_vision(self._mctx))

    @property
    def supports_thinking(self) -> bool:
        """Whether the chat template has a thinking switch (``enable_thinking``)."""
        return "enable_thinking" in (self._template or "")

    @property
    def audio_sample_rate(self) -> int:
        return int(self._mtmd.mtmd_get_audio_sample_rate(self._mctx)) if self.supports_audio else 0

    @property
    def has_drafter(self) -> bool:
        """Whether answers are decoded speculatively with the MTP drafter (not batches)."""
        return self._drafter is not None

    @property
    def decoder(self) -> Decoder:
        assert self._dec is not None
        return self._dec

    # -- public API ---------------------------------------------------------
    def chat(self, messages: Iterable[Message | dict], options: GenerateOptions | None = None, *,
             cancel: Cancellable | None = None, **kw) -> Reply:
        return self.stream(messages, options, cancel=cancel, **kw).consume()

    def chat_batch(self, conversations: Iterable[Iterable[Message | dict]],
                   options: GenerateOptions | None = None, *, cancel: Cancellable | None = None,
                   **kw) -> list[Reply]:
        """Answer several conversations at once as parallel sequences (see batch.py)."""
        if self._closed:
            raise EngineError("the engine is closed")
        return batch.chat_batch(self, [as_messages(c) for c in conversations], resolve_options(options, kw),
                                cancel if cancel is not None else CancelToken())

    def stream(self, messages: Iterable[Message | dict], options: GenerateOptions | None = None, *,
               cancel: Cancellable | None = None, **kw) -> Stream:
        """Text pieces as they are decoded. ``cancel``: this request's token (any object with
        ``is_set()``); cancelling it stops this request within one token and nothing else."""
        msgs = as_messages(messages)
        opts = resolve_options(options, kw)
        live = Reply()
        return Stream(self._run(msgs, opts, live, cancel if cancel is not None else CancelToken()), live)

    def cancel(self) -> None:
        """Stop the request in flight within one token (thread-safe): cancels its token."""
        active = self._active
        if active is not None and hasattr(active, "set"):
            active.set()

    def count_tokens(self, messages: Iterable[Message | dict], image_tokens: int | None = None) -> int:
        """Prompt positions these messages would take (nothing is evaluated)."""
        with self.lock:
            with self.tokenize(as_messages(messages), image_tokens, think=False)[0] as p:
                return p.n_pos

    def reset(self) -> None:
        """Forget the KV cache (the next call evaluates its whole prompt)."""
        with self.lock:
            self._clear_cache()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if getattr(self, "_mctx", None):
            self._mtmd.mtmd_free(self._mctx)
            self._mctx = None
        for name in ("_drafter", "_dec", "_ctx", "_model"):
            obj = getattr(self, name, None)
            if obj is not None:
                obj.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- what a batch uses (batch.py), under ``lock`` ---------------------------
    def make_room(self, cells: int) -> bool:
        """Whether ``cells`` more KV cells fit; drops the chat's cached prefix if only that
        makes them fit. False: they never fit this context."""
        if cells > self.n_ctx:
            return False
        held = sum(1 if isinstance(u, int) else u.n_tokens for u in self._cached)
        if cells > self.n_ctx - held:
            self._clear_cache()
        return True

    def tokenize(self, msgs: list[Message], image_tokens: int | None,
                 think: bool) -> tuple[Prompt, list[int]]:
        """The prompt's units (text tokens and media chunks) and each media part's token count."""
        text = render(self._template, msgs, self._marker, self._bos, self._eos, think)
        add_special = not (self._bos and text.startswith(self._bos))
        default = image_tokens if image_tokens is not None else self.config.image_tokens
        parts = [p for m in msgs for p in m.parts if isinstance(p, (Audio, Image))]
        if self._mctx is None:
            if parts:
                raise EngineError("this model was loaded without its mmproj: it cannot hear or see")
            return Prompt(list(self._model.tokenize(text.encode(), add_special, True))), []
        loaded: list[Any] = []
        budgets: list[int | None] = []
        for p in parts:
            if isinstance(p, Audio):
                if not self.supports_audio:
                    raise EngineError("this model cannot hear: its mmproj has no audio projector")
                loaded.append(p.load())
                budgets.append(None)
            else:
                if not self.supports_vision:
                    raise EngineError("this model cannot see: its mmproj has no vision projector")
                loaded.append(p.load())
                b = p.max_tokens if p.max_tokens is not None else default
                budgets.append(clamp_image_tokens(b) if b is not None else None)
        shrink = [1.0] * len(parts)
        for _attempt in range(4):
            media: list[tuple[str, Any, bytes]] = []
            sizes: list[int] = []
            try:
                for i, p in enumerate(parts):
                    if isinstance(p, Audio):
                        bm, key = audio_bitmap(self._mtmd, loaded[i])
                        media.append(("audio", bm, key))
                        sizes.append(0)
                    else:
                        bm, key, im = image_bitmap(self._mtmd, loaded[i], budgets[i], shrink[i])
                        media.append(("image", bm, key))
                        sizes.append(im.width * im.height)
            except BaseException:
                for _, bm, _ in media:
                    self._mtmd.mtmd_bitmap_free(bm)
                raise
            prompt = tokenize_multimodal(self._mtmd, self._mctx, text, media, add_special)
            counts = [u.n_tokens for u in prompt.units if isinstance(u, Media)]
            over = False
            if len(counts) == len(parts):  # one chunk per part: check each image's budget
                for i, (n, b) in enumerate(zip(counts, budgets, strict=True)):
                    # below ~70 patches the model scales the image up again: that is the floor
                    if b is not None and n > b and sizes[i] > IMAGE_TOKENS_MIN * 48 * 48:
                        shrink[i] *= 0.95 * (b / n) ** 0.5
                        over = True
            if not over:
                return prompt, counts
            prompt.close()
        return prompt, counts  # pragma: no cover - the model ignores size; best effort

    # -- internals ----------------------------------------------------------
    def _piece(self, token: int) -> str:
        return self.decoder.piece_bytes(token, special=True).decode("utf-8", errors="replace")

    def _clear_cache(self) -> None:
        self.decoder.clear()
        self._cached = []
        self._n_past = 0

    def _reuse(self, units: list[Unit]) -> int:
        """Keep the cached prefix shared with ``units``; return units kept."""
        n = 0
        pos = 0
        for old, new in zip(self._cached, units, strict=False):
            if old != new:
                break
            n += 1
            pos += 1 if isinstance(new, int) else new.n_pos
        if n == len(units) and n:  # identical prompt: re-evaluate the last unit for its logits
            n -= 1
            last = units[n]
            pos -= 1 if isinstance(last, int) else last.n_pos
        dec = self.decoder
        if pos > 0 and self._n_swa > 0 and not self.config.full_swa_cache:
            if dec.seq_pos_min(0) > max(0, pos - self._n_swa):
                n = pos = 0  # the sliding-window cache no longer holds what is needed
        if pos == 0 or not dec.seq_rm(0, pos, -1):
            self._clear_cache()
            return 0
        self._cached = self._cached[:n]
        self._n_past = pos
        return n

    def _now_cached(self, run, next_pos: int) -> None:
        self._cached.extend(run)
        self._n_past = next_pos

    def _run(self, msgs: list[Message], o: GenerateOptions, reply: Reply,
             cancel: Cancellable) -> Generator[str, None, Reply]:
        if self._closed:
            raise EngineError("the engine is closed")
        with self.lock:
            self._active = cancel
            try:
                yield from self._answer(msgs, o, reply, cancel)
            finally:
                self._active = None
            self.last = reply
            return reply

    def _answer(self, msgs: list[Message], o: GenerateOptions, reply: Reply,
                cancel: Cancellable) -> Iterator[str]:
        t0 = time.perf_counter()
        dec = self.decoder
        prompt, media_tokens = self.tokenize(msgs, o.image_tokens, o.think)
        with prompt:
            units = prompt.units
            reply.prompt_tokens = prompt.n_pos
            reply.media_tokens = media_tokens
            if reply.prompt_tokens + 1 > self.n_ctx:
                raise ContextOverflow(
                    f"the prompt needs {reply.prompt_tokens} tokens but the context holds "
                    f"{self.n_ctx}; shorten it or raise the context size")
            if cancel.is_set():  # cancelled while it waited for the model: it never runs
                reply.finish_reason = "cancelled"
                return
            seq = Seq(0, 0, reply, o)
            seq.sampler = dec.sampler(o)
            # Media prefill stays on the plain path; the drafter is switched on only for the text
            # generated after it. The prompt (audio and images through mtmd) is evaluated by the
            # model alone, exactly as without a drafter: the drafter is never given prompt batches
            # (what reports from llama.cpp say is not yet safe with media, in servers that feed
            # the draft context the prompt), only the hidden state of the prompt's last text token,
            # and it reads the cache's cells as the model's last layers do. Its proposals are
            # verified, so a poor fit after media costs speed, never text (docs/ARCHITECTURE.md).
            # Batches (chat_batch: transcription in groups) stay plain: they already decode many
            # sequences per weight read, which is what the drafter buys a single one.
            drafter = self._drafter if o.draft and units and isinstance(units[-1], int) else None
            try:
                kept = self._reuse(units)
                reply.reused_tokens = self._n_past
                try:
                    dec.eval_units(units[kept:], 0, self._n_past, cancel, logits_last=True,
                                   on_done=self._now_cached, hidden_last=drafter is not None)
                except Cancelled:
                    reply.finish_reason = "cancelled"
                except BaseException:
                    self._clear_cache()
                    raise
                reply.evaluated_tokens = self._n_past - reply.reused_tokens
                reply.prompt_seconds = time.perf_counter() - t0
                if reply.finish_reason == "cancelled":
                    return
                seq.pos = self._n_past
                ok = False
                try:
                    yield from generate(dec, [seq], o, cancel, time.perf_counter(), stream=True,
                                        drafter=drafter)
                    ok = True
                except GeneratorExit:  # abandoned mid-answer: what was decoded stays usable
                    ok = True
                    raise
                finally:
                    if ok:
                        self._cached.extend(seq.decoded)
                        self._n_past = seq.pos
                    else:
                        self._clear_cache()
            finally:
                dec.free_sampler(seq.sampler)


__all__ = ["Engine", "EngineConfig", "GenerateOptions", "Reply", "Stream"]
