"""``python main.py models list | check | download | import``."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..fmt import progress_text, size_text
from .common import EXIT_OK, UsageError, add_action, add_actions, load_settings, need_file


def register(sub) -> None:
    actions = add_actions(sub, "models", "list, check, download or import models", "models_command")
    p = add_action(actions, "list", "the catalogue and what is installed", models_list)
    p.add_argument("--json", action="store_true")
    p = add_action(actions, "check", "validate a model + mmproj pair without loading it", models_check)
    p.add_argument("--model", required=False)
    p.add_argument("--mmproj", required=False)
    p.add_argument("--load", action="store_true", help="also load it and answer a test prompt")
    p = add_action(actions, "download", "download a catalogue model (the default if no NAME)", models_download)
    p.add_argument("name", nargs="?")
    p = add_action(actions, "import", "use local GGUF files (validated)", models_import)
    p.add_argument("model")
    p.add_argument("mmproj")
    p.add_argument("--copy", action="store_true", help="copy into the data folder instead of referencing")


def models_list(args) -> int:
    from ..engine.catalogue import drafter_path, load_catalogue, local_paths
    from ..engine.download import is_downloaded
    from ..engine.errors import ModelError
    from ..engine.resolve import resolve_model

    try:
        current = resolve_model(settings=load_settings())
    except ModelError:
        current = None
    rows: list[dict[str, Any]] = []
    for e in load_catalogue():
        m, p = local_paths(e)
        d = drafter_path(e)
        rows.append({"name": e.name, "title": e.title, "default": e.default,
                     "size_bytes": e.total_size, "ram_gb": e.ram_gb,
                     "downloaded": is_downloaded(e), "model": str(m), "mmproj": str(p),
                     "drafter": str(d) if d else None, "drafter_downloaded": bool(d and d.is_file())})
    cur = None if current is None else {"model": str(current.model),
                                         "mmproj": str(current.mmproj) if current.mmproj else None,
                                         "drafter": str(current.drafter) if current.drafter else None,
                                         "source": current.source}
    if args.json:
        print(json.dumps({"catalogue": rows, "current": cur}, indent=2))
        return EXIT_OK
    for r in rows:
        mark = "*" if r["default"] else " "
        state = "downloaded" if r["downloaded"] else f"~{size_text(r['size_bytes'])} to download"
        print(f"{mark} {r['name']:<28} {state:<22} needs ~{r['ram_gb']} GB RAM  {r['title']}")
    if cur:
        print(f"\nin use ({cur['source']}): {cur['model']}" + (f" + {cur['mmproj']}" if cur["mmproj"] else ""))
        if cur["drafter"]:
            print(f"MTP drafter: {cur['drafter']}")
    else:
        print("\nno model in use yet: 'models download' or 'models import MODEL MMPROJ'")
    return EXIT_OK


def models_check(args) -> int:
    from ..engine.errors import ModelError
    from ..engine.gguf_check import check_pair
    from ..engine.resolve import resolve_model

    choice = resolve_model(args.model, args.mmproj)
    if choice.mmproj is None:
        raise ModelError("no mmproj given: Minutely needs the projector for audio and images")
    info = check_pair(choice.model, choice.mmproj)
    print(f"model:  {choice.model} ({size_text(info.model.file_size)}, {info.model.arch}, "
          f"width {info.n_embd}, chat template: {'yes' if info.has_chat_template else 'NO'})")
    print(f"mmproj: {choice.mmproj} (audio: {'yes' if info.has_audio else 'no'}, "
          f"vision: {'yes' if info.has_vision else 'no'})")
    if not info.has_chat_template:
        raise ModelError(f"{choice.model.name} carries no chat template")
    if args.load:
        from ..engine.engine import Engine, EngineConfig

        t = time.perf_counter()
        with Engine(choice.model, choice.mmproj, EngineConfig(n_ctx=2048)) as e:
            r = e.chat([{"role": "user", "content": "Say OK."}], max_tokens=4)
        print(f"loaded and answered in {time.perf_counter() - t:.1f}s ({r.generated_tokens} tokens)")
    print("ok")
    return EXIT_OK


class _Progress:
    """A one-line progress display on stderr."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < (0.2 if self.tty else 5.0) and done < total:
            return
        self.last = now
        rate = done / max(1e-6, now - self.t0)
        pct = 100 * done / total if total else 0
        line = f"{pct:5.1f}%  {progress_text(done, total, rate)}"
        print(("\r" + line) if self.tty else line, end="" if self.tty else "\n", file=sys.stderr,
              flush=True)


def models_download(args) -> int:
    from ..engine.catalogue import get_entry
    from ..engine.download import download
    from ..engine.model_import import choose_pair

    entry = get_entry(args.name)
    print(f"downloading {entry.title} (~{size_text(entry.total_size)}); Ctrl-C pauses, run again to resume",
          file=sys.stderr)
    cancel = threading.Event()
    try:
        model, mmproj = download(entry, progress=_Progress(), cancel=cancel,
                                 with_drafter=load_settings().use_drafter)
    finally:
        print(file=sys.stderr)
    choose_pair(load_settings(), model, mmproj, entry.name)
    print(f"ready: {model}\n       {mmproj}")
    return EXIT_OK


def models_import(args) -> int:
    from ..engine.model_import import NotEnoughSpace, choose_pair, import_pair
    from ..paths import models_dir

    model = need_file(str(Path(args.model).expanduser()), "model file")
    mmproj = need_file(str(Path(args.mmproj).expanduser()), "mmproj file")
    try:  # a wrong pair is a ModelError with the reason (exit 3)
        model, mmproj, name = import_pair(model, mmproj, models_dir() if args.copy else None)
    except NotEnoughSpace as e:
        raise UsageError(str(e)) from None
    choose_pair(load_settings(), model, mmproj, name)
    print(f"imported ({'copied' if args.copy else 'referenced'}): {model}\n{' ' * 22}{mmproj}")
    return EXIT_OK
