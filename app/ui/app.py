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
    QGuiApplication.setApplicationDisplayName("Minutely")
    app.setApplicationVersion(__version__)
    app.setOrganizationName("Minutely")
    QGuiApplication.setDesktopFileName("minutely")
    icon = asset("minutely.svg")
    if icon is not None:
        QApplication.setWindowIcon(QIcon(str(icon)))
    return app


def no_display() -> str | None:
    """Why no window can open here (checked first: Qt aborts the process when it cannot)."""
    import os

    if sys.platform.startswith("linux") and not os.environ.get("QT_QPA_PLATFORM") and not (
            os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return ("no display to open the window on (not in a desktop session); "
                "the commands work without one: python main.py --help")
    return None


def run_app(files: list[str] | None = None, data_dir: str | Path | None = None) -> int:
    from PySide6.QtCore import QTimer

    from app import paths

    from .bootstrap import build_services
    from .main_window import MainWindow
    from .single_instance import SingleInstance, server_name

    why = no_display()
    if why:
        print(f"minutely: {why}", file=sys.stderr)
        return 2
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
    import os

    quit_after = os.environ.get("MINUTELY_QUIT_AFTER_MS")  # for smoke tests of the packaged app
    if quit_after and quit_after.isdigit():
        QTimer.singleShot(int(quit_after), window.close)
    try:
        return app.exec()
    finally:
        guard.close()
        services.close()
