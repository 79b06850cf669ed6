"""An OpenAI chat-completions body as the engine's messages and options.

Checked field by field, so a wrong type is a 422 naming the field, and media that does not decode
is a 400 before the model is asked anything. Images come as ``data:`` URLs (PNG, JPEG, anything
Pillow reads); a remote ``http(s)`` URL is refused: the server never opens a connection. Audio
comes as ``input_audio`` ({data: base64, format}) and is decoded by app.media (PyAV) to 16 kHz
mono. Fields this server does not use (``user``, ``logprobs``, ``tools`` with no tool call ...)
are ignored, as OpenAI-compatible servers do; ``n`` > 1 is refused. ``ignore_eos`` (an extension
vLLM and llama-server share) generates exactly ``max_tokens``, for benchmarks.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any

from app.engine.generation import GenerateOptions
from app.engine.messages import IMAGE_TOKENS_MAX, IMAGE_TOKENS_MIN, Audio, Image, Message, Part, Text

from .errors import ApiError

DEFAULT_MAX_TOKENS = 2048
AUDIO_FORMATS = ("wav", "mp3", "flac", "ogg", "opus", "m4a", "aac", "webm", "pcm16")
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
_DETAIL_TOKENS = {"low": IMAGE_TOKENS_MIN, "high": IMAGE_TOKENS_MAX}


@dataclass
class ChatRequest:
    model: str
    messages: list[Message]
    options: GenerateOptions
    stream: bool = False
    include_usage: bool = False
    audio_parts: int = 0
    image_parts: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _want(body: dict, name: str, types: type | tuple[type, ...], what: str, default: Any = None) -> Any:
    v = body.get(name, default)
    if v is None:
        return default
    if isinstance(v, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise ApiError(422, f"'{name}' must be {what}", param=name, code="invalid_type")
    if not isinstance(v, types):
        raise ApiError(422, f"'{name}' must be {what}", param=name, code="invalid_type")
    return v


def parse_chat(body: Any) -> ChatRequest:
    """The request, its media decoded (this may take a moment: run it off the event loop)."""
    if not isinstance(body, dict):
        raise ApiError(422, "the request body must be a JSON object", code="invalid_type")
    model = _want(body, "model", str, "a string", "")
    if not model:
        raise ApiError(422, "'model' is required (GET /v1/models lists it)", param="model", code="missing")
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise ApiError(422, "'messages' must be a non-empty array", param="messages", code="invalid_type")
    messages: list[Message] = []
    counts = {"audio": 0, "image": 0}
    for i, m in enumerate(raw):
        messages.append(_message(m, f"messages[{i}]", counts))
    n = _want(body, "n", int, "an integer", 1)
    if n != 1:
        raise ApiError(400, "only n=1 is supported (one model, one answer at a time)", param="n",
                       code="unsupported_value")
    opts = _options(body)
    stream = _want(body, "stream", bool, "true or false", False)
    so = _want(body, "stream_options", dict, "an object", {})
    include_usage = bool(so.get("include_usage")) if stream else False
    return ChatRequest(model, messages, opts, stream, include_usage, counts["audio"], counts["image"])


def _options(body: dict) -> GenerateOptions:
    max_tokens = _want(body, "max_completion_tokens", int, "an integer", None)
    if max_tokens is None:
        max_tokens = _want(body, "max_tokens", int, "an integer", DEFAULT_MAX_TOKENS)
    if max_tokens < 1:
        raise ApiError(400, "'max_tokens' must be at least 1", param="max_tokens", code="invalid_value")
    temperature = float(_want(body, "temperature", (int, float), "a number", 1.0))
    if not 0.0 <= temperature <= 2.0:
        raise ApiError(400, "'temperature' must be between 0 and 2", param="temperature", code="invalid_value")
    top_p = float(_want(body, "top_p", (int, float), "a number", 0.95))
    if not 0.0 < top_p <= 1.0:
        raise ApiError(400, "'top_p' must be above 0 and at most 1", param="top_p", code="invalid_value")
    seed = _want(body, "seed", int, "an integer", 0)
    stop = body.get("stop")
    if stop is None:
        stops: tuple[str, ...] = ()
    elif isinstance(stop, str):
        stops = (stop,)
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        if len(stop) > 4:
            raise ApiError(400, "'stop' takes at most 4 strings", param="stop", code="invalid_value")
        stops = tuple(stop)
    else:
        raise ApiError(422, "'stop' must be a string or an array of strings", param="stop", code="invalid_type")
    ignore_eos = _want(body, "ignore_eos", bool, "true or false", False)  # vLLM's and llama-server's extension
    return GenerateOptions(max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed,
                           stop=stops, json_schema=_schema(body.get("response_format")), ignore_eos=ignore_eos)


def _schema(rf: Any) -> dict | None:
    if rf is None:
        return None
    if not isinstance(rf, dict) or not isinstance(rf.get("type"), str):
        raise ApiError(422, "'response_format' must be an object with a 'type'", param="response_format",
                       code="invalid_type")
    kind = rf["type"]
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        js = rf.get("json_schema")
        schema = js.get("schema") if isinstance(js, dict) else None
        if not isinstance(schema, dict):
            raise ApiError(422, "'response_format.json_schema.schema' must be a JSON schema object",
                           param="response_format", code="invalid_type")
        return schema
    raise ApiError(400, f"unknown response_format type {kind!r} (text, json_object or json_schema)",
                   param="response_format", code="unsupported_value")


def _message(m: Any, where: str, counts: dict[str, int]) -> Message:
    if not isinstance(m, dict):
        raise ApiError(422, f"'{where}' must be an object with 'role' and 'content'", param=where,
                       code="invalid_type")
    role = m.get("role")
    if role not in _ROLES:
        raise ApiError(400, f"'{where}.role' must be one of system, developer, user, assistant "
                       f"(not {role!r})", param=f"{where}.role", code="unsupported_value")
    content = m.get("content")
    if content is None and role == "assistant":
        content = ""
    if isinstance(content, str):
        return Message(_ROLES[role], [Text(content)])
    if not isinstance(content, list):
        raise ApiError(422, f"'{where}.content' must be a string or an array of parts",
                       param=f"{where}.content", code="invalid_type")
    parts: list[Part] = []
    for j, p in enumerate(content):
        parts.append(_part(p, f"{where}.content[{j}]", counts))
    if role != "user" and any(not isinstance(p, Text) for p in parts):
        raise ApiError(400, f"'{where}': images and audio go in user messages", param=where,
                       code="unsupported_value")
    return Message(_ROLES[role], parts)


def _part(p: Any, where: str, counts: dict[str, int]) -> Part:
    kind = p.get("type") if isinstance(p, dict) else None
    if kind == "text":
        if not isinstance(p.get("text"), str):
            raise ApiError(422, f"'{where}.text' must be a string", param=where, code="invalid_type")
        return Text(p["text"])
    if kind == "image_url":
        counts["image"] += 1
        return _image(p.get("image_url"), where)
    if kind == "input_audio":
        counts["audio"] += 1
        return _audio(p.get("input_audio"), where)
    raise ApiError(422, f"'{where}' must be a part of type text, image_url or input_audio (not {kind!r})",
                   param=where, code="invalid_type")


def _b64(data: str, where: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, f"'{where}' is not valid base64", param=where, code="invalid_base64") from None


def _image(spec: Any, where: str) -> Image:
    if isinstance(spec, str):
        spec = {"url": spec}
    url = spec.get("url") if isinstance(spec, dict) else None
    if not isinstance(url, str):
        raise ApiError(422, f"'{where}.image_url.url' must be a string", param=where, code="invalid_type")
    if not url.startswith("data:"):
        raise ApiError(400, f"'{where}': only data: URLs are taken (the server works offline and fetches "
                       "nothing); send the image as data:image/png;base64,...", param=where,
                       code="remote_url_refused")
    head, _, data = url.partition(",")
    if not head.endswith(";base64"):
        raise ApiError(400, f"'{where}': the data: URL must be base64 (data:image/png;base64,...)",
                       param=where, code="invalid_image")
    raw = _b64(data, where)
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    try:
        with PILImage.open(io.BytesIO(raw)) as im:
            im.load()
            rgb = im.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ApiError(400, f"'{where}' is not an image that decodes: {e}", param=where,
                       code="invalid_image") from None
    detail = spec.get("detail") if isinstance(spec, dict) else None
    return Image(image=rgb, max_tokens=_DETAIL_TOKENS.get(detail) if isinstance(detail, str) else None)


def _audio(spec: Any, where: str) -> Audio:
    if not isinstance(spec, dict) or not isinstance(spec.get("data"), str):
        raise ApiError(422, f"'{where}.input_audio' must be an object with base64 'data' and a 'format'",
                       param=where, code="invalid_type")
    fmt = spec.get("format", "wav")
    if not isinstance(fmt, str) or fmt.lower() not in AUDIO_FORMATS:
        raise ApiError(400, f"'{where}.input_audio.format' must be one of {', '.join(AUDIO_FORMATS)}",
                       param=where, code="unsupported_value")
    raw = _b64(spec["data"], where)
    if not raw:
        raise ApiError(400, f"'{where}': the audio is empty", param=where, code="invalid_audio")
    if fmt.lower() == "pcm16":  # raw 16-bit little-endian mono at 16 kHz (no container to read)
        import numpy as np

        if len(raw) % 2:
            raise ApiError(400, f"'{where}': pcm16 audio has an odd number of bytes", param=where,
                           code="invalid_audio")
        return Audio(samples=np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0)
    from app.media.audio import MediaError, decode_audio

    fd, path = tempfile.mkstemp(prefix="minutely-serve-", suffix=f".{fmt.lower()}")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        samples = decode_audio(path)
    except MediaError as e:
        raise ApiError(400, f"'{where}': the audio does not decode ({_without_path(str(e), path)})",
                       param=where, code="invalid_audio") from None
    finally:
        os.unlink(path)
    if not len(samples):
        raise ApiError(400, f"'{where}': the audio holds no samples", param=where, code="invalid_audio")
    return Audio(samples=samples)


def _without_path(text: str, path: str) -> str:
    return text.replace(path, "the upload").replace(os.path.basename(path), "the upload")
