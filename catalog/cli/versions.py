"""Version commands: freeze, versions (list, export, import), diff. Each is one call
of the Python API (:class:`catalog.api.versions.VersionsMixin`); the library loads
inside the commands, so ``--help`` stays light."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from catalog.cli.options import JsonOpt, with_selection
from catalog.cli.output import echo_json
from catalog.cli.state import open_catalog
from catalog.selection import Selection

if TYPE_CHECKING:
    from catalog.versions.diff import DiffImage, VersionDiff

NameArg = Annotated[str, typer.Argument(help="The version's name (letters, digits, . _ -).")]


@with_selection()
def freeze(
    ctx: typer.Context,
    name: NameArg,
    selection: Selection,
    note: Annotated[str | None, typer.Option("--note", help="What this version is for.")] = None,
    by: Annotated[str | None, typer.Option("--by", help="Who (default: your login name).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Freeze the selected images, with their labels now, as version NAME; print its content id.

    A version is never edited: `export --version NAME` gives the same files later,
    whatever is relabelled or excluded since.
    """
    info = open_catalog(ctx).freeze(name, selection, note=note, by=by)
    if as_json:
        echo_json(info.to_json())
        return
    splits = ", ".join(f"{split} {n:,}" for split, n in info.splits.items())
    typer.echo(f"Froze {info.count:,} images of {info.dataset} ({splits}) as {info.name}")
    typer.echo(info.content_id)


def versions(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List the versions (name, content id, images per split, note, who, when);
    `versions export` and `versions import` move one between catalogs."""
    if ctx.invoked_subcommand is not None:
        return
    found = open_catalog(ctx).versions()
    if as_json:
        echo_json([info.to_json() for info in found])
        return
    if not found:
        typer.echo("No versions yet: mnist-catalog freeze NAME [filters]")
        return
    for info in found:
        splits = ", ".join(f"{split} {n:,}" for split, n in info.splits.items())
        note = f"  {info.note}" if info.note else ""
        when = info.created_at.strftime("%Y-%m-%d %H:%M:%S")  # UTC, as history prints it
        typer.echo(
            f"{info.name}  {info.content_id[:16]}  {when}  {info.author}  "
            f"{info.dataset}: {splits}{note}"
        )


def export_version(
    ctx: typer.Context,
    name: NameArg,
    file: Annotated[Path, typer.Argument(help="JSON file (.json) or JSONL (any other name).")],
) -> None:
    """Write version NAME to FILE, to import it into another catalog."""
    count = open_catalog(ctx).export_version(name, file)
    typer.echo(f"Wrote version {name} ({count:,} images) to {file}")


def import_version(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A file `versions export` wrote.")],
) -> None:
    """Add the version in FILE, checked against this catalog's images by pixel digest."""
    info = open_catalog(ctx).import_version(file)
    typer.echo(f"Imported version {info.name} ({info.count:,} images of {info.dataset})")
    typer.echo(info.content_id)


def _line(image: DiffImage, old: bool = False) -> str:
    label = "-" if image.label is None else str(image.label)
    if old:
        before = "-" if image.old_label is None else str(image.old_label)
        label = f"{before} -> {label}"
    return f"  {image.split}:{image.index}  {label}"


def _show(result: VersionDiff, limit: int) -> None:
    typer.echo(f"{result.a} -> {result.b} ({result.dataset})")
    for side in ("a", "b"):
        name = result.a if side == "a" else result.b
        splits = ", ".join(f"{s} {n:,}" for s, n in result.counts[side].items())
        typer.echo(f"  {name}: {splits or 'no images'}")
    for kind in ("added", "removed", "relabelled"):
        images: list[DiffImage] = getattr(result, kind)
        by_split = ", ".join(f"{s} {n}" for s, n in result.by(kind, "split").items())
        by_label = ", ".join(f"{k or '-'}: {n}" for k, n in result.by(kind, "label").items())
        detail = f" ({by_split}; by label {by_label})" if images else ""
        typer.echo(f"{kind}: {len(images):,}{detail}")
        for image in images[:limit]:
            typer.echo(_line(image, kind == "relabelled"))
        if len(images) > limit:
            typer.echo(f"  ... {len(images) - limit:,} more (--json lists them all)")


def diff(
    ctx: typer.Context,
    a: Annotated[str, typer.Argument(help="A version, or current.")],
    b: Annotated[str, typer.Argument(help="A version, or current.")],
    limit: Annotated[int, typer.Option("--show", help="Images listed per kind.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """Images added, removed and relabelled (old -> new) from version A to B; `current` is
    the other version's selection as it stands now."""
    result = open_catalog(ctx).diff(a, b)
    if as_json:
        echo_json(result.to_json())
    else:
        _show(result, limit)
