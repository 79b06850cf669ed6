"""The model on a server the user names: any OpenAI-compatible chat endpoint with Gemma 4.

``RemoteEngine`` satisfies ``ChatEngine`` (app/engine/protocol.py), so transcription, summaries,
questions and dictation run unchanged against llama.cpp's ``llama-server``, vLLM, LiteRT-LM's
``serve`` or another Minutely's ``serve``. Audio travels as ``input_audio`` (16 kHz mono WAV),
images as ``image_url`` (PNG data URLs); recordings and the library stay on this computer.

The HTTP side is the official ``openai`` client (streaming, error types, timeouts), with no
retries of its own: a failed request is a one-line ``EngineError`` and the job that made it is
retryable like any other failed job.

Token counts for budgeting (``count_tokens``) are estimates: the OpenAI API has no tokenizer
endpoint. They err on the high side (a token per digit and per symbol, as Gemma's tokenizer splits
them, 3 characters a token for the rest, 25 tokens per second of audio as Gemma 4 takes it, the
image budget per image), so a prompt sized by them fits.
"""

from __future__ import annotations

import base64
import io
import json
import math
import threading
import time
import wave
from collections.abc import Generator, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from app import defaults

from .cancel import Cancellable
from .errors import EngineError
from .generation import GenerateOptions, Reply, Stream, resolve_options
from .messages import SAMPLE_RATE, Audio, Image, Message, Text, as_messages

AUDIO_TOKENS_PER_SECOND = 25
CHARS_PER_TOKEN = 3.0
MESSAGE_OVERHEAD = 6  # role and turn markers
MAX_CONCURRENT = 4    # requests of one batch in flight at once (servers batch them)


def check_url(url: str) -> str:
    """The server's base URL, checked: http(s), a host; ``/v1`` added when missing."""
    url = (url or "").strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EngineError(f"not a server address: '{url}' (give http://HOST:PORT)")
    if not parts.path.endswith("/v1"):
        url += "/v1"
    return url


def wav_base64(samples: np.ndarray) -> str:
    """16 kHz mono float samples as a base64 16-bit PCM WAV file."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm.tobytes())
    return base64.b64encode(buf.getvalue()).decode("ascii")


def png_data_url(image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def text_tokens(text: str) -> int:
    """At least as many tokens as Gemma's tokenizer makes of ``text`` (an estimate)."""
    digits = sum(c.isdigit() for c in text)
    symbols = sum(not c.isalnum() and not c.isspace() for c in text)
    return digits + symbols + math.ceil((len(text) - digits - symbols) / CHARS_PER_TOKEN)


def to_openai(msgs: list[Message]) -> list[dict]:
    """Messages in the OpenAI chat format (text-only content stays a plain string)."""
    out: list[dict[str, Any]] = []
    for m in msgs:
        if all(isinstance(p, Text) for p in m.parts):
            out.append({"role": m.role, "content": m.text})
            continue
        parts: list[dict] = []
        for p in m.parts:
            if isinstance(p, Text):
                parts.append({"type": "text", "text": p.text})
            elif isinstance(p, Audio):
                parts.append({"type": "input_audio",
                              "input_audio": {"data": wav_base64(p.load()), "format": "wav"}})
            elif isinstance(p, Image):
                parts.append({"type": "image_url", "image_url": {"url": png_data_url(p.load())}})
        out.append({"role": m.role, "content": parts})
    return out


class RemoteEngine:
    """Chat with a model on an OpenAI-compatible server. Thread-safe: each call is its own request."""

    def __init__(self, url: str, model: str = "", api_key: str = "", *, n_ctx: int = defaults.N_CTX,
                 audio: bool = True, vision: bool = True, timeout: float = 600.0,
                 image_tokens: int = defaults.IMAGE_TOKENS):
        from openai import OpenAI

        self.url = check_url(url)
        self.n_ctx = n_ctx
        self.last: Reply | None = None
        self._model = model
        self._audio, self._vision = audio, vision
        self._image_tokens = image_tokens
        self._client = OpenAI(base_url=self.url, api_key=api_key or "none", max_retries=0,
                              timeout=timeout)
        self._lock = threading.Lock()
        self._inflight: set[Any] = set()   # streams being read
        self._closed: set[int] = set()     # ids of those cancel() closed

    # -- what the server can do ------------------------------------------------------------
    @property
    def supports_audio(self) -> bool:
        return self._audio

    @property
    def supports_vision(self) -> bool:
        return self._vision

    @property
    def supports_thinking(self) -> bool:
        return False

    @property
    def model(self) -> str:
        """The model to ask for: the one named, else the server's first."""
        if not self._model:
            try:
                models = self._client.models.list().data
            except Exception as e:
                raise self._error(e) from None
            if not models:
                raise EngineError(f"the server at {self.url} offers no model")
            self._model = models[0].id
        return self._model

    def check(self) -> list[str]:
        """The server's models (a request: says at once whether the server answers)."""
        try:
            return [m.id for m in self._client.models.list().data]
        except Exception as e:
            raise self._error(e) from None

    # -- requests --------------------------------------------------------------------------
    def stream(self, messages: Iterable[Message | dict], options: GenerateOptions | None = None, *,
               cancel: Cancellable | None = None, **kw: Any) -> Stream:
        msgs = as_messages(messages)
        o = resolve_options(options, kw)
        live = Reply()
        return Stream(self._run(msgs, o, live, cancel), live)

    def chat(self, messages: Iterable[Message | dict], options: GenerateOptions | None = None, *,
             cancel: Cancellable | None = None, **kw: Any) -> Reply:
        return self.stream(messages, options, cancel=cancel, **kw).consume()

    def chat_batch(self, conversations: Iterable[Iterable[Message | dict]],
                   options: GenerateOptions | None = None, *, cancel: Cancellable | None = None,
                   **kw: Any) -> list[Reply]:
        convs = [as_messages(c) for c in conversations]
        o = resolve_options(options, kw)
        if not convs:
            return []
        with ThreadPoolExecutor(max_workers=min(MAX_CONCURRENT, len(convs))) as pool:
            futures = [pool.submit(self._consume, c, o, cancel) for c in convs]
            return [f.result() for f in futures]

    def cancel(self) -> None:
        """Stop every request in flight (their replies end "cancelled")."""
        with self._lock:
            streams = list(self._inflight)
            self._closed.update(id(s) for s in streams)
        for s in streams:
            try:
                s.close()
            except Exception:
                pass

    def count_tokens(self, messages: Iterable[Message | dict], image_tokens: int | None = None) -> int:
        n = 0
        for m in as_messages(messages):
            n += MESSAGE_OVERHEAD
            for p in m.parts:
                if isinstance(p, Text):
                    n += text_tokens(p.text)
                elif isinstance(p, Audio):
                    seconds = p.seconds if p.seconds is not None else len(p.load()) / SAMPLE_RATE
                    n += math.ceil(seconds * AUDIO_TOKENS_PER_SECOND) + 2
                elif isinstance(p, Image):
                    n += (p.max_tokens or image_tokens or self._image_tokens) + 2
        return n

    def reset(self) -> None:
        """Nothing is cached here (the server keeps its own prefix cache)."""

    def close(self) -> None:
        self.cancel()
        self._client.close()

    def __enter__(self) -> RemoteEngine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------
    def _consume(self, msgs: list[Message], o: GenerateOptions, cancel: Cancellable | None) -> Reply:
        return Stream(self._run(msgs, o, Reply(), cancel)).consume()

    def _request(self, msgs: list[Message], o: GenerateOptions) -> dict:
        for m in msgs:
            for p in m.parts:
                if isinstance(p, Audio) and not self._audio:
                    raise EngineError(f"the server at {self.url} is set up without audio: "
                                      "transcription and dictation need a server that takes audio")
                if isinstance(p, Image) and not self._vision:
                    raise EngineError(f"the server at {self.url} is set up without images")
        req: dict[str, Any] = {
            "model": self.model, "messages": to_openai(msgs), "max_tokens": o.max_tokens,
            "temperature": o.temperature, "top_p": o.top_p, "seed": o.seed, "stream": True,
            "stream_options": {"include_usage": True},
        }
        if o.stop:
            req["stop"] = list(o.stop)[:4]
        if o.ignore_eos:  # llama-server, vLLM and Minutely's serve take it (benchmarks, tests)
            req["extra_body"] = {"ignore_eos": True}
        if o.json_schema is not None:
            req["response_format"] = {"type": "json_schema",
                                      "json_schema": {"name": "answer", "schema": o.json_schema,
                                                      "strict": True}}
        return req

    def _run(self, msgs: list[Message], o: GenerateOptions, reply: Reply,
             cancel: Cancellable | None) -> Generator[str, None, Reply]:
        if cancel is not None and cancel.is_set():
            reply.finish_reason = "cancelled"
            self.last = reply
            return reply
        req = self._request(msgs, o)
        t0 = time.monotonic()
        try:
            stream = self._client.chat.completions.create(**req)
        except Exception as e:
            raise self._error(e) from None
        with self._lock:
            self._inflight.add(stream)
        first = None
        try:
            for chunk in stream:
                if cancel is not None and cancel.is_set():
                    reply.finish_reason = "cancelled"
                    break
                if chunk.usage is not None:
                    reply.prompt_tokens = chunk.usage.prompt_tokens or 0
                    reply.evaluated_tokens = reply.prompt_tokens
                    reply.generated_tokens = chunk.usage.completion_tokens or reply.generated_tokens
                for choice in chunk.choices:
                    piece = (choice.delta.content or "") if choice.delta is not None else ""
                    if choice.finish_reason:
                        reply.finish_reason = "length" if choice.finish_reason == "length" else "stop"
                    if piece:
                        if first is None:
                            first = time.monotonic()
                            reply.time_to_first_token = first - t0
                            reply.prompt_seconds = first - t0
                        reply.text += piece
                        reply.generated_tokens += 1  # replaced by the server's count when it comes
                        yield piece
        except Exception as e:
            if reply.finish_reason == "cancelled" or (cancel is not None and cancel.is_set()):
                reply.finish_reason = "cancelled"
            elif id(stream) in self._closed:
                reply.finish_reason = "cancelled"
            else:
                raise self._error(e, midway=bool(reply.text)) from None
        finally:
            with self._lock:
                self._inflight.discard(stream)
                was_closed = id(stream) in self._closed
                self._closed.discard(id(stream))
            if was_closed:
                reply.finish_reason = "cancelled"
            try:
                stream.close()
            except Exception:
                pass
        if not reply.finish_reason:
            # the stream ended without saying why: a server that went away mid-answer
            raise EngineError(f"the model server at {self.url} stopped answering mid-reply")
        reply.generate_seconds = time.monotonic() - (first or t0)
        self.last = reply
        return reply

    def _error(self, e: BaseException, midway: bool = False) -> EngineError:
        """One line for the user, saying which server and what went wrong."""
        import openai

        where = f"the model server at {self.url}"
        if isinstance(e, EngineError):
            return e
        if isinstance(e, openai.APITimeoutError):
            return EngineError(f"{where} did not answer in time")
        if isinstance(e, openai.APIConnectionError):
            if midway:
                return EngineError(f"{where} went away mid-reply; try again when it is back")
            return EngineError(f"cannot reach {where}: is it running? ({_cause(e)})")
        if isinstance(e, openai.AuthenticationError):
            return EngineError(f"{where} refused the access token (HTTP 401): check it in settings")
        if isinstance(e, openai.NotFoundError):
            return EngineError(f"{where} has no such model or endpoint (HTTP 404): {_message(e)}")
        if isinstance(e, openai.APIStatusError):
            msg = _message(e)
            if any(w in msg.lower() for w in ("audio", "input_audio")):
                return EngineError(f"{where} does not take audio: {msg}")
            return EngineError(f"{where} refused the request (HTTP {e.status_code}): {msg}")
        return EngineError(f"{where}: {type(e).__name__}: {e}".splitlines()[0])


def _message(e: Any) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        msg = err.get("message") if isinstance(err, dict) else err
        if msg:
            return str(msg).splitlines()[0][:300]
    try:
        return str(json.loads(e.response.text)["error"]["message"])[:300]
    except Exception:
        return str(e).splitlines()[0][:300]


def _cause(e: BaseException) -> str:
    c = e.__cause__ or e.__context__
    return (str(c) or type(c).__name__).splitlines()[0][:200] if c else str(e)[:200]


def server_engine(settings, url: str | None = None) -> RemoteEngine | None:
    """The engine on the server ``url`` (else the settings' ``model_server``); None: this computer."""
    url = url if url is not None else getattr(settings, "model_server", "")
    if not url:
        return None
    return RemoteEngine(url, settings.model_server_model, settings.model_server_token,
                        n_ctx=settings.n_ctx, audio=settings.model_server_audio,
                        image_tokens=settings.image_tokens)
