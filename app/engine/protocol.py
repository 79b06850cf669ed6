"""What pipelines need from an engine, as a type a checker can hold them to.

``Engine`` (in this process), ``EngineHost`` (the model in a supervised child process) and
``WithCancel`` (either, with every request carrying one job's cancel token) all satisfy it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol, cast, runtime_checkable

from .cancel import Cancellable
from .errors import EngineError
from .generation import GenerateOptions, Reply, Stream
from .messages import Message


@runtime_checkable
class ChatEngine(Protocol):
    n_ctx: int
    last: Reply | None

    @property
    def supports_audio(self) -> bool: ...

    @property
    def supports_vision(self) -> bool: ...

    @property
    def supports_thinking(self) -> bool: ...

    def stream(self, messages: Iterable[Message | dict], options: GenerateOptions | None = None, *,
               cancel: Cancellable | None = None, **kw: Any) -> Stream: ...

    def chat(self, messages: Iterable[Message | dict], options: GenerateOptions | None = None, *,
             cancel: Cancellable | None = None, **kw: Any) -> Reply: ...

    def chat_batch(self, conversations: Iterable[Iterable[Message | dict]],
                   options: GenerateOptions | None = None, *, cancel: Cancellable | None = None,
                   **kw: Any) -> list[Reply]: ...

    def count_tokens(self, messages: Iterable[Message | dict], image_tokens: int | None = None) -> int: ...

    def reset(self) -> None: ...


EngineSource = ChatEngine | Callable[[], ChatEngine]
"""An engine, or a factory called only once there is model work (a bad file fails before a load)."""


def loaded(source: EngineSource | None) -> ChatEngine:
    """The engine of an ``EngineSource`` (calls the factory)."""
    if source is None:
        raise EngineError("no model is set up: choose one in Tools > Model, or pass --model")
    if callable(source) and not any(hasattr(source, n) for n in ("chat", "stream", "chat_batch")):
        return source()  # a factory (an engine object is not callable)
    return cast(ChatEngine, source)


class WithCancel:
    """``engine`` with every request carrying ``token`` (a job's): cancelling the job stops its
    request in flight and nobody else's. Everything else is the engine's."""

    def __init__(self, engine: Any, token: Cancellable):
        self._engine, self._token = engine, token

    @property
    def engine(self) -> Any:
        return self._engine

    def stream(self, messages, options: GenerateOptions | None = None, *,
               cancel: Cancellable | None = None, **kw) -> Stream:
        return self._engine.stream(messages, options, cancel=cancel if cancel is not None else self._token, **kw)

    def chat(self, messages, options: GenerateOptions | None = None, *,
             cancel: Cancellable | None = None, **kw) -> Reply:
        return self._engine.chat(messages, options, cancel=cancel if cancel is not None else self._token, **kw)

    def chat_batch(self, conversations, options: GenerateOptions | None = None, *,
                   cancel: Cancellable | None = None, **kw) -> list[Reply]:
        return self._engine.chat_batch(conversations, options,
                                       cancel=cancel if cancel is not None else self._token, **kw)

    def cancel(self) -> None:
        """Cancel this job's requests (the token), not the engine's other callers."""
        if hasattr(self._token, "set"):
            self._token.set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)
