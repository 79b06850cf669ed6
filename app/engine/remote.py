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
import queue
import threading
import time
import wave
from collections.abc import Generator, Iterable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
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
        self._inflight: set[_Reader] = set()  # the requests being read
        self._generation = 0                  # cancel() moves it on: every request then in flight stops

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
        stop = threading.Event()  # one request failed, or the caller was interrupted: stop the others
        either = _Either(cancel, stop)
        pool = ThreadPoolExecutor(max_workers=min(MAX_CONCURRENT, len(convs)), thread_name_prefix="minutely-batch")
        try:
            futures = [pool.submit(self._consume, c, o, either) for c in convs]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)  # a failure stops the rest at once
            failed = next((f.exception() for f in done if f.exception() is not None), None)
            if failed is not None:
                raise failed
            return [f.result() for f in futures]
        except BaseException:
            stop.set()
            raise
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def cancel(self) -> None:
        """Stop every request in flight (their replies end "cancelled")."""
        with self._lock:
            self._generation += 1
            readers = list(self._inflight)
        for r in readers:
            r.close()

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
        """The request's stream is read on a thread of its own and handed over through a queue, so
        a cancel is honoured within ~50 ms even while the server has not answered yet."""
        gen = self._generation
        stopped = lambda: (cancel is not None and cancel.is_set()) or self._generation != gen  # noqa: E731
        if stopped():
            reply.finish_reason = "cancelled"
            self.last = reply
            return reply
        req = self._request(msgs, o)
        t0 = time.monotonic()
        pieces: queue.Queue = queue.Queue()
        reader = _Reader(self._client, req, pieces)
        with self._lock:
            self._inflight.add(reader)
        threading.Thread(target=reader.run, name="minutely-remote", daemon=True).start()
        first = None
        try:
            while True:
                if stopped():
                    reply.finish_reason = "cancelled"
                    break
                try:
                    kind, item = pieces.get(timeout=0.05)
                except queue.Empty:
                    continue
                if kind == "end":
                    break
                if kind == "error":
                    raise self._error(item, midway=bool(reply.text))
                chunk = item
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
        finally:
            with self._lock:
                self._inflight.discard(reader)
            reader.close()  # a stream still open (cancelled, or left early) is closed, now or once it opens
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


class _Reader:
    """One request's stream, read on its own thread into ``out`` as ("chunk", c), ("end", None) or
    ("error", exception). ``close()`` from any thread ends it: at once if the stream is open, else as
    soon as the server answers (a request cannot be taken back before its response begins)."""

    def __init__(self, client: Any, req: dict, out: queue.Queue):
        self._client, self._req, self._out = client, req, out
        self._lock = threading.Lock()
        self._stream: Any = None
        self._closed = False

    def run(self) -> None:
        try:
            stream = self._client.chat.completions.create(**self._req)
        except Exception as e:
            self._out.put(("error", e))
            return
        with self._lock:
            self._stream = stream
            closed = self._closed
        if closed:
            _close(stream)
            return
        try:
            for chunk in stream:
                self._out.put(("chunk", chunk))
            self._out.put(("end", None))
        except Exception as e:
            if not self._closed:
                self._out.put(("error", e))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            stream = self._stream
        if stream is not None:
            _close(stream)


class _Either:
    """Set when either of two cancel flags is."""

    def __init__(self, a: Cancellable | None, b: Cancellable):
        self._a, self._b = a, b

    def is_set(self) -> bool:
        return self._b.is_set() or (self._a is not None and self._a.is_set())


def _close(stream: Any) -> None:
    try:
        stream.close()
    except Exception:
        pass


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


def server_engine(settings, url: str | None = None, *, n_ctx: int | None = None) -> RemoteEngine | None:
    """The engine on the server ``url`` (else the settings' ``model_server``); None: this computer.
    The settings' model name, token and audio switch belong to the settings' server: another
    address given here gets none of them (the token is never sent to a server it was not set for)."""
    own = getattr(settings, "model_server", "")
    url = url if url is not None else own
    if not url:
        return None
    same = bool(own) and check_url(url) == check_url(own)
    return RemoteEngine(url, settings.model_server_model if same else "",
                        settings.model_server_token if same else "",
                        n_ctx=n_ctx or settings.n_ctx, audio=settings.model_server_audio if same else True,
                        image_tokens=settings.image_tokens)
