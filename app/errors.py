"""The root of the errors a user may see, and the one way to show one.

Every layer raises a subclass of ``MinutelyError`` whose message is written for the user (what
went wrong with what, in one sentence); the CLI prints it as one line and exits non-zero, the
window shows it as one line. Anything else is a bug: it is logged with its traceback and still
shown as one line, never as a traceback.
"""

from __future__ import annotations


class MinutelyError(Exception):
    """An error whose message is fit for the user."""


def one_line(e: BaseException | str | None) -> str:
    """The message on one line (newlines and runs of spaces collapsed); the type's name when
    there is no message. An OSError reads "FILE: reason", without "[Errno N]"."""
    if e is None:
        return ""
    if isinstance(e, str):
        return " ".join(e.split())
    if isinstance(e, OSError) and e.strerror:
        text = f"{str(e.filename) + ': ' if e.filename else ''}{e.strerror}"
    else:
        text = str(e)
    return " ".join(text.split()) or type(e).__name__
