"""The local library: every session in one SQLite file (sqlite-utils), no Qt."""

from .db import LibraryError, NotFound
from .library import Library
from .models import FramesResume, JobKind, JobState, SessionState, SummarizeResume, SummaryState, TranscribeResume

__all__ = ["Library", "LibraryError", "NotFound", "JobKind", "JobState", "SessionState", "SummaryState",
           "TranscribeResume", "FramesResume", "SummarizeResume"]
