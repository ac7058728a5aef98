"""The README's tour works as written: every ``$`` command of its console blocks runs, in
order, in one fresh folder with the plain install's defaults (``./catalog.db``, the
download cache), and prints what the README shows; then its Python block runs.

No network: the cache is filled with the real MNIST files beforehand, as a user's cache
is after a first download, so ``mnist-catalog ingest mnist`` verifies and uses them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
#: Output lines that differ from run to run or machine to machine: paths, times, timings,
#: and the audit's findings (its model's scores move in the last digit across BLAS builds).
VARYING = re.compile(r"~|\.\.\.|20\d\d-\d\d-\d\d|\(\d+\.\d s\)|score|suspects|warning|info$")


def tour() -> list[tuple[str, list[str]]]:
    """``(command, the output lines the README shows)`` of every console block, in order."""
    steps: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```console\n(.*?)```", README, flags=re.DOTALL):
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            elif steps:
                steps[-1][1].append(line)
    return steps


def python_block() -> str:
    section = README.split("### The same in Python", 1)[1]
    blocks: list[str] = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    return blocks[0]


def test_the_tour_is_commands_of_this_tool() -> None:
    commands = [command for command, _ in tour()]
    assert commands[0] == "mnist-catalog ingest mnist"
    assert len(commands) >= 15
    assert all(command.startswith("mnist-catalog ") for command in commands)


@pytest.mark.mnist
@pytest.mark.slow
def test_every_tour_command_runs_as_written(mnist_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache" / "mnist"
    cache.mkdir(parents=True)
    for file in mnist_dir.glob("*.gz"):
        shutil.copy(file, cache / file.name)
    work = tmp_path / "work"
    work.mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith("MNIST_")}
    env |= {
        "MNIST_CATALOG_CACHE": str(tmp_path / "cache"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "PYTHONPATH": str(ROOT),
        "COLUMNS": "200",
    }
    for command, shown in tour():
        result = subprocess.run(
            command, shell=True, cwd=work, env=env, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
        printed = result.stdout + result.stderr
        skip_rest = command.startswith("mnist-catalog audit")
        for line in shown:
            if line.strip() and not skip_rest and not VARYING.search(line):
                assert line.rstrip() in printed, f"{command}: {line!r} not in\n{printed}"
    script = work / "tour.py"
    script.write_text(python_block(), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)], cwd=work, env=env, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "1000" in result.stdout  # few.count()
    assert (work / "few-shot.png").is_file()
