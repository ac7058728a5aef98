"""Curation commands: relabel, exclude, include, tag, untag, undo, history,
decisions, apply. Each turns its arguments into one call of the Python API
(:class:`catalog.Catalog`) and its result into a line of text or JSON; the
library loads inside the commands, so ``--help`` stays light."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from catalog.cli.options import DatasetOpt, JsonOpt, with_selection
from catalog.cli.output import echo_json
from catalog.cli.state import open_catalog
from catalog.selection import Selection

if TYPE_CHECKING:
    from catalog.curation.decisions import Summary
    from catalog.curation.log import DecisionRecord

ImagesArg = Annotated[list[str], typer.Argument(help="Images as SPLIT:INDEX.", show_default=False)]
NoteOpt = Annotated[str | None, typer.Option("--note", help="Why (kept in the history).")]
ByOpt = Annotated[str | None, typer.Option("--by", help="Who decides (default: your login name).")]


def report(summary: Summary, as_json: bool = False) -> None:
    if as_json:
        echo_json(summary.__dict__)
    else:
        typer.echo(summary.describe())


def relabel(
    ctx: typer.Context,
    image: Annotated[str, typer.Argument(help="The image, SPLIT:INDEX.", show_default=False)],
    label: Annotated[str, typer.Argument(help="Its label (number or class name).")],
    note: NoteOpt = None,
    by: ByOpt = None,
    dataset: DatasetOpt = None,
) -> None:
    """Record that an image's label is LABEL (the source's label is kept too)."""
    report(open_catalog(ctx).relabel(image, label, dataset=dataset, note=note, by=by))


def exclude(
    ctx: typer.Context,
    images: ImagesArg,
    reason: Annotated[str, typer.Option("--reason", help="Why they are left out.")],
    by: ByOpt = None,
    dataset: DatasetOpt = None,
) -> None:
    """Leave images out of every selection, count, export and array."""
    report(open_catalog(ctx).exclude(images, reason=reason, dataset=dataset, by=by))


def include(
    ctx: typer.Context,
    images: ImagesArg,
    note: NoteOpt = None,
    by: ByOpt = None,
    dataset: DatasetOpt = None,
) -> None:
    """Take excluded images back in."""
    report(open_catalog(ctx).include(images, note=note, dataset=dataset, by=by))


def _tag_command(
    ctx: typer.Context, action: str, name: str, images: list[str] | None,
    selection: Selection, note: str | None, by: str | None,
) -> None:  # fmt: skip
    catalog = open_catalog(ctx)
    filtered = selection != Selection(dataset=selection.dataset)
    if images and filtered:
        msg = "name images by SPLIT:INDEX or select them with filters, not both"
        raise typer.BadParameter(msg, param_hint="IMAGES")
    if images:
        call = catalog.tag if action == "tag" else catalog.untag
        report(call(name, images, note=note, dataset=selection.dataset, by=by))
        return
    if not filtered:
        msg = "name images by SPLIT:INDEX or select them (--split, --label, --tag ...)"
        raise typer.BadParameter(msg, param_hint="IMAGES")

    chosen = catalog.selected(selection)
    report(
        chosen.tag(name, note=note, by=by)
        if action == "tag"
        else chosen.untag(name, note=note, by=by)
    )


@with_selection(omit=("order",))
def tag(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The tag, e.g. reviewed, ambiguous, suspect.")],
    images: Annotated[list[str] | None, typer.Argument(help="Images as SPLIT:INDEX.")] = None,
    selection: Selection = Selection(),  # noqa: B008 - replaced by the selection options
    note: NoteOpt = None,
    by: ByOpt = None,
) -> None:
    """Put tag NAME on images named SPLIT:INDEX, or on every image a selection holds."""
    _tag_command(ctx, "tag", name, images, selection, note, by)


@with_selection(omit=("order", "sample", "per_label", "seed", "limit", "offset"))
def untag(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The tag to take off.")],
    images: Annotated[list[str] | None, typer.Argument(help="Images as SPLIT:INDEX.")] = None,
    selection: Selection = Selection(),  # noqa: B008 - replaced by the selection options
    note: NoteOpt = None,
    by: ByOpt = None,
) -> None:
    """Take tag NAME off images named SPLIT:INDEX, or off a selection's images."""
    _tag_command(ctx, "untag", name, images, selection, note, by)


def undo(
    ctx: typer.Context,
    decision: Annotated[int, typer.Argument(help="The decision's number (#N in history).")],
    note: NoteOpt = None,
    by: ByOpt = None,
) -> None:
    """Revert a decision with a new one (relabel back, include, untag ...)."""
    report(open_catalog(ctx).undo(decision, note=note, by=by))


def _what(record: DecisionRecord) -> str:
    if record.action == "relabel":
        what = f"relabel {record.label}"
    elif record.action in ("tag", "untag"):
        what = f"{record.action} {record.tag}"
    else:
        what = record.action
    return what + (f" (undoes #{record.undoes})" if record.undoes else "")


def _line(record: DecisionRecord, image: bool) -> str:
    where = f"{record.split}:{record.index}  " if image else ""
    note = f"  {record.note}" if record.note else ""
    return f"#{record.id}  {record.at:%Y-%m-%d %H:%M:%S}  {record.by}  {where}{_what(record)}{note}"


def history(
    ctx: typer.Context,
    image: Annotated[str, typer.Argument(help="The image, SPLIT:INDEX.", show_default=False)],
    dataset: DatasetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every decision about one image, oldest first."""
    catalog = open_catalog(ctx)
    records = catalog.history(image, dataset=dataset)
    if as_json:
        echo_json([r.to_json() for r in records])
        return
    from catalog.curation.decisions import parse_ref

    (row, _) = catalog.image(*parse_ref(image), dataset=dataset)
    was = f" (source: {row.original_label})" if row.original_label != row.label else ""
    flags = "".join(f", {t}" for t in row.tags) + (", excluded" if row.excluded else "")
    typer.echo(f"{row.dataset} {image}: label {row.label}{was}{flags}")
    for record in records:
        typer.echo(_line(record, image=False))
    if not records:
        typer.echo("No decisions yet.")


def decisions(
    ctx: typer.Context,
    since: Annotated[str | None, typer.Option("--since", help="From this date on.")] = None,
    by: Annotated[str | None, typer.Option("--by", help="Only this person's.")] = None,
    dataset: DatasetOpt = None,
    as_json: JsonOpt = False,
    output: Annotated[
        str, typer.Option("--format", "-f", help="table, json or csv (what apply reads).")
    ] = "table",
) -> None:
    """The decision log, oldest first, for review or to apply to another catalog."""
    if output not in ("table", "json", "csv"):
        msg = f"{output!r} is not one of table, json, csv"
        raise typer.BadParameter(msg, param_hint="--format")
    records = open_catalog(ctx).decisions(dataset=dataset, since=since, by=by)
    if as_json or output == "json":
        echo_json([r.to_json() for r in records])
    elif output == "csv":
        from catalog.curation.log import decisions_csv

        typer.echo(decisions_csv(records), nl=False)
    else:
        for record in records:
            typer.echo(_line(record, image=True))
        if not records:
            typer.echo("No decisions.")


def apply(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="CSV: split,index,label[,action,tag,note,by].")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would change; change nothing.")
    ] = False,
    by: ByOpt = None,
    dataset: DatasetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Apply the decisions of a CSV file, all or nothing, and say what changed."""
    report(open_catalog(ctx).apply(file, dataset=dataset, by=by, dry_run=dry_run), as_json)
