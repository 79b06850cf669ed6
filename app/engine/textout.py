"""Turning sampled token bytes into text pieces: incremental UTF-8 and stop strings.

A stop string may arrive split across tokens, so text that could be the start
of one is held back until it cannot be; the answer ends before the stop string.
"""

from __future__ import annotations

import codecs


class TextOut:
    def __init__(self, stop: tuple[str, ...] = ()):
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.stop = stop
        self._hold = max((len(s) for s in stop), default=0)
        self.text = ""
        self._emitted = 0
        self.stopped = False  # a stop string was found

    def add(self, data: bytes) -> str:
        """Feed one token's bytes; return the text that is now safe to show."""
        self.text += self._decoder.decode(data)
        if self.stop:
            start = max(0, self._emitted - self._hold)
            cut = min((i for i in (self.text.find(s, start) for s in self.stop) if i >= 0), default=-1)
            if cut >= 0:
                self.text = self.text[:cut]
                self.stopped = True
                return self._take(len(self.text))
            return self._take(max(self._emitted, len(self.text) - self._hold + 1))
        return self._take(len(self.text))

    def finish(self) -> str:
        """The rest, once generation has ended."""
        if not self.stopped:
            self.text += self._decoder.decode(b"", final=True)
        return self._take(len(self.text))

    def _take(self, upto: int) -> str:
        if upto <= self._emitted:
            return ""
        piece = self.text[self._emitted:upto]
        self._emitted = upto
        return piece
