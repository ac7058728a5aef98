"""The selection options as one table that every face reads: which images, as text.

Each row names an option (``per_label``: the flag ``--per-label`` on the command line,
the parameter ``per-label`` in a web view URL), the :class:`~catalog.selection.Selection`
field it sets, the kind of value a person gives, its help, how the given value becomes
the field's (:attr:`SelectionOption.parse`, which raises :class:`OptionValueError`) and
back (:attr:`SelectionOption.show`, so a URL can be built from a selection). Adding a
selection option is adding a row here and the field it sets.

Nothing here imports numpy, SQLAlchemy or a UI library: ``--help`` reads this table.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from catalog.errors import SelectionError
from catalog.selection import Selection

#: What a person gives: one text, one whole number, a yes/no flag, or repeatable texts.
Kind = Literal["text", "number", "flag", "texts"]


class OptionValueError(SelectionError):
    """An option's value cannot be read (a range that is not A:B, a pair without ``=``)."""

    def __init__(self, message: str, *, option: str) -> None:
        super().__init__(message)
        self.option = option  # the option's name, e.g. "where"
        self.message = message


class OptionConflictError(SelectionError):
    """Two options that set the same field were both given."""

    def __init__(self, first: str, second: str) -> None:
        self.first, self.second = first, second
        super().__init__(f"{flag_of(first)} and {flag_of(second)} cannot be combined")


def flag_of(name: str) -> str:
    """``"per_label"`` -> ``"--per-label"``."""
    return "--" + name.replace("_", "-")


def param_of(name: str) -> str:
    """``"per_label"`` -> ``"per-label"``: the URL parameter."""
    return name.replace("_", "-")


def same(value: Any) -> Any:
    return value


def _shown(value: Any, default: Any) -> list[str]:
    """The texts that give ``value`` back: none when it is the field's default."""
    if value == default or value is None:
        return []
    if isinstance(value, bool):
        return ["1"]
    if isinstance(value, tuple | list):
        return [str(v) for v in value]
    return [str(value)]


@dataclass(frozen=True)
class SelectionOption:
    """One selection option and the :class:`Selection` field it sets."""

    name: str  # the Python name, e.g. "per_label"
    field: str  # the Selection field
    kind: Kind
    help: str
    default: Any = None  # the value when not given (None: the field's default applies)
    short: str | None = None  # a one-letter flag, e.g. "-l"
    metavar: str | None = None  # how help names the value, e.g. "KEY=VALUE"
    parse: Callable[[Any], Any] = same  # given value -> field value (None: not set)
    show: Callable[[Any], list[str]] | None = None  # field value -> texts; None: the generic rule

    @property
    def flag(self) -> str:
        return flag_of(self.name)

    @property
    def param(self) -> str:
        return param_of(self.name)

    def texts(self, selection: Selection) -> list[str]:
        """The texts this option takes to select what ``selection`` selects."""
        value = getattr(selection, self.field)
        if self.show is not None:
            return self.show(value)
        return _shown(value, Selection.__dataclass_fields__[self.field].default)


def parse_labels(values: Iterable[str] | None) -> tuple[str, ...] | None:
    """``["3,5", "Trouser"]`` -> ``("3", "5", "Trouser")``: numbers or class names,
    checked against the dataset's label set when the selection runs.

    >>> parse_labels(["3,5", "Trouser"])
    ('3', '5', 'Trouser')
    """
    labels = [part.strip() for value in values or () for part in value.split(",")]
    return tuple(label for label in labels if label) or None


def parse_where(values: Iterable[str] | None) -> tuple[tuple[str, str], ...] | None:
    """``["writer=123"]`` -> ``(("writer", "123"),)``."""
    pairs = []
    for value in values or ():
        key, sep, text = value.partition("=")
        if not sep or not key.strip():
            msg = f"{value!r} is not KEY=VALUE (e.g. writer=123)"
            raise OptionValueError(msg, option="where")
        pairs.append((key.strip(), text.strip()))
    return tuple(pairs) or None


def parse_range(value: str | None) -> tuple[int, int] | None:
    """``"A:B"`` -> ``(A, B)``; ``"A:"`` runs to the end of the split.

    >>> parse_range("2:10"), parse_range("5:")[0]
    ((2, 10), 5)
    """
    if value is None:
        return None
    start, sep, stop = value.partition(":")
    try:
        return int(start or 0), int(stop) if sep and stop else sys.maxsize
    except ValueError:
        msg = f"{value!r} is not a range A:B of whole numbers"
        raise OptionValueError(msg, option="index") from None


def _texts(values: Iterable[str] | None) -> tuple[str, ...] | None:
    return tuple(values) if values else None


def _excluded_as(mode: str) -> Callable[[bool], str | None]:
    def parse(value: bool) -> str | None:
        return mode if value else None

    return parse


def _show_excluded_as(mode: str) -> Callable[[str], list[str]]:
    def show(value: str) -> list[str]:
        return ["1"] if value == mode else []

    return show


def _show_labels(labels: tuple[int | str, ...]) -> list[str]:
    return [",".join(map(str, labels))] if labels else []


def _show_where(pairs: tuple[tuple[str, str], ...]) -> list[str]:
    return [f"{key}={value}" for key, value in pairs]


def _show_range(bounds: tuple[int, int] | None) -> list[str]:
    if bounds is None:
        return []
    start, stop = bounds
    return [f"{start}:" if stop == sys.maxsize else f"{start}:{stop}"]


#: The selection options, in the order ``--help`` lists them.
SELECTION_OPTIONS = (
    SelectionOption("dataset", "dataset", "text", "Dataset name (default: the only one).",
                    short="-d", metavar="NAME"),
    SelectionOption("split", "splits", "texts", "Split to select; repeatable.", short="-s",
                    parse=_texts, metavar="SPLIT"),
    SelectionOption("label", "labels", "texts",
                    "Label number or class name (3, Trouser, a); repeatable or 3,5.",
                    short="-l", parse=parse_labels, show=_show_labels, metavar="LABEL"),
    SelectionOption("unlabeled", "unlabeled", "flag", "Only images published without a label.",
                    default=False),
    SelectionOption("where", "where", "texts", "Per-image metadata KEY=VALUE; repeatable.",
                    parse=parse_where, show=_show_where, metavar="KEY=VALUE"),
    SelectionOption("index", "index_range", "text", "Half-open index range A:B within a split.",
                    parse=parse_range, show=_show_range, metavar="A:B"),
    SelectionOption("sample", "sample", "number", "Uniform random sample of N.", metavar="N"),
    SelectionOption("per_label", "per_label", "number", "N random images of each label.", metavar="N"),
    SelectionOption("group_by", "group_by", "text", "Metadata key for --per-group (e.g. writer).", metavar="KEY"),
    SelectionOption("per_group", "per_group", "number", "N random images of each --group-by value.", metavar="N"),
    SelectionOption("seed", "seed", "number", "Seed for --sample, --per-label, --order random.",
                    default=0, metavar="N"),
    SelectionOption("order", "order", "text", "index or random.", default="index", metavar="ORDER"),
    SelectionOption("limit", "limit", "number", "At most N images.", metavar="N"),
    SelectionOption("offset", "offset", "number", "Skip the first N images.", default=0, metavar="N"),
    SelectionOption("tag", "tags", "texts", "Only images with this tag; repeatable.",
                    parse=_texts, metavar="TAG"),
    SelectionOption("without_tag", "without_tags", "texts", "Only images without this tag.",
                    parse=_texts, metavar="TAG"),
    SelectionOption("relabelled", "relabelled", "flag", "Only images whose label was changed.",
                    default=False),
    SelectionOption("excluded", "excluded", "flag", "Only excluded images.", default=False,
                    parse=_excluded_as("only"), show=_show_excluded_as("only")),
    SelectionOption("include_excluded", "excluded", "flag", "Keep excluded images in.",
                    default=False, parse=_excluded_as("include"),
                    show=_show_excluded_as("include")),
    SelectionOption("original_labels", "original_labels", "flag",
                    "Use the source's labels, not decisions.", default=False),
    SelectionOption("version", "version", "text",
                    "Only images of this frozen version, with its frozen labels.", metavar="NAME"),
)  # fmt: skip

OPTION_NAMES = frozenset(option.name for option in SELECTION_OPTIONS)


def selection_fields(
    options: Iterable[SelectionOption], given: Mapping[str, Any]
) -> dict[str, Any]:
    """The :class:`Selection` fields that the options' ``given`` values set.

    A value of None, or an option absent from ``given``, sets nothing. Two options
    that set one field (``--excluded``, ``--include-excluded``) cannot both be given.

    Raises
    ------
    OptionValueError
        If a value cannot be read.
    OptionConflictError
        If two given options set the same field.
    """
    values: dict[str, Any] = {}
    setters: dict[str, str] = {}
    for option in options:
        if option.name not in given:
            continue
        value = option.parse(given[option.name])
        if value is None:
            continue
        if option.field in values:
            raise OptionConflictError(setters[option.field], option.name)
        values[option.field] = value
        setters[option.field] = option.name
    return values


def selection_texts(selection: Selection) -> list[tuple[str, str]]:
    """``(option name, text)`` pairs that select what ``selection`` selects: the inverse
    of :func:`selection_fields` (a URL's query is built from them)."""
    return [(o.name, text) for o in SELECTION_OPTIONS for text in o.texts(selection)]
