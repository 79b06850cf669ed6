"""Video files: what a file holds (``probe``) and the frames worth keeping (``sample_frames``).

The scene-change measure is cheap: each candidate frame is scaled by FFmpeg to a 32x18 grey
thumbnail and compared with the last kept frame's thumbnail (mean absolute difference, 0..1).
Candidates are measured at most every 0.1 s, so a cut is found within 0.1 s and a 30 fps video
costs a third of its frames' thumbnails. No Qt; PyAV is imported when a video is opened.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.media.audio import MediaError, open_container

log = logging.getLogger("minutely.media.video")


@dataclass
class FrameOptions:
    mode: str = "scene"          # "scene" or "interval"
    interval: float = 1.0        # seconds: at most one frame per interval (scene), or exactly (interval)
    threshold: float = 0.06      # scene change: mean grey difference of thumbnails, 0..1
    max_gap: float = 10.0        # scene mode: a frame at least this often, changes or not
    max_side: int = 768          # stored frames are at most this many pixels wide or high
    quality: int = 80            # JPEG quality


@dataclass
class VideoInfo:
    duration: float
    width: int
    height: int
    has_audio: bool


def probe(path: str | Path) -> VideoInfo:
    """What the file holds; MediaError when it is no video (or unreadable)."""
    c = open_container(path)
    try:
        if not c.streams.video:
            raise MediaError(f"no video track in {Path(path).name}")
        v = c.streams.video[0]
        dur = 0.0
        if v.duration is not None and v.time_base is not None:
            dur = float(v.duration * v.time_base)
        elif c.duration is not None:
            dur = c.duration / 1_000_000
        return VideoInfo(dur, v.codec_context.width or 0, v.codec_context.height or 0, bool(c.streams.audio))
    finally:
        c.close()


def thumb(frame) -> np.ndarray:
    """The 32x18 grey thumbnail the scene measure compares (float, 0..1)."""
    return frame.to_ndarray(width=32, height=18, format="gray").astype(np.float32) / 255.0


def scene_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two thumbnails, 0 (same) .. 1."""
    return float(np.mean(np.abs(a - b)))


def sample_frames(path: str | Path, opts: FrameOptions | None = None,
                  cancel: threading.Event | None = None) -> Iterator[tuple[float, object]]:
    """(seconds, PIL image) of the frames to keep, decoding the video once."""
    import av

    opts = opts or FrameOptions()
    if opts.mode not in ("scene", "interval"):
        raise ValueError(f"unknown frame sampling mode {opts.mode!r}")
    c = open_container(path)
    try:
        if not c.streams.video:
            raise MediaError(f"no video track in {Path(path).name}")
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        last_t: float | None = None
        last_thumb: np.ndarray | None = None
        last_check = -math.inf
        check_every = min(opts.interval / 4, 0.1)  # a cut is found at most this late
        got = 0
        try:
            for frame in c.decode(stream):
                if cancel is not None and cancel.is_set():
                    return  # the caller sees its cancel and says so
                if frame.time is None:
                    continue
                t = float(frame.time)
                if last_t is not None and t < last_t + opts.interval - 1e-3:
                    continue
                keep = last_t is None
                if not keep and opts.mode == "interval":
                    keep = True
                elif last_t is not None and last_thumb is not None:  # not kept: a frame was kept before
                    if t >= last_t + opts.max_gap - 1e-3:
                        keep = True
                    elif t >= last_check + check_every - 1e-3:
                        last_check = t
                        keep = scene_difference(thumb(frame), last_thumb) >= opts.threshold
                if not keep:
                    continue
                if opts.mode == "scene":
                    last_thumb = thumb(frame)
                # interval mode: a steady grid (0, 1, 2 s ...), whatever the frame timing
                last_t = t if opts.mode == "scene" or last_t is None else \
                    last_t + opts.interval * max(1, math.floor((t - last_t) / opts.interval + 1e-6))
                last_check = t
                got += 1
                yield t, frame.to_image()
        except av.error.FFmpegError as e:
            if not got:
                raise MediaError(f"cannot decode the video of {Path(path).name}: {e}") from None
            log.warning("video %s ends in damaged data: %s", Path(path).name, e)
        if not got:
            raise MediaError(f"no decodable frames in {Path(path).name}")
    finally:
        c.close()
