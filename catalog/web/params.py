"""URL query parameters <-> a :class:`~catalog.selection.Selection`, in one place.

A page's URL is its query, as in Datasette: ``/grid?split=test&label=3&page=2``.
The selection parameters are the rows of :data:`catalog.api.options.SELECTION_OPTIONS`
(the table the command line's options are built from too) under their long names
without the dashes (``label``, ``index``, ``per-label``, ``seed`` ...), read with the
rows' own converters, so ``?label=3,5`` means what ``--label 3,5`` means, and written
back from the same rows (:func:`query_string`). Pages add paging (``page``, ``size``);
an unknown parameter is an error, not silently ignored.
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from catalog.api.options import (
    SELECTION_OPTIONS,
    OptionConflictError,
    OptionValueError,
    SelectionOption,
    param_of,
    selection_fields,
    selection_texts,
)
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


SELECTION_PARAMS = tuple(option.param for option in SELECTION_OPTIONS)


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


def _read(option: SelectionOption, values: list[str]) -> Any:
    """The value of ``option`` in the URL's texts, by its kind (the last one given wins)."""
    name = option.param
    if option.kind == "texts":
        return values
    value = values[-1]
    if option.kind == "flag":
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        msg = f"Parameter {name}={value!r} is not a yes/no value (1, 0, true, false)"
        raise ParameterError(msg)
    if option.kind == "number":
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
    given: dict[str, Any] = {}
    for option in SELECTION_OPTIONS:
        values = list(params.getlist(option.param)) if option.param in params else []
        if option.kind != "flag":  # an empty form field means "not given"
            values = [value for value in values if value.strip()]
        if values:
            given[option.name] = _read(option, values)
    try:
        fields = selection_fields(SELECTION_OPTIONS, given)
    except OptionValueError as exc:
        msg = f"Parameter {param_of(exc.option)}: {exc.message}"
        raise ParameterError(msg) from None
    except OptionConflictError as exc:
        msg = f"Parameters {param_of(exc.first)} and {param_of(exc.second)} cannot be combined"
        raise ParameterError(msg) from None
    if any(n > MAX_INT for n in fields.get("index_range") or ()):
        msg = f"Parameter index is out of range: expected numbers up to {MAX_INT}"
        raise ParameterError(msg)
    return Selection(**fields)


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
    """The URL query that selects ``selection`` (the inverse of :func:`parse_selection`),
    with the page's own ``extra`` parameters (None: left out)."""
    from urllib.parse import urlencode

    pairs = [(param_of(name), text) for name, text in selection_texts(selection)]
    pairs += [(k, v) for k, v in extra.items() if v is not None]
    return urlencode(pairs)
