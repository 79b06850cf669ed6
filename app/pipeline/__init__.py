"""Jobs that tie the engine, media and the library together (no Qt)."""
