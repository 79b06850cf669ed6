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

import ctypes
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from . import cpucheck, native
from .errors import ContextOverflow, EngineError, ModelError
from .gguf_check import MODEL_ARCH, check_pair
from .messages import IMAGE_TOKENS_MIN, Audio, Image, Message, as_messages, clamp_image_tokens
from .prompt import Media, Prompt, Unit, audio_bitmap, image_bitmap, render, tokenize_multimodal
from .textout import TextOut


@dataclass
class EngineConfig:
    n_ctx: int = 16384
    n_threads: int = 0          # 0: a sensible default for this machine
    n_gpu_layers: int = 0       # -1: all layers on the GPU
    n_batch: int = 2048         # also n_ubatch: an image is never split (>= 1120)
    full_swa_cache: bool = True  # needed to reuse a prefix longer than the sliding window
    image_tokens: int | None = None  # default per-image budget (70-1120); None: model default
    n_parallel: int = 8         # sequences decoded together by chat_batch (shared KV cache)

    def threads(self) -> int:
        if self.n_threads > 0:
            return self.n_threads
        import os

        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        # Leave a core for the UI and the recorder; spin-waiting threads on a
        # busy machine are far slower than one fewer thread.
        return max(1, min(8, n - 1))


@dataclass
class GenerateOptions:
    max_tokens: int = 512
    temperature: float = 0.0
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()
    json_schema: dict | None = None
    image_tokens: int | None = None
    think: bool = False
    ignore_eos: bool = False  # generate exactly max_tokens (benchmarks)


@dataclass
class Reply:
    text: str = ""
    finish_reason: str = ""       # "stop", "length", "cancelled"
    prompt_tokens: int = 0        # positions in the prompt
    reused_tokens: int = 0        # of those, taken from the KV cache
    evaluated_tokens: int = 0     # of those, evaluated by this call
    generated_tokens: int = 0
    media_tokens: list[int] = field(default_factory=list)  # per audio/image part
    time_to_first_token: float = 0.0
    prompt_seconds: float = 0.0
    generate_seconds: float = 0.0

    def json(self) -> Any:
        return json.loads(self.text)

    @property
    def tokens_per_second(self) -> float:
        return self.generated_tokens / self.generate_seconds if self.generate_seconds > 0 else 0.0


class Stream:
    """Iterate for text pieces; ``reply`` holds the result once iteration ends.

    ``live`` is the Reply being filled in (token counts while it streams).
    """

    def __init__(self, gen: Iterator[str], live: Reply | None = None):
        self._gen = gen
        self.live = live if live is not None else Reply()
        self.reply: Reply | None = None

    def __iter__(self) -> Iterator[str]:
        self.reply = yield from self._gen
        return self.reply

    def close(self) -> None:
        """Abandon the stream early; the engine is free for the next call."""
        self._gen.close()

    def consume(self) -> Reply:
        for _ in self:
            pass
        assert self.reply is not None
        return self.reply


def _options(opts: GenerateOptions | None, kw: dict) -> GenerateOptions:
    o = GenerateOptions(**{**(opts.__dict__ if opts else {}), **kw})
    if isinstance(o.stop, str):
        o.stop = (o.stop,)
    o.stop = tuple(s for s in o.stop if s)
    if o.max_tokens < 1:
        raise EngineError("max_tokens must be at least 1")
    return o


class Engine:
    """A loaded model pair. ``Engine(model, mmproj)``; ``mmproj=None`` is text-only."""

    def __init__(self, model: str | Path, mmproj: str | Path | None = None,
                 config: EngineConfig | None = None, *, chat_template: str | None = None,
                 require_arch: str | None = MODEL_ARCH, cancel_event: Any = None):
        """``cancel_event``: an Event-like object shared with another process
        (the EngineHost's); when given, ``stream()`` does not clear it — its
        owner clears it before each request."""
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
        self._lock = threading.Lock()
        self._external_cancel = cancel_event is not None
        self._cancel = cancel_event if cancel_event is not None else threading.Event()
        self._closed = False

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
        cp.n_seq_max = self.n_parallel
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
        self._batch = _internals.LlamaBatch(n_tokens=n_batch, embd=0, n_seq_max=1, verbose=False)
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
        self._bos = self._piece(llama_cpp.llama_vocab_bos(self._vocab), special=True)
        self._eos = self._piece(llama_cpp.llama_vocab_eos(self._vocab), special=True)
        self._cached: list[Unit] = []   # units whose KV entries are in the cache
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

    # -- public API ---------------------------------------------------------
    def chat(self, messages: Iterable[Message | dict], options: GenerateOptions | None = None,
             **kw) -> Reply:
        return self.stream(messages, options, **kw).consume()

    def chat_batch(self, conversations: Iterable[Iterable[Message | dict]],
                   options: GenerateOptions | None = None, **kw) -> list[Reply]:
        """Answer several conversations at once as parallel sequences (see batch.py)."""
        from .batch import chat_batch

        return chat_batch(self, conversations, options, **kw)

    def stream(self, messages: Iterable[Message | dict], options: GenerateOptions | None = None,
               **kw) -> Stream:
        msgs = as_messages(messages)
        opts = _options(options, kw)
        if not self._external_cancel:
            self._cancel.clear()
        live = Reply()
        return Stream(self._run(msgs, opts, live), live)

    def cancel(self) -> None:
        """Stop the call in flight within one token (thread-safe)."""
        self._cancel.set()

    def count_tokens(self, messages: Iterable[Message | dict], image_tokens: int | None = None) -> int:
        """Prompt positions these messages would take (nothing is evaluated)."""
        with self._lock:
            with self._tokenize(as_messages(messages), image_tokens, think=False)[0] as p:
                return p.n_pos

    def reset(self) -> None:
        """Forget the KV cache (the next call evaluates its whole prompt)."""
        with self._lock:
            self._clear_cache()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if getattr(self, "_mctx", None):
            self._mtmd.mtmd_free(self._mctx)
            self._mctx = None
        for name in ("_batch", "_ctx", "_model"):
            obj = getattr(self, name, None)
            if obj is not None:
                obj.close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals ----------------------------------------------------------
    def _piece(self, token: int, special: bool = False) -> str:
        return self._piece_bytes(token, special).decode("utf-8", errors="replace")

    def _piece_bytes(self, token: int, special: bool = False) -> bytes:
        buf = ctypes.create_string_buffer(256)
        n = self._llama.llama_token_to_piece(self._vocab, token, buf, 256, 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self._llama.llama_token_to_piece(self._vocab, token, buf, -n, 0, special)
        return buf.raw[:max(n, 0)]

    def _tokenize(self, msgs: list[Message], image_tokens: int | None,
                  think: bool) -> tuple[Prompt, list[int]]:
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
                for i, (n, b) in enumerate(zip(counts, budgets)):
                    # below ~70 patches the model scales the image up again: that is the floor
                    if b is not None and n > b and sizes[i] > IMAGE_TOKENS_MIN * 48 * 48:
                        shrink[i] *= 0.95 * (b / n) ** 0.5
                        over = True
            if not over:
                return prompt, counts
            prompt.close()
        return prompt, counts  # pragma: no cover - the model ignores size; best effort

    def _eog_tokens(self) -> list[int]:
        if getattr(self, "_eog", None) is None:
            n = self._llama.llama_vocab_n_tokens(self._vocab)
            self._eog = [t for t in range(n) if self._llama.llama_vocab_is_eog(self._vocab, t)]
        return self._eog

    def _clear_cache(self) -> None:
        self._llama.llama_memory_clear(self._llama.llama_get_memory(self._ctx.ctx), True)
        self._cached = []
        self._n_past = 0

    def _reuse(self, units: list[Unit]) -> int:
        """Keep the cached prefix shared with ``units``; return units kept."""
        n = 0
        pos = 0
        for old, new in zip(self._cached, units):
            if old != new:
                break
            n += 1
            pos += 1 if isinstance(new, int) else new.n_pos
        if n == len(units) and n:  # identical prompt: re-evaluate the last unit for its logits
            n -= 1
            last = units[n]
            pos -= 1 if isinstance(last, int) else last.n_pos
        mem = self._llama.llama_get_memory(self._ctx.ctx)
        if pos > 0 and self._n_swa > 0 and not self.config.full_swa_cache:
            pos_min = self._llama.llama_memory_seq_pos_min(mem, 0)
            if pos_min > max(0, pos - self._n_swa):
                n = pos = 0  # the sliding-window cache no longer holds what is needed
        if pos == 0 or not self._llama.llama_memory_seq_rm(mem, 0, pos, -1):
            self._clear_cache()
            return 0
        self._cached = self._cached[:n]
        self._n_past = pos
        return n

    def _decode_tokens(self, tokens: list[int], logits_last: bool) -> None:
        llama = self._llama
        b = self._batch.batch
        for i in range(0, len(tokens), self.n_batch):
            if self._cancel.is_set():
                raise _Cancelled()
            part = tokens[i:i + self.n_batch]
            b.n_tokens = len(part)
            for j, t in enumerate(part):
                b.token[j] = t
                b.pos[j] = self._n_past + j
                b.n_seq_id[j] = 1
                b.seq_id[j][0] = 0
                b.logits[j] = False
            if logits_last and i + self.n_batch >= len(tokens):
                b.logits[len(part) - 1] = True
            rc = llama.llama_decode(self._ctx.ctx, b)
            if rc != 0:
                raise EngineError(f"llama_decode failed ({rc}): {native.recent_errors() or 'no memory left in the context?'}")
            self._cached.extend(part)
            self._n_past += len(part)

    def _decode_media(self, m: Media) -> None:
        mtmd = self._mtmd
        if self._cancel.is_set():
            raise _Cancelled()
        if m.n_tokens > self.n_batch and mtmd.mtmd_decode_use_non_causal(self._mctx, m.chunk):
            raise EngineError(f"an {m.kind} part of {m.n_tokens} tokens exceeds the batch of {self.n_batch}")
        new_n_past = self._llama.llama_pos(0)
        rc = mtmd.mtmd_helper_eval_chunk_single(
            self._mctx, self._ctx.ctx, m.chunk, self._n_past, 0, self.n_batch, False,
            ctypes.byref(new_n_past))
        if rc != 0:
            raise EngineError(f"the model could not take the {m.kind} part (error {rc}): {native.recent_errors()}")
        self._cached.append(m)
        self._n_past = new_n_past.value

    def _evaluate(self, units: list[Unit], start: int) -> None:
        i = start
        while i < len(units):
            u = units[i]
            if isinstance(u, Media):
                self._decode_media(u)
                i += 1
                continue
            j = i
            while j < len(units) and isinstance(units[j], int):
                j += 1
            self._decode_tokens(units[i:j], logits_last=(j == len(units)))  # type: ignore[arg-type]
            i = j

    def _sampler(self, o: GenerateOptions):
        llama = self._llama
        chain = llama.llama_sampler_chain_init(llama.llama_sampler_chain_default_params())
        add = lambda s: llama.llama_sampler_chain_add(chain, s)  # noqa: E731
        if o.json_schema is not None:
            from llama_cpp.llama_grammar import json_schema_to_gbnf

            try:
                gbnf = json_schema_to_gbnf(json.dumps(o.json_schema))
            except Exception as e:
                llama.llama_sampler_free(chain)
                raise EngineError(f"unsupported JSON schema: {e}") from None
            g = llama.llama_sampler_init_grammar(self._vocab, gbnf.encode(), b"root")
            if not g:
                llama.llama_sampler_free(chain)
                raise EngineError("the JSON schema gave a grammar llama.cpp rejects")
            add(g)
        if o.ignore_eos:
            eog = self._eog_tokens()
            bias = (llama.llama_logit_bias * len(eog))(
                *[llama.llama_logit_bias(t, float("-inf")) for t in eog])
            add(llama.llama_sampler_init_logit_bias(llama.llama_vocab_n_tokens(self._vocab),
                                                   len(eog), bias))
        if o.repeat_penalty != 1.0:
            # this llama.cpp takes the vocabulary size first (vendor/llama.cpp/include/llama.h)
            add(llama.llama_sampler_init_penalties(llama.llama_vocab_n_tokens(self._vocab), 64,
                                                   o.repeat_penalty, 0.0, 0.0))
        if o.temperature <= 0:
            add(llama.llama_sampler_init_greedy())
        else:
            add(llama.llama_sampler_init_top_k(o.top_k))
            add(llama.llama_sampler_init_top_p(o.top_p, 1))
            add(llama.llama_sampler_init_min_p(o.min_p, 1))
            add(llama.llama_sampler_init_temp(o.temperature))
            add(llama.llama_sampler_init_dist(o.seed & 0xFFFFFFFF))
        return chain

    def _run(self, msgs: list[Message], o: GenerateOptions, reply: Reply) -> Iterator[str]:
        if self._closed:
            raise EngineError("the engine is closed")
        with self._lock:
            t0 = time.perf_counter()
            prompt, media_tokens = self._tokenize(msgs, o.image_tokens, o.think)
            with prompt:
                units = prompt.units
                reply.prompt_tokens = prompt.n_pos
                reply.media_tokens = media_tokens
                if reply.prompt_tokens + 1 > self.n_ctx:
                    raise ContextOverflow(
                        f"the prompt needs {reply.prompt_tokens} tokens but the context holds "
                        f"{self.n_ctx}; shorten it or raise the context size")
                sampler = self._sampler(o)
                try:
                    kept = self._reuse(units)
                    reply.reused_tokens = self._n_past
                    try:
                        self._evaluate(units, kept)
                    except _Cancelled:
                        reply.finish_reason = "cancelled"
                    except BaseException:
                        self._clear_cache()
                        raise
                    reply.evaluated_tokens = self._n_past - reply.reused_tokens
                    reply.prompt_seconds = time.perf_counter() - t0
                    if reply.finish_reason != "cancelled":
                        yield from self._generate(sampler, o, reply)
                finally:
                    self._llama.llama_sampler_free(sampler)
            self.last = reply
            return reply

    def _generate(self, sampler, o: GenerateOptions, reply: Reply) -> Iterator[str]:
        llama = self._llama
        out = TextOut(o.stop)
        b = self._batch.batch
        t_start = time.perf_counter()
        reply.finish_reason = "length"
        while reply.generated_tokens < o.max_tokens:
            if self._cancel.is_set():
                reply.finish_reason = "cancelled"
                break
            tok = llama.llama_sampler_sample(sampler, self._ctx.ctx, -1)
            if llama.llama_vocab_is_eog(self._vocab, tok):
                reply.finish_reason = "stop"
                break
            reply.generated_tokens += 1
            if reply.generated_tokens == 1:
                reply.time_to_first_token = reply.prompt_seconds + time.perf_counter() - t_start
            # thinking: keep the template's channel markers so the thought can be told apart
            piece = out.add(self._piece_bytes(tok, special=o.think))
            if piece:
                yield piece
            if out.stopped:
                reply.finish_reason = "stop"
                break
            if reply.generated_tokens >= o.max_tokens or self._n_past + 1 >= self.n_ctx:
                break
            b.n_tokens = 1
            b.token[0] = tok
            b.pos[0] = self._n_past
            b.n_seq_id[0] = 1
            b.seq_id[0][0] = 0
            b.logits[0] = True
            rc = llama.llama_decode(self._ctx.ctx, b)
            if rc != 0:
                self._clear_cache()
                raise EngineError(f"llama_decode failed while generating ({rc})")
            self._cached.append(tok)
            self._n_past += 1
        piece = out.finish()
        if piece:
            yield piece
        reply.text = out.text
        reply.generate_seconds = time.perf_counter() - t_start


class _Cancelled(Exception):
    pass
