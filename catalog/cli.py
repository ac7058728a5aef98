"""The ``mnist-catalog`` command line: a thin layer over the library.

Commands turn arguments into library calls, and results and errors into text
and exit codes. A :class:`~catalog.errors.CatalogError` becomes ``Error: ...``
on stderr and exit code 1, in one place (:class:`CatalogGroup`).
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
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
from sqlalchemy import Engine
from typer.core import TyperGroup

from catalog import db, query
from catalog.download import download_dataset
from catalog.errors import CatalogError
from catalog.export import FORMATS, LAYOUTS, LISTS, export_images
from catalog.fingerprints import KNOWN_DATASETS
from catalog.pictures import render_text, save_png, selection_sheet
from catalog.query import Selection
from catalog.store import decode_source
from catalog.store import ingest as ingest_source


class CatalogGroup(TyperGroup):
    """Turns the errors a user can fix into one line on stderr and exit code 1."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except CatalogError as exc:
            typer.echo(f"Error: {exc}", err=True)
            raise typer.Exit(code=1) from None
        except KeyboardInterrupt:
            typer.echo("Interrupted: the catalog keeps what was committed before.", err=True)
            raise typer.Exit(code=130) from None


app = typer.Typer(
    cls=CatalogGroup,
    help="A catalog for MNIST-style digit datasets: ingest, query, export, audit.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(cls=CatalogGroup, help="Inspect and upgrade the catalog's schema.")
app.add_typer(db_app, name="db")

stderr = Console(stderr=True)


@dataclass
class State:
    location: str | None
    engine: Engine | None = None

    def open(self) -> Engine:
        if self.engine is None:
            self.engine = db.open_engine(self.location)
        return self.engine


def state(ctx: typer.Context) -> State:
    root = ctx.find_root()
    if not isinstance(root.obj, State):
        root.obj = State(None)
    return root.obj


@app.callback()
def main(
    ctx: typer.Context,
    db_location: Annotated[
        str | None,
        typer.Option(
            "--db",
            envvar=db.DB_ENV,
            help="Catalog file or SQLAlchemy URL (default ./catalog.db).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """A catalog for MNIST-style digit datasets: ingest, query, export, audit."""
    ctx.obj = State(db_location)


@contextmanager
def named_bars(*columns: ProgressColumn) -> Iterator[Callable[[str, int, int | None], None]]:
    """Rich bars on stderr, one per name, set as ``update(name, done, total)``;
    silent when stderr is not a terminal (pipes, CI, tests)."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        *columns,
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
def progress_bar(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """One bar, advanced by a count of items done."""
    columns = (MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with named_bars(*columns) as update:
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            update(description, done, total)

        yield advance


def echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


# --- shared options -------------------------------------------------------------

DatasetOpt = Annotated[
    str | None, typer.Option("--dataset", "-d", help="Dataset name (default: the only one).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
SplitOpt = Annotated[
    list[str] | None, typer.Option("--split", "-s", help="Split to select; repeatable.")
]
LabelOpt = Annotated[
    list[str] | None, typer.Option("--label", "-l", help="Label(s) 0-9; repeatable or 3,5.")
]
IndexOpt = Annotated[
    str | None, typer.Option("--index", help="Half-open index range A:B within a split.")
]
SampleOpt = Annotated[int | None, typer.Option("--sample", help="Uniform random sample of N.")]
PerLabelOpt = Annotated[
    int | None, typer.Option("--per-label", help="N random images of each label.")
]
SeedOpt = Annotated[
    int, typer.Option("--seed", help="Seed for --sample, --per-label, --order random.")
]
OrderOpt = Annotated[str, typer.Option("--order", help="index or random.")]
LimitOpt = Annotated[int | None, typer.Option("--limit", help="At most N images.")]
OffsetOpt = Annotated[int, typer.Option("--offset", help="Skip the first N images.")]


def parse_labels(values: list[str] | None) -> tuple[str, ...]:
    """Labels as given (numbers or class names); the library checks them against
    the dataset's label set. Commas separate labels unless the name has one."""
    labels: list[str] = []
    for value in values or []:
        labels.extend(part.strip() for part in value.split(",") if part.strip())
    return tuple(labels)


def parse_range(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    start, sep, stop = value.partition(":")
    try:
        return int(start or 0), int(stop) if sep and stop else sys.maxsize
    except ValueError:
        msg = f"{value!r} is not a range A:B of whole numbers"
        raise typer.BadParameter(msg, param_hint="--index") from None


def make_selection(
    dataset: str | None,
    split: list[str] | None,
    label: list[str] | None,
    index: str | None,
    sample: int | None,
    per_label: int | None,
    seed: int,
    order: str,
    limit: int | None,
    offset: int,
) -> Selection:
    return Selection(
        dataset=dataset,
        splits=tuple(split or ()),
        labels=parse_labels(label),
        index_range=parse_range(index),
        sample=sample,
        per_label=per_label,
        seed=seed,
        order=order,
        limit=limit,
        offset=offset,
    )


# --- commands ---------------------------------------------------------------------


@app.command()
def ingest(
    ctx: typer.Context,
    source: Annotated[
        str,
        typer.Argument(
            help="IDX folder or file, mnist.pkl.gz, mnist.npz, a folder of images, "
            "or mnist / fashion-mnist / kmnist to download.",
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
    as_json: JsonOpt = False,
) -> None:
    """Decode SOURCE into the catalog, in one transaction: all of it or nothing."""
    path = Path(source).expanduser()
    if not path.exists() and source in KNOWN_DATASETS:
        with named_bars(DownloadColumn(), TransferSpeedColumn()) as on_bytes:
            files = download_dataset(
                source, cache_dir=cache, mirrors=mirror or None,
                progress=lambda file_name, done, total: on_bytes(file_name, done, total),
            )  # fmt: skip
        path = files[0].parent
        dataset = dataset or source
    engine = state(ctx).open()
    decoded = decode_source(path)  # once: it sizes the bar and feeds the ingest
    with (
        db.session_scope(engine, write=True) as session,
        progress_bar(f"Ingesting {path.name}", decoded.total) as advance,
    ):
        result = ingest_source(
            session, path, dataset=dataset, replace=replace, progress=advance, decoded=decoded
        )
    if as_json:
        echo_json(
            {
                "dataset": result.dataset,
                "format": result.format,
                "counts": result.counts,
                "already_present": result.already_present,
                "replaced": result.replaced,
                "files": [asdict(f) | {"genuine": result.genuine.get(f.uri)} for f in result.files],
            }
        )
        return
    counts = ", ".join(f"{split} {n:,}" for split, n in result.counts.items())
    if result.already_present:
        typer.echo(f"Already in the catalog: {result.dataset} ({counts}); nothing ingested.")
        return
    replaced = f" (replaced {', '.join(result.replaced)})" if result.replaced else ""
    typer.echo(f"Ingested {result.total:,} images into {result.dataset}{replaced}: {counts}")
    for file in result.files:
        genuine = result.genuine.get(file.uri)
        mark = f"genuine {genuine}" if genuine else "not a known genuine file"
        note = f"; {file.note}" if file.note else ""
        typer.echo(f"  {file.role or file.format}: {file.uri} ({mark}{note})")


@app.command()
def datasets(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List datasets with their splits, counts per label, sources and identity."""
    engine = state(ctx).open()
    with db.session_scope(engine) as session:
        summaries = query.list_datasets(session)
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
        for split, n in summary.splits.items():
            per_label = " ".join(str(c) for c in summary.label_counts[split])
            typer.echo(f"  {split:<6} {n:>7,}   labels 0-9: {per_label}")
        for source in summary.sources:
            mark = "genuine" if source["genuine"] else "unknown"
            typer.echo(f"  source {source['role'] or source['format']}: {source['uri']} [{mark}]")


@app.command()
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
    engine = state(ctx).open()
    with db.session_scope(engine) as session:
        row, pixels = query.get_image(session, dataset, split, int(index_text))
    if png is not None:
        save_png(pixels, png, scale)
    if as_json:
        echo_json(asdict(row) | {"height": pixels.shape[0], "width": pixels.shape[1]})
        return
    typer.echo(render_text(pixels))
    typer.echo(f"{row.dataset} {row.split}:{row.index}  label {row.label}  sha256 {row.sha256}")
    if png is not None:
        typer.echo(f"Wrote {png}")


@app.command("query")
def query_command(
    ctx: typer.Context,
    dataset: DatasetOpt = None,
    split: SplitOpt = None,
    label: LabelOpt = None,
    index: IndexOpt = None,
    sample: SampleOpt = None,
    per_label: PerLabelOpt = None,
    seed: SeedOpt = 0,
    order: OrderOpt = "index",
    limit: LimitOpt = None,
    offset: OffsetOpt = 0,
    output: Annotated[
        str, typer.Option("--format", "-f", help="table, csv, json, jsonl or ids.")
    ] = "table",
) -> None:
    """Print the selected images, one row each (with exported file paths)."""
    if output not in ("table", "csv", "json", "jsonl", "ids"):
        msg = f"{output!r} is not one of table, csv, json, jsonl, ids"
        raise typer.BadParameter(msg, param_hint="--format")
    selection = make_selection(
        dataset, split, label, index, sample, per_label, seed, order, limit, offset
    )
    engine = state(ctx).open()
    with db.session_scope(engine) as session:
        rows = query.iter_rows(session, selection)
        write_rows(rows, output)


def write_rows(rows: Iterator[query.ImageRow], output: str) -> None:
    out = sys.stdout
    fields = ["dataset", "split", "index", "label", "sha256", "paths"]
    if output == "json":
        echo_json([asdict(row) | {"paths": list(row.paths)} for row in rows])
    elif output == "jsonl":
        for row in rows:
            typer.echo(
                json.dumps({k: getattr(row, k) for k in fields} | {"paths": list(row.paths)})
            )
    elif output == "ids":
        for row in rows:
            typer.echo(f"{row.split}:{row.index}")
    elif output == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(fields)
        for row in rows:
            writer.writerow(
                [row.dataset, row.split, row.index, row.label, row.sha256, ";".join(row.paths)]
            )
        out.write(buffer.getvalue())
    else:
        typer.echo(
            f"{'dataset':<12} {'split':<6} {'index':>6} {'label':>5}  sha256            paths"
        )
        for row in rows:
            paths = " ".join(row.paths)
            typer.echo(
                f"{row.dataset:<12} {row.split:<6} {row.index:>6} {row.label:>5}  "
                f"{row.sha256[:16]}  {paths}".rstrip()
            )


@app.command()
def count(
    ctx: typer.Context,
    dataset: DatasetOpt = None,
    split: SplitOpt = None,
    label: LabelOpt = None,
    index: IndexOpt = None,
    sample: SampleOpt = None,
    per_label: PerLabelOpt = None,
    seed: SeedOpt = 0,
    by: Annotated[str, typer.Option("--by", help="split, label or split,label.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Count the selected images, optionally grouped by split and/or label."""
    selection = make_selection(
        dataset, split, label, index, sample, per_label, seed, "index", None, 0
    )
    keys = [key.strip() for key in by.split(",") if key.strip()]
    engine = state(ctx).open()
    with db.session_scope(engine) as session:
        counts = query.count_images(session, selection, keys)
    if as_json:
        if keys:
            echo_json([dict(zip(keys, group, strict=True)) | {"count": n} for group, n in counts])
        else:
            echo_json({"count": counts[0][1] if counts else 0})
        return
    if not keys:
        typer.echo(str(counts[0][1] if counts else 0))
        return
    typer.echo("  ".join(f"{key:>6}" for key in keys) + f"  {'count':>7}")
    for group, n in counts:
        typer.echo("  ".join(f"{value!s:>6}" for value in group) + f"  {n:>7}")
    typer.echo(f"{'total':>{8 * len(keys) - 2}}  {sum(n for _, n in counts):>7}")


@app.command()
def export(
    ctx: typer.Context,
    out_dir: Annotated[Path, typer.Argument(help="Export folder.", show_default=False)],
    dataset: DatasetOpt = None,
    split: SplitOpt = None,
    label: LabelOpt = None,
    index: IndexOpt = None,
    sample: SampleOpt = None,
    per_label: PerLabelOpt = None,
    seed: SeedOpt = 0,
    order: OrderOpt = "index",
    limit: LimitOpt = None,
    offset: OffsetOpt = 0,
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
        typer.Option("--jobs", "-j", min=1, help="Worker processes (default: all cores)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write the selected images into OUT_DIR and record every file in the catalog."""
    selection = make_selection(
        dataset, split, label, index, sample, per_label, seed, order, limit, offset
    )
    engine = state(ctx).open()
    with db.session_scope(engine) as session:
        total = query.count_selected(session, selection)
        with progress_bar(f"Exporting to {out_dir}", total) as advance:
            result = export_images(
                session, selection, out_dir, layout=layout, fmt=fmt, quality=quality,
                lists=lists or (), overwrite=overwrite, jobs=jobs, progress=advance,
            )  # fmt: skip
    if as_json:
        echo_json(
            {
                "export_id": result.export_id, "root": str(result.root), "count": result.count,
                "written": result.written, "skipped": result.skipped,
                "manifest": str(result.manifest), "lists": [str(p) for p in result.lists],
            }
        )  # fmt: skip
        return
    typer.echo(
        f"Exported {result.count:,} images to {result.root} "
        f"({result.written:,} written, {result.skipped:,} already there); "
        f"manifest {result.manifest.name}" + "".join(f", {p.name}" for p in result.lists)
    )


@app.command()
def exports(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List past exports: when, where, what selection, how many files."""
    engine = state(ctx).open()
    with db.session_scope(engine) as session:
        records = query.list_exports(session)
    if as_json:
        echo_json(records)
        return
    if not records:
        typer.echo("No exports yet.")
        return
    for record in records:
        typer.echo(
            f"#{record['id']}  {record['created_at']}  {record['root']}  "
            f"{record['layout']}/{record['format']}  {record['count']:,} images "
            f"({record['written']:,} written)  files on record: {record['files']:,}"
        )


@app.command()
def sheet(
    ctx: typer.Context,
    output: Annotated[Path, typer.Option("--output", "-o", help="PNG file to write.")],
    dataset: DatasetOpt = None,
    split: SplitOpt = None,
    label: LabelOpt = None,
    index: IndexOpt = None,
    sample: SampleOpt = None,
    per_label: PerLabelOpt = None,
    seed: SeedOpt = 0,
    order: OrderOpt = "index",
    limit: Annotated[int | None, typer.Option("--limit", help="At most N images.")] = 200,
    offset: OffsetOpt = 0,
    cols: Annotated[int, typer.Option("--cols", min=1, help="Digits per row.")] = 20,
    scale: Annotated[int, typer.Option("--scale", min=1, max=16, help="Enlargement.")] = 2,
) -> None:
    """Write a contact sheet: a grid of the selected digits, labels under each."""
    selection = make_selection(
        dataset, split, label, index, sample, per_label, seed, order, limit, offset
    )
    engine = state(ctx).open()
    with db.session_scope(engine) as session:
        picture, n = selection_sheet(session, selection, cols=cols, scale=scale)
    picture.save(output, format="PNG")
    typer.echo(f"Wrote {n} digits to {output}")


@app.command("audit")
def audit_command(
    ctx: typer.Context,
    dataset: Annotated[
        str | None, typer.Option("--dataset", "-d", help="Dataset to audit (default: all).")
    ] = None,
    split: SplitOpt = None,
    check: Annotated[
        list[str] | None, typer.Option("--check", help="Run only these checks; repeatable.")
    ] = None,
    as_json: JsonOpt = False,
    html_path: Annotated[
        Path | None, typer.Option("--html", help="Write a self-contained HTML report here.")
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 on warnings too, not only on errors.")
    ] = False,
    seed: SeedOpt = 0,
) -> None:
    """Audit datasets: identity, balance, duplicates, odd images, label errors, files.

    Exits 1 when a finding is an error (with --strict: a warning or an error).
    """
    from catalog.audit import CHECKS, audit
    from catalog.report import render_html
    from catalog.report import render_text as render_report

    engine = state(ctx).open()
    bars = named_bars(MofNCompleteColumn(), TimeElapsedColumn())
    with db.session_scope(engine) as session, bars as on_progress:
        report = audit(
            session, dataset=dataset, splits=tuple(split or ()),
            checks=tuple(check or CHECKS), seed=seed, progress=on_progress,
        )  # fmt: skip
        if html_path is not None:
            html_path.write_text(render_html(report, session), encoding="utf-8")
    if as_json:
        echo_json(report.to_json())
    else:
        typer.echo(render_report(report))
        if html_path is not None:
            typer.echo(f"\nWrote {html_path}")
    worst = report.worst
    if worst == "error" or (strict and worst == "warning"):
        raise typer.Exit(code=1)


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Upgrade the catalog's schema to the newest revision."""
    engine = db.make_engine(state(ctx).location)
    before = db.current_revision(engine)
    db.upgrade(engine)
    after = db.current_revision(engine)
    typer.echo(f"Catalog at revision {after}" + (f" (was {before})" if before != after else ""))


@db_app.command("current")
def db_current(ctx: typer.Context) -> None:
    """Print the catalog's schema revision and the newest one."""
    engine = db.make_engine(state(ctx).location)
    current = db.current_revision(engine)
    head = db.head_revision(engine)
    status = (
        "up to date" if current == head else "needs upgrade (opened catalogs upgrade themselves)"
    )
    typer.echo(f"{current or 'empty'} (head {head}: {status})")


if __name__ == "__main__":  # pragma: no cover
    app()
