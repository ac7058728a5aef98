"""``mnist-catalog db upgrade`` and ``db current``: the catalog's schema revision."""

from __future__ import annotations

import typer

from catalog.cli.state import state


def db_upgrade(ctx: typer.Context) -> None:
    """Upgrade the catalog's schema to the newest revision."""
    from catalog import db

    engine = db.make_engine(state(ctx).location)
    before = db.current_revision(engine)
    db.upgrade(engine)
    after = db.current_revision(engine)
    typer.echo(f"Catalog at revision {after}" + (f" (was {before})" if before != after else ""))


def db_current(ctx: typer.Context) -> None:
    """Print the catalog's schema revision and the newest one."""
    from catalog import db

    engine = db.make_engine(state(ctx).location)
    current = db.current_revision(engine)
    head = db.head_revision(engine)
    status = (
        "up to date" if current == head else "needs upgrade (opened catalogs upgrade themselves)"
    )
    typer.echo(f"{current or 'empty'} (head {head}: {status})")
