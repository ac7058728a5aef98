"""``mnist-catalog ingest``: decode a source (or download a known dataset) into the catalog.

Its ``--max-...`` options are made from the fields of :class:`~catalog.budget.ReadBudget`
(:func:`with_budget`): adding a limit to the budget adds its option here.
"""

from __future__ import annotations

import inspect
from dataclasses import Field, asdict, fields
from pathlib import Path
from typing import Annotated, Any

import typer

from catalog.budget import ReadBudget, option
from catalog.cli.options import JsonOpt, options_in_place_of, parse_memory
from catalog.cli.output import echo_json, named_bars, progress_bar
from catalog.cli.state import open_catalog, say


def _shown(value: int, size: bool) -> str:
    """A default as ``--help`` shows it: ``64M`` for sizes, ``10,000,000`` for counts."""
    for unit, shift in (("G", 30), ("M", 20), ("K", 10)):
        if size and value >= 1 << shift and value % (1 << shift) == 0:
            return f"{value >> shift}{unit}"
    return f"{value:,}"


def _budget_option(limit: Field[Any]) -> inspect.Parameter:
    """The ``--max-...`` option of one field of the budget: a size (``256M``) for bytes,
    a positive whole number otherwise; a bad value is a usage error (exit 2)."""
    size = "bytes" in limit.metadata["unit"]
    how: dict[str, Any] = (
        {"parser": parse_memory, "metavar": "SIZE"} if size else {"min": 1, "metavar": "N"}
    )
    info = typer.Option(
        option(limit.name),
        help=f"Read budget: {limit.metadata['help']}.",
        show_default=_shown(limit.default, size),  # type: ignore[arg-type]
        **how,
    )
    kind = inspect.Parameter.KEYWORD_ONLY
    return inspect.Parameter(limit.name, kind, default=None, annotation=Annotated[int | None, info])


def _budget_of(given: dict[str, Any]) -> ReadBudget:
    values = {limit.name: given.pop(limit.name) for limit in fields(ReadBudget)}
    return ReadBudget(**{name: value for name, value in values.items() if value is not None})


#: Gives a command the budget's ``--max-...`` options in place of its ``budget`` parameter.
with_budget = options_in_place_of(
    "budget", [_budget_option(limit) for limit in fields(ReadBudget)], _budget_of
)


@with_budget
def ingest(
    ctx: typer.Context,
    source: Annotated[
        str,
        typer.Argument(
            help="IDX folder or file, mnist.pkl.gz, mnist.npz, CSV, parquet, EMNIST's "
            "gzip.zip, QMNIST or Kuzushiji files, a folder of images; or the name "
            "mnist / fashion-mnist / kmnist / k49 / qmnist / emnist: its verified files, "
            "from the download cache or downloaded (./mnist reads a folder named mnist).",
            show_default=False,
        ),
    ],
    dataset: Annotated[
        str | None, typer.Option("--dataset", "-d", help="Dataset name (default from SOURCE).")
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Re-ingest splits that are already there.")
    ] = False,
    mirror: Annotated[
        list[str] | None, typer.Option("--mirror", help="Download from this base URL; repeatable.")
    ] = None,
    cache: Annotated[
        Path | None, typer.Option("--cache", help="Download cache folder.", show_default=False)
    ] = None,
    subset: Annotated[
        str | None,
        typer.Option(
            "--subset", help="EMNIST split: balanced, byclass, bymerge, digits, letters, mnist."
        ),
    ] = None,
    as_json: JsonOpt = False,
    budget: ReadBudget | None = None,  # the --max-... options (with_budget)
) -> None:
    """Decode SOURCE into the catalog, in one transaction: all of it or nothing.

    A source that asks for more than the read budget allows (a bomb, huge images, too
    many labels ...) is refused in one line naming the --max-... option that raises it.
    """
    from catalog.ingest.locate import FROM_PATH, is_known_name, locate_source
    from catalog.ingest.transaction import decode_source

    if is_known_name(source):
        with named_bars("bytes", "speed") as on_bytes:
            located = locate_source(
                source, cache_dir=cache, mirrors=mirror or None,
                progress=lambda file_name, done, total: on_bytes(file_name, done, total),
            )  # fmt: skip
    else:
        located = locate_source(source)
    if located.how != FROM_PATH:
        typer.echo(located.describe(source), err=True)
    if located.note:
        typer.echo(f"Note: {located.note}", err=True)
    path, dataset = located.path, dataset or located.dataset
    catalog = open_catalog(ctx)
    decoded = decode_source(path, subset, budget)  # once: it sizes the bar and feeds the ingest
    with progress_bar(f"Ingesting {path.name}", decoded.total) as advance:
        result = catalog.ingest(
            path, dataset=dataset, replace=replace, progress=advance, decoded=decoded,
            on_wait=say,
        )  # fmt: skip
    for warning in result.warnings:
        typer.echo(f"Warning: {warning}", err=True)
    if as_json:
        echo_json(
            {
                "dataset": result.dataset,
                "format": result.format,
                "counts": result.counts,
                "already_present": result.already_present,
                "replaced": result.replaced,
                "unlabeled": result.unlabeled,
                "label_set": result.label_set,
                "warnings": result.warnings,
                "files": [asdict(f) | {"genuine": result.genuine.get(f.uri)} for f in result.files],
            }
        )
        return
    counts = ", ".join(f"{split} {n:,}" for split, n in result.counts.items())
    if result.already_present:
        typer.echo(f"Already in the catalog: {result.dataset} ({counts}); nothing ingested.")
        return
    replaced = f" (replaced {', '.join(result.replaced)})" if result.replaced else ""
    unlabeled = f" ({result.unlabeled:,} without a label)" if result.unlabeled else ""
    typer.echo(
        f"Ingested {result.total:,} images into {result.dataset}{replaced}: {counts}{unlabeled}"
    )
    for file in result.files:
        genuine = result.genuine.get(file.uri)
        mark = f"genuine {genuine}" if genuine else "not a known genuine file"
        note = f"; {file.note}" if file.note else ""
        typer.echo(f"  {file.role or file.format}: {file.uri} ({mark}{note})")
