"""Chat messages whose parts are text, audio and images.

Audio is 16 kHz mono float32 (a numpy array) or a media file decoded with
PyAV; an image is a PIL image or an image file. All parts pickle, so the same
messages cross into the engine's child process unchanged.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import EngineError

SAMPLE_RATE = 16_000
IMAGE_TOKENS_MIN = 70
IMAGE_TOKENS_MAX = 1120
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(eq=False)
class Audio:
    """16 kHz mono float32 samples, or a path to any file PyAV can decode."""
    samples: np.ndarray | None = None
    path: str | None = None

    def __post_init__(self) -> None:
        if (self.samples is None) == (self.path is None):
            raise EngineError("an audio part needs either samples or a file path")
        if self.path is not None:
            self.path = os.fspath(self.path)

    def load(self) -> np.ndarray:
        if self.samples is not None:
            a = np.asarray(self.samples)
            if a.ndim != 1:
                raise EngineError("audio samples must be mono (one dimension)")
            return np.ascontiguousarray(a, dtype=np.float32)
        from app.media.audio import decode_audio

        assert self.path is not None  # __post_init__: samples or a path
        return decode_audio(self.path)

    @property
    def seconds(self) -> float | None:
        return None if self.samples is None else len(self.samples) / SAMPLE_RATE


@dataclass(eq=False)
class Image:
    """A PIL image or an image file; ``max_tokens`` caps its token budget (70-1120)."""
    image: Any = None
    path: str | None = None
    max_tokens: int | None = None

    def __post_init__(self) -> None:
        if (self.image is None) == (self.path is None):
            raise EngineError("an image part needs either an image or a file path")
        if self.path is not None:
            self.path = os.fspath(self.path)
        if self.max_tokens is not None:
            self.max_tokens = clamp_image_tokens(self.max_tokens)

    def load(self):
        from PIL import Image as PILImage
        from PIL import UnidentifiedImageError

        if self.image is not None:
            return self.image.convert("RGB")
        try:
            with PILImage.open(self.path) as im:
                im.load()
                return im.convert("RGB")
        except FileNotFoundError:
            raise EngineError(f"image not found: {self.path}") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            raise EngineError(f"cannot read image {Path(self.path).name}: {e}") from None

    def __getstate__(self):
        # PIL images pickle, but as PNG-free raw state; keep it explicit and small.
        d = dict(self.__dict__)
        if d.get("image") is not None:
            im = d["image"].convert("RGB")
            d["image"] = ("raw", im.size, im.tobytes())
        return d

    def __setstate__(self, d):
        img = d.get("image")
        if isinstance(img, tuple) and img and img[0] == "raw":
            from PIL import Image as PILImage

            d["image"] = PILImage.frombytes("RGB", img[1], img[2])
        self.__dict__.update(d)


Part = Text | Audio | Image


def clamp_image_tokens(n: int) -> int:
    return max(IMAGE_TOKENS_MIN, min(IMAGE_TOKENS_MAX, int(n)))


def _as_parts(items: Iterable[Part | str]) -> list[Part]:
    return [Text(p) if isinstance(p, str) else p for p in items]


@dataclass
class Message:
    role: str
    parts: list[Part] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise EngineError(f"unknown message role '{self.role}'")
        self.parts = _as_parts(self.parts)  # a str given at run time becomes a Text
        for p in self.parts:
            if not isinstance(p, (Text, Audio, Image)):
                raise EngineError(f"unsupported message part {type(p).__name__}")

    @classmethod
    def system(cls, *parts: Part | str) -> Message:
        return cls("system", _as_parts(parts))

    @classmethod
    def user(cls, *parts: Part | str) -> Message:
        return cls("user", _as_parts(parts))

    @classmethod
    def assistant(cls, *parts: Part | str) -> Message:
        return cls("assistant", _as_parts(parts))

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, Text))


def as_messages(messages: Iterable[Message | dict]) -> list[Message]:
    """Accept Message objects or {"role", "content"} dicts with a str content."""
    out = []
    for m in messages:
        if isinstance(m, Message):
            out.append(m)
        elif isinstance(m, dict):
            content = m.get("content", "")
            parts = [content] if isinstance(content, str) else list(content)
            out.append(Message(m.get("role", "user"), _as_parts(parts)))
        else:
            raise EngineError(f"not a message: {type(m).__name__}")
    if not out:
        raise EngineError("no messages to answer")
    return out


def digest(*chunks: bytes | str | int) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for c in chunks:
        if isinstance(c, int):
            c = str(c)
        if isinstance(c, str):
            c = c.encode()
        h.update(c)
    return h.digest()
