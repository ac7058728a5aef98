"""Run several ``mnist-catalog`` processes at once against one catalog.

Each process runs ``tests/scripts/run_cli.py``: it imports, prints ``ready`` and
waits; :func:`run_together` lets all of them go at once, so that their work
overlaps, and collects what each printed.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

RUN_CLI = Path(__file__).parent / "scripts" / "run_cli.py"


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str


def spawn(
    db_url: str | Path, *args: str, until: Path | None = None, new_session: bool = False
) -> subprocess.Popen[str]:
    """Start the CLI on ``db_url``; it imports, then waits for :func:`release`.

    ``until``: repeat the command until that file exists; ``new_session``: in a process
    group of its own (so a test can kill it and its workers together).
    """
    repeat = ["--repeat-until", str(until)] if until is not None else []
    return subprocess.Popen(
        [sys.executable, str(RUN_CLI), *repeat, "--db", str(db_url), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=new_session,
    )


def release(*procs: subprocess.Popen[str]) -> None:
    """Wait until every one of ``procs`` is imported, then let them all run."""
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n", proc.communicate()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()


def start(db_url: str, *args: str) -> subprocess.Popen[str]:
    """Start one command and let it go as soon as it is imported."""
    proc = spawn(db_url, *args)
    release(proc)
    return proc


def finish(proc: subprocess.Popen[str], timeout: float = 300) -> Outcome:
    out, err = proc.communicate(timeout=timeout)
    return Outcome(proc.returncode, out, err)


def run_together(db_url: str, commands: Sequence[Sequence[str]]) -> list[Outcome]:
    """Start every command, wait until all are imported, let them go together."""
    procs = [spawn(db_url, *command) for command in commands]
    release(*procs)
    outcomes = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        outcomes.append(Outcome(proc.returncode, out, err))
    return outcomes


def one_line_error(outcome: Outcome, *fragments: str) -> bool:
    """``outcome`` failed with exit 1 and one ``Error: ...`` line holding ``fragments``."""
    return (
        outcome.code == 1
        and outcome.err.startswith("Error: ")
        and outcome.err.count("\n") == 1
        and all(fragment in outcome.err for fragment in fragments)
    )


def assert_ingest_refused(db_url: str, source: Path, fragments: Sequence[str]) -> None:
    """Ingesting ``source`` beside a dataset already there fails with one line on stderr
    naming every fragment, exit 1, no traceback, and the catalog lists what it did before."""
    from typer.testing import CliRunner

    from catalog.cli import app

    tiny = Path(__file__).parent / "data" / "tiny"
    runner = CliRunner()
    assert runner.invoke(app, ["--db", db_url, "ingest", str(tiny), "-d", "tiny"]).exit_code == 0
    before = runner.invoke(app, ["--db", db_url, "datasets", "--json"]).stdout
    result = runner.invoke(app, ["--db", db_url, "ingest", str(source), "-d", "bad"])
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ")
    assert result.stderr.count("\n") == 1
    for fragment in fragments:
        assert fragment in result.stderr
    assert "Traceback" not in result.stderr
    assert runner.invoke(app, ["--db", db_url, "datasets", "--json"]).stdout == before
