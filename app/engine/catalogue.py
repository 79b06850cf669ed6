"""The catalogue of model pairs Minutely can download.

The list is data (``catalogue.json`` beside this module), so a new model is a
JSON edit, not a code change. A user may add entries, or override a built-in
one (same name, e.g. to point at a mirror repo), in
``<data folder>/models/catalogue.json`` with the same format; a broken user
file is logged and ignored rather than blocking the app. Sizes here are
approximate, for display and planning: the exact size and sha256 of each file
come from the hub's metadata when downloading.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

from ..paths import models_dir as _default_models_dir
from .errors import ModelError

# Where a download stages its partial files, beside the finished ones (here, not in download.py,
# so the app can show what is on disk without importing the HTTP stack).
STAGING_DIR = ".download"

log = logging.getLogger("minutely.catalogue")

CATALOGUE_FILE = "catalogue.json"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_RESERVED = {"imported", CATALOGUE_FILE}
_REQUIRED = ("name", "repo", "model_file", "mmproj_file")


@dataclass(frozen=True)
class CatalogueEntry:
    name: str          # folder name under models/, and what `models download NAME` takes
    title: str         # what a person reads
    repo: str          # "owner/name" on the hub
    revision: str      # branch, tag or commit
    model_file: str    # file names in the repo
    mmproj_file: str
    model_size: int    # bytes (approximate when approx is true)
    mmproj_size: int
    ram_gb: float      # memory needed for a 16k context on CPU
    default: bool = False
    approx: bool = True
    drafter_file: str = ""  # optional: the model's MTP drafter (arch gemma4-assistant), fetched with it
    drafter_size: int = 0

    @property
    def total_size(self) -> int:
        return self.model_size + self.mmproj_size + self.drafter_size


def _repo_file(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"'{key}' must be a non-empty string")
    p = PurePosixPath(value)
    if p.is_absolute() or ".." in p.parts or "\\" in value or not p.name.endswith(".gguf"):
        raise ValueError(f"'{key}' must be a .gguf file path inside the repo, got {value!r}")
    return value


def _entry(raw: Any) -> CatalogueEntry:
    if not isinstance(raw, dict):
        raise ValueError("each model must be a JSON object")
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise ValueError(f"model entry lacks {', '.join(missing)}")
    name = raw["name"]
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in _RESERVED:
        raise ValueError(f"bad model name {name!r} (letters, digits, '.', '_', '-')")
    repo = raw["repo"]
    if not isinstance(repo, str) or not re.fullmatch(r"[\w.-]+/[\w.-]+", repo):
        raise ValueError(f"'repo' must be 'owner/name', got {repo!r}")

    def num(key: str, default: float, kind: type) -> Any:
        v = raw.get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise ValueError(f"'{key}' must be a number >= 0, got {v!r}")
        return kind(v)

    def flag(key: str, default: bool) -> bool:
        v = raw.get(key, default)
        if not isinstance(v, bool):
            raise ValueError(f"'{key}' must be true or false, got {v!r}")
        return v

    model_file = _repo_file(raw["model_file"], "model_file")
    mmproj_file = _repo_file(raw["mmproj_file"], "mmproj_file")
    drafter_file = _repo_file(raw["drafter_file"], "drafter_file") if raw.get("drafter_file") else ""
    names = [PurePosixPath(f).name for f in (model_file, mmproj_file, drafter_file) if f]
    if len(set(names)) != len(names):
        raise ValueError("'model_file', 'mmproj_file' and 'drafter_file' must have different file names")
    title = raw.get("title", name)
    revision = raw.get("revision", "main")
    if not isinstance(title, str) or not isinstance(revision, str) or not revision:
        raise ValueError("'title' and 'revision' must be strings")
    return CatalogueEntry(
        name=name, title=title, repo=repo, revision=revision,
        model_file=model_file, mmproj_file=mmproj_file,
        model_size=num("model_size", 0, int), mmproj_size=num("mmproj_size", 0, int),
        ram_gb=num("ram_gb", 0.0, float),
        default=flag("default", False), approx=flag("approx", True),
        drafter_file=drafter_file, drafter_size=num("drafter_size", 0, int) if drafter_file else 0)


def parse_catalogue(text: str) -> list[CatalogueEntry]:
    """Parse catalogue JSON text; raises ValueError with the reason."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"not valid JSON ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise ValueError("expected an object with a 'models' list")
    entries = [_entry(m) for m in data["models"]]
    names = [e.name for e in entries]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ValueError(f"duplicate model name(s): {', '.join(sorted(dup))}")
    return entries


def _builtin() -> list[CatalogueEntry]:
    text = resources.files(__package__).joinpath(CATALOGUE_FILE).read_text(encoding="utf-8")
    return parse_catalogue(text)


def user_catalogue_path(models_dir: Path | None = None) -> Path:
    return (models_dir if models_dir is not None else _default_models_dir()) / CATALOGUE_FILE


def _user(models_dir: Path | None) -> list[CatalogueEntry]:
    path = user_catalogue_path(models_dir)
    if not path.is_file():
        return []
    try:
        return parse_catalogue(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        log.warning("ignoring the user model catalogue %s: %s", path, e)
        return []


def load_catalogue(models_dir: Path | None = None) -> list[CatalogueEntry]:
    """Built-in entries, then the user's (a user entry replaces a built-in of the same name).

    Exactly one entry comes back with ``default=True``: the user's first default if
    the user file marks one, else the built-in default (else the first entry).
    """
    entries = {e.name: e for e in _builtin()}
    user = _user(models_dir)
    for e in user:
        if e.name in entries:
            log.info("user catalogue entry '%s' replaces the built-in one", e.name)
        entries[e.name] = e
    ordered = list(entries.values())
    user_default = next((e.name for e in user if e.default), None)
    default = user_default or next((e.name for e in ordered if e.default), None)
    default = default or (ordered[0].name if ordered else None)
    return [dataclasses.replace(e, default=(e.name == default)) if e.default != (e.name == default)
            else e for e in ordered]


def get_entry(name: str | None = None, models_dir: Path | None = None) -> CatalogueEntry:
    """The entry called ``name``, or the default one when ``name`` is None."""
    entries = load_catalogue(models_dir)
    for e in entries:
        if (name is None and e.default) or e.name == name:
            return e
    known = ", ".join(e.name for e in entries)
    if name is None:
        raise ModelError(f"the model catalogue has no default entry; known: {known}")
    raise ModelError(f"unknown model '{name}'; known: {known}")


def local_paths(entry: CatalogueEntry, models_dir: Path | None = None) -> tuple[Path, Path]:
    """Where a downloaded pair lives: ``<models>/<name>/<model file>`` and its projector."""
    root = (models_dir if models_dir is not None else _default_models_dir()) / entry.name
    return (root / PurePosixPath(entry.model_file).name,
            root / PurePosixPath(entry.mmproj_file).name)


def drafter_path(entry: CatalogueEntry, models_dir: Path | None = None) -> Path | None:
    """Where the entry's MTP drafter lives once downloaded (None: the entry has none)."""
    if not entry.drafter_file:
        return None
    return local_paths(entry, models_dir)[0].parent / PurePosixPath(entry.drafter_file).name


def drafter_beside(model: Path, models_dir: Path | None = None) -> Path | None:
    """The downloaded drafter of the catalogue entry whose model file ``model`` is (same folder and
    name), if it is there: what lets a pair chosen by path (settings, --model) use its drafter."""
    for e in load_catalogue(models_dir):
        if e.drafter_file and PurePosixPath(e.model_file).name == model.name:
            d = model.parent / PurePosixPath(e.drafter_file).name
            if d.is_file():
                return d
    return None
