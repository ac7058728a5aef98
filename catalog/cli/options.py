"""Options that several commands share, each defined once.

The selection options (which images: ``--dataset``, ``--split``, ``--label`` ...)
are the rows of the UI-neutral table :data:`catalog.api.options.SELECTION_OPTIONS`,
which the web view's URL parameters read too. A command takes them all by declaring
one parameter ``selection: Selection`` and the decorator :func:`with_selection`,
which puts the options in its signature in that parameter's place (typer reads
``__signature__``) and hands the command the :class:`~catalog.selection.Selection`
they describe.

Nothing here imports numpy or SQLAlchemy: typer evaluates these annotations
when it builds ``--help``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from functools import update_wrapper
from typing import Annotated, Any, TypeVar, get_type_hints

import typer

from catalog.api.options import (
    SELECTION_OPTIONS,
    OptionConflictError,
    OptionValueError,
    SelectionOption,
    flag_of,
    selection_fields,
)
from catalog.selection import Selection

R = TypeVar("R")

#: The environment variable naming the catalog (``catalog.db.engine.DB_ENV``, repeated
#: here so that ``--help`` does not import SQLAlchemy; a test keeps them equal).
DB_ENV = "MNIST_CATALOG_DB"

DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar=DB_ENV,
        help="Catalog file or SQLAlchemy URL (default ./catalog.db).",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def _annotation(option: SelectionOption) -> Any:
    """The typer parameter of a selection option: its type, flag and help."""
    kinds: dict[str, Any] = {"text": str, "number": int, "flag": bool, "texts": list[str]}
    kind = kinds[option.kind]
    if option.default is None and option.kind != "flag":
        kind = kind | None
    names = (option.flag, option.short) if option.short else (option.flag,)
    return Annotated[kind, typer.Option(*names, help=option.help, metavar=option.metavar)]


_BY_NAME = {option.name: option for option in SELECTION_OPTIONS}
DatasetOpt = _annotation(_BY_NAME["dataset"])
SplitOpt = _annotation(_BY_NAME["split"])
VersionOpt = _annotation(_BY_NAME["version"])
SeedOpt = Annotated[int, typer.Option("--seed", help=_BY_NAME["seed"].help, metavar="N")]


def _parameter(option: SelectionOption, default: Any) -> inspect.Parameter:
    kind = inspect.Parameter.KEYWORD_ONLY
    return inspect.Parameter(option.name, kind, default=default, annotation=_annotation(option))


def selection_of(options: Collection[SelectionOption], given: dict[str, Any]) -> Selection:
    """The :class:`Selection` that the options ``given`` describe (popped from ``given``);
    a value that cannot be read, or two options for one field, is a usage error (exit 2)."""
    mine = {option.name: given.pop(option.name) for option in options}
    try:
        return Selection(**selection_fields(options, mine))
    except OptionValueError as exc:
        raise typer.BadParameter(exc.message, param_hint=flag_of(exc.option)) from None
    except OptionConflictError as exc:
        raise typer.BadParameter(str(exc), param_hint=flag_of(exc.first)) from None


def with_selection(
    *, omit: Collection[str] = (), defaults: Mapping[str, Any] | None = None
) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Give a command the selection options in place of its ``selection`` parameter.

    ``omit`` names options the command does not take (their ``Selection``
    defaults apply); ``defaults`` overrides an option's default for this command.
    """
    unknown = (set(omit) | set(defaults or {})) - {o.name for o in SELECTION_OPTIONS}
    if unknown:
        msg = f"no selection option named {', '.join(sorted(unknown))}"
        raise TypeError(msg)
    options = [o for o in SELECTION_OPTIONS if o.name not in omit]
    overrides = dict(defaults or {})
    params = [_parameter(o, overrides.get(o.name, o.default)) for o in options]
    return options_in_place_of("selection", params, lambda given: selection_of(options, given))


def options_in_place_of(
    name: str, params: Sequence[inspect.Parameter], value_of: Callable[[dict[str, Any]], Any]
) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Put ``params`` in a command's signature in place of its parameter ``name`` (typer
    reads ``__signature__``); the command gets ``name=value_of(given)``, where ``value_of``
    pops the values of ``params`` from the options ``given``."""

    def decorate(command: Callable[..., R]) -> Callable[..., R]:
        hints = get_type_hints(command, include_extras=True)
        own = inspect.signature(command).parameters
        if name not in own:
            msg = f"{command.__name__} has no parameter named {name}"
            raise TypeError(msg)
        signature_params: list[inspect.Parameter] = []
        for param in own.values():
            if param.name == name:
                signature_params += params
            else:
                kind = inspect.Parameter.KEYWORD_ONLY
                signature_params.append(param.replace(kind=kind, annotation=hints[param.name]))

        def command_with_options(*args: Any, **kwargs: Any) -> R:
            value = value_of(kwargs)
            return command(*args, **{name: value}, **kwargs)

        update_wrapper(command_with_options, command)
        signature = inspect.Signature(signature_params, return_annotation=hints.get("return"))
        command_with_options.__signature__ = signature  # type: ignore[attr-defined]
        command_with_options.__annotations__ = {p.name: p.annotation for p in signature_params}
        return command_with_options

    return decorate


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_memory(text: str | int) -> int:
    """Bytes in a size such as ``2G``, ``512M``, ``1.5G`` or ``800000000`` (powers of 1024).

    >>> parse_memory("2G"), parse_memory("512m"), parse_memory("1000")
    (2147483648, 536870912, 1000)
    """
    if isinstance(text, int):
        return text
    raw = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = raw[-1:] if raw[-1:] in _UNITS else ""
    number = raw[: len(raw) - len(unit)]
    try:
        value = float(number) * _UNITS[unit]
    except ValueError:
        value = -1
    if not (value >= 1 and math.isfinite(value)):
        msg = f"Invalid memory size {text!r}: expected a number with K, M, G or T, e.g. 2G"
        raise typer.BadParameter(msg)
    return int(value)


MemoryOpt = Annotated[
    int,
    typer.Option(
        "--memory",
        parser=parse_memory,
        metavar="SIZE",
        show_default="1G",
        help="Memory budget: pixels are read and worked on in blocks sized by it (e.g. 2G).",
    ),
]
