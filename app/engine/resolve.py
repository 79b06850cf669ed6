"""Which model pair to use: explicit paths, then the environment, then settings.

Order everywhere (CLI and app): ``--model/--mmproj``, else ``MINUTELY_MODEL`` /
``MINUTELY_MMPROJ``, else the pair configured in settings (imported or
downloaded), else the catalogue's default if it has been downloaded. The MTP
drafter: ``MINUTELY_DRAFTER``, else the catalogue's drafter beside the model file.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelError

ENV_MODEL = "MINUTELY_MODEL"
ENV_MMPROJ = "MINUTELY_MMPROJ"
ENV_DRAFTER = "MINUTELY_DRAFTER"


@dataclass(frozen=True)
class ModelChoice:
    model: Path
    mmproj: Path | None
    source: str  # "arguments", "environment", "settings", "catalogue"
    # the model's MTP drafter: MINUTELY_DRAFTER, else the catalogue's drafter downloaded beside
    # the model file (None: there is none; whether it is used is the engine's n_draft)
    drafter: Path | None = None


def resolve_model(model: str | os.PathLike | None = None, mmproj: str | os.PathLike | None = None,
                  settings=None) -> ModelChoice:
    choice = _resolve_pair(model, mmproj, settings)
    env = os.environ.get(ENV_DRAFTER)
    if env:
        return dataclasses.replace(choice, drafter=Path(env))
    from .catalogue import drafter_beside

    return dataclasses.replace(choice, drafter=drafter_beside(choice.model))


def _resolve_pair(model, mmproj, settings) -> ModelChoice:
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
    bundled = bundled_pair()
    if bundled is not None:
        return ModelChoice(bundled[0], bundled[1], "bundled")
    raise ModelError("no model yet: run 'python main.py models download' "
                     "or 'python main.py models import MODEL.gguf MMPROJ.gguf'")


def bundled_pair(app_dir: str | os.PathLike | None = None) -> tuple[Path, Path] | None:
    """A GGUF pair shipped inside an offline installer (packaging/build.py --with-model).

    It lies in ``models/`` beside the packaged executable, named by ``models/bundled.json``.
    Used only when nothing else is configured: a model the user downloads or imports wins.
    """
    import json
    import sys

    if app_dir is None:
        if not getattr(sys, "frozen", False):
            return None
        app_dir = Path(sys.executable).resolve().parent
    d = Path(app_dir) / "models"
    try:
        names = json.loads((d / "bundled.json").read_text(encoding="utf-8"))
        m, p = d / names["model"], d / names["mmproj"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (m, p) if m.is_file() and p.is_file() else None
