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
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

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
    use_drafter: bool = True      # decode answers with the model's MTP drafter when it is downloaded
    # the model on a server instead (an OpenAI-compatible endpoint; "" = this computer)
    model_server: str = ""        # e.g. http://gpu-box:8080 (llama-server, vLLM, another Minutely's serve)
    model_server_model: str = ""  # the model name to ask for ("" = the server's first)
    model_server_token: str = ""  # bearer token, if the server wants one
    model_server_audio: bool = True  # the server takes input_audio (transcription, dictation)
    # capture and transcription
    capture_interval: float = 10.0  # seconds between screen grabs
    language: str = ""            # "" = detect
    translate_to: str = ""        # "" = no translation
    mic_device: str = "default"   # microphone: "default", a device name or "pulse:SOURCE"
    system_device: str = "auto"   # system audio: "auto" (what the computer plays), "off", or a device
    screen_capture: bool = False  # take screenshots while recording (off until the user opts in)
    user_name: str = defaults.USER_NAME  # your name on what the microphone hears (recordings with system audio)
    global_push_to_talk: bool = False  # F9 held in any app dictates (X11 only; off until the user opts in)
    # the team's words and the calendar
    glossary: list[str] = field(default_factory=list)  # names, products, acronyms: spelling hints for the model
    replacements: dict[str, str] = field(default_factory=dict)  # "Mini Lee" -> "Minutely" in every transcript
    calendar_folder: str = ""     # a folder of .ics files (re)imported as the calendar ("" = none)
    notes_folder: str = ""        # where sessions are exported as Markdown notes (an Obsidian vault)
    notes_auto_export: bool = False  # export the note whenever a summary finishes
    # meeting detection and auto-stop
    detect_meetings: bool = True  # offer to record when a meeting app starts using the microphone
    auto_record_apps: list[str] = field(default_factory=list)  # apps ("Zoom", "Teams") recorded without asking
    auto_stop_silence_minutes: float = 5.0  # a detected meeting stops after this much silence (0 = never)
    # the model for other apps on this computer (an OpenAI-compatible endpoint on 127.0.0.1)
    serve_model: bool = False
    serve_port: int = 8765

    @classmethod
    def load(cls, path: Path | None = None) -> Settings:
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
            if _fits(v, t):
                kw[f.name] = v
            else:
                log.warning("setting %s has the wrong type; using its default", f.name)
        return cls(**kw)

    def save(self, path: Path | None = None) -> None:
        data = json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)
        atomic_write_text(path or paths.settings_path(), data + "\n")


def _fits(v: Any, t: Any) -> bool:
    """``v`` is a value of type ``t``: a plain type (a bool is no int), list[str] or dict[str, str]."""
    origin = get_origin(t)
    if origin is list:
        (item,) = get_args(t)
        return isinstance(v, list) and all(isinstance(x, item) for x in v)
    if origin is dict:
        kt, vt = get_args(t)
        return isinstance(v, dict) and all(isinstance(k, kt) and isinstance(x, vt) for k, x in v.items())
    return isinstance(v, t) and not (t is int and isinstance(v, bool))
