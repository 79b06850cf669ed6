"""Minutely: an offline meeting assistant running one local Gemma 4 model."""

import logging

__version__ = "0.1.0"
APP_NAME = "Minutely"

# A library never prints on its own: without a configured handler, log records
# (llama.cpp's chatter included) go nowhere instead of to stderr.
logging.getLogger("minutely").addHandler(logging.NullHandler())
