"""``python main.py models list | check | download | import``."""

from __future__ import annotations

import json
import shutil
import sys
import threading
import time
from pathlib import Path

from .cli import EXIT_OK, UsageError
from .fsutil import atomic_copy


def _gb(n: float) -> str:
    """A size for people: 1.5 MB, 812 MB, 7.3 GB."""
    if n >= 1e9:
        return f"{n / 1e9:.1f} GB"
    if n >= 1e7:
        return f"{n / 1e6:.0f} MB"
    return f"{n / 1e6:.1f} MB"


def run_models(args) -> int:
    return {"list": models_list, "check": models_check, "download": models_download,
            "import": models_import}[args.models_command](args)


def models_list(args) -> int:
    from .engine.catalogue import load_catalogue, local_paths
    from .engine.download import is_downloaded
    from .engine.resolve import resolve_model
    from .engine.errors import ModelError
    from .settings import Settings

    settings = Settings.load()
    try:
        current = resolve_model(settings=settings)
    except ModelError:
        current = None
    rows = []
    for e in load_catalogue():
        m, p = local_paths(e)
        rows.append({"name": e.name, "title": e.title, "default": e.default,
                     "size_bytes": e.total_size, "ram_gb": e.ram_gb,
                     "downloaded": is_downloaded(e), "model": str(m), "mmproj": str(p)})
    cur = None if current is None else {"model": str(current.model),
                                         "mmproj": str(current.mmproj) if current.mmproj else None,
                                         "source": current.source}
    if args.json:
        print(json.dumps({"catalogue": rows, "current": cur}, indent=2))
        return EXIT_OK
    for r in rows:
        mark = "*" if r["default"] else " "
        state = "downloaded" if r["downloaded"] else f"~{_gb(r['size_bytes'])} to download"
        print(f"{mark} {r['name']:<28} {state:<22} needs ~{r['ram_gb']} GB RAM  {r['title']}")
    if cur:
        print(f"\nin use ({cur['source']}): {cur['model']}" + (f" + {cur['mmproj']}" if cur["mmproj"] else ""))
    else:
        print("\nno model in use yet: 'models download' or 'models import MODEL MMPROJ'")
    return EXIT_OK


def models_check(args) -> int:
    from .engine.errors import ModelError
    from .engine.gguf_check import check_pair
    from .engine.resolve import resolve_model

    choice = resolve_model(args.model, args.mmproj)
    if choice.mmproj is None:
        raise ModelError("no mmproj given: Minutely needs the projector for audio and images")
    info = check_pair(choice.model, choice.mmproj)
    print(f"model:  {choice.model} ({_gb(info.model.file_size)}, {info.model.arch}, width {info.n_embd}, "
          f"chat template: {'yes' if info.has_chat_template else 'NO'})")
    print(f"mmproj: {choice.mmproj} (audio: {'yes' if info.has_audio else 'no'}, "
          f"vision: {'yes' if info.has_vision else 'no'})")
    if not info.has_chat_template:
        raise ModelError(f"{choice.model.name} carries no chat template")
    if args.load:
        from .engine.engine import Engine, EngineConfig

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
        eta = (total - done) / rate if rate > 0 else 0
        line = f"{pct:5.1f}%  {_gb(done)} of {_gb(total)}  {rate / 1e6:.1f} MB/s  {eta / 60:.0f} min left"
        print(("\r" + line) if self.tty else line, end="" if self.tty else "\n", file=sys.stderr,
              flush=True)


def models_download(args) -> int:
    from .engine.catalogue import get_entry
    from .engine.download import download
    from .settings import Settings

    entry = get_entry(args.name)
    print(f"downloading {entry.title} (~{_gb(entry.total_size)}); Ctrl-C pauses, run again to resume",
          file=sys.stderr)
    cancel = threading.Event()
    try:
        model, mmproj = download(entry, progress=_Progress(), cancel=cancel)
    finally:
        print(file=sys.stderr)
    s = Settings.load()
    s.model_path, s.mmproj_path, s.model_name = str(model), str(mmproj), entry.name
    s.save()
    print(f"ready: {model}\n       {mmproj}")
    return EXIT_OK


def models_import(args) -> int:
    from .engine.gguf_check import check_pair
    from .paths import models_dir
    from .settings import Settings

    model, mmproj = Path(args.model).expanduser(), Path(args.mmproj).expanduser()
    for p, what in ((model, "model"), (mmproj, "mmproj")):
        if not p.is_file():
            raise UsageError(f"{what} file not found: {p}")
    check_pair(model, mmproj)  # raises ModelError with the reason
    name = model.stem
    if args.copy:
        dest = models_dir() / "imported" / name
        dest.mkdir(parents=True, exist_ok=True)
        need = model.stat().st_size + mmproj.stat().st_size
        free = shutil.disk_usage(dest).free
        if free < need:
            raise UsageError(f"not enough disk space to copy: need {_gb(need)}, {_gb(free)} free")
        model = atomic_copy(model, dest / model.name)
        mmproj = atomic_copy(mmproj, dest / mmproj.name)
    else:
        model, mmproj = model.resolve(), mmproj.resolve()
    s = Settings.load()
    s.model_path, s.mmproj_path, s.model_name = str(model), str(mmproj), name
    s.save()
    print(f"imported ({'copied' if args.copy else 'referenced'}): {model}\n{' ' * 22}{mmproj}")
    return EXIT_OK
