"""One llama.cpp context and the loop that generates from it: what a single chat and a batch of
parallel conversations both use.

``Decoder`` evaluates text tokens, media chunks (through mtmd) and media embeddings into numbered
sequences of the context's unified KV cache, samples, and turns tokens into bytes. ``generate``
runs greedy/sampled generation for one or more sequences in lockstep: one decode per step carries
the next token of every live sequence (weights are read once for all of them). The Engine's chat
is a generation of one sequence (0, with the prefix cache); ``batch`` is one of several.
"""

from __future__ import annotations

import ctypes
import json
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from . import native
from .cancel import Cancellable
from .errors import EngineError
from .generation import GenerateOptions, Reply
from .prompt import Media, Unit
from .textout import TextOut

if TYPE_CHECKING:
    from .drafter import Drafter


class Cancelled(Exception):
    """The request's token was cancelled while its prompt was being evaluated."""


def n_pos(units: Sequence[Unit]) -> int:
    return sum(1 if isinstance(u, int) else u.n_pos for u in units)


class Decoder:
    """A llama.cpp context with its token batch and (optionally) the mtmd projector."""

    def __init__(self, llama: Any, mtmd: Any, model: Any, ctx: Any, mctx: Any, n_batch: int):
        from llama_cpp import _internals

        self.llama, self.mtmd = llama, mtmd
        self.model, self.ctx, self.mctx = model, ctx, mctx
        self.vocab = model.vocab
        self.n_batch = n_batch
        self.n_ctx = llama.llama_n_ctx(ctx.ctx)
        self._batch = _internals.LlamaBatch(n_tokens=n_batch, embd=0, n_seq_max=1, verbose=False)
        self._eog: list[int] | None = None
        self.n_last = 0       # rows in the last decode
        self._hidden = False  # whether decodes export the hidden state of every row (the drafter's input)

    def set_hidden(self, on: bool) -> None:
        """Export (or stop exporting) each batch row's post-norm hidden state: what the MTP drafter
        reads. It adds an output to the graph, never changes the logits."""
        if on != self._hidden:
            from llama_cpp import llama_cpp_ext

            llama_cpp_ext.llama_set_embeddings_nextn(self.ctx.ctx, on, False)
            self._hidden = on

    def close(self) -> None:
        self._batch.close()

    # -- the KV cache ---------------------------------------------------------
    @property
    def memory(self):
        return self.llama.llama_get_memory(self.ctx.ctx)

    def clear(self) -> None:
        self.llama.llama_memory_clear(self.memory, True)

    def seq_rm(self, seq: int, p0: int = -1, p1: int = -1) -> bool:
        return bool(self.llama.llama_memory_seq_rm(self.memory, seq, p0, p1))

    def seq_cp(self, src: int, dst: int) -> None:
        self.llama.llama_memory_seq_cp(self.memory, src, dst, -1, -1)

    def seq_pos_min(self, seq: int) -> int:
        return int(self.llama.llama_memory_seq_pos_min(self.memory, seq))

    # -- evaluation -------------------------------------------------------------
    def decode(self, items: Sequence[tuple[int, int, int]], cancel: Cancellable | None = None,
               logits: str = "none", hidden: bool = False) -> None:
        """Evaluate (token, position, sequence) triples, ``n_batch`` at a time. ``logits``:
        "none", "last" (the last item's row) or "all" (a row per item: at most ``n_batch``).
        ``hidden``: the last decode also exports its rows' hidden states (``set_hidden``)."""
        b = self._batch.batch
        if logits == "all" and len(items) > self.n_batch:
            raise EngineError(f"{len(items)} sequences do not fit one batch of {self.n_batch}")
        for off in range(0, len(items), self.n_batch):
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            part = items[off:off + self.n_batch]
            last = off + self.n_batch >= len(items)
            b.n_tokens = len(part)
            for k, (tok, pos, seq) in enumerate(part):
                b.token[k], b.pos[k], b.n_seq_id[k] = tok, pos, 1
                b.seq_id[k][0] = seq
                b.logits[k] = logits == "all"
            if logits == "last" and last:
                b.logits[len(part) - 1] = True
            self.set_hidden(hidden and last)
            self._check(self.llama.llama_decode(self.ctx.ctx, b))
            self.n_last = len(part)

    def eval_media(self, m: Media, seq: int, pos: int, cancel: Cancellable | None = None) -> int:
        """Evaluate one media chunk (mtmd encodes it) at ``pos``; return the next position."""
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        if m.n_tokens > self.n_batch and self.mtmd.mtmd_decode_use_non_causal(self.mctx, m.chunk):
            raise EngineError(f"an {m.kind} part of {m.n_tokens} tokens exceeds the batch of {self.n_batch}")
        new_pos = self.llama.llama_pos(0)
        self.set_hidden(False)
        rc = self.mtmd.mtmd_helper_eval_chunk_single(self.mctx, self.ctx.ctx, m.chunk, pos, seq,
                                                     self.n_batch, False, ctypes.byref(new_pos))
        if rc != 0:
            raise EngineError(f"the model could not take the {m.kind} part (error {rc}): "
                              f"{native.recent_errors()}")
        return int(new_pos.value)

    def eval_units(self, units: Sequence[Unit], seq: int, pos: int, cancel: Cancellable | None = None,
                   logits_last: bool = False,
                   on_done: Callable[[Sequence[Unit], int], None] | None = None,
                   hidden_last: bool = False) -> int:
        """Evaluate ``units`` into ``seq`` from ``pos``; return the next position. ``on_done(run,
        next_pos)`` after each run that is in the cache (so a cancel keeps what was done).
        ``hidden_last``: the last decode exports hidden states (the drafter starts from them)."""
        i = 0
        while i < len(units):
            u = units[i]
            if isinstance(u, Media):
                pos = self.eval_media(u, seq, pos, cancel)
                if on_done is not None:
                    on_done(units[i:i + 1], pos)
                i += 1
                continue
            j = i
            while j < len(units) and isinstance(units[j], int) and j - i < self.n_batch:
                j += 1
            toks: list[int] = list(units[i:j])  # type: ignore[arg-type]
            self.decode([(t, pos + k, seq) for k, t in enumerate(toks)], cancel,
                        "last" if logits_last and j == len(units) else "none",
                        hidden=hidden_last and j == len(units))
            pos += len(toks)
            if on_done is not None:
                on_done(toks, pos)
            i = j
        return pos

    def media_is_simple(self, m: Media) -> bool:
        """Causal media with one position per token: its embeddings can share a decode."""
        return (not self.mtmd.mtmd_decode_use_non_causal(self.mctx, m.chunk)
                and not self.mtmd.mtmd_decode_use_mrope(self.mctx) and m.n_pos == m.n_tokens)

    def encode_media(self, m: Media):
        """The projector's embeddings of one media chunk (n_tokens x n_embd float32, flat)."""
        import numpy as np

        if self.mtmd.mtmd_encode_chunk(self.mctx, m.chunk) != 0:
            raise EngineError(f"the model could not take the {m.kind} part")
        out = self.mtmd.mtmd_get_output_embd(self.mctx)
        return np.ctypeslib.as_array(out, shape=(m.n_tokens * self.n_embd,)).copy()

    @property
    def n_embd(self) -> int:
        return int(self.llama.llama_model_n_embd_inp(self.model.model))

    def decode_embeddings(self, embd, places: Sequence[tuple[int, int]],
                          cancel: Cancellable | None = None) -> None:
        """Evaluate embedding rows (flat float32) at (position, sequence) ``places``."""
        llama, n_embd, total = self.llama, self.n_embd, len(places)
        batch = llama.llama_batch_init(min(total, self.n_batch), n_embd, 1)
        self.set_hidden(False)
        try:
            for off in range(0, total, self.n_batch):
                if cancel is not None and cancel.is_set():
                    raise Cancelled()
                n = min(self.n_batch, total - off)
                batch.n_tokens = n
                ctypes.memmove(batch.embd, embd[off * n_embd:(off + n) * n_embd].ctypes.data, n * n_embd * 4)
                for k in range(n):
                    pos, seq = places[off + k]
                    batch.pos[k], batch.n_seq_id[k], batch.logits[k] = pos, 1, False
                    batch.seq_id[k][0] = seq
                self._check(llama.llama_decode(self.ctx.ctx, batch))
        finally:
            llama.llama_batch_free(batch)

    def _check(self, rc: int) -> None:
        if rc != 0:
            raise EngineError(f"llama_decode failed ({rc}): "
                              f"{native.recent_errors() or 'no room left in the context?'}")

    # -- sampling ---------------------------------------------------------------
    def sampler(self, o: GenerateOptions):
        llama = self.llama
        chain = llama.llama_sampler_chain_init(llama.llama_sampler_chain_default_params())

        def add(s) -> None:
            llama.llama_sampler_chain_add(chain, s)

        if o.json_schema is not None:
            from llama_cpp.llama_grammar import json_schema_to_gbnf

            try:
                gbnf = json_schema_to_gbnf(json.dumps(o.json_schema))
            except Exception as e:
                llama.llama_sampler_free(chain)
                raise EngineError(f"unsupported JSON schema: {e}") from None
            g = llama.llama_sampler_init_grammar(self.vocab, gbnf.encode(), b"root")
            if not g:
                llama.llama_sampler_free(chain)
                raise EngineError("the JSON schema gave a grammar llama.cpp rejects")
            add(g)
        n_vocab = llama.llama_vocab_n_tokens(self.vocab)
        if o.ignore_eos:
            eog = self.eog_tokens()
            bias = (llama.llama_logit_bias * len(eog))(
                *[llama.llama_logit_bias(t, float("-inf")) for t in eog])
            add(llama.llama_sampler_init_logit_bias(n_vocab, len(eog), bias))
        if o.repeat_penalty != 1.0:
            # this llama.cpp takes the vocabulary size first (vendor/llama.cpp/include/llama.h)
            add(llama.llama_sampler_init_penalties(n_vocab, 64, o.repeat_penalty, 0.0, 0.0))
        if o.temperature <= 0:
            add(llama.llama_sampler_init_greedy())
        else:
            add(llama.llama_sampler_init_top_k(o.top_k))
            add(llama.llama_sampler_init_top_p(o.top_p, 1))
            add(llama.llama_sampler_init_min_p(o.min_p, 1))
            add(llama.llama_sampler_init_temp(o.temperature))
            add(llama.llama_sampler_init_dist(o.seed & 0xFFFFFFFF))
        return chain

    def free_sampler(self, chain) -> None:
        self.llama.llama_sampler_free(chain)

    def eog_tokens(self) -> list[int]:
        if self._eog is None:
            n = self.llama.llama_vocab_n_tokens(self.vocab)
            self._eog = [t for t in range(n) if self.llama.llama_vocab_is_eog(self.vocab, t)]
        return self._eog

    def piece_bytes(self, token: int, special: bool = False) -> bytes:
        buf = ctypes.create_string_buffer(256)
        n = self.llama.llama_token_to_piece(self.vocab, token, buf, 256, 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self.llama.llama_token_to_piece(self.vocab, token, buf, -n, 0, special)
        return buf.raw[:max(n, 0)]


class Seq:
    """One sequence being generated: where it stands in the cache and what it has said."""

    def __init__(self, sid: int, pos: int, reply: Reply, o: GenerateOptions):
        self.sid = sid
        self.pos = pos            # the next position (the prompt is in the cache up to here)
        self.reply = reply
        self.out = TextOut(o.stop)
        self.idx = -1             # row of this sequence's logits in the last decode
        self.sampler: Any = None
        self.decoded: list[int] = []  # generated tokens now in the cache
        self.done = False


def _take(dec: Decoder, s: Seq, tok: int, o: GenerateOptions, t_start: float) -> str:
    """Add one sampled token to ``s``'s reply (``s.pos``: where it would be decoded); return the
    text now safe to show. Sets ``s.done`` when the token ends the reply."""
    if dec.llama.llama_vocab_is_eog(dec.vocab, tok):
        s.reply.finish_reason = "stop"
        s.done = True
        return ""
    s.reply.generated_tokens += 1
    if s.reply.generated_tokens == 1:
        s.reply.time_to_first_token = s.reply.prompt_seconds + time.perf_counter() - t_start
    # thinking: keep the template's channel markers so the thought can be told apart
    piece = s.out.add(dec.piece_bytes(tok, special=o.think))
    if s.out.stopped:
        s.reply.finish_reason = "stop"
        s.done = True
    elif s.reply.generated_tokens >= o.max_tokens or s.pos + 1 >= dec.n_ctx:
        s.done = True
    return piece


def generate(dec: Decoder, seqs: list[Seq], o: GenerateOptions, cancel: Cancellable,
             t_start: float, stream: bool = False, drafter: Drafter | None = None) -> Iterator[str]:
    """Generate for all ``seqs`` in lockstep (their prompts evaluated, logits at ``idx``); with
    ``stream``, yield the text pieces of ``seqs[0]`` as they are safe to show.

    With a ``drafter`` (one sequence, its prompt's last decode made with ``hidden``), each target
    decode verifies the drafter's proposals: see ``_speculate``."""
    llama = dec.llama
    for s in seqs:
        s.reply.finish_reason = "length"
    live = list(seqs)
    try:
        if drafter is not None and len(seqs) == 1:
            yield from _speculate(dec, seqs[0], o, cancel, t_start, stream, drafter)
            live = [s for s in live if not s.done]
        while live:
            if cancel.is_set():
                for s in live:
                    s.reply.finish_reason = "cancelled"
                break
            step: list[Seq] = []
            toks: list[int] = []
            for s in live:
                tok = llama.llama_sampler_sample(s.sampler, dec.ctx.ctx, s.idx)
                piece = _take(dec, s, tok, o, t_start)
                if piece and stream and s is seqs[0]:
                    yield piece
                if not s.done:
                    step.append(s)
                    toks.append(tok)
            for s in live:
                if s.done:
                    yield from _finish(s, t_start, stream and s is seqs[0])
            live = [s for s in live if not s.done]
            if step:
                dec.decode([(t, s.pos, s.sid) for t, s in zip(toks, step, strict=True)], logits="all")
                for k, (t, s) in enumerate(zip(toks, step, strict=True)):
                    s.reply.target_steps += 1
                    s.idx = k
                    s.pos += 1
                    s.decoded.append(t)
    finally:
        dec.set_hidden(False)
        for s in seqs:
            s.reply.text = s.out.text
    for s in live:  # cancelled
        yield from _finish(s, t_start, stream and s is seqs[0])
        s.reply.text = s.out.text


def _speculate(dec: Decoder, s: Seq, o: GenerateOptions, cancel: Cancellable, t_start: float,
               stream: bool, drafter: Drafter) -> Iterator[str]:
    """Speculative decoding of one sequence. A *pending* token is sampled but not yet in the cache;
    the drafter proposes up to n tokens after it, and one target decode evaluates the pending token
    and the proposals together (logits for every row). Row i is then sampled with the sequence's own
    sampler exactly as plain decoding would sample that position; while the sample equals the
    proposal at i the next row is valid too. The first sample that differs (or the one after the
    last proposal) becomes the next pending token and the cache past it is removed. Every token
    comes from the target's logits through the same sampler calls in the same order, so the output
    is the plain path's (up to llama.cpp's rounding: a multi-row decode sums in another order than a
    one-row decode, which can tip a near-tie); a drafter that guesses well only means fewer target
    decodes (``Reply.target_steps``). Leaves ``s`` done, or cancelled (then the plain loop notes it)."""
    llama = dec.llama
    tok = int(llama.llama_sampler_sample(s.sampler, dec.ctx.ctx, s.idx))
    h = drafter.hidden(dec.n_last - 1)  # the prompt's last row, whose logits gave ``tok``
    piece = _take(dec, s, tok, o, t_start)
    if piece and stream:
        yield piece
    length = DraftLength(drafter.n_draft)
    while not s.done:
        if cancel.is_set():
            return
        # proposals that could all be taken: the reply's and the context's room after ``tok``
        room = min(o.max_tokens - s.reply.generated_tokens - 1, dec.n_ctx - 2 - s.pos, length.next())
        drafts = drafter.draft(tok, s.pos, s.sid, h, room) if room > 0 else []
        toks = [tok, *drafts]
        pos0 = s.pos
        dec.decode([(t, pos0 + k, s.sid) for k, t in enumerate(toks)], logits="all", hidden=True)
        s.reply.target_steps += 1
        s.reply.draft_tokens += len(drafts)
        for i, t_in in enumerate(toks):
            s.decoded.append(t_in)   # in the cache, and what the target would have decoded
            s.pos = pos0 + i + 1
            tok = int(llama.llama_sampler_sample(s.sampler, dec.ctx.ctx, i))
            piece = _take(dec, s, tok, o, t_start)
            if piece and stream:
                yield piece
            if s.done:
                break
            if i < len(drafts) and tok == drafts[i]:
                s.reply.accepted_tokens += 1
                continue
            h = drafter.hidden(i)
            break
        length.taken(len(drafts), s.pos - pos0 - 1)
        if s.pos < pos0 + len(toks):
            dec.seq_rm(s.sid, s.pos, -1)  # the proposals the target did not confirm
    yield from _finish(s, t_start, stream)


class DraftLength:
    """How many proposals to ask the drafter for next. It grows by one while all are taken (up to
    the drafter's ``n_draft``) and falls to one more than were taken when some are refused; at zero
    the drafter rests, and is tried again with one proposal every ``REST`` steps. On a CPU a refused
    proposal costs a row of the target's decode and a drafter step, so a drafter that guesses badly
    on some text (or a random one) costs a few steps, then next to nothing; which tokens come out
    never depends on it."""

    REST = 16

    def __init__(self, n_max: int):
        self.n_max = max(0, n_max)
        self.n = self.n_max
        self._rested = 0

    def next(self) -> int:
        if self.n > 0:
            return self.n
        self._rested += 1
        if self._rested >= self.REST:
            self._rested = 0
            return 1
        return 0

    def taken(self, drafted: int, accepted: int) -> None:
        if drafted <= 0:
            return
        if accepted >= drafted:
            self.n = min(self.n_max, drafted + 1)
        else:
            self.n = min(self.n_max, accepted + 1) if accepted > 0 else max(0, min(self.n, drafted) - 1)


def _finish(s: Seq, t_start: float, stream: bool) -> Iterator[str]:
    s.done = True
    piece = s.out.finish()
    s.reply.generate_seconds = time.perf_counter() - t_start
    if piece and stream:
        yield piece
