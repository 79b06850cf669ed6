"""The layer contract: only app/ui (and the screen grab) may import Qt (napari-style)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support import ROOT

QT_ALLOWED = ("app.ui", "app.capture.screen")


def headless_modules() -> list[str]:
    mods = []
    for p in sorted((ROOT / "app").rglob("*.py")):
        rel = p.relative_to(ROOT).with_suffix("")
        name = ".".join(rel.parts)
        if name.endswith(".__init__"):
            name = name[: -len(".__init__")]
        if not name.startswith(QT_ALLOWED):
            mods.append(name)
    return mods


def test_every_headless_module_imports_without_qt():
    mods = headless_modules()
    assert "app.pipeline.transcribe" in mods and "app.cli" in mods and len(mods) > 30
    code = ("import importlib, sys\n"
            f"for m in {mods!r}:\n"
            "    importlib.import_module(m)\n"
            "bad = sorted(m for m in sys.modules if m.startswith(('PySide6', 'shiboken6', 'PyQt')))\n"
            "print(bad); sys.exit(1 if bad else 0)\n")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr


def test_no_module_is_a_god_module():
    """No module over ~600 lines: split along a seam instead."""
    big = {str(p.relative_to(ROOT)): n for p in (ROOT / "app").rglob("*.py")
           if (n := len(p.read_text(encoding="utf-8").splitlines())) > 650}
    assert not big, big


def test_no_headless_module_imports_qt_even_lazily():
    """The import test above misses an import inside a function: read the source too."""
    import ast

    bad = []
    for p in sorted((ROOT / "app").rglob("*.py")):
        name = ".".join(p.relative_to(ROOT).with_suffix("").parts)
        if name.startswith(QT_ALLOWED):
            continue
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(m.split(".")[0] in ("PySide6", "shiboken6", "PyQt5", "PyQt6") for m in mods):
                bad.append(f"{name}:{node.lineno}")
    assert not bad, bad


def test_pipelines_use_the_library_api_not_sql():
    """Pipelines call the library's named methods; only app/library speaks SQL."""
    import re

    sql = re.compile(r"\.(execute|executemany|executescript)\(|\.query\(|\bimport sqlite3\b|sqlite_utils|\bdb\[")
    bad = [f"{p.relative_to(ROOT)}:{i}" for p in sorted((ROOT / "app" / "pipeline").rglob("*.py"))
           for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if sql.search(line)]
    assert not bad, bad


def test_the_library_modules_import_no_cycle():
    """app/library's modules form a tree (summaries and jobs are components, not mixins)."""
    import ast

    lib = ROOT / "app" / "library"
    deps: dict[str, set[str]] = {}
    for p in lib.glob("*.py"):
        mods = set()
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                mods.add(node.module.split(".")[0])
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("app.library."):
                mods.add(node.module.split(".")[2])
        deps[p.stem] = mods - {p.stem}
    seen: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(m: str, path: list[str]) -> None:
        if seen.get(m) == 1:
            raise AssertionError(" -> ".join(path + [m]))
        if seen.get(m) == 2:
            return
        seen[m] = 1
        for d in sorted(deps.get(m, ())):
            visit(d, path + [m])
        seen[m] = 2

    for m in sorted(deps):
        if m != "__init__":
            visit(m, [])


def test_cli_commands_import_only_common_and_start_light():
    """app/cli: a command module takes from its package only `common` (so no module imports
    app.cli's __init__ and there is no cycle), and `import app.cli` loads neither the engine,
    numpy nor Qt: the window starts through it."""
    import ast

    bad = []
    for p in sorted((ROOT / "app" / "cli").glob("*.py")):
        if p.name == "__init__.py":
            continue
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (
                    (node.level == 1 and node.module != "common")
                    or (node.level == 0 and (node.module or "").startswith("app.cli"))):
                bad.append(f"{p.name}:{node.lineno}")
    assert not bad, bad
    code = ("import sys, app.cli\n"
            "heavy = [m for m in ('llama_cpp', 'numpy', 'av', 'PySide6') if m in sys.modules]\n"
            "print(heavy); sys.exit(1 if heavy else 0)\n")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
