"""Run the ``mnist-catalog`` command line in a subprocess that a test steers.

Prints ``ready`` once the catalog is imported, then waits for a line on stdin
before it runs the command (at end of input it exits 1 instead). A test can so
start the interpreter early and time, or kill, only the command's own work:
Python's start-up and imports take most of a second, longer than many of the
commands under test.

With ``--repeat-until PATH`` before the command's arguments, it runs the command
again and again, printing ``---`` before each run, until PATH exists, and then
once more; it stops at the first run that exits non-zero, with that exit code.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from catalog.cli import app

#: What the commands import on first use: imported up front, so only the work is timed.
LAZY_IMPORTS = (
    "alembic.command",
    "alembic.runtime.migration",
    "alembic.script",
    "catalog.sources.idx",
    "catalog.api.handle",  # numpy, SQLAlchemy, Pillow: the command modules load them on first use
    "catalog.sources.download",
)


def main(args: list[str]) -> int:
    for module in LAZY_IMPORTS:
        importlib.import_module(module)
    stop = None
    if args[:1] == ["--repeat-until"]:
        stop, args = Path(args[1]), args[2:]
    print("ready", flush=True)
    if not sys.stdin.readline():
        return 1  # the test went away without saying go
    if stop is None:
        app(args=args, prog_name="mnist-catalog")
        return 0
    while True:
        last = stop.exists()
        print("---", flush=True)
        code = app(args=args, prog_name="mnist-catalog", standalone_mode=False)
        if code:
            return int(code)
        if last:
            return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
