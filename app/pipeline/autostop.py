"""When a meeting recording that an app started should stop by itself.

    a = AutoStop(silence_s=300, release_s=10, countdown_s=30, clock=time.monotonic)
    a.app_released()   /  a.app_back()          # from the MeetingWatcher
    a.update(levels)   -> None | ("countdown", reason, seconds_left) | ("cancelled", reason, 0) | ("stop", reason, 0)

Two reasons: the app that captured the microphone released it (stop `release_s` after, so a
brief release, a device switch in the app, does not end the meeting), or every track was silent
for `silence_s`. Either way a countdown notice comes first (`countdown_s` before, at most half the
wait), and sound or the app coming back cancels it. No Qt, no threads: the caller feeds levels
(rms per track, linear) a few times a second and acts on what it returns; `Meeting.stop()` then
finalizes the files, so nothing recorded is lost.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

SILENCE_RMS = 10 ** (-55 / 20)  # -55 dBFS: below any voice, above digital silence and dither


class AutoStop:
    def __init__(self, silence_s: float | None, release_s: float = 10.0, countdown_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic, threshold: float = SILENCE_RMS):
        self.silence_s, self.release_s, self.countdown_s = silence_s, release_s, countdown_s
        self.clock, self.threshold = clock, threshold
        now = clock()
        self._sound_at = now          # last time any track was above the threshold
        self._released_at: float | None = None
        self._warned: str | None = None  # the reason a countdown was announced for

    def app_released(self) -> None:
        if self._released_at is None:
            self._released_at = self.clock()

    def app_back(self) -> None:
        self._released_at = None

    def _deadline(self) -> tuple[str, float, float] | None:
        """(reason, when it stops, how long before that the countdown starts), the earliest."""
        out = []
        if self._released_at is not None:
            out.append(("the app released the microphone", self._released_at + self.release_s,
                        min(self.countdown_s, self.release_s / 2)))
        if self.silence_s is not None and self.silence_s > 0:
            out.append(("silence on every track", self._sound_at + self.silence_s,
                        min(self.countdown_s, self.silence_s / 2)))
        return min(out, key=lambda x: x[1]) if out else None

    def update(self, levels: Mapping[str, tuple[float, float]]) -> tuple[str, str, float] | None:
        now = self.clock()
        if any(rms > self.threshold for rms, _peak in levels.values()):
            self._sound_at = now
        d = self._deadline()
        if d is None or now < d[1] - d[2]:
            if self._warned is not None:
                why, self._warned = self._warned, None
                return ("cancelled", why, 0.0)
            return None
        reason, at, _ = d
        if now >= at:
            return ("stop", reason, 0.0)
        if self._warned != reason:
            self._warned = reason
            return ("countdown", reason, at - now)
        return None
