"""What the window tests share: a main window over a private data folder, closed after the test."""

from __future__ import annotations

import pytest

from app.ui.bootstrap import build_services
from app.ui.main_window import MainWindow


@pytest.fixture
def window(qtbot, tmp_path):
    services = build_services(tmp_path / "home")
    w = MainWindow(services)
    qtbot.addWidget(w)
    w.resize(1100, 720)
    w.show()
    yield w
    w.close()
    services.close()
