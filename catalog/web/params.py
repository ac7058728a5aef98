"""URL query parameters -> a :class:`~catalog.selection.Selection`, in one place.

A page's URL is its query, as in Datasette: ``/grid?split=test&label=3&page=2``.
The selection parameters are the command line's selection options under their
long names without the dashes (``label``, ``index``, ``per-label``, ``seed`` ...,
and whatever rows :data:`catalog.cli.options.SELECTION_OPTIONS` gains), read
with the options' own converters, so ``?label=3,5`` means what ``--label 3,5``
means. Pages add paging (``page``, ``size``); an unknown parameter is an error,
not silently ignored.
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, get_args, get_origin

import typer

from catalog.cli.options import SELECTION_OPTIONS, SelectionOption
from catalog.errors import SelectionError
from catalog.selection import Selection

#: Thumbnails on a grid page unless ``size`` says otherwise, and the most it may say.
PAGE_SIZE = 500
MAX_PAGE_SIZE = 1000
#: Parameters every page accepts besides its own: the write token, passed once.
COMMON = frozenset({"token"})
#: The largest whole number a parameter may hold (a database stores 64-bit integers).
MAX_INT = sys.maxsize
_TRUE = {"", "1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ParameterError(SelectionError):
    """A URL parameter is unknown or its value cannot be read."""


def param_name(option: SelectionOption) -> str:
    """The URL name of a selection option: its long flag without the dashes."""
    return option.name.replace("_", "-")


SELECTION_PARAMS = tuple(param_name(o) for o in SELECTION_OPTIONS)


@dataclass(frozen=True)
class Page:
    """Which slice of a selection a page shows: ``page`` counts from 1."""

    number: int = 1
    size: int = PAGE_SIZE

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size

    def pages(self, total: int) -> int:
        return max(1, -(-total // self.size))


def _base_type(option: SelectionOption) -> Any:
    """``list[str] | None`` -> ``list[str]``; ``int | None`` -> ``int``."""
    kind = get_args(option.annotation)[0]
    args = [a for a in get_args(kind) if a is not type(None)]
    if get_origin(kind) is list:
        return kind
    return args[0] if len(args) == 1 and get_origin(kind) is not list else kind


def _read(option: SelectionOption, values: list[str]) -> Any:
    name = param_name(option)
    kind = _base_type(option)
    if get_origin(kind) is list:
        return values
    value = values[-1]
    if kind is bool:
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        msg = f"Parameter {name}={value!r} is not a yes/no value (1, 0, true, false)"
        raise ParameterError(msg)
    if kind is int:
        try:
            number = int(value)
        except ValueError:
            msg = f"Parameter {name}={value!r} is not a whole number"
            raise ParameterError(msg) from None
        if not 0 <= number <= MAX_INT:
            msg = f"Parameter {name}={value} is out of range: expected 0 to {MAX_INT}"
            raise ParameterError(msg)
        return number
    return value


def check_names(params: Mapping[str, Any], allowed: Collection[str]) -> None:
    """Refuse parameters a page does not know (a typo would silently show everything)."""
    unknown = sorted(set(params) - set(allowed) - COMMON)
    if unknown:
        msg = f"Unknown parameter {unknown[0]!r}: expected any of {', '.join(sorted(allowed))}"
        raise ParameterError(msg)


def parse_selection(params: Any, *, extra: Sequence[str] = ()) -> Selection:
    """The :class:`Selection` that URL ``params`` (a multi-dict) describe.

    ``extra`` names the page's own parameters, which are allowed but not read here.
    Raises :class:`ParameterError` (a :class:`SelectionError`) on a bad value.
    """
    check_names(params, (*SELECTION_PARAMS, *extra))
    values: dict[str, Any] = {}
    setters: dict[str, str] = {}
    for option in SELECTION_OPTIONS:
        name = param_name(option)
        given = list(params.getlist(name)) if name in params else []
        if _base_type(option) is not bool:  # an empty form field means "not given"
            given = [value for value in given if value.strip()]
        raw = _read(option, given) if given else option.default
        try:
            value = option.convert(raw)
        except typer.BadParameter as exc:
            msg = f"Parameter {name}: {exc.message}"
            raise ParameterError(msg) from None
        if value is None or not given:
            continue
        if option.field in values:
            msg = f"Parameters {setters[option.field]} and {name} cannot be combined"
            raise ParameterError(msg)
        values[option.field] = value
        setters[option.field] = name
    if any(n > MAX_INT for n in values.get("index_range") or ()):
        msg = f"Parameter index is out of range: expected numbers up to {MAX_INT}"
        raise ParameterError(msg)
    return Selection(**values)


def parse_int(params: Any, name: str, default: int, low: int, high: int) -> int:
    """An integer parameter within ``[low, high]``, or ``default`` when absent."""
    if name not in params:
        return default
    text = params[name]
    try:
        value = int(text)
    except ValueError:
        msg = f"Parameter {name}={text!r} is not a whole number"
        raise ParameterError(msg) from None
    if not low <= value <= high:
        msg = f"Parameter {name}={value} is out of range: expected {low} to {high}"
        raise ParameterError(msg)
    return value


def parse_page(params: Any) -> Page:
    """``page`` (from 1) and ``size`` (1 to :data:`MAX_PAGE_SIZE`)."""
    size = parse_int(params, "size", PAGE_SIZE, 1, MAX_PAGE_SIZE)
    number = parse_int(params, "page", 1, 1, 10**9)
    return Page(number, size)


def paged(selection: Selection, page: Page) -> Selection:
    """The part of ``selection`` that ``page`` shows (on top of its own offset and limit)."""
    from dataclasses import replace

    offset = selection.offset + page.offset
    size = page.size
    if selection.limit is not None:
        size = max(0, min(size, selection.limit - page.offset))
    return replace(selection, offset=offset, limit=size)


def query_string(selection: Selection, **extra: Any) -> str:
    """The URL query that selects ``selection`` (the inverse of :func:`parse_selection`)."""
    from urllib.parse import urlencode

    pairs: list[tuple[str, Any]] = []
    if selection.dataset:
        pairs.append(("dataset", selection.dataset))
    pairs += [("split", s) for s in selection.splits]
    if selection.labels:
        pairs.append(("label", ",".join(map(str, selection.labels))))
    if selection.index_range is not None:
        pairs.append(("index", f"{selection.index_range[0]}:{selection.index_range[1]}"))
    for name in ("sample", "per_label", "limit"):
        if getattr(selection, name) is not None:
            pairs.append((name.replace("_", "-"), getattr(selection, name)))
    if selection.seed:
        pairs.append(("seed", selection.seed))
    if selection.order != "index":
        pairs.append(("order", selection.order))
    if selection.offset:
        pairs.append(("offset", selection.offset))
    pairs += _curation_pairs(selection)
    if selection.unlabeled:
        pairs.append(("unlabeled", 1))
    pairs += [("where", f"{key}={value}") for key, value in selection.where]
    if selection.group_by is not None:
        pairs.append(("group-by", selection.group_by))
    if selection.per_group is not None:
        pairs.append(("per-group", selection.per_group))
    pairs += [(k, v) for k, v in extra.items() if v is not None]
    return urlencode(pairs)


def _curation_pairs(selection: Selection) -> list[tuple[str, Any]]:
    """The curation filters."""
    pairs: list[tuple[str, Any]] = []
    pairs += [("tag", t) for t in selection.tags]
    pairs += [("without-tag", t) for t in selection.without_tags]
    if selection.relabelled:
        pairs.append(("relabelled", 1))
    if selection.excluded == "only":
        pairs.append(("excluded", 1))
    elif selection.excluded == "include":
        pairs.append(("include-excluded", 1))
    if selection.original_labels:
        pairs.append(("original-labels", 1))
    return pairs
