"""The Starlette application: ``/v1/models`` and ``/v1/chat/completions`` in OpenAI's shape.

Every refusal is JSON in OpenAI's error shape with its status (400 bad value or media that does
not decode, 401 no or wrong bearer token, 404 unknown model or path, 413 body over the limit,
422 wrong type, 503 the model could not answer); nothing a client sends stops the server. A
request is handed to the ``ModelGate`` with a cancel token of its own; a client that goes away
(mid-stream, or while it waits for a whole answer) cancels it, so the model stops within a token
and the next request starts.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from app.engine.cancel import CancelToken
from app.engine.errors import ContextOverflow, EngineCrashed, EngineError, ModelError
from app.engine.generation import Reply
from app.errors import one_line

from .errors import ApiError
from .gate import ModelGate
from .requests import ChatRequest, parse_chat

log = logging.getLogger("minutely.serve")

MAX_BODY = 32 * 1024 * 1024  # a few minutes of WAV or a handful of screenshots, base64
_DRAIN_LIMIT = 256 * 1024 * 1024  # an oversized body is read (and dropped) up to this, so the client sees the 413


def build_app(gate: ModelGate, *, token: str | None = None, max_body: int = MAX_BODY) -> Starlette:
    """The ASGI application over ``gate``; ``token``: the bearer token every request must carry."""
    api = _Api(gate, token, max_body)
    routes = [
        Route("/v1/models", api.models, methods=["GET"]),
        Route("/v1/models/{model:path}", api.model, methods=["GET"]),
        Route("/v1/chat/completions", api.chat, methods=["POST"]),
    ]
    return Starlette(routes=routes, exception_handlers={ApiError: _api_error, HTTPException: _http_error,
                                                        Exception: _server_error})


async def _api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = "not_found" if exc.status_code == 404 else "method_not_allowed" if exc.status_code == 405 else None
    return JSONResponse(ApiError(exc.status_code, str(exc.detail), code=code).body(), status_code=exc.status_code)


async def _server_error(_request: Request, exc: Exception) -> Response:
    log.exception("serving a request", exc_info=exc)
    return JSONResponse(ApiError(500, f"internal error: {one_line(exc)}", code="internal_error").body(),
                        status_code=500)


def engine_api_error(e: BaseException) -> ApiError:
    """What the engine raised, as the HTTP error a client gets."""
    if isinstance(e, ApiError):
        return e
    if isinstance(e, ContextOverflow):
        return ApiError(400, one_line(e), code="context_length_exceeded")
    if isinstance(e, (EngineCrashed, ModelError)):
        return ApiError(503, one_line(e), code="model_unavailable")
    if isinstance(e, EngineError):
        return ApiError(400, one_line(e), code="invalid_request")
    return ApiError(500, f"internal error: {one_line(e)}", code="internal_error")


def usage(r: Reply) -> dict[str, Any]:
    return {"prompt_tokens": r.prompt_tokens, "completion_tokens": r.generated_tokens,
            "total_tokens": r.prompt_tokens + r.generated_tokens,
            "prompt_tokens_details": {"cached_tokens": r.reused_tokens}}


def _finish(r: Reply) -> str:
    return "stop" if r.finish_reason == "stop" else "length"


class _Api:
    def __init__(self, gate: ModelGate, token: str | None, max_body: int):
        self.gate, self.token, self.max_body = gate, token, max_body

    # -- checks -------------------------------------------------------------------------------
    def _auth(self, request: Request) -> None:
        if self.token is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            raise ApiError(401, "a bearer token is required: send 'Authorization: Bearer <token>' with the "
                           "token `minutely serve` printed", code="invalid_api_key")

    async def _json(self, request: Request) -> Any:
        length = request.headers.get("content-length", "")
        too_big = length.isdigit() and int(length) > self.max_body
        chunks, n = [], 0
        async for c in request.stream():
            n += len(c)
            if n > self.max_body:
                too_big = True
            if too_big:
                if n > _DRAIN_LIMIT:
                    break
                continue
            chunks.append(c)
        if too_big:
            raise ApiError(413, f"the request body is over the server's limit of {self.max_body // (1024 * 1024)} MB "
                           "(send smaller images or shorter audio)", code="request_too_large")
        try:
            return json.loads(b"".join(chunks))
        except ValueError as e:
            raise ApiError(400, f"the body is not valid JSON: {e}", code="invalid_json") from None

    def _model_entry(self) -> dict[str, Any]:
        return {"id": self.gate.model_id(), "object": "model", "created": 0, "owned_by": "minutely"}

    # -- routes -------------------------------------------------------------------------------
    async def models(self, request: Request) -> Response:
        self._auth(request)
        return JSONResponse({"object": "list", "data": [self._model_entry()]})

    async def model(self, request: Request) -> Response:
        self._auth(request)
        name = request.path_params["model"]
        if name != self.gate.model_id():
            raise self._unknown(name)
        return JSONResponse(self._model_entry())

    def _unknown(self, name: str) -> ApiError:
        return ApiError(404, f"the model {name!r} does not exist here; this server answers with "
                        f"{self.gate.model_id()!r}", param="model", code="model_not_found")

    async def chat(self, request: Request) -> Response:
        self._auth(request)
        body = await self._json(request)
        if isinstance(body, dict) and isinstance(body.get("model"), str) and body["model"] \
                and body["model"] != self.gate.model_id():
            raise self._unknown(body["model"])  # before any media is decoded
        req = await run_in_threadpool(parse_chat, body)
        if req.audio_parts and not self.gate.supports_audio():
            raise ApiError(400, "this model cannot hear: it was loaded without an audio projector (mmproj)",
                           code="audio_not_supported")
        if req.image_parts and not self.gate.supports_vision():
            raise ApiError(400, "this model cannot see: it was loaded without a vision projector (mmproj)",
                           code="vision_not_supported")
        run = _Run(self.gate, req)
        watch = asyncio.create_task(run.watch(request))  # the client leaving cancels the request
        handed = False  # to the StreamingResponse, which then owns the request's end
        try:
            first = await run.next()  # an engine error before the first piece is a plain HTTP error
            if first is None:
                return Response(status_code=499)  # the client went away; nobody reads this
            if req.stream:
                watch.cancel()  # from here Starlette's StreamingResponse listens for the disconnect
                handed = True
                return StreamingResponse(run.sse(first), media_type="text/event-stream",
                                         headers={"Cache-Control": "no-cache"})
            text = []
            item: tuple[str, Any] | None = first
            while item is not None and item[0] == "piece":
                text.append(item[1])
                item = await run.next()
            if item is None:
                return Response(status_code=499)
        finally:
            watch.cancel()
            if not handed:
                run.cancel.set()  # an error, the server stopping, or done (then it changes nothing)
        reply: Reply = item[1]
        return JSONResponse({
            "id": run.id, "object": "chat.completion", "created": run.created, "model": req.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(text)},
                         "finish_reason": _finish(reply), "logprobs": None}],
            "usage": usage(reply)})


class _Run:
    """One request handed to the gate; its pieces come back through an asyncio queue."""

    def __init__(self, gate: ModelGate, req: ChatRequest):
        self.req = req
        self.id = f"chatcmpl-{secrets.token_hex(12)}"
        self.created = int(time.time())
        self.cancel = CancelToken()
        self._loop = asyncio.get_running_loop()
        self._q: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        gate.submit(self._work, self.cancel)

    def _put(self, item: tuple[str, Any]) -> None:
        try:
            self._loop.call_soon_threadsafe(self._q.put_nowait, item)
        except RuntimeError:  # the server's loop is gone (shutting down)
            self.cancel.set()

    def _work(self, engine: Any) -> None:
        """On the gate's thread: run the request, every piece to the queue."""
        if engine is None:
            self._put(("error", ApiError(503, "the request was dropped before the model got to it "
                                         "(cancelled in the app, or the app is closing)", code="dropped")))
            return
        try:
            stream = engine.stream(self.req.messages, self.req.options)
            for piece in stream:
                if piece:
                    self._put(("piece", piece))
            r = stream.reply
            assert r is not None
            log.info("%s: %d prompt tokens (%d from the cache, %d evaluated), %d generated, %s",
                     self.id, r.prompt_tokens, r.reused_tokens, r.evaluated_tokens, r.generated_tokens,
                     r.finish_reason)
            self._put(("done", r))
        except BaseException as e:  # noqa: BLE001 - every failure goes back to the client
            self._put(("error", engine_api_error(e)))

    async def watch(self, request: Request) -> None:
        """Wait for the client to disconnect (the body is read: nothing else can come), then cancel."""
        while (await request.receive())["type"] != "http.disconnect":
            pass
        self.cancel.set()
        self._q.put_nowait(("gone", None))

    async def next(self) -> tuple[str, Any] | None:
        """The next piece or the end; an error is raised; None when the client went away (cancelled)."""
        item = await self._q.get()
        if item[0] == "error":
            raise item[1]
        return None if item[0] == "gone" else item

    def _chunk(self, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        body = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.req.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra}
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    async def sse(self, first: tuple[str, Any]) -> AsyncIterator[str]:
        """Server-sent events; leaving early (the client disconnected) cancels the request."""
        try:
            item = first
            yield self._chunk({"role": "assistant", "content": ""})
            while True:
                if item[0] == "piece":
                    yield self._chunk({"content": item[1]})
                else:
                    reply: Reply = item[1]
                    yield self._chunk({}, _finish(reply))
                    if self.req.include_usage:
                        body = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                                "model": self.req.model, "choices": [], "usage": usage(reply)}
                        yield f"data: {json.dumps(body)}\n\n"
                    yield "data: [DONE]\n\n"
                    return
                try:
                    got = await self.next()  # a disconnect cancels this generator (Starlette)
                except ApiError as e:
                    yield f"data: {json.dumps(e.body())}\n\n"
                    return
                if got is None:  # the client left just as the stream began
                    return
                item = got
        finally:
            self.cancel.set()  # ended or abandoned: the model stops (a finished request is unaffected)
