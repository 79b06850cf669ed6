"""Start the desktop app: `python main.py` (optionally with files to import).

One bootstrap: QApplication, the services (library, settings, the model and
io workers), then the main window, shown before the model loads (that
happens in the background).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

log = logging.getLogger("minutely.ui")


def asset(name: str) -> Path | None:
    """A file from assets/, in a source checkout or a bundled app."""
    roots = [Path(__file__).resolve().parents[2] / "assets"]
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        roots.insert(0, Path(bundle) / "assets")
    for r in roots:
        p = r / name
        if p.exists():
            return p
    return None


def make_application(argv: list[str] | None = None):
    from PySide6.QtGui import QGuiApplication, QIcon
    from PySide6.QtWidgets import QApplication

    from app import __version__

    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("Minutely")
    app.setApplicationDisplayName("Minutely")
    app.setApplicationVersion(__version__)
    app.setOrganizationName("Minutely")
    QGuiApplication.setDesktopFileName("minutely")
    icon = asset("minutely.svg")
    if icon is not None:
        app.setWindowIcon(QIcon(str(icon)))
    return app


def run_app(files: list[str] | None = None, data_dir: str | Path | None = None) -> int:
    from PySide6.QtCore import QTimer

    from .bootstrap import build_services
    from .main_window import MainWindow

    from app import paths

    from .single_instance import SingleInstance, server_name

    app = make_application()
    guard = SingleInstance(server_name(data_dir or paths.data_dir()))
    if guard.send_to_running([str(f) for f in files or []]):
        return 0  # the open window was raised and imports the files
    guard.listen()
    services = build_services(data_dir)
    window = MainWindow(services)
    guard.received.connect(window.second_start)
    window.show()
    for f in files or []:
        window.importer.import_file(Path(f))
    QTimer.singleShot(0, services.model.preload)  # after the window is up
    try:
        return app.exec()
    finally:
        guard.close()
        services.close()
