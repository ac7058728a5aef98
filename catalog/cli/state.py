"""The catalog a command line run works on: opened once, on first use, closed at exit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from catalog.api.handle import Catalog


@dataclass
class State:
    """What ``--db`` named, and the catalog once a command opened it."""

    location: str | None
    catalog: Catalog | None = None


def state(ctx: typer.Context) -> State:
    root = ctx.find_root()
    if not isinstance(root.obj, State):
        root.obj = State(None)
    return root.obj


def say(message: str) -> None:
    """Tell the user on stderr what we wait for (another client's lock)."""
    typer.echo(message, err=True)


def open_catalog(ctx: typer.Context) -> Catalog:
    """The catalog ``--db`` names, opened (and upgraded) on first use."""
    current = state(ctx)
    if current.catalog is None:
        from catalog.api.handle import Catalog

        current.catalog = Catalog.open(current.location, on_wait=say)
        ctx.find_root().call_on_close(current.catalog.close)
    return current.catalog
