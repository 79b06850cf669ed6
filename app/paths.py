"""Where Minutely keeps its data: one folder per user, by platform convention.

Linux: $XDG_DATA_HOME/minutely (~/.local/share/minutely); macOS:
~/Library/Application Support/Minutely; Windows: %LOCALAPPDATA%\\Minutely.
``MINUTELY_HOME`` overrides it (the tests always set it to a temp folder).

Layout: library.sqlite3, settings.json, media/<session-id>/, models/, logs/.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_HOME = "MINUTELY_HOME"


def data_dir(create: bool = True) -> Path:
    env = os.environ.get(ENV_HOME)
    if env:
        p = Path(env).expanduser()
    else:
        import platformdirs

        p = Path(platformdirs.user_data_dir("Minutely", appauthor=False, roaming=False))
    if create:
        p.mkdir(parents=True, exist_ok=True)
    return p


def models_dir(create: bool = True) -> Path:
    p = data_dir(create) / "models"
    if create:
        p.mkdir(parents=True, exist_ok=True)
    return p


def settings_path() -> Path:
    return data_dir() / "settings.json"


def logs_dir() -> Path:
    p = data_dir() / "logs"
    p.mkdir(parents=True, exist_ok=True)
    return p
