"""The ``mnist-catalog`` command line: a thin layer over :class:`catalog.Catalog`.

Commands turn arguments into library calls, and results and errors into text
and exit codes. A :class:`~catalog.errors.CatalogError` becomes ``Error: ...``
on stderr and exit code 1, in one place (:class:`CatalogGroup`); so does, as the last
guard, anything unexpected (a ``MemoryError``, a bug), pointing at ``--debug``, which
shows its traceback instead.

One module per command group; the options several commands share are in
:mod:`catalog.cli.options`. Command modules import the library inside the
commands, so that ``--help`` loads neither numpy, SQLAlchemy nor Pillow.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from catalog.cli import audit, browse, curation, dbcmd, export, identify, ingest, serve, sheet
from catalog.cli import versions as version_commands
from catalog.cli.options import DbOpt
from catalog.cli.state import State
from catalog.errors import CatalogError

__all__ = ["CatalogGroup", "app"]


#: What typer's click handles itself: exits (``typer.Exit``), aborts, usage errors (exit 2:
#: ``typer.BadParameter`` and the other ``TyperException`` s), a closed stdout (``| head``).
CLICK_FLOW = (typer.Exit, typer.Abort, typer.TyperException, BrokenPipeError)


class CatalogGroup(TyperGroup):
    """Turns the errors a user can fix into one line on stderr and exit code 1, and
    anything unexpected too (the last guard), unless ``--debug`` asks for its traceback."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except CatalogError as exc:
            typer.echo(f"Error: {exc}", err=True)
            raise typer.Exit(code=1) from None
        except KeyboardInterrupt:
            typer.echo("Interrupted: the catalog keeps what was committed before.", err=True)
            raise typer.Exit(code=130) from None
        except CLICK_FLOW:
            raise
        except Exception as exc:
            if ctx.find_root().params.get("debug"):
                raise
            typer.echo(f"Error: {unexpected(exc)}", err=True)
            raise typer.Exit(code=1) from None

    def get_command(self, ctx: typer.Context, cmd_name: str) -> Any:  # type: ignore[override]
        command = super().get_command(ctx, cmd_name)
        for param in getattr(command, "params", ()):
            name_values(param)
        return command


def unexpected(exc: BaseException) -> str:
    """One line for an error nobody planned for, naming it and pointing at ``--debug``.

    >>> unexpected(MemoryError())
    'unexpected MemoryError (run with --debug to see the traceback)'
    """
    lines = str(exc).strip().splitlines()
    said = f": {lines[0]}" if lines else ""
    return f"unexpected {type(exc).__name__}{said} (run with --debug to see the traceback)"


def name_values(param: Any) -> None:
    """Name a parameter's value in ``--help`` by what it is (``--jobs JOBS``, ``OUT_DIR``)
    where no ``metavar`` was given, instead of typer's type (``<int range>``)."""
    if param.metavar is not None or getattr(param, "is_flag", False) or param.name is None:
        return
    param.metavar = param.name.upper()


app = typer.Typer(
    cls=CatalogGroup,
    help="A catalog for MNIST-style digit datasets: ingest, query, export, audit.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # plain help: rich's markdown renderer alone costs ~0.2 s a start
)
db_app = typer.Typer(
    cls=CatalogGroup,
    help="The catalog itself: its schema, a check of every row, a consistent backup.",
    rich_markup_mode=None,
)
app.add_typer(db_app, name="db")
versions_app = typer.Typer(cls=CatalogGroup, rich_markup_mode=None)
app.add_typer(versions_app, name="versions")


DebugOpt = Annotated[
    bool,
    typer.Option("--debug", help="Show the traceback of an unexpected error, not one line."),
]


@app.callback()
def main(ctx: typer.Context, db_location: DbOpt = None, debug: DebugOpt = False) -> None:
    """A catalog for MNIST-style digit datasets: ingest, query, export, audit."""
    ctx.obj = State(db_location)


app.command()(ingest.ingest)
app.command()(browse.datasets)
app.command()(browse.show)
app.command()(browse.query)
app.command()(browse.count)
app.command()(export.export)
app.command()(export.exports)
app.command()(sheet.sheet)
app.command()(audit.audit)
app.command()(serve.serve)
for command in (
    curation.relabel, curation.exclude, curation.include, curation.tag, curation.untag,
    curation.undo, curation.history, curation.decisions, curation.apply,
):  # fmt: skip
    app.command()(command)
app.command()(identify.identify)
app.command()(version_commands.freeze)
app.command()(version_commands.diff)
versions_app.callback(invoke_without_command=True)(version_commands.versions)
versions_app.command("export")(version_commands.export_version)
versions_app.command("import")(version_commands.import_version)
db_app.command("upgrade")(dbcmd.db_upgrade)
db_app.command("current")(dbcmd.db_current)
db_app.command("check")(dbcmd.db_check)
db_app.command("backup")(dbcmd.db_backup)
