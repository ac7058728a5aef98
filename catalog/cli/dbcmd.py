"""``mnist-catalog db upgrade`` and ``db current``: the catalog's schema revision."""

from __future__ import annotations

import typer

from catalog.cli.state import say, state


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
