"""The desktop window (PySide6). The only package besides capture/screen.py that imports Qt."""
