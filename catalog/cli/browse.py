"""Reading the catalog: ``datasets``, ``show``, ``query`` and ``count``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from catalog.cli.options import DatasetOpt, JsonOpt, with_selection
from catalog.cli.output import ROW_FORMATS, echo_json, say_left_out, write_rows
from catalog.cli.state import open_catalog
from catalog.selection import Selection


def datasets(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List datasets with their splits, counts per label, sources and identity."""
    summaries = open_catalog(ctx).datasets()
    if as_json:
        echo_json([asdict(s) for s in summaries])
        return
    if not summaries:
        typer.echo("No datasets yet: run `mnist-catalog ingest SOURCE`.")
        return
    for summary in summaries:
        identity = (
            f"genuine {summary.genuine}" if summary.genuine else "not a known genuine dataset"
        )
        typer.echo(f"{summary.name}  ({identity})")
        typer.echo(f"  labels: {label_line(summary.labels, summary.label_names)}")
        for split, n in summary.splits.items():
            per_label = shown_at_most(f"{c:,}" for c in summary.label_counts[split])
            unlabeled = summary.unlabeled.get(split, 0)
            none = f"   unlabeled {unlabeled:,}" if unlabeled else ""
            typer.echo(f"  {split:<6} {n:>7,}   per label: {per_label}{none}")
        for source in summary.sources:
            mark = "genuine" if source["genuine"] else "unknown"
            typer.echo(f"  source {source['role'] or source['format']}: {source['uri']} [{mark}]")


#: Labels a line of ``datasets`` shows (names, or counts per label); the rest are counted.
SHOWN_LABELS = 12


def shown_at_most(items: Iterable[str], sep: str = " ") -> str:
    """The first :data:`SHOWN_LABELS` items, then ``... (N)`` for all N of them."""
    listed = list(items)
    shown = sep.join(listed[:SHOWN_LABELS])
    return shown + (f"{sep}... ({len(listed):,})" if len(listed) > SHOWN_LABELS else "")


def label_line(numbers: list[int], names: list[str]) -> str:
    """``10 classes: 0 T-shirt/top, 1 Trouser, ...`` (digits as ``0-9``).

    >>> label_line([0, 1_000_000, 2**31 - 1], ["0", "1000000", "2147483647"])
    '3 classes: 0, 1000000, 2147483647'
    """
    if not numbers:
        return "none"
    plain = names == [str(n) for n in numbers]
    if plain and len(numbers) > 1 and numbers[-1] - numbers[0] == len(numbers) - 1:  # no gap
        return f"{len(numbers)} classes, {numbers[0]}-{numbers[-1]}"
    pairs = (
        name if name == str(n) else f"{n} {name}" for n, name in zip(numbers, names, strict=True)
    )
    return f"{len(numbers)} classes: {shown_at_most(pairs, ', ')}"


def show(
    ctx: typer.Context,
    image: Annotated[str, typer.Argument(help="SPLIT:INDEX, e.g. test:0.", show_default=False)],
    dataset: DatasetOpt = None,
    png: Annotated[Path | None, typer.Option("--png", help="Also write it as a PNG here.")] = None,
    scale: Annotated[int, typer.Option("--scale", min=1, max=64, help="PNG enlargement.")] = 8,
    as_json: JsonOpt = False,
) -> None:
    """Print one digit in the terminal with its label and digest."""
    split, sep, index_text = image.partition(":")
    if not sep or not index_text.isdigit():
        msg = f"{image!r} is not SPLIT:INDEX (e.g. test:0)"
        raise typer.BadParameter(msg, param_hint="IMAGE")
    row, pixels = open_catalog(ctx).image(split, int(index_text), dataset=dataset)
    from catalog.export.sheets import render_text, save_png

    if png is not None:
        save_png(pixels, png, scale)
    if as_json:
        echo_json(asdict(row) | {"height": pixels.shape[0], "width": pixels.shape[1]})
        return
    typer.echo(render_text(pixels))
    label = "none" if row.label is None else str(row.label)
    named = f" ({row.name})" if row.name and row.name != label else ""
    meta = "".join(f"  {k}={v}" for k, v in sorted(row.meta.items()))
    typer.echo(
        f"{row.dataset} {row.split}:{row.index}  label {label}{named}  sha256 {row.sha256}{meta}"
    )
    if png is not None:
        typer.echo(f"Wrote {png}")


@with_selection()
def query(
    ctx: typer.Context,
    selection: Selection,
    output: Annotated[
        str, typer.Option("--format", "-f", help="table, csv, json, jsonl or ids.")
    ] = "table",
    as_json: JsonOpt = False,
) -> None:
    """Print the selected images, one row each (current label, tags, exported paths).

    A label a decision changed shows the source's label beside it.
    """
    output = "json" if as_json else output
    if output not in ROW_FORMATS:
        msg = f"{output!r} is not one of {', '.join(ROW_FORMATS)}"
        raise typer.BadParameter(msg, param_hint="--format")

    selected = open_catalog(ctx).selected(selection)
    write_rows(selected.iter_rows(), output)
    say_left_out(selected.left_out())


@with_selection(omit=("order", "limit", "offset"))
def count(
    ctx: typer.Context,
    selection: Selection,
    by: Annotated[str, typer.Option("--by", help="split, label or split,label.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Count the selected images (current labels), optionally grouped by split and/or label."""

    keys = [key.strip() for key in by.split(",") if key.strip()]
    selected = open_catalog(ctx).selected(selection)
    counts = list(selected.counts(keys).items())
    left_out = selected.left_out()
    say_left_out(left_out)
    names = selected.label_set() if "label" in keys else None
    at = keys.index("label") if "label" in keys else -1
    if as_json:
        if keys:
            echo_json(
                [
                    dict(zip(keys, group, strict=True))
                    | ({"name": names.name(group[at])} if names is not None else {})
                    | {"count": n}
                    for group, n in counts
                ]
            )
        else:
            echo_json({"count": counts[0][1] if counts else 0, "left_out": left_out})
        return
    if not keys:
        typer.echo(str(counts[0][1] if counts else 0))
        return
    shown = []
    for group, n in counts:
        values = [str(value) for value in group]
        if names is not None:
            label = group[at]
            name = names.name(label)
            values[at] = (
                "unlabeled"
                if label is None
                else (values[at] if name == values[at] else f"{label} {name}")
            )
        shown.append((values, n))
    width = max([6, *(len(v) for values, _ in shown for v in values)])
    typer.echo("  ".join(f"{key:>{width}}" for key in keys) + f"  {'count':>9}")
    for values, n in shown:
        typer.echo("  ".join(f"{value:>{width}}" for value in values) + f"  {n:>9,}")
    typer.echo(f"{'total':>{(width + 2) * len(keys) - 2}}  {sum(n for _, n in counts):>9,}")
