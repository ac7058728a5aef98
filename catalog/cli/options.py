"""Options that several commands share, each defined once.

The selection options (which images: ``--dataset``, ``--split``, ``--label``,
``--unlabeled``, ``--where``, ``--index``, ``--sample``, ``--per-label``,
``--group-by``, ``--per-group``, ``--seed``, ``--order``, ``--limit``,
``--offset``, and the curation filters ``--tag``, ``--without-tag``,
``--relabelled``, ``--excluded``, ``--include-excluded``,
``--original-labels``) are the rows of :data:`SELECTION_OPTIONS`. A command
takes them all by declaring one parameter ``selection: Selection`` and the
decorator :func:`with_selection`, which puts the options in its signature in
that parameter's place (typer reads ``__signature__``) and hands the command
the :class:`~catalog.selection.Selection` they describe. Adding a selection
option is adding one row (and the field it sets on ``Selection``).

Nothing here imports numpy or SQLAlchemy: typer evaluates these annotations
when it builds ``--help``.
"""

from __future__ import annotations

import inspect
import math
import sys
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from functools import update_wrapper
from typing import Annotated, Any, TypeVar, get_type_hints

import typer

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
DatasetOpt = Annotated[
    str | None, typer.Option("--dataset", "-d", help="Dataset name (default: the only one).")
]
SplitOpt = Annotated[
    list[str] | None, typer.Option("--split", "-s", help="Split to select; repeatable.")
]
SeedOpt = Annotated[
    int, typer.Option("--seed", help="Seed for --sample, --per-label, --order random.")
]


def parse_labels(values: list[str] | None) -> tuple[str, ...]:
    """``["3,5", "Trouser"]`` -> ``("3", "5", "Trouser")``: numbers or class names,
    checked against the dataset's label set when the selection runs."""
    labels: list[str] = []
    for value in values or []:
        labels.extend(part.strip() for part in value.split(",") if part.strip())
    return tuple(labels)


def parse_where(values: list[str] | None) -> tuple[tuple[str, str], ...]:
    """``["writer=123"]`` -> ``(("writer", "123"),)``."""
    pairs = []
    for value in values or []:
        key, sep, text = value.partition("=")
        if not sep or not key.strip():
            msg = f"{value!r} is not KEY=VALUE (e.g. writer=123)"
            raise typer.BadParameter(msg, param_hint="--where")
        pairs.append((key.strip(), text.strip()))
    return tuple(pairs)


def parse_range(value: str | None) -> tuple[int, int] | None:
    """``"A:B"`` -> ``(A, B)``; ``"A:"`` runs to the end of the split."""
    if value is None:
        return None
    start, sep, stop = value.partition(":")
    try:
        return int(start or 0), int(stop) if sep and stop else sys.maxsize
    except ValueError:
        msg = f"{value!r} is not a range A:B of whole numbers"
        raise typer.BadParameter(msg, param_hint="--index") from None


def splits_tuple(values: list[str] | None) -> tuple[str, ...]:
    return tuple(values or ())


def same(value: Any) -> Any:
    return value


def names_tuple(values: list[str] | None) -> tuple[str, ...] | None:
    return tuple(values) if values else None


def only_excluded(value: bool) -> str | None:
    return "only" if value else None


def also_excluded(value: bool) -> str | None:
    return "include" if value else None


@dataclass(frozen=True)
class SelectionOption:
    """One command-line option and the :class:`Selection` field it sets."""

    name: str  # the Python parameter name typer sees, e.g. "per_label"
    annotation: Any  # Annotated[type, typer.Option(...)]
    default: Any
    field: str  # the Selection field
    convert: Callable[[Any], Any] = same  # option value -> field value

    def parameter(self, default: Any) -> inspect.Parameter:
        kind = inspect.Parameter.KEYWORD_ONLY
        return inspect.Parameter(self.name, kind, default=default, annotation=self.annotation)


def _option(kind: Any, *names: str, help: str) -> Any:
    return Annotated[kind, typer.Option(*names, help=help)]


#: The selection options, in the order ``--help`` lists them.
SELECTION_OPTIONS = (
    SelectionOption("dataset", DatasetOpt, None, "dataset"),
    SelectionOption("split", SplitOpt, None, "splits", splits_tuple),
    SelectionOption(
        "label",
        _option(
            list[str] | None,
            "--label",
            "-l",
            help="Label number or class name (3, Trouser, a); repeatable or 3,5.",
        ),
        None,
        "labels",
        parse_labels,
    ),
    SelectionOption(
        "unlabeled",
        _option(bool, "--unlabeled", help="Only images published without a label."),
        False,
        "unlabeled",
    ),
    SelectionOption(
        "where",
        _option(list[str] | None, "--where", help="Per-image metadata KEY=VALUE; repeatable."),
        None,
        "where",
        parse_where,
    ),
    SelectionOption(
        "index",
        _option(str | None, "--index", help="Half-open index range A:B within a split."),
        None,
        "index_range",
        parse_range,
    ),
    SelectionOption(
        "sample",
        _option(int | None, "--sample", help="Uniform random sample of N."),
        None,
        "sample",
    ),
    SelectionOption(
        "per_label",
        _option(int | None, "--per-label", help="N random images of each label."),
        None,
        "per_label",
    ),
    SelectionOption(
        "group_by",
        _option(str | None, "--group-by", help="Metadata key for --per-group (e.g. writer)."),
        None,
        "group_by",
    ),
    SelectionOption(
        "per_group",
        _option(int | None, "--per-group", help="N random images of each --group-by value."),
        None,
        "per_group",
    ),
    SelectionOption("seed", SeedOpt, 0, "seed"),
    SelectionOption("order", _option(str, "--order", help="index or random."), "index", "order"),
    SelectionOption(
        "limit", _option(int | None, "--limit", help="At most N images."), None, "limit"
    ),
    SelectionOption(
        "offset", _option(int, "--offset", help="Skip the first N images."), 0, "offset"
    ),
    SelectionOption(
        "tag",
        _option(list[str] | None, "--tag", help="Only images with this tag; repeatable."),
        None,
        "tags",
        names_tuple,
    ),
    SelectionOption(
        "without_tag",
        _option(list[str] | None, "--without-tag", help="Only images without this tag."),
        None,
        "without_tags",
        names_tuple,
    ),
    SelectionOption(
        "relabelled",
        _option(bool, "--relabelled", help="Only images whose label was changed."),
        False,
        "relabelled",
    ),
    SelectionOption(
        "excluded",
        _option(bool, "--excluded", help="Only excluded images."),
        False,
        "excluded",
        only_excluded,
    ),
    SelectionOption(
        "include_excluded",
        _option(bool, "--include-excluded", help="Keep excluded images in."),
        False,
        "excluded",
        also_excluded,
    ),
    SelectionOption(
        "original_labels",
        _option(bool, "--original-labels", help="Use the source's labels, not decisions."),
        False,
        "original_labels",
    ),
)


def selection_values(options: Collection[SelectionOption], given: dict[str, Any]) -> dict[str, Any]:
    """The :class:`Selection` fields the options ``given`` set (None: the field's default).

    Two options that set one field (``--excluded``, ``--include-excluded``) cannot
    both be given.
    """
    values: dict[str, Any] = {}
    setters: dict[str, str] = {}
    for option in options:
        value = option.convert(given.pop(option.name))
        if value is None:
            continue
        if option.field in values:
            first, second = (
                f"--{n.replace('_', '-')}" for n in (setters[option.field], option.name)
            )
            msg = f"{first} and {second} cannot be combined"
            raise typer.BadParameter(msg, param_hint=first)
        values[option.field] = value
        setters[option.field] = option.name
    return values


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

    def decorate(command: Callable[..., R]) -> Callable[..., R]:
        hints = get_type_hints(command, include_extras=True)
        own = inspect.signature(command).parameters
        if "selection" not in own:
            msg = f"{command.__name__} has no parameter named selection"
            raise TypeError(msg)
        params: list[inspect.Parameter] = []
        for param in own.values():
            if param.name == "selection":
                params += [o.parameter(overrides.get(o.name, o.default)) for o in options]
            else:
                kind = inspect.Parameter.KEYWORD_ONLY
                params.append(param.replace(kind=kind, annotation=hints[param.name]))

        def command_with_selection(*args: Any, **kwargs: Any) -> R:
            values = selection_values(options, kwargs)
            return command(*args, selection=Selection(**values), **kwargs)

        update_wrapper(command_with_selection, command)
        signature = inspect.Signature(params, return_annotation=hints.get("return"))
        command_with_selection.__signature__ = signature  # type: ignore[attr-defined]
        command_with_selection.__annotations__ = {p.name: p.annotation for p in params}
        return command_with_selection

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
