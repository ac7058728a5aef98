"""One read budget for every reader: what a source may make the catalog hold, and when
a compressed source is a bomb.

Like a :class:`~catalog.selection.Selection`, a budget is plain data that every face
fills from its options: the command line makes ``mnist-catalog ingest``'s
``--max-...`` options from its fields (:func:`option`, each field's ``help``), the
Python API takes ``Catalog.ingest(..., budget=ReadBudget(...))``, and it travels down
through :mod:`catalog.ingest.transaction` to the readers in :mod:`catalog.sources`.
Nothing here imports numpy, so ``--help`` reads it for free.

Every reader takes a :class:`ReadBudget` (``budget=``, :data:`DEFAULT_BUDGET` when none
is given). It checks what a source *declares* (an IDX header, an ``.npy`` header, a zip
entry's sizes, a folder's listing) against the budget before it allocates or reads, and
what it *finds* while it streams (bytes out of a decompressor, line lengths, labels).
Over a limit it raises :class:`~catalog.errors.OverBudgetError`: one line naming the
file, the limit and the option that raises it (``--max-images``...).

The defaults, and why each is far above what the MNIST family needs, are in
``docs/robustness.md``.

>>> ReadBudget().max_side
1024
>>> ReadBudget(max_images=100).max_images
100
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, NoReturn

from catalog.errors import OverBudgetError, SourceFormatError

MiB = 1 << 20

#: The largest label a catalog stores (labels are 32-bit integers).
INT32_MAX = 2**31 - 1

#: A stream is judged by its decompressed-to-compressed ratio only once it has given
#: this many bytes: a small file of one value (a label file of one class) compresses far
#: better than real data, but costs nothing to read.
RATIO_FLOOR = 64 * MiB


def _limit(default: int, unit: str, help: str) -> Any:
    return field(default=default, metadata={"unit": unit, "help": help})


@dataclass(frozen=True)
class ReadBudget:
    """What a reader may hold and read for one source; every field is a positive int.

    Each field ``max_x`` is raised on the command line by ``--max-x`` (see :func:`option`).
    """

    #: Bytes of pixels in one block of images a reader yields (and, for a CSV, of the
    #: integers its lines parse to): a block is sized in bytes, never only in count.
    max_block_bytes: int = _limit(
        64 * MiB, "bytes a block", "bytes of pixels (or parsed CSV values) in one block"
    )
    #: The largest image side, in pixels.
    max_side: int = _limit(1024, "pixels a side", "largest image side, in pixels")
    #: The largest decompressed-to-compressed ratio before a source is called a bomb
    #: (judged past :data:`RATIO_FLOOR` bytes).
    max_ratio: int = _limit(100, "to 1", "largest decompressed-to-compressed ratio")
    #: The most images in one source.
    max_images: int = _limit(10_000_000, "images", "most images in one source")
    #: The longest line of a text file (a CSV row, a mapping line), in bytes.
    max_line_bytes: int = _limit(MiB, "bytes a line", "longest CSV or mapping line, in bytes")
    #: The most distinct labels (or class names) in one source.
    max_labels: int = _limit(1000, "distinct labels", "most distinct labels in one source")
    #: The most decompressed bytes of a pickle, which is read whole (it cannot stream).
    max_pickle_bytes: int = _limit(
        512 * MiB, "bytes of pickle data", "most decompressed bytes of a pickle"
    )

    def __post_init__(self) -> None:
        for limit in fields(self):
            value = getattr(self, limit.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                msg = f"{option(limit.name)} must be a positive integer, found {value!r}"
                raise ValueError(msg)

    def refuse(self, limit: str, claim: str) -> NoReturn:
        """Raise the error for ``claim`` (which names the file) going past ``limit``.

        >>> ReadBudget().refuse("max_images", "x.gz claims 20,000,000 items")
        Traceback (most recent call last):
        ...
        catalog.errors.OverBudgetError: x.gz claims 20,000,000 items: more than the 10,000,000 images the read budget allows (--max-images raises it)
        """
        unit = next(f.metadata["unit"] for f in fields(self) if f.name == limit)
        msg = (
            f"{claim}: more than the {getattr(self, limit):,} {unit} the read budget allows "
            f"({option(limit)} raises it)"
        )
        raise OverBudgetError(msg)

    def check_images(self, count: int, where: str, what: str = "images") -> None:
        """Refuse a source that declares more than :attr:`max_images` images."""
        if count > self.max_images:
            self.refuse("max_images", f"{where} claims {count:,} {what}")

    def check_side(self, height: int, width: int, where: str) -> None:
        """Refuse images with a side longer than :attr:`max_side`."""
        if max(height, width) > self.max_side:
            self.refuse("max_side", f"{where} claims images of {width}x{height}")

    def block_rows(self, row_bytes: int, where: str, most: int) -> int:
        """How many rows of ``row_bytes`` bytes make a block: at most ``most``, and at
        most :attr:`max_block_bytes` bytes (one row at least, if a row fits at all)."""
        if row_bytes > self.max_block_bytes:
            self.refuse("max_block_bytes", f"{where} has images of {row_bytes:,} bytes each")
        return max(1, min(most, self.max_block_bytes // max(row_bytes, 1)))

    def check_ratio(self, where: str, inflated: int, compressed: int) -> None:
        """Refuse ``inflated`` bytes made from ``compressed`` when the ratio is past
        :attr:`max_ratio` (and ``inflated`` past :data:`RATIO_FLOOR`)."""
        if inflated > RATIO_FLOOR and inflated > self.max_ratio * max(compressed, 1):
            ratio = inflated / max(compressed, 1)
            claim = f"{where} inflates {compressed:,} bytes to {inflated:,} ({ratio:,.0f} to 1)"
            self.refuse("max_ratio", claim)

    def check_label_names(self, names: dict[int, str] | None, where: str) -> None:
        """Refuse a class-name table with more than :attr:`max_labels` entries or a
        number that does not fit a 32-bit label."""
        if names is None:
            return
        if len(names) > self.max_labels:
            self.refuse("max_labels", f"{where} names {len(names):,} classes")
        outside = [n for n in names if not 0 <= n <= INT32_MAX]
        if outside:
            msg = f"{where} names class {outside[0]:,}: expected class numbers 0-{INT32_MAX:,}"
            raise SourceFormatError(msg)


def option(limit: str) -> str:
    """The command-line option that sets ``limit``: ``max_images`` -> ``--max-images``."""
    return "--" + limit.replace("_", "-")


#: The budget a reader uses when it is given none.
DEFAULT_BUDGET = ReadBudget()
