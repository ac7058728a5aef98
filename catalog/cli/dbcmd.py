"""``mnist-catalog db``: the catalog's schema revision (``upgrade``, ``current``), its
integrity (``check``) and a consistent copy of it (``backup``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from catalog.cli.options import JsonOpt
from catalog.cli.output import counted_bar, echo_json, named_bars
from catalog.cli.state import open_catalog, say, state

if TYPE_CHECKING:
    from catalog.integrity.report import IntegrityReport


def db_upgrade(ctx: typer.Context) -> None:
    """Upgrade the catalog's schema to the newest revision."""
    from catalog.db import schema
    from catalog.db.engine import make_engine

    engine = make_engine(state(ctx).location)
    before = schema.current_revision(engine)
    schema.upgrade(engine, on_wait=say)
    after = schema.current_revision(engine)
    typer.echo(f"Catalog at revision {after}" + (f" (was {before})" if before != after else ""))


def db_current(ctx: typer.Context) -> None:
    """Print the catalog's schema revision and the newest one."""
    from catalog.db import schema
    from catalog.db.engine import make_engine

    engine = make_engine(state(ctx).location)
    current = schema.current_revision(engine)
    head = schema.head_revision(engine)
    if current == head:
        status = "up to date"
    elif current is not None and not schema.is_known(current):
        status = "newer than this mnist-catalog: upgrade mnist-catalog to write"
    elif current is None or engine.dialect.name == "sqlite":
        status = "needs upgrade (opened catalogs upgrade themselves)"
    else:
        status = "needs upgrade: run mnist-catalog db upgrade"
    typer.echo(f"{current or 'empty'} (head {head}: {status})")


def db_check(
    ctx: typer.Context,
    files: Annotated[
        bool, typer.Option("--files", help="Also check every exported file on record.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check the catalog, as git fsck checks a repository: every image's pixels against
    its sha256, the decision log against the stored state, the label counts against the
    images (and with --files every exported file). Names each broken row; exit 1 if any.
    """
    catalog = open_catalog(ctx)
    with counted_bar("Checking the catalog") as (advance, set_total):
        report = catalog.check(files=files, progress=advance, on_total=set_total)
    if as_json:
        echo_json(report.to_json())
    else:
        for row in report.broken:
            typer.echo(str(row))
        typer.echo(_summary(report))
    if not report.ok:
        raise typer.Exit(code=1)


#: How the summary line names the rows each check read (one of them).
_READ = {"pixels": "image", "decisions": "decision", "label-counts": "label count",
         "files": "exported file"}  # fmt: skip


def _summary(report: IntegrityReport) -> str:
    """``Checked the database file, 70,000 images, ... in 2.1 s: nothing is broken.``"""
    read = ["the database file"] if report.checked.get("storage") else []
    for name, what in _READ.items():
        if name in report.checked:
            n = report.checked[name]
            read.append(f"{n:,} {what}{'' if n == 1 else 's'}")
    seconds = sum(report.seconds.values())
    named = len(report.broken)
    total = sum(report.broken_counts.values())
    if not total:
        outcome = "nothing is broken"
    else:
        plural = "" if total == 1 else "s"
        more = f" ({total - named:,} not named above)" if total > named else ""
        outcome = f"{total:,} broken row{plural}{more}"
    return f"Checked {', '.join(read)} in {seconds:.1f} s: {outcome}."


def db_backup(
    ctx: typer.Context,
    out: Annotated[
        Path,
        typer.Argument(
            help="The new file to write: a SQLite catalog (open it with --db OUT), or for "
            "a PostgreSQL catalog pg_dump's custom format (pg_restore reads it).",
            show_default=False,
        ),
    ],
) -> None:
    """Copy the catalog, consistently, while others read and write it."""
    catalog = open_catalog(ctx)
    with named_bars("elapsed") as update:
        backup = catalog.backup(
            out, progress=lambda done, total: update("Backing up (pages)", done, total)
        )
    size = backup.size / (1 << 20)
    typer.echo(
        f"Backed up the catalog to {backup.path} ({size:,.1f} MiB, {backup.method}) "
        f"in {backup.seconds:.1f} s"
    )
    if backup.restore:
        typer.echo(backup.restore)
    else:
        typer.echo(f"Open it with: mnist-catalog --db {backup.path} datasets")
