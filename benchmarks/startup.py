"""Start-up of the command line, as a user meets it: whole processes, best of N.

``python benchmarks/startup.py [--repeat N]`` prints one JSON object: for ``--help``,
``count --help``, ``export --help`` and the floors (``python -c pass`` and
``python -c "import typer"``), the best and median wall milliseconds and the best CPU
milliseconds (user + system, from the children's rusage) of N runs, and the load.
The commands are run as ``python -m catalog``, so the checkout on ``PYTHONPATH`` is
what is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "floor: python -c pass": [sys.executable, "-c", "pass"],
    "floor: import typer": [sys.executable, "-c", "import typer"],
    "mnist-catalog --help": [sys.executable, "-m", "catalog", "--help"],
    "mnist-catalog count --help": [sys.executable, "-m", "catalog", "count", "--help"],
    "mnist-catalog export --help": [sys.executable, "-m", "catalog", "export", "--help"],
}


def run(command: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run of ``command``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    out: dict[str, object] = {"load_before": [round(x, 2) for x in os.getloadavg()]}
    for name, command in COMMANDS.items():
        run(command)  # warm the page cache
        walls, cpus = zip(*(run(command) for _ in range(args.repeat)), strict=True)
        out[name] = {
            "best_ms": round(1000 * min(walls), 1),
            "median_ms": round(1000 * statistics.median(walls), 1),
            "cpu_ms": round(1000 * min(cpus), 1),
        }
    out["load_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
