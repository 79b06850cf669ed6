"""Which model pair to use: explicit paths, then the environment, then settings.

Order everywhere (CLI and app): ``--model/--mmproj``, else ``MINUTELY_MODEL`` /
``MINUTELY_MMPROJ``, else the pair configured in settings (imported or
downloaded), else the catalogue's default if it has been downloaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelError

ENV_MODEL = "MINUTELY_MODEL"
ENV_MMPROJ = "MINUTELY_MMPROJ"


@dataclass(frozen=True)
class ModelChoice:
    model: Path
    mmproj: Path | None
    source: str  # "arguments", "environment", "settings", "catalogue"


def resolve_model(model: str | os.PathLike | None = None, mmproj: str | os.PathLike | None = None,
                  settings=None) -> ModelChoice:
    if model:
        mm = mmproj or os.environ.get(ENV_MMPROJ) or None
        return ModelChoice(Path(model), Path(mm) if mm else None, "arguments")
    if mmproj:
        raise ModelError("--mmproj was given without --model")
    env_model = os.environ.get(ENV_MODEL)
    if env_model:
        mm = os.environ.get(ENV_MMPROJ)
        return ModelChoice(Path(env_model), Path(mm) if mm else None, "environment")
    if settings is None:
        from app.settings import Settings

        settings = Settings.load()
    if settings.model_path:
        return ModelChoice(Path(settings.model_path),
                           Path(settings.mmproj_path) if settings.mmproj_path else None, "settings")
    from .catalogue import get_entry, local_paths

    entry = get_entry(None)
    m, p = local_paths(entry)
    if m.exists() and p.exists():
        return ModelChoice(m, p, "catalogue")
    raise ModelError("no model yet: run 'python main.py models download' "
                     "or 'python main.py models import MODEL.gguf MMPROJ.gguf'")
