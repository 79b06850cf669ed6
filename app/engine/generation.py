"""What a request asks for and what it gets back: options, the reply, the stream of pieces."""

from __future__ import annotations

import json
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from .errors import EngineError


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
    draft: bool = True        # let the MTP drafter propose tokens (when the engine has one; not batches)


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
    target_steps: int = 0         # decodes of the model while generating (each reads its weights once)
    draft_tokens: int = 0         # tokens the MTP drafter proposed
    accepted_tokens: int = 0      # of those, confirmed by the model

    @property
    def steps_per_token(self) -> float:
        """Model decodes per generated token: about 1 without a drafter (the last token needs
        none), below 1 when the drafter's proposals are accepted."""
        return self.target_steps / self.generated_tokens if self.generated_tokens else 0.0

    @property
    def acceptance(self) -> float:
        """Share of the drafter's proposals the model confirmed (0 without a drafter)."""
        return self.accepted_tokens / self.draft_tokens if self.draft_tokens else 0.0

    def decoding_line(self) -> str:
        """How the answer was decoded, for people: model decodes per token, the drafter's share."""
        line = f"{self.target_steps} model decodes for {self.generated_tokens} tokens " \
               f"({self.steps_per_token:.2f} per token)"
        if self.draft_tokens:
            line += (f"; MTP drafter proposed {self.draft_tokens}, model accepted "
                     f"{self.accepted_tokens} ({100 * self.acceptance:.0f}%)")
        return line

    def json(self) -> Any:
        return json.loads(self.text)

    @property
    def cancelled(self) -> bool:
        return self.finish_reason == "cancelled"

    @property
    def tokens_per_second(self) -> float:
        return self.generated_tokens / self.generate_seconds if self.generate_seconds > 0 else 0.0


class Stream:
    """Iterate for text pieces; ``reply`` holds the result once iteration ends.

    ``live`` is the Reply being filled in (token counts while it streams).
    """

    def __init__(self, gen: Generator[str, None, Reply], live: Reply | None = None):
        self._gen = gen
        self.live = live if live is not None else Reply()
        self.reply: Reply | None = None

    def __iter__(self) -> Generator[str, None, Reply]:
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


def resolve_options(opts: GenerateOptions | None, kw: dict) -> GenerateOptions:
    """``opts`` with keyword overrides, checked."""
    o = GenerateOptions(**{**(opts.__dict__ if opts else {}), **kw})
    if isinstance(o.stop, str):
        o.stop = (o.stop,)
    o.stop = tuple(s for s in o.stop if s)
    if o.max_tokens < 1:
        raise EngineError("max_tokens must be at least 1")
    return o
