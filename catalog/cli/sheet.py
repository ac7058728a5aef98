"""``mnist-catalog sheet``: a contact sheet of a selection, as one PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from catalog.cli.options import with_selection
from catalog.cli.output import say_left_out
from catalog.cli.state import open_catalog
from catalog.selection import Selection


@with_selection(defaults={"limit": 200})
def sheet(
    ctx: typer.Context,
    output: Annotated[Path, typer.Option("--output", "-o", help="PNG file to write.")],
    selection: Selection,
    cols: Annotated[int, typer.Option("--cols", min=1, help="Digits per row.")] = 20,
    scale: Annotated[int, typer.Option("--scale", min=1, max=16, help="Enlargement.")] = 2,
) -> None:
    """Write a contact sheet: a grid of the selected digits, labels under each."""

    selected = open_catalog(ctx).selected(selection)
    picture, n = selected.contact_sheet(cols=cols, scale=scale)
    picture.save(output, format="PNG")
    whole = selected.count() if selection.limit is not None and n == selection.limit else n
    shown = f"{n:,} of {whole:,}" if whole > n else f"{n:,}"
    more = f" (--limit {selection.limit:,})" if whole > n else ""
    typer.echo(f"Wrote {shown} digits to {output}{more}")
    say_left_out(selected.left_out())
