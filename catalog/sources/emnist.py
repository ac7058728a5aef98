"""EMNIST: the published ``gzip.zip``, or the files extracted from it.

EMNIST (Cohen, Afshar, Tapson and van Schaik, "EMNIST: an extension of MNIST to
handwritten letters", 2017; https://www.nist.gov/itl/products-and-services/emnist-dataset)
is published as ``gzip.zip``, whose ``gzip/`` folder holds, for each split
``balanced``, ``byclass``, ``bymerge``, ``digits``, ``letters`` and ``mnist``:

- ``emnist-<split>-{train,test}-images-idx3-ubyte.gz`` and
  ``emnist-<split>-{train,test}-labels-idx1-ubyte.gz``: IDX files as MNIST's,
  except that each image is stored transposed (column-major), so the reader
  transposes it back to store it upright;
- ``emnist-<split>-mapping.txt``: one line per class, ``<label> <ASCII code>...``
  (``letters`` gives two codes, upper and lower case: ``1 65 97``).

Each EMNIST split becomes a dataset of its own, ``emnist-<split>``, with the
published label numbers (letters start at 1) and the mapping's characters as
class names (``A/a`` when the mapping gives two).
"""

from __future__ import annotations

import hashlib
import re
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from catalog.budget import DEFAULT_BUDGET, ReadBudget
from catalog.errors import SourceFormatError
from catalog.sources import Batch, Decoded, SourceFile
from catalog.sources.guard import bounded
from catalog.sources.idx import IdxHeader, read_header, stream_images
from catalog.sources.streams import DECOMPRESS_ERRORS, bounded_lines, open_member

SUBSETS = ("balanced", "byclass", "bymerge", "digits", "letters", "mnist")
FILE_NAME = re.compile(
    r"^emnist-(?P<subset>[a-z]+)-(?P<split>train|test)-(?P<role>images|labels)"
    r"-idx(?P<ndim>[13])-ubyte(?:\.gz)?$"
)
MAPPING_NAME = re.compile(r"^emnist-(?P<subset>[a-z]+)-mapping\.txt$")


@dataclass(frozen=True)
class _Member:
    """A file of the distribution: on disk, or a member of the zip."""

    path: Path
    member: str | None

    @property
    def name(self) -> str:
        return (self.member or self.path.name).rsplit("/", 1)[-1]

    def header(self, budget: ReadBudget) -> IdxHeader:
        return read_header(self.path, self.member, budget)

    def mapping(self, budget: ReadBudget) -> dict[int, str]:
        """The mapping file's classes, read a bounded line at a time."""
        where = f"{self.path}!{self.member}" if self.member else str(self.path)
        try:
            with ExitStack() as opened:
                if self.member is None:
                    raw: IO[bytes] = opened.enter_context(self.path.open("rb"))
                else:
                    archive = opened.enter_context(zipfile.ZipFile(self.path))
                    raw = opened.enter_context(open_member(archive, self.member, where, budget))
                lines = (
                    (number, line.decode("ascii"))
                    for number, line in bounded_lines(raw, where, budget)
                )
                return parse_mapping_lines(lines, self.name, budget)
        except (*DECOMPRESS_ERRORS, UnicodeDecodeError, zipfile.BadZipFile) as exc:
            msg = f"Cannot read EMNIST mapping {self.name} in {self.path}: {exc}"
            raise SourceFormatError(msg) from None


def _members(path: Path) -> list[_Member]:
    if path.is_dir():
        return [_Member(p, None) for p in sorted(path.iterdir()) if p.is_file()]
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                names = sorted(archive.namelist())
        except (OSError, zipfile.BadZipFile) as exc:
            msg = f"Cannot read EMNIST archive {path}: {exc}"
            raise SourceFormatError(msg) from None
        return [_Member(path, name) for name in names if not name.endswith("/")]
    return [_Member(p, None) for p in sorted(path.parent.iterdir()) if p.is_file()]


def parse_mapping(text: str, where: str, budget: ReadBudget = DEFAULT_BUDGET) -> dict[int, str]:
    """``<label> <code> [<code>...]`` lines to label -> characters (``A/a``).

    >>> parse_mapping("1 65 97\\n2 66 98\\n", "m")
    {1: 'A/a', 2: 'B/b'}
    """
    return parse_mapping_lines(enumerate(text.splitlines(), start=1), where, budget)


def parse_mapping_lines(
    lines: Iterable[tuple[int, str]], where: str, budget: ReadBudget
) -> dict[int, str]:
    """Numbered mapping lines to label -> characters; refused past ``budget.max_labels``."""
    names: dict[int, str] = {}
    for number, line in lines:
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2 or not all(f.isascii() and f.isdigit() for f in fields):
            msg = f"{where} line {number}: expected '<label> <ASCII code>...', found {line!r}"
            raise SourceFormatError(msg)
        codes = [int(f) for f in fields[1:]]
        if any(not 32 < code < 127 for code in codes):
            msg = f"{where} line {number}: expected printable ASCII codes, found {line!r}"
            raise SourceFormatError(msg)
        names[int(fields[0])] = "/".join(dict.fromkeys(chr(code) for code in codes))
        if len(names) > budget.max_labels:
            budget.refuse("max_labels", f"{where} names {len(names):,} classes by line {number:,}")
    return names


def _choose(path: Path, found: dict[str, dict[str, _Member]], subset: str | None) -> str:
    available = sorted(found)
    if not available:
        msg = (
            f"No EMNIST files found in {path}: expected names like "
            "emnist-letters-train-images-idx3-ubyte.gz"
        )
        raise SourceFormatError(msg)
    if subset is None:
        if len(available) == 1:
            return available[0]
        msg = (
            f"{path} holds EMNIST splits {', '.join(available)}: choose one with --subset NAME "
            "(each becomes a dataset emnist-NAME)"
        )
        raise SourceFormatError(msg)
    if subset not in found:
        msg = f"No EMNIST split {subset!r} in {path}: expected one of {', '.join(available)}"
        raise SourceFormatError(msg)
    return subset


@bounded
def read_emnist(
    path: Path, subset: str | None = None, *, budget: ReadBudget = DEFAULT_BUDGET
) -> Decoded:
    """Read one EMNIST split from ``gzip.zip``, its extracted folder or one of its files.

    Parameters
    ----------
    path
        The zip, a folder of ``emnist-*`` files, or an images file among them.
    subset
        ``balanced``, ``byclass``, ``bymerge``, ``digits``, ``letters`` or
        ``mnist``; needed when ``path`` holds more than one.
    budget
        What the files may declare and the reader hold (:class:`ReadBudget`).

    Returns
    -------
    Decoded
        Splits ``train`` and ``test`` (those present), images upright, the
        dataset name ``emnist-<subset>`` and the mapping's class names.

    Raises
    ------
    SourceFormatError
        For a missing or malformed file, a label the mapping does not list, or
        an ambiguous choice of split; the message names the file.
    OverBudgetError
        When a file declares, or the mapping lists, more than ``budget`` allows.
    """
    found: dict[str, dict[str, _Member]] = {}
    for member in _members(path):
        match = FILE_NAME.match(member.name)
        if match:
            key = f"{match['split']} {match['role']}"
            found.setdefault(match["subset"], {})[key] = member
        mapping = MAPPING_NAME.match(member.name)
        if mapping:
            found.setdefault(mapping["subset"], {})["mapping"] = member
    if subset is None and path.is_file() and (own := FILE_NAME.match(path.name)):
        subset = own["subset"]  # one file given: its own split
    with_images = {k: v for k, v in found.items() if set(v) != {"mapping"}}
    chosen = _choose(path, with_images, subset)
    members = found[chosen]
    names = None
    if "mapping" in members:
        names = members["mapping"].mapping(budget)
    plans: list[tuple[str, IdxHeader, IdxHeader]] = []
    for split in ("train", "test"):
        images, labels = members.get(f"{split} images"), members.get(f"{split} labels")
        if images is None and labels is None:
            continue
        if images is None or labels is None:
            have = (images or labels).name  # type: ignore[union-attr]
            msg = f"EMNIST {chosen} {split}: found {have} in {path} but not its pair"
            raise SourceFormatError(msg)
        plans.append((split, *_check_pair(images.header(budget), labels.header(budget))))
    if not plans:
        msg = f"EMNIST split {chosen} in {path} has only its mapping file, no images"
        raise SourceFormatError(msg)
    decoded = Decoded(
        format="emnist",
        counts={split: images.count for split, images, _ in plans},
        batches=iter(()),
        label_names=names,
        dataset=f"emnist-{chosen}",
    )
    budget.check_images(sum(images.count for _, images, _ in plans), str(path))
    archive = path if path.is_file() and zipfile.is_zipfile(path) else None
    decoded.batches = _stream(plans, names, decoded.files, archive, budget)
    return decoded


def _check_pair(images: IdxHeader, labels: IdxHeader) -> tuple[IdxHeader, IdxHeader]:
    if len(images.dims) != 3 or images.dtype != ">u1":
        msg = f"{images.name} should hold uint8 images (type 0x08, 3 dims)"
        raise SourceFormatError(msg)
    if len(labels.dims) != 1 or labels.dtype != ">u1":
        msg = f"{labels.name} should hold uint8 labels (type 0x08, 1 dim)"
        raise SourceFormatError(msg)
    if images.count != labels.count:
        msg = f"{images.name} has {images.count:,} images but {labels.name} has {labels.count:,} labels"
        raise SourceFormatError(msg)
    return images, labels


class _MappedLabels:
    """A block of labels, each checked against the mapping's classes when there is one."""

    def __init__(self, where: str, names: dict[int, str] | None) -> None:
        self.where = where
        self.names = names
        self.known = None if names is None else np.array(sorted(names), dtype=np.int64)

    def __call__(
        self, rows: npt.NDArray[Any], start: int
    ) -> tuple[npt.NDArray[np.int64], dict[str, npt.NDArray[Any]]]:
        values = rows.astype(np.int64)
        if self.known is not None and self.names:
            unknown = np.flatnonzero(~np.isin(values, self.known))
            if unknown.size:
                i = int(unknown[0])
                msg = (
                    f"{self.where} has label {values[i]} at index {start + i}, which the EMNIST "
                    f"mapping does not list (labels {min(self.names)}-{max(self.names)})"
                )
                raise SourceFormatError(msg)
        return values, {}


def _stream(
    plans: list[tuple[str, IdxHeader, IdxHeader]],
    names: dict[int, str] | None,
    files: list[SourceFile],
    archive: Path | None,
    budget: ReadBudget,
) -> Iterator[Batch]:
    for split, images, labels in plans:
        yield from stream_images(
            images, split, labels, files, budget=budget, transpose=True, fmt="emnist",
            label_rows=_MappedLabels(labels.name, names),
        )  # fmt: skip
    if archive is not None:  # the zip as published: its md5 is the one EMNIST lists
        sha256, md5 = hashlib.sha256(), hashlib.md5()
        with archive.open("rb") as stream:
            while chunk := stream.read(1 << 20):
                sha256.update(chunk)
                md5.update(chunk)
        files.append(
            SourceFile(
                uri=str(archive.resolve()), format="zip", size=archive.stat().st_size,
                sha256=sha256.hexdigest(), md5=md5.hexdigest(), role="archive",
                file_md5=md5.hexdigest(), file_sha256=sha256.hexdigest(),
            )
        )  # fmt: skip
