"""A small typed settings object, stored as JSON in the data folder.

Every key is a typed dataclass field with a default; unknown keys in the file
are ignored, and a value of the wrong type falls back to its default (a hand
edit never stops the app from starting). Writes are atomic (temp file +
rename), so a crash mid-write leaves the previous settings intact.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, get_type_hints

from . import defaults, paths
from .fsutil import atomic_write_text

log = logging.getLogger("minutely.settings")


@dataclass
class Settings:
    # the model
    model_path: str = ""          # GGUF of the language model ("" = the catalogue default)
    mmproj_path: str = ""         # its projector
    model_name: str = ""          # catalogue entry the paths came from, if any
    n_threads: int = 0            # 0 = automatic
    n_gpu_layers: int = 0         # -1 = all layers on the GPU
    n_ctx: int = defaults.N_CTX   # context size in tokens
    image_tokens: int = defaults.IMAGE_TOKENS  # default per-image token budget (70-1120)
    # capture and transcription
    capture_interval: float = 10.0  # seconds between screen grabs
    language: str = ""            # "" = detect
    translate_to: str = ""        # "" = no translation
    mic_device: str = "default"   # microphone: "default", a device name or "pulse:SOURCE"
    system_device: str = "auto"   # system audio: "auto" (what the computer plays), "off", or a device
    screen_capture: bool = False  # take screenshots while recording (off until the user opts in)
    user_name: str = defaults.USER_NAME  # your name on what the microphone hears (recordings with system audio)
    global_push_to_talk: bool = False  # F9 held in any app dictates (X11 only; off until the user opts in)

    @classmethod
    def load(cls, path: Path | None = None) -> "Settings":
        path = path or paths.settings_path()
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as e:
            log.warning("settings file unreadable (%s); using defaults", e)
            return cls()
        if not isinstance(raw, dict):
            return cls()
        hints = get_type_hints(cls)
        kw: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in raw:
                continue
            v, t = raw[f.name], hints[f.name]
            if t is float and isinstance(v, int) and not isinstance(v, bool):
                v = float(v)
            if isinstance(v, t) and not (t is int and isinstance(v, bool)):
                kw[f.name] = v
            else:
                log.warning("setting %s has the wrong type; using its default", f.name)
        return cls(**kw)

    def save(self, path: Path | None = None) -> None:
        data = json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)
        atomic_write_text(path or paths.settings_path(), data + "\n")
