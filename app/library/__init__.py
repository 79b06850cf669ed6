"""The local library: every session in one SQLite file (sqlite-utils), no Qt."""

from .db import LibraryError, NotFound
from .library import Library

__all__ = ["Library", "LibraryError", "NotFound"]
