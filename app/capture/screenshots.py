"""Which screen grabs to keep, and storing them (no Qt: the grabbing itself is in `screen`).

A grab is kept when it differs enough from the last kept one: both are reduced to a 96-pixel-wide
grayscale thumbnail (a box filter averages away noise, cursor blink and sub-pixel font changes),
and the *changed area* is the fraction of thumbnail pixels whose value moved by more than
`pixel_delta` (0-255). A new slide, a scrolled document or a switched window changes 10-100 % of
them; a clock or a moving cursor well under 1 %. Grabs asked for by the user are always kept.

Kept grabs are downscaled (longest side `max_side`), saved as JPEG (`quality`), written aside and
renamed into `media/<session>/screens/`, and recorded as a media row (kind `screenshot`, offset in
seconds on the recording's timeline). Disk use is bounded: once `max_bytes` are used for a
session, automatic grabs stop (with one notice); asked-for grabs still go in.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

THUMB_WIDTH = 96


def thumbnail(img: Image.Image, width: int = THUMB_WIDTH) -> np.ndarray:
    """Grayscale, `width` pixels wide (aspect kept), float32 0-255."""
    w, h = img.size
    th = max(1, round(h * width / max(1, w)))
    return np.asarray(img.convert("L").resize((width, th), Image.Resampling.BOX), np.float32)


def changed_area(a: np.ndarray, b: np.ndarray, pixel_delta: float = 24.0) -> float:
    """Fraction (0-1) of thumbnail pixels that changed by more than `pixel_delta`."""
    if a.shape != b.shape:
        return 1.0  # another resolution: a different screen
    return float(np.count_nonzero(np.abs(a - b) > pixel_delta)) / a.size


@dataclass
class Kept:
    """One stored grab."""
    media_id: int
    path: Path
    offset: float
    width: int
    height: int
    bytes: int
    change: float  # changed area against the previous kept grab (1.0 for the first)
    forced: bool


class ScreenKeeper:
    """`offer(image, offset, force)` keeps or skips one grab. Thread-safe; opens its own library
    connection per call thread via `lib.connect()` when `own_connection` (the default)."""

    def __init__(self, lib, session_id: int, *, threshold: float = 0.02, pixel_delta: float = 24.0,
                 max_side: int = 1280, quality: int = 70, max_bytes: int = 200 * 1024 * 1024,
                 on_notice: Callable[[str], None] | None = None):
        self.lib, self.session_id = lib, session_id
        self.threshold, self.pixel_delta = threshold, pixel_delta
        self.max_side, self.quality, self.max_bytes = max_side, quality, max_bytes
        self.on_notice = on_notice
        self.folder = lib.media_dir(session_id) / "screens"
        self.kept: list[Kept] = []
        self.offered = 0
        self.used_bytes = 0
        self._last: np.ndarray | None = None
        self._lock = threading.Lock()
        self._full_noticed = False

    def offer(self, img: Image.Image, offset: float, force: bool = False, lib=None) -> Kept | None:
        """Keep `img` if it changed enough (or `force`); returns what was stored, or None."""
        with self._lock:
            self.offered += 1
            thumb = thumbnail(img)
            change = 1.0 if self._last is None else changed_area(self._last, thumb, self.pixel_delta)
            if not force and change < self.threshold:
                return None
            if not force and self.used_bytes >= self.max_bytes:
                if not self._full_noticed:
                    self._full_noticed = True
                    self._notice(f"screen grabs stopped: this meeting's {self.max_bytes // (1 << 20)} MB "
                                 "for screenshots are used (grabs asked for still go in)")
                return None
            data, size = self._encode(img)
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.folder / f"screen-{int(round(offset * 1000)):09d}ms-{len(self.kept) + 1:04d}.jpg"
            tmp = path.with_name(f".{path.name}.part")
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            m = (lib or self.lib).add_media(self.session_id, path, "screenshot", offset,
                                            width=size[0], height=size[1], size=len(data))
            self._last = thumb
            self.used_bytes += len(data)
            k = Kept(m.id, path, offset, size[0], size[1], len(data), change, force)
            self.kept.append(k)
            return k

    def _encode(self, img: Image.Image) -> tuple[bytes, tuple[int, int]]:
        img = img.convert("RGB")
        w, h = img.size
        scale = self.max_side / max(w, h)
        if scale < 1:
            img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=self.quality, optimize=True)
        return buf.getvalue(), img.size

    def _notice(self, text: str) -> None:
        if self.on_notice is not None:
            try:
                self.on_notice(text)
            except Exception:
                pass
