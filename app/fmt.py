"""Sizes and times for people, one way everywhere (command line and window alike).

Headless and import-light: the CLI and the Qt views both format through here.
"""

from __future__ import annotations


def size_text(n: float) -> str:
    """A size for people: 812 KB, 1.5 MB, 7.3 GB."""
    if n >= 1e9:
        return f"{n / 1e9:.1f} GB"
    if n >= 1e6:
        return f"{n / 1e6:.1f} MB"
    return f"{max(0, n) / 1e3:.0f} KB"


def clock(seconds: float | None) -> str:
    """A time into a recording: ``mm:ss`` below an hour, ``h:mm:ss`` from an hour on; "" for None."""
    if seconds is None:
        return ""
    s = int(max(0.0, seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m:02d}:{sec:02d}"


def fine_clock(seconds: float) -> str:
    """A time to the hundredth of a second: ``m:ss.ss``, ``h:mm:ss.ss`` from an hour on."""
    cs = round(max(0.0, seconds) * 100)
    h, rem = divmod(cs, 360_000)
    m, rem = divmod(rem, 6000)
    sec = f"{rem // 100:02d}.{rem % 100:02d}"
    return f"{h}:{m:02d}:{sec}" if h else f"{m}:{sec}"


def parse_clock(text: str) -> float:
    """Seconds of ``text``: ``75.5``, ``1:15.5`` or ``1:01:15.5``; ValueError (one line) else."""
    parts = text.strip().split(":")
    try:
        if not 1 <= len(parts) <= 3 or any(not p.strip() for p in parts):
            raise ValueError
        values = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"“{text.strip()}” is not a time (seconds, m:ss or h:mm:ss)") from None
    if any(not 0 <= v < float("inf") for v in values) or any(v >= 60 for v in values[1:]):
        raise ValueError(f"“{text.strip()}” is not a time (seconds, m:ss or h:mm:ss)")
    total = 0.0
    for v in values:
        total = total * 60 + v
    return total


def progress_text(done: int, total: int, rate: float) -> str:
    """'1.2 GB of 8.3 GB · 12.3 MB/s · about 10 min left' (``rate`` in bytes per second, 0: unknown)."""
    parts = [f"{size_text(done)} of {size_text(total)}"]
    if rate > 0:
        parts.append(f"{size_text(rate)}/s")
        left = (total - done) / rate
        if left >= 90:
            parts.append(f"about {left / 60:.0f} min left")
        elif done < total:
            parts.append(f"about {max(1, round(left))} s left")
    return " · ".join(parts)
