"""Minutely entry point: `python main.py` (commands: `python main.py --help`)."""

import sys

if __name__ == "__main__":
    from app.cli import main

    sys.exit(main())
