"""The data folder and the typed settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from app import paths
from app.settings import Settings
from tests.support import ROOT


def test_data_folder_follows_minutely_home(_private_home):
    assert paths.data_dir() == _private_home and _private_home.is_dir()
    assert paths.models_dir() == _private_home / "models"
    assert paths.settings_path() == _private_home / "settings.json"


def test_platform_default_without_override(monkeypatch, tmp_path):
    monkeypatch.delenv("MINUTELY_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert paths.data_dir(create=False) == tmp_path / "xdg" / "Minutely"


def test_settings_round_trip(_private_home):
    s = Settings.load()
    assert s == Settings()  # no file yet: defaults
    s.n_threads, s.n_ctx, s.language, s.capture_interval = 3, 8192, "de", 5.0
    s.save()
    assert Settings.load() == s
    assert json.loads(paths.settings_path().read_text())["n_ctx"] == 8192


def test_bad_values_fall_back_to_defaults(_private_home):
    paths.settings_path().write_text(json.dumps(
        {"n_threads": "many", "n_ctx": 4096, "capture_interval": 3, "unknown_key": 1, "n_gpu_layers": True}))
    s = Settings.load()
    assert s.n_threads == Settings().n_threads and s.n_gpu_layers == 0
    assert s.n_ctx == 4096 and s.capture_interval == 3.0


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", ""])
def test_damaged_settings_file_still_starts(_private_home, content):
    paths.settings_path().write_text(content)
    assert Settings.load() == Settings()


def test_save_is_atomic(_private_home, monkeypatch):
    Settings(n_ctx=4096).save()

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        Settings(n_ctx=1234).save()
    assert Settings.load().n_ctx == 4096  # the old file is intact
    assert [p.name for p in _private_home.iterdir() if p.name.startswith(".settings.json-")] == []


def test_headless_layers_import_no_qt():
    """engine, media, settings and the CLI run without Qt (napari-style contract)."""
    code = ("import sys, app.engine.engine, app.engine.host, app.engine.download, app.media.audio, "
            "app.settings, app.cli, app.cli.models; "
            "bad = [m for m in sys.modules if m.startswith(('PySide6', 'shiboken6', 'PyQt'))]; "
            "print(bad); sys.exit(1 if bad else 0)")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 0, p.stdout + p.stderr
