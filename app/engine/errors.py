"""Errors the engine raises. Each carries a one-line message fit for a user."""

from app.errors import MinutelyError


class EngineError(MinutelyError):
    """A request the engine could not answer (bad input, context too small...)."""


class ModelError(EngineError):
    """The model files are missing, wrong or damaged, or failed to load."""


class ContextOverflow(EngineError):
    """The prompt does not fit the context size the settings allow."""


class EngineCrashed(EngineError):
    """The model process died while answering (native crash, killed, out of memory)."""
