"""Answer several conversations at once, as parallel sequences in one llama.cpp context.

Token generation on a large model is bound by reading the weights, so one
decode step for N sequences costs little more than for one: N short answers
(transcripts of N utterances) come out up to N times faster than one by one.

The prompts' common prefix (the fixed instruction) is evaluated once into the
first batch sequence and shared with the others (``llama_memory_seq_cp``, a
unified KV cache); each sequence then evaluates its own media and text; the
last prompt token of every sequence goes into one decode so all sequences have
logits at the same time, and generation proceeds in lockstep (``decoder.generate``).
A batch uses sequences 1..n and removes them when it ends: sequence 0, the
chat's cached prefix, stays unless the batch needs its room.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

from .cancel import Cancellable
from .decoder import Cancelled, Decoder, Seq, generate, n_pos
from .errors import ContextOverflow, EngineError
from .generation import GenerateOptions, Reply
from .messages import Message
from .prompt import Media, Prompt, Unit

FIRST_SEQ = 1  # sequence 0 is the chat's


class Batchable(Protocol):
    """What a batch needs from the engine that owns the context (``Engine``)."""

    lock: threading.Lock
    n_parallel: int
    n_ctx: int

    @property
    def decoder(self) -> Decoder: ...

    def tokenize(self, msgs: list[Message], image_tokens: int | None,
                 think: bool) -> tuple[Prompt, list[int]]: ...

    def make_room(self, cells: int) -> bool: ...


def chat_batch(engine: Batchable, convs: list[list[Message]], o: GenerateOptions,
               cancel: Cancellable) -> list[Reply]:
    """One Reply per conversation, in order; at most ``engine.n_parallel`` run together."""
    replies: list[Reply] = []
    step = max(1, engine.n_parallel)
    for i in range(0, len(convs), step):
        if not cancel.is_set():
            replies.extend(_fitting(engine, convs[i:i + step], o, cancel))
        if cancel.is_set() or (replies and replies[-1].finish_reason == "cancelled"):
            replies.extend(Reply(finish_reason="cancelled") for _ in convs[len(replies):])
            break
    return replies


class _TooBig(Exception):
    def __init__(self, cells: int):
        self.cells = cells


def _fitting(engine: Batchable, convs: list[list[Message]], o: GenerateOptions,
             cancel: Cancellable) -> list[Reply]:
    """Run a group; halve it while it does not fit the context together."""
    try:
        return _group(engine, convs, o, cancel)
    except _TooBig as e:
        if len(convs) == 1:
            raise ContextOverflow(f"the prompt needs {e.cells} tokens but the context holds "
                                  f"{engine.n_ctx}; shorten it or raise the context size") from None
        half = len(convs) // 2
        return _fitting(engine, convs[:half], o, cancel) + _fitting(engine, convs[half:], o, cancel)


def _group(engine: Batchable, convs: list[list[Message]], o: GenerateOptions,
           cancel: Cancellable) -> list[Reply]:
    with engine.lock:
        t0 = time.perf_counter()
        prompts: list[Prompt] = []
        counts: list[list[int]] = []
        try:
            for c in convs:
                p, n = engine.tokenize(c, o.image_tokens, o.think)
                prompts.append(p)
                counts.append(n)
            need_cells = _cells(prompts, o.max_tokens)
            if not engine.make_room(need_cells):
                raise _TooBig(need_cells)
            return _run(engine.decoder, prompts, counts, o, t0, cancel)
        finally:
            for p in prompts:
                p.close()


def _cells(prompts: list[Prompt], max_tokens: int) -> int:
    common = _common(prompts)
    shared = n_pos(prompts[0].units[:common])
    return shared + sum(n_pos(p.units[common:]) + max_tokens for p in prompts)


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


def _run(dec: Decoder, prompts: list[Prompt], counts: list[list[int]], o: GenerateOptions,
         t0: float, cancel: Cancellable) -> list[Reply]:
    seqs = [Seq(FIRST_SEQ + i, 0, Reply(prompt_tokens=p.n_pos, media_tokens=c, finish_reason="length"), o)
            for i, (p, c) in enumerate(zip(prompts, counts, strict=True))]
    units = [p.units for p in prompts]
    try:
        for s in seqs:
            s.sampler = dec.sampler(o)
        common = _common(prompts)
        shared = units[0][:common]
        if shared:
            dec.eval_units(shared, seqs[0].sid, 0, cancel)
            for s in seqs[1:]:
                dec.seq_cp(seqs[0].sid, s.sid)
        for i, s in enumerate(seqs):
            s.pos = n_pos(shared)
            s.reply.reused_tokens = s.pos if i else 0
            s.reply.evaluated_tokens = s.reply.prompt_tokens - s.reply.reused_tokens
        # everything but the last token now, run by run across the sequences (all the
        # sequences' audio in one decode, then all their text); the last tokens below
        _eval_together(dec, [(s, _runs(u[common:-1])) for s, u in zip(seqs, units, strict=True)], cancel)
        last = [(u[-1], s) for s, u in zip(seqs, units, strict=True)]
        if any(isinstance(tok, Media) for tok, _ in last):
            raise EngineError("a prompt must end with text (the chat template's turn marker)")
        dec.decode([(tok, s.pos, s.sid) for tok, s in last], cancel, logits="all")  # type: ignore[misc]
        for k, s in enumerate(seqs):
            s.idx, s.pos = k, s.pos + 1
        t_prompt = time.perf_counter() - t0
        for s in seqs:
            s.reply.prompt_seconds = t_prompt
        for _ in generate(dec, seqs, o, cancel, t0 + t_prompt):
            pass
    except Cancelled:
        for s in seqs:
            s.reply.finish_reason = "cancelled"
    finally:
        for s in seqs:
            if s.sampler is not None:
                dec.free_sampler(s.sampler)
            dec.seq_rm(s.sid)
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


def _eval_together(dec: Decoder, work: list[tuple[Seq, list[list[Unit]]]], cancel: Cancellable) -> None:
    """Evaluate each sequence's runs in order; the k-th runs of all sequences go together
    when they are of one kind (a decode of 4 x 100 audio embeddings reads the weights
    once instead of four times)."""
    depth = max((len(r) for _, r in work), default=0)
    for k in range(depth):
        step = [(s, runs[k]) for s, runs in work if k < len(runs)]
        media = [(s, r[0]) for s, r in step if isinstance(r[0], Media)]
        text = [(s, r) for s, r in step if not isinstance(r[0], Media)]
        if media:
            _eval_media(dec, media, cancel)
        if text:
            items = []
            for s, run in text:
                items += [(t, s.pos + j, s.sid) for j, t in enumerate(run)]
                s.pos += len(run)
            dec.decode(items, cancel)  # type: ignore[arg-type]


def _eval_media(dec: Decoder, items: list[tuple[Seq, Media]], cancel: Cancellable) -> None:
    import numpy as np

    simple = [(s, m) for s, m in items if dec.media_is_simple(m)]
    for s, m in items:  # images (non-causal) and M-RoPE media: the helper, one at a time
        if (s, m) not in simple:
            s.pos = dec.eval_media(m, s.sid, s.pos, cancel)
    if not simple:
        return
    parts, places = [], []
    for s, m in simple:
        if cancel.is_set():
            raise Cancelled()
        parts.append(dec.encode_media(m))
        places += [(s.pos + k, s.sid) for k in range(m.n_tokens)]
        s.pos += m.n_tokens
    dec.decode_embeddings(np.concatenate(parts).astype(np.float32, copy=False), places, cancel)
