"""What commands print: JSON, row listings and progress bars.

rich's progress module loads when a bar is first shown, not with ``--help``.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Literal

import typer

if TYPE_CHECKING:
    from catalog.select.records import ImageRow

#: Extra bar columns: a count of items, elapsed and remaining time, bytes and speed.
Column = Literal["count", "elapsed", "remaining", "bytes", "speed"]
ROW_FORMATS = ("table", "csv", "json", "jsonl", "ids")


def echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


@contextmanager
def named_bars(*columns: Column) -> Iterator[Callable[[str, int, int | None], None]]:
    """Rich bars on stderr, one per name, set as ``update(name, done, total)``;
    silent when stderr is not a terminal (pipes, CI, tests)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TaskID,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    kinds: dict[str, type[ProgressColumn]] = {
        "count": MofNCompleteColumn,
        "elapsed": TimeElapsedColumn,
        "remaining": TimeRemainingColumn,
        "bytes": DownloadColumn,
        "speed": TransferSpeedColumn,
    }
    stderr = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        *(kinds[column]() for column in columns),
        console=stderr,
        transient=True,
        disable=not stderr.is_terminal,
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def update(name: str, done: int, total: int | None) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=total)
            bar.update(tasks[name], completed=done, total=total)

        yield update


@contextmanager
def counted_bar(
    description: str,
) -> Iterator[tuple[Callable[[int], None], Callable[[int], None]]]:
    """One bar whose total the work says when it knows it: ``(advance, set_total)``."""
    with named_bars("count", "elapsed", "remaining") as update:
        state = {"done": 0, "total": -1}

        def advance(n: int) -> None:
            state["done"] += n
            update(description, state["done"], None if state["total"] < 0 else state["total"])

        def set_total(total: int) -> None:
            state["total"] = total
            update(description, state["done"], total)

        yield advance, set_total


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """One bar, advanced by a count of items done."""
    with named_bars("count", "elapsed", "remaining") as update:
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            update(description, done, total)

        yield advance


def write_rows(rows: Iterable[ImageRow], output: str) -> None:
    """Print image rows as ``output``: one of :data:`ROW_FORMATS`."""
    out = sys.stdout
    fields = ["dataset", "split", "index", "label", "sha256", "paths",
              "original_label", "excluded", "tags", "decision", "name", "meta"]  # fmt: skip
    if output == "json":
        echo_json([asdict(row) for row in rows])
    elif output == "jsonl":
        for row in rows:
            typer.echo(json.dumps({k: getattr(row, k) for k in fields}))
    elif output == "ids":
        for row in rows:
            typer.echo(f"{row.split}:{row.index}")
    elif output == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(fields)
        for row in rows:
            meta = ";".join(f"{k}={v}" for k, v in sorted(row.meta.items()))
            label = "" if row.label is None else row.label
            writer.writerow(
                [row.dataset, row.split, row.index, label, row.sha256,
                 ";".join(row.paths), "" if row.original_label is None else row.original_label,
                 int(row.excluded), ";".join(row.tags), row.decision or "", row.name, meta]
            )  # fmt: skip
        out.write(buffer.getvalue())
    else:
        typer.echo(
            f"{'dataset':<12} {'split':<6} {'index':>6} {'label':>5}  sha256            paths"
        )
        for row in rows:
            paths = " ".join(row.paths)
            label = "-" if row.label is None else str(row.label)
            named = f" {row.name}" if row.name and row.name != label else ""
            meta = " ".join(f"{k}={v}" for k, v in sorted(row.meta.items()))
            was = f" (was {row.original_label})" if row.original_label != row.label else ""
            notes = [*row.tags, *(["excluded"] if row.excluded else [])]
            tags = f"  [{', '.join(notes)}]" if notes else ""
            typer.echo(
                f"{row.dataset:<12} {row.split:<6} {row.index:>6} {label:>5}  "
                f"{row.sha256[:16]}  {paths}{named and '  ' + named.strip()}"
                f"{meta and '  ' + meta}".rstrip()
                + was
                + tags
            )


def say_left_out(n: int) -> None:
    """Tell stderr how many excluded images a command left out (nothing when none)."""
    if n:
        typer.echo(
            f"Left out {n:,} excluded image{'' if n == 1 else 's'} (--include-excluded keeps them)",
            err=True,
        )
