"""A second start of the app, as a child process: it hands its arguments to the running instance
(app/ui/single_instance.py) and exits 0 if that one took them."""

from __future__ import annotations

import os
import textwrap

from tests.support import ROOT

CLIENT = textwrap.dedent("""
    import sys
    from PySide6.QtCore import QCoreApplication
    from app.ui.single_instance import SingleInstance
    app = QCoreApplication([])
    sys.exit(0 if SingleInstance(sys.argv[1]).send_to_running(sys.argv[2:], 20000) else 1)
""")


def child_env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), QT_QPA_PLATFORM="offscreen")
