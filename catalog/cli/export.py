"""``mnist-catalog export`` and ``exports``: write a selection as files, list past exports."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from catalog.cli.options import JsonOpt, with_selection
from catalog.cli.output import counted_bar, echo_json, progress_bar, say_left_out
from catalog.cli.state import open_catalog
from catalog.selection import Selection

#: :mod:`catalog.export`'s WRITERS (as OUTPUTS), LAYOUTS, FORMATS and LISTS, spelled
#: out here so that ``--help`` does not import numpy and Pillow (a test keeps them equal).
OUTPUTS = ("folder", "idx", "npz", "parquet", "webdataset")
LAYOUTS = ("classic", "by-label", "flat")
FORMATS = ("png", "jpg", "bmp", "pgm")
LISTS = ("caffe", "mxnet", "csv")


@with_selection()
def export(
    ctx: typer.Context,
    out_dir: Annotated[Path, typer.Argument(help="Export folder.", show_default=False)],
    selection: Selection,
    output: Annotated[
        str,
        typer.Option(
            "--as",
            help=", ".join(OUTPUTS) + ": image files, MNIST's IDX files, Keras' npz, "
            "Hugging Face parquet, WebDataset tar shards.",
        ),
    ] = "folder",
    layout: Annotated[str, typer.Option("--layout", help=", ".join(LAYOUTS) + ".")] = "classic",
    fmt: Annotated[str, typer.Option("--format", "-f", help=", ".join(FORMATS) + ".")] = "png",
    quality: Annotated[int, typer.Option("--quality", min=1, max=100, help="JPG quality.")] = 95,
    lists: Annotated[
        list[str] | None, typer.Option("--list", help=", ".join(LISTS) + "; repeatable.")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace files that differ.")
    ] = False,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            "-j",
            min=1,
            help="Worker processes: writing files (folder) or encoding PNGs (parquet, webdataset); default: all cores.",
        ),
    ] = None,
    folder_names: Annotated[
        str, typer.Option("--folder-names", help="by-label folders: numbers or names.")
    ] = "numbers",
    holdout_by: Annotated[
        str | None,
        typer.Option(
            "--holdout-by", help="Metadata key: write train/ and val/ with no value in both."
        ),
    ] = None,
    holdout: Annotated[
        float | None, typer.Option("--holdout", help="Fraction of --holdout-by groups in val/.")
    ] = None,
    shard_size: Annotated[
        int, typer.Option("--shard-size", min=1, help="Images per shard (--as webdataset).")
    ] = 10_000,
    fsync: Annotated[
        bool,
        typer.Option(
            "--fsync/--no-fsync", help="Flush files to disk before recording them (slower, safe)."
        ),
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Write the selected images into OUT_DIR and record every file in the catalog.

    Names, label folders and lists use the current labels; a re-run after
    decisions moves relabelled images' files and removes excluded ones.
    --as folder writes one image file per image; idx, npz, parquet and webdataset
    write a few files that training code reads directly.
    """

    if (holdout_by is None) != (holdout is None):
        msg = "--holdout-by KEY and --holdout FRACTION go together"
        raise typer.BadParameter(msg, param_hint="--holdout")
    selected = open_catalog(ctx).selected(selection)
    if holdout_by is not None and holdout is not None:
        with progress_bar(f"Exporting to {out_dir}", selected.count()) as advance:
            parts = selected.export_holdout(
                out_dir, holdout_by, holdout, progress=advance, output=output, layout=layout,
                fmt=fmt,
                quality=quality, lists=lists or (), overwrite=overwrite, jobs=jobs,
                folder_names=folder_names, shard_size=shard_size, fsync=fsync,
            )  # fmt: skip
        if as_json:
            echo_json({part: export_json(result) for part, result in parts.items()})
            return
        for part, result in parts.items():
            typer.echo(
                f"{part}: exported {result.count:,} images to {result.root} "
                f"({result.written:,} written); export #{result.export_id}"
            )
        typer.echo(f"No {holdout_by} is in both train and val (seed {selection.seed}).")
        return
    with counted_bar(f"Exporting to {out_dir}") as (advance, set_total):
        result = selected.export(
            out_dir, output=output, layout=layout, fmt=fmt, quality=quality, lists=lists or (),
            overwrite=overwrite, jobs=jobs, progress=advance, on_total=set_total,
            folder_names=folder_names, shard_size=shard_size, fsync=fsync,
        )  # fmt: skip
    if as_json:
        echo_json(export_json(result) | {"output": output})
        return
    if result.files:
        typer.echo(
            f"Exported {result.count:,} images to {result.root} as {output}: "
            f"{len(result.files):,} file{'' if len(result.files) == 1 else 's'} "
            f"({result.written:,} images written, "
            f"{result.skipped:,} already there); manifest {result.manifest.name}"
        )
        say_left_out(result.left_out)
        return
    changes = "".join(
        f", {n:,} {what}"
        for n, what in ((result.renamed, "moved to a new label"), (result.removed, "removed"))
        if n
    )
    typer.echo(
        f"Exported {result.count:,} images to {result.root} "
        f"({result.written:,} written, {result.skipped:,} already there{changes}); "
        f"manifest {result.manifest.name}" + "".join(f", {p.name}" for p in result.lists)
    )
    say_left_out(result.left_out)


def export_json(result: Any) -> dict[str, Any]:
    return {
        "export_id": result.export_id, "root": str(result.root), "count": result.count,
        "written": result.written, "skipped": result.skipped,
        "manifest": str(result.manifest), "lists": [str(p) for p in result.lists],
        "renamed": result.renamed, "removed": result.removed, "left_out": result.left_out,
        "files": [str(p) for p in result.files],
    }  # fmt: skip


def exports(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List past exports: when, where, how many files, and whether out of date.

    An export is out of date when decisions were made since about its images.
    """
    records = open_catalog(ctx).exports()
    if as_json:
        echo_json(records)
        return
    if not records:
        typer.echo("No exports yet.")
        return
    for record in records:
        typer.echo(
            f"#{record['id']}  {_when(record['created_at'])}  {record['root']}  "
            f"{record['layout'] or record['output']}/{record['format']}  {record['count']:,} images "
            f"({record['written']:,} written)  files on record: {record['files']:,}"
            + _staleness(record)
        )


def _when(timestamp: str) -> str:
    """``2026-12-07T12:31:16+00:00`` -> ``2026-12-07 12:31:16`` (UTC), as history prints it."""
    return timestamp.replace("T", " ")[:19]


def _staleness(record: dict[str, Any]) -> str:
    since = record.get("decisions_since")
    if not since:
        return "  up to date"
    return f"  OUT OF DATE: {since:,} decision{'' if since == 1 else 's'} since (re-run the export)"
