"""Answer several conversations at once, as parallel sequences in one llama.cpp context.

Token generation on a large model is bound by reading the weights, so one
decode step for N sequences costs little more than for one: N short answers
(transcripts of N utterances) come out up to N times faster than one by one.

The prompts' common prefix (the fixed instruction) is evaluated once into
sequence 0 and shared with the others (``llama_memory_seq_cp``, a unified KV
cache); each sequence then evaluates its own media and text; the last prompt
token of every sequence goes into one decode so all sequences have logits at
the same time, and generation proceeds in lockstep, one token per live
sequence per decode. The chat cache of the engine is cleared afterwards.
"""

from __future__ import annotations

import ctypes
import time
from typing import Iterable

from .engine import Engine, GenerateOptions, Reply, _Cancelled, _options
from .errors import ContextOverflow, EngineError
from .messages import Message, as_messages
from .prompt import Media, Prompt, Unit
from .textout import TextOut


def _n_pos(units: list[Unit]) -> int:
    return sum(1 if isinstance(u, int) else u.n_pos for u in units)


def chat_batch(engine: Engine, conversations: Iterable[Iterable[Message | dict]],
               options: GenerateOptions | None = None, **kw) -> list[Reply]:
    """One Reply per conversation, in order; at most ``engine.n_parallel`` run together."""
    convs = [as_messages(c) for c in conversations]
    o = _options(options, kw)
    if not engine._external_cancel:
        engine._cancel.clear()
    replies: list[Reply] = []
    step = max(1, engine.n_parallel)
    for i in range(0, len(convs), step):
        replies.extend(_fitting(engine, convs[i:i + step], o))
        if replies and replies[-1].finish_reason == "cancelled":
            replies.extend(Reply(finish_reason="cancelled") for _ in convs[len(replies):])
            break
    return replies


class _TooBig(Exception):
    def __init__(self, cells: int):
        self.cells = cells


def _fitting(engine: Engine, convs: list[list[Message]], o: GenerateOptions) -> list[Reply]:
    """Run a group; halve it while it does not fit the context together."""
    try:
        return _group(engine, convs, o)
    except _TooBig as e:
        if len(convs) == 1:
            raise ContextOverflow(f"the prompt needs {e.cells} tokens but the context holds "
                                  f"{engine.n_ctx}; shorten it or raise the context size") from None
        half = len(convs) // 2
        return _fitting(engine, convs[:half], o) + _fitting(engine, convs[half:], o)


def _group(engine: Engine, convs: list[list[Message]], o: GenerateOptions) -> list[Reply]:
    with engine._lock:
        t0 = time.perf_counter()
        prompts: list[Prompt] = []
        counts: list[list[int]] = []
        try:
            for c in convs:
                p, n = engine._tokenize(c, o.image_tokens, o.think)
                prompts.append(p)
                counts.append(n)
            need_cells = _cells(prompts, o.max_tokens)
            if need_cells > engine.n_ctx:
                raise _TooBig(need_cells)
            return _run(engine, prompts, counts, o, t0)
        finally:
            for p in prompts:
                p.close()


def _cells(prompts: list[Prompt], max_tokens: int) -> int:
    common = _common(prompts)
    shared = _n_pos(prompts[0].units[:common])
    return shared + sum(_n_pos(p.units[common:]) + max_tokens for p in prompts)


def _common(prompts: list[Prompt]) -> int:
    """Units all prompts share at the start, leaving each at least one of its own."""
    first = prompts[0].units
    n = min(len(p.units) for p in prompts) - 1
    for p in prompts[1:]:
        k = 0
        while k < n and p.units[k] == first[k]:
            k += 1
        n = k
    return max(0, n)


class _Seq:
    def __init__(self, sid: int, prompt: Prompt, media_tokens: list[int], o: GenerateOptions):
        self.sid = sid
        self.prompt = prompt
        self.reply = Reply(prompt_tokens=prompt.n_pos, media_tokens=media_tokens, finish_reason="length")
        self.out = TextOut(o.stop)
        self.pos = 0
        self.idx = -1          # row of this sequence's logits in the last decode
        self.sampler = None
        self.next_token: int | None = None
        self.done = False


def _run(engine: Engine, prompts: list[Prompt], counts: list[list[int]], o: GenerateOptions,
         t0: float) -> list[Reply]:
    llama = engine._llama
    seqs = [_Seq(i, p, c, o) for i, (p, c) in enumerate(zip(prompts, counts))]
    engine._clear_cache()
    mem = llama.llama_get_memory(engine._ctx.ctx)
    try:
        for s in seqs:
            s.sampler = engine._sampler(o)
        common = _common(prompts)
        shared = prompts[0].units[:common]
        if shared:
            _eval(engine, shared, 0, 0)
            for s in seqs[1:]:
                llama.llama_memory_seq_cp(mem, 0, s.sid, -1, -1)
        for s in seqs:
            s.pos = _n_pos(shared)
            s.reply.reused_tokens = s.pos if s.sid else 0
            s.reply.evaluated_tokens = s.prompt.n_pos - s.reply.reused_tokens
        # everything but the last token now, run by run across the sequences (all the
        # sequences' audio in one decode, then all their text); the last tokens below
        _eval_together(engine, [(s, _runs(s.prompt.units[common:-1])) for s in seqs])
        _decode(engine, [(s.prompt.units[-1], s) for s in seqs])
        t_prompt = time.perf_counter() - t0
        for s in seqs:
            s.reply.prompt_seconds = t_prompt
        _generate(engine, seqs, o, t0 + t_prompt)
    except _Cancelled:
        for s in seqs:
            s.reply.finish_reason = "cancelled"
    finally:
        for s in seqs:
            if s.sampler is not None:
                llama.llama_sampler_free(s.sampler)
        engine._clear_cache()
    for s in seqs:
        s.reply.text = s.out.text
    return [s.reply for s in seqs]


def _runs(units: list[Unit]) -> list[list[Unit]]:
    """Split units into runs: each media chunk alone, consecutive text tokens together."""
    runs: list[list[Unit]] = []
    for u in units:
        if isinstance(u, Media) or not runs or isinstance(runs[-1][0], Media):
            runs.append([u])
        else:
            runs[-1].append(u)
    return runs


def _eval_together(engine: Engine, work: list[tuple["_Seq", list[list[Unit]]]]) -> None:
    """Evaluate each sequence's runs in order; the k-th runs of all sequences go together
    when they are of one kind (a decode of 4 x 100 audio embeddings reads the weights
    once instead of four times)."""
    depth = max((len(r) for _, r in work), default=0)
    for k in range(depth):
        step = [(s, runs[k]) for s, runs in work if k < len(runs)]
        media = [(s, r[0]) for s, r in step if isinstance(r[0], Media)]
        text = [(s, r) for s, r in step if not isinstance(r[0], Media)]
        if media:
            _eval_media(engine, media)
        if text:
            _eval_text(engine, text)


def _eval_media(engine: Engine, items: list[tuple["_Seq", Media]]) -> None:
    import numpy as np

    llama, mtmd = engine._llama, engine._mtmd
    simple = [(s, m) for s, m in items
              if not mtmd.mtmd_decode_use_non_causal(engine._mctx, m.chunk)
              and not mtmd.mtmd_decode_use_mrope(engine._mctx) and m.n_pos == m.n_tokens]
    for s, m in items:  # images (non-causal) and M-RoPE media: the helper, one at a time
        if (s, m) not in simple:
            s.pos = _eval(engine, [m], s.sid, s.pos)
    if not simple:
        return
    n_embd = llama.llama_model_n_embd_inp(engine._model.model)
    parts, owners = [], []
    for s, m in simple:
        if engine._cancel.is_set():
            raise _Cancelled()
        if mtmd.mtmd_encode_chunk(engine._mctx, m.chunk) != 0:
            raise EngineError(f"the model could not take the {m.kind} part")
        out = mtmd.mtmd_get_output_embd(engine._mctx)
        parts.append(np.ctypeslib.as_array(out, shape=(m.n_tokens * n_embd,)).copy())
        owners.append((s, m.n_tokens))
    embd = np.concatenate(parts).astype(np.float32, copy=False)
    pos, seq = [], []
    for s, n in owners:
        pos.extend(range(s.pos, s.pos + n))
        seq.extend([s.sid] * n)
        s.pos += n
    total = len(pos)
    batch = llama.llama_batch_init(min(total, engine.n_batch), n_embd, 1)
    try:
        for off in range(0, total, engine.n_batch):
            if engine._cancel.is_set():
                raise _Cancelled()
            n = min(engine.n_batch, total - off)
            batch.n_tokens = n
            ctypes.memmove(batch.embd, embd[off * n_embd:(off + n) * n_embd].ctypes.data, n * n_embd * 4)
            for k in range(n):
                batch.pos[k], batch.n_seq_id[k], batch.logits[k] = pos[off + k], 1, False
                batch.seq_id[k][0] = seq[off + k]
            if llama.llama_decode(engine._ctx.ctx, batch) != 0:
                raise EngineError("llama_decode failed on the audio (no room left in the context?)")
    finally:
        llama.llama_batch_free(batch)


def _eval_text(engine: Engine, items: list[tuple["_Seq", list[Unit]]]) -> None:
    llama = engine._llama
    b = engine._batch.batch
    toks = [(s, t) for s, run in items for t in run]
    for off in range(0, len(toks), engine.n_batch):
        if engine._cancel.is_set():
            raise _Cancelled()
        chunk = toks[off:off + engine.n_batch]
        b.n_tokens = len(chunk)
        for k, (s, t) in enumerate(chunk):
            b.token[k], b.pos[k], b.n_seq_id[k], b.logits[k] = t, s.pos, 1, False
            b.seq_id[k][0] = s.sid
            s.pos += 1
        if llama.llama_decode(engine._ctx.ctx, b) != 0:
            raise EngineError("llama_decode failed (no room left in the context?)")


def _eval(engine: Engine, units: list[Unit], sid: int, pos: int) -> int:
    """Evaluate ``units`` into sequence ``sid`` from position ``pos``; return the next position."""
    llama, mtmd = engine._llama, engine._mtmd
    b = engine._batch.batch
    i = 0
    while i < len(units):
        if engine._cancel.is_set():
            raise _Cancelled()
        u = units[i]
        if isinstance(u, Media):
            new_pos = llama.llama_pos(0)
            rc = mtmd.mtmd_helper_eval_chunk_single(engine._mctx, engine._ctx.ctx, u.chunk, pos, sid,
                                                    engine.n_batch, False, ctypes.byref(new_pos))
            if rc != 0:
                raise EngineError(f"the model could not take the {u.kind} part (error {rc})")
            pos = new_pos.value
            i += 1
            continue
        j = i
        while j < len(units) and isinstance(units[j], int) and j - i < engine.n_batch:
            j += 1
        b.n_tokens = j - i
        for k, t in enumerate(units[i:j]):
            b.token[k], b.pos[k], b.n_seq_id[k], b.logits[k] = t, pos + k, 1, False
            b.seq_id[k][0] = sid
        if llama.llama_decode(engine._ctx.ctx, b) != 0:
            raise EngineError("llama_decode failed (no room left in the context?)")
        pos += j - i
        i = j
    return pos


def _decode(engine: Engine, items: list[tuple[Unit, _Seq]]) -> None:
    """One decode of one token per sequence, with logits for each."""
    for u, s in items:
        if isinstance(u, Media):  # a prompt ending in media: evaluate it, then no logits row
            raise EngineError("a prompt must end with text (the chat template's turn marker)")
    b = engine._batch.batch
    b.n_tokens = len(items)
    for k, (tok, s) in enumerate(items):
        b.token[k], b.pos[k], b.n_seq_id[k], b.logits[k] = tok, s.pos, 1, True
        b.seq_id[k][0] = s.sid
        s.idx = k
        s.pos += 1
    if engine._llama.llama_decode(engine._ctx.ctx, b) != 0:
        raise EngineError("llama_decode failed (no room left in the context?)")


def _generate(engine: Engine, seqs: list[_Seq], o: GenerateOptions, t_start: float) -> None:
    llama = engine._llama
    live = list(seqs)
    while live:
        if engine._cancel.is_set():
            for s in live:
                s.reply.finish_reason = "cancelled"
            break
        step: list[tuple[int, _Seq]] = []
        for s in live:
            tok = llama.llama_sampler_sample(s.sampler, engine._ctx.ctx, s.idx)
            if llama.llama_vocab_is_eog(engine._vocab, tok):
                s.reply.finish_reason = "stop"
                s.done = True
                continue
            s.reply.generated_tokens += 1
            if s.reply.generated_tokens == 1:
                s.reply.time_to_first_token = time.perf_counter() - t_start + s.reply.prompt_seconds
            s.out.add(engine._piece_bytes(tok))
            if s.out.stopped:
                s.reply.finish_reason = "stop"
                s.done = True
            elif s.reply.generated_tokens >= o.max_tokens or s.pos + 1 >= engine.n_ctx:
                s.done = True
            else:
                step.append((tok, s))
        for s in live:
            if s.done:
                s.out.finish()
                s.reply.generate_seconds = time.perf_counter() - t_start
        live = [s for s in live if not s.done]
        if step:
            _decode(engine, step)
