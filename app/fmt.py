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
