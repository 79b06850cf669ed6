"""Minutely entry point: `python main.py` (commands: `python main.py --help`)."""

import sys

if __name__ == "__main__":
    import multiprocessing

    # In a packaged (frozen) app the model's child process is this executable
    # started again by multiprocessing's spawn: let it run the child, not the CLI.
    multiprocessing.freeze_support()
    from app.cli import main

    sys.exit(main())
