"""Kuzushiji-MNIST and Kuzushiji-49 as published in ``.npz`` files.

The KMNIST distribution (Clanuwat et al., "Deep Learning for Classical
Japanese Literature", 2018; https://github.com/rois-codh/kmnist, README "Get
the data") has, for ``kmnist`` (10 classes) and ``k49`` (49 classes):

- ``<name>-{train,test}-imgs.npz``: one array ``arr_0``, uint8 ``(n, 28, 28)``;
- ``<name>-{train,test}-labels.npz``: one array ``arr_0``, integer ``(n,)``;
- ``<name>_classmap.csv``: ``index,codepoint,char`` (e.g. ``0,U+304A,お``).

The arrays are never loaded with ``np.load``, which inflates a whole member:
their headers are checked against the read budget first, an object array is
refused rather than unpickled, labels are read whole (a byte or a few an
image) and images streamed a block of rows at a time
(:mod:`catalog.sources.npy_members`). The class map, when it is beside the
files, gives the class names, a bounded line at a time.
"""

from __future__ import annotations

import csv
import hashlib
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from catalog.budget import DEFAULT_BUDGET, ReadBudget
from catalog.errors import SourceFormatError
from catalog.sources import Decoded, SourceFile
from catalog.sources.guard import bounded
from catalog.sources.npy_members import NpyMember, read_npy_header, read_whole, verify
from catalog.sources.npz import ImageMember, as_npz, image_member, stream_images
from catalog.sources.streams import bounded_lines

FILE_NAME = re.compile(
    r"^(?P<name>[a-z0-9]+)-(?P<split>train|test)-(?P<role>imgs|labels)\.npz$", re.ASCII
)
_CHUNK = 1 << 20


def _digests(path: Path) -> tuple[str, str]:
    sha256, md5 = hashlib.sha256(), hashlib.md5()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            sha256.update(chunk)
            md5.update(chunk)
    return sha256.hexdigest(), md5.hexdigest()


def _member(path: Path, budget: ReadBudget) -> NpyMember:
    """The header of ``arr_0``, the one array the file holds."""
    with as_npz(path), zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        if names != ["arr_0.npy"]:
            found = ", ".join(n.removesuffix(".npy") for n in names) or "none"
            msg = f"Invalid {path}: expected one array arr_0, found {found}"
            raise SourceFormatError(msg)
        return read_npy_header(path, archive, "arr_0.npy", f"Invalid {path}", budget)


def _verify(member: NpyMember, budget: ReadBudget) -> None:
    """Read ``member`` to its end (its CRC), once its header has passed every check."""
    with as_npz(member.path), zipfile.ZipFile(member.path) as archive:
        verify(archive, member, budget)


def _labels(path: Path, images: ImageMember, budget: ReadBudget) -> npt.NDArray[np.int64]:
    member = _member(path, budget)
    if member.dtype.kind not in "iu" or member.shape != (images.count,):
        msg = (
            f"Invalid {path}: expected {images.count} integer labels, "
            f"found {member.dtype} {member.shape}"
        )
        raise SourceFormatError(msg)
    with as_npz(path), zipfile.ZipFile(path) as archive:
        values: npt.NDArray[Any] = read_whole(archive, member, budget)  # its CRC checked too
    if values.dtype == np.uint64 and values.size and values.max() > np.iinfo(np.int64).max:
        i = int(np.flatnonzero(values > np.iinfo(np.int64).max)[0])
        msg = f"Invalid {path}: label {values[i]} at index {i} does not fit a 32-bit integer"
        raise SourceFormatError(msg)
    labels = values.astype(np.int64)
    if labels.size and labels.min() < 0:
        i = int(np.flatnonzero(labels < 0)[0])
        msg = f"Invalid {path}: label {labels[i]} at index {i}, expected 0 or more"
        raise SourceFormatError(msg)
    return labels


def read_class_map(path: Path, budget: ReadBudget = DEFAULT_BUDGET) -> dict[int, str]:
    """``index,codepoint,char`` rows (KMNIST's ``*_classmap.csv``) to index -> char,
    a bounded line at a time, refused past ``budget.max_labels`` rows."""
    names: dict[int, str] = {}
    try:
        with path.open("rb") as stream:
            lines = bounded_lines(stream, str(path), budget)
            text = (line.decode("utf-8") for _, line in lines)
            for number, row in enumerate(csv.DictReader(text), start=2):
                index, char = (row.get("index") or "").strip(), (row.get("char") or "").strip()
                if not (index.isascii() and index.isdigit()) or not char:
                    msg = f"{path} line {number}: expected index,codepoint,char, found {row}"
                    raise SourceFormatError(msg)
                names[int(index)] = char
                if len(names) > budget.max_labels:
                    budget.refuse("max_labels", f"{path} names {len(names):,} classes")
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        msg = f"Cannot read class map {path}: {exc}"
        raise SourceFormatError(msg) from None
    return names


def _files(path: Path) -> tuple[str, dict[str, dict[str, Path]]]:
    folder = path if path.is_dir() else path.parent
    own = FILE_NAME.match(path.name) if path.is_file() else None
    found: dict[str, dict[str, dict[str, Path]]] = {}
    for candidate in sorted(folder.iterdir()):
        match = FILE_NAME.match(candidate.name)
        if match and candidate.is_file():
            if own and (match["name"], match["split"]) != (own["name"], own["split"]):
                continue
            roles = found.setdefault(match["name"], {}).setdefault(match["split"], {})
            roles[match["role"]] = candidate
    if not found:
        msg = f"No Kuzushiji npz files found in {path}: expected kmnist-train-imgs.npz and kmnist-train-labels.npz"
        raise SourceFormatError(msg)
    if len(found) > 1:
        msg = f"{folder} holds files of {', '.join(sorted(found))}: give one of their files"
        raise SourceFormatError(msg)
    name, splits = next(iter(found.items()))
    return name, splits


@bounded
def read_kuzushiji(path: Path, *, budget: ReadBudget = DEFAULT_BUDGET) -> Decoded:
    """Read ``kmnist-*.npz`` or ``k49-*.npz`` files (a folder, or one images file).

    Raises
    ------
    SourceFormatError
        For a missing pair, an array that is not ``arr_0``, wrong shapes or
        dtypes, lengths that disagree, or a negative label.
    OverBudgetError
        When an array declares more than ``budget`` allows (images, side, the
        ratio of its size to its compressed size), or the class map more classes.
    """
    name, found = _files(path)
    splits: dict[str, tuple[ImageMember, npt.NDArray[np.int64]]] = {}
    files: list[SourceFile] = []
    for split in ("train", "test"):
        roles = found.get(split)
        if roles is None:
            continue
        if set(roles) != {"imgs", "labels"}:
            have = next(iter(roles.values()))
            msg = f"Found {have.name} but not its {'labels' if 'imgs' in roles else 'imgs'} file beside it"
            raise SourceFormatError(msg)
        member = _member(roles["imgs"], budget)
        if member.dtype != np.uint8 or len(member.shape) != 3:
            msg = f"Invalid {roles['imgs']}: expected uint8 images (n, height, width), found {member.dtype} {member.shape}"
            raise SourceFormatError(msg)
        images = image_member(member, f"Invalid {roles['imgs']}", budget)
        splits[split] = (images, _labels(roles["labels"], images, budget))
        for role, file in (("images", roles["imgs"]), ("labels", roles["labels"])):
            sha256, md5 = _digests(file)
            files.append(
                SourceFile(
                    uri=str(file.resolve()), format="kmnist-npz", size=file.stat().st_size,
                    sha256=sha256, md5=md5, role=f"{split} {role}", split=split,
                    file_md5=md5, file_sha256=sha256,
                )
            )  # fmt: skip
    budget.check_images(sum(x.count for x, _ in splits.values()), str(path))
    for images, _ in splits.values():
        _verify(images.member, budget)  # before any block is yielded
    class_map = (path if path.is_dir() else path.parent) / f"{name}_classmap.csv"
    names = read_class_map(class_map, budget) if class_map.is_file() else None
    return Decoded(
        format="kmnist-npz",
        counts={split: x.count for split, (x, _) in splits.items()},
        batches=stream_images(splits, budget),
        files=files,
        label_names=names,
        dataset=name,
    )
