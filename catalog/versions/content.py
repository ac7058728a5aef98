"""A version's name rules and content id: the bytes hashed, written down once.

The content id is the sha256 of one line per image, in order of split (by its UTF-8
bytes) then index::

    <dataset>\\t<split>\\t<index>\\t<pixel sha256>\\t<label>\\n

all UTF-8; ``<index>`` and ``<label>`` in decimal, ``<label>`` empty for an image
published without one; ``<pixel sha256>`` the 64 lower-case hex digits of the image's
row-major uint8 pixels (``images.sha256``). Nothing else goes in: not the version's
name, note, author, time or image ids, so two catalogs that ingested the same files and
made the same decisions give the same id.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from typing import Any

from catalog.errors import VersionError

#: A version's name: letters, digits, ``.``, ``_`` and ``-``, not starting with a dot.
NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")
#: The name ``diff`` gives the selection as it stands; no version may take it.
CURRENT = "current"


def check_version_name(name: str) -> str:
    """``name`` if it may name a version, else a one-line :class:`VersionError`.

    >>> check_version_name("v1.2")
    'v1.2'
    """
    if not NAME.fullmatch(name) or name == CURRENT:
        msg = (
            f"Bad version name {name!r}: use 1 to 64 letters, digits, '.', '_' or '-', "
            f"not starting with '.', and not {CURRENT!r}"
        )
        raise VersionError(msg)
    return name


def content_lines(dataset: str, rows: Iterable[Sequence[Any]]) -> bytes:
    """The bytes the content id hashes, for ``(split, index, sha256, label)`` rows (any
    further fields are ignored)."""
    ordered = sorted(rows, key=lambda row: (row[0].encode(), row[1]))
    return "".join(
        f"{dataset}\t{row[0]}\t{row[1]}\t{row[2]}\t{'' if row[3] is None else row[3]}\n"
        for row in ordered
    ).encode()


def content_id(dataset: str, rows: Iterable[Sequence[Any]]) -> str:
    """The content id of a version of ``dataset`` holding ``(split, index, sha256, label)``.

    >>> content_id("mnist", [("train", 0, "ab" * 32, 5)])[:12]
    '7df4219e8d6f'
    """
    return hashlib.sha256(content_lines(dataset, rows)).hexdigest()
