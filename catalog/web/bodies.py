"""Request bodies: JSON parsed within bounds (size, nesting depth, numbers).

Python's ``json`` recurses once per ``[`` or ``{``: 2,000 of them in a 4 KB body
raise RecursionError. The nesting is counted first, in one pass over the bytes,
and a body nested deeper than :data:`MAX_DEPTH` is refused before it is parsed.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from catalog.web.params import ParameterError

#: Largest request body a decision may have.
MAX_BODY = 4096
#: Deepest nesting of arrays and objects a body may have.
MAX_DEPTH = 32
#: Longest number (in digits) a body may hold.
MAX_DIGITS = 40


class BodyTooLargeError(ParameterError):
    """The request body is over the size a write accepts."""


def nesting(body: bytes) -> int:
    """The deepest nesting of ``[`` and ``{`` in ``body``, outside JSON strings."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        msg = f"A number in the request body is over {MAX_DIGITS} digits"
        raise ParameterError(msg)
    return int(text)


async def read_body(request: Request, max_bytes: int = MAX_BODY) -> bytes:
    """The request body, read no further than ``max_bytes`` (a larger ``Content-Length``
    is refused before reading; a chunked body is cut off as soon as it is over)."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes:
        msg = f"Request body over {max_bytes} bytes"
        raise BodyTooLargeError(msg)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            msg = f"Request body over {max_bytes} bytes"
            raise BodyTooLargeError(msg)
    return bytes(body)


def json_object(body: bytes, *, max_bytes: int = MAX_BODY) -> dict[str, Any]:
    """``body`` as a JSON object, or a :class:`ParameterError` saying what is wrong
    (too large, nested too deep, not UTF-8, not JSON, not an object)."""
    if len(body) > max_bytes:
        msg = f"Request body over {max_bytes} bytes"
        raise BodyTooLargeError(msg)
    if nesting(body) > MAX_DEPTH:
        msg = f"The request body is nested over {MAX_DEPTH} levels deep"
        raise ParameterError(msg)
    try:
        parsed = json.loads(body.decode("utf-8") or "{}", parse_int=_bounded_int)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        msg = "The request body is not JSON (UTF-8)"
        raise ParameterError(msg) from None
    if not isinstance(parsed, dict):
        msg = "The request body is not a JSON object"
        raise ParameterError(msg)
    return parsed
