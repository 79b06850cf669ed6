"""Turn chat messages into the units the engine evaluates.

The chat template the GGUF carries renders the conversation; each audio or
image part becomes mtmd's media marker in the rendered text, and
``mtmd_tokenize`` splits the result into text-token chunks and media chunks.
A prompt is then a list of *units*: a text token (an ``int``) or a media chunk
(``Media``, with a content hash as key). Comparing two prompts unit by unit
tells the engine how much of its KV cache it can keep (prefix reuse).
"""

from __future__ import annotations

import ctypes
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import EngineError
from .messages import Message, Text, digest


@dataclass(frozen=True)
class Media:
    key: bytes        # content hash: same media, same key
    kind: str         # "audio" or "image"
    n_tokens: int
    n_pos: int
    chunk: Any = None  # mtmd_input_chunk pointer, valid while the Prompt lives

    def __eq__(self, other: object) -> bool:  # the chunk pointer is not identity
        return isinstance(other, Media) and (self.key, self.n_pos) == (other.key, other.n_pos)

    def __hash__(self) -> int:
        return hash((self.key, self.n_pos))


Unit = int | Media


def render(template_src: str, messages: list[Message], marker: str, bos: str, eos: str,
           think: bool = False) -> str:
    """Render messages with the model's own Jinja chat template (sandboxed)."""
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True,
        extensions=[Jinja2ChatFormatter.IgnoreGenerationTags, jinja2.ext.loopcontrols])
    env.filters["tojson"] = Jinja2ChatFormatter.tojson

    def raise_exception(msg: str):
        raise EngineError(f"chat template: {msg}")

    tmsgs = []
    for m in messages:
        content: list[dict] = []
        for p in m.parts:
            if isinstance(p, Text):
                content.append({"type": "text", "text": p.text})
            else:  # media: the marker, as text, where the part stands
                content.append({"type": "text", "text": marker})
        if all(c["type"] == "text" for c in content) and len(content) <= 1:
            tmsgs.append({"role": m.role, "content": content[0]["text"] if content else ""})
        else:
            tmsgs.append({"role": m.role, "content": content})
    try:
        tpl = env.from_string(template_src)
        return tpl.render(messages=tmsgs, add_generation_prompt=True, bos_token=bos,
                          eos_token=eos, raise_exception=raise_exception,
                          enable_thinking=think, strftime_now=Jinja2ChatFormatter.strftime_now)
    except jinja2.TemplateError as e:
        raise EngineError(f"the model's chat template failed: {e}") from None


def fit_image(image, max_tokens: int | None, shrink: float = 1.0):
    """Downscale an RGB PIL image until it needs at most ``max_tokens`` tokens.

    Gemma 4 sees 48x48-pixel patches, one token each; ``shrink`` < 1 asks for
    a smaller image when the model's own preprocessing still gave too many.
    """
    from PIL import Image as PILImage

    if max_tokens is None:
        return image
    w, h = image.width, image.height
    s = min(1.0, math.sqrt(max_tokens * 48 * 48 / (w * h))) * shrink
    while s > 0.01 and math.ceil(w * s / 48) * math.ceil(h * s / 48) > max_tokens:
        s *= 0.97
    if s < 1.0:
        image = image.resize((max(48, round(w * s)), max(48, round(h * s))),
                             PILImage.Resampling.LANCZOS)
    return image


def image_bitmap(mtmd, image, max_tokens: int | None, shrink: float = 1.0):
    """An mtmd bitmap of an RGB PIL image, downscaled to fit ``max_tokens``."""
    image = fit_image(image, max_tokens, shrink)
    data = image.tobytes()
    buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
    bm = mtmd.mtmd_bitmap_init(image.width, image.height, buf)
    if not bm:
        raise EngineError("could not prepare the image for the model")
    key = digest(b"img", image.width, image.height, data)
    mtmd.mtmd_bitmap_set_id(bm, key.hex().encode())
    return bm, key, image


def audio_bitmap(mtmd, samples: np.ndarray):
    if len(samples) == 0:
        raise EngineError("an audio part is empty (no samples)")
    a = np.ascontiguousarray(samples, dtype=np.float32)
    bm = mtmd.mtmd_bitmap_init_from_audio(len(a), a.ctypes.data_as(ctypes.POINTER(ctypes.c_float)))
    if not bm:
        raise EngineError("could not prepare the audio for the model")
    key = digest(b"aud", a.tobytes())
    mtmd.mtmd_bitmap_set_id(bm, key.hex().encode())
    return bm, key


class Prompt:
    """A tokenized prompt: its units, owning the native chunks until closed."""

    def __init__(self, units: list[Unit], chunks=None, mtmd=None, bitmaps=()):
        self.units = units
        self._chunks = chunks
        self._mtmd = mtmd
        self._bitmaps = list(bitmaps)  # chunks may refer to them until evaluated

    @property
    def n_pos(self) -> int:
        return sum(1 if isinstance(u, int) else u.n_pos for u in self.units)

    def close(self) -> None:
        if self._chunks is not None:
            self._mtmd.mtmd_input_chunks_free(self._chunks)
            self._chunks = None
        for bm in self._bitmaps:
            self._mtmd.mtmd_bitmap_free(bm)
        self._bitmaps = []

    def __enter__(self) -> Prompt:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def tokenize_multimodal(mtmd, mctx, text: str, media: list[tuple[str, Any, Any]],
                        add_special: bool, parse_special: bool = True) -> Prompt:
    """mtmd_tokenize the rendered text with one bitmap per media part.

    ``media`` is a list of (kind, bitmap, key) in the order the parts appear;
    the returned Prompt owns (and frees) the bitmaps.
    """
    bitmaps = [bm for _, bm, _ in media]
    chunks = mtmd.mtmd_input_chunks_init()
    if not chunks:
        raise EngineError("could not allocate input chunks")
    try:
        raw = text.encode("utf-8")
        inp = mtmd.mtmd_input_text()
        inp.text = raw
        inp.text_len = len(raw)
        inp.add_special = add_special
        inp.parse_special = parse_special
        arr = (mtmd.mtmd_bitmap_p_ctypes * max(1, len(bitmaps)))(*bitmaps)
        rc = mtmd.mtmd_tokenize(mctx, chunks, ctypes.byref(inp), arr, len(bitmaps))
        if rc == 1:
            raise EngineError("the number of media parts does not match the markers in the prompt")
        if rc != 0:
            raise EngineError(f"the model could not take this input (mtmd error {rc})")
        units: list[Unit] = []
        by_id = {key.hex(): (kind, key) for kind, _, key in media}
        seen: dict[str, int] = {}
        for i in range(mtmd.mtmd_input_chunks_size(chunks)):
            ch = mtmd.mtmd_input_chunks_get(chunks, i)
            t = mtmd.mtmd_input_chunk_get_type(ch)
            if t == mtmd.MTMD_INPUT_CHUNK_TYPE_TEXT:
                n = ctypes.c_size_t()
                ptr = mtmd.mtmd_input_chunk_get_tokens_text(ch, ctypes.byref(n))
                units.extend(ptr[j] for j in range(n.value))
            else:
                cid = (mtmd.mtmd_input_chunk_get_id(ch) or b"").decode()
                kind, key = by_id.get(cid, ("media", digest(b"anon", i)))
                k = seen[cid] = seen.get(cid, -1) + 1  # one part may give several chunks
                if k:
                    key = digest(key, k)
                units.append(Media(key, kind, mtmd.mtmd_input_chunk_get_n_tokens(ch),
                                   mtmd.mtmd_input_chunk_get_n_pos(ch), ch))
        return Prompt(units, chunks, mtmd, bitmaps)
    except BaseException:
        mtmd.mtmd_input_chunks_free(chunks)
        for bm in bitmaps:
            mtmd.mtmd_bitmap_free(bm)
        raise
