"""Using a local model pair: check it, copy it into the data folder (or keep it in place), and
make it the pair in use. The one place both ``minutely models import`` and the window's model
manager do this; no Qt here.

Every refusal is a ``ModelError`` in one plain line. ``NotEnoughSpace`` (a ``ModelError``) lets
the command line answer "bad input" (exit 2) for a full disk; ``ImportCancelled`` ends a copy that
the cancel event stopped, leaving no half-copied file.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from ..fmt import size_text
from ..fsutil import atomic_copy, free_bytes
from .errors import ModelError
from .gguf_check import check_pair


class NotEnoughSpace(ModelError):
    """The copy would not fit on the disk."""


class ImportCancelled(ModelError):
    """The cancel event stopped the copy."""


def import_pair(model: Path, mmproj: Path, copy_to: Path | None,
                progress: Callable[[int, int], None] | None = None,
                cancel: threading.Event | None = None) -> tuple[Path, Path, str]:
    """Check a local pair from its headers; copy it under ``copy_to/imported/<name>/`` or keep it
    in place (``copy_to`` None). Returns (model, mmproj, name), name being the model file's stem.
    ``progress(done, total)`` follows the copy in bytes."""
    model, mmproj = Path(model).expanduser(), Path(mmproj).expanduser()
    for p, what in ((model, "model"), (mmproj, "projector (mmproj)")):
        if not str(p).strip() or str(p) == ".":
            raise ModelError(f"choose the {what} file first")
        if not p.is_file():
            raise ModelError(f"the {what} file was not found: {p}")
    if model.resolve() == mmproj.resolve():
        raise ModelError("the model and the projector must be two different files")
    info = check_pair(model, mmproj)
    if not info.has_chat_template:
        raise ModelError(f"{model.name} carries no chat template, so Minutely cannot talk to it")
    name = model.stem
    if copy_to is None:
        return model.resolve(), mmproj.resolve(), name
    dest = Path(copy_to) / "imported" / name
    targets = [(src, dest / src.name) for src in (model, mmproj)]
    targets = [(s, d) for s, d in targets if not (d.exists() and d.resolve() == s.resolve())]
    need = sum(s.stat().st_size for s, _ in targets)
    free = free_bytes(Path(copy_to))
    if need > free:
        raise NotEnoughSpace(f"not enough disk space to copy: need {size_text(need)}, {size_text(free)} free. "
                             "Free some space, or use the files where they are")
    done = 0

    def copied(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, need)
        if cancel is not None and cancel.is_set():
            raise ImportCancelled("the import was cancelled")

    if progress is not None:
        progress(0, need)
    for src, dst in targets:
        atomic_copy(src, dst, on_block=copied)
    out_model, out_mmproj = dest / model.name, dest / mmproj.name
    check_pair(out_model, out_mmproj)  # the copies are whole
    return out_model, out_mmproj, name


def choose_pair(settings, model: Path, mmproj: Path, name: str,
                save: Callable[[], None] | None = None) -> None:
    """Use this pair from now on: written into ``settings`` and saved (``save``, default
    ``settings.save()``). When saving fails the settings keep the old pair and a ModelError says why."""
    old = (settings.model_path, settings.mmproj_path, settings.model_name)
    settings.model_path, settings.mmproj_path, settings.model_name = str(model), str(mmproj), name
    try:
        (save or settings.save)()
    except OSError as e:
        settings.model_path, settings.mmproj_path, settings.model_name = old
        raise ModelError(f"the settings could not be saved ({e.strerror or e})") from None
