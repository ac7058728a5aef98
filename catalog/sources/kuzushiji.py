"""Kuzushiji-MNIST and Kuzushiji-49 as published in ``.npz`` files.

The KMNIST distribution (Clanuwat et al., "Deep Learning for Classical
Japanese Literature", 2018; https://github.com/rois-codh/kmnist, README "Get
the data") has, for ``kmnist`` (10 classes) and ``k49`` (49 classes):

- ``<name>-{train,test}-imgs.npz``: one array ``arr_0``, uint8 ``(n, 28, 28)``;
- ``<name>-{train,test}-labels.npz``: one array ``arr_0``, integer ``(n,)``;
- ``<name>_classmap.csv``: ``index,codepoint,char`` (e.g. ``0,U+304A,お``).

The arrays are loaded with ``allow_pickle=False``, so an object array is
refused rather than unpickled. The class map, when it is beside the files,
gives the class names.
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

from catalog.errors import SourceFormatError
from catalog.sources import Decoded, SourceFile
from catalog.sources.npz import split_batches

FILE_NAME = re.compile(r"^(?P<name>[a-z0-9]+)-(?P<split>train|test)-(?P<role>imgs|labels)\.npz$")
_CHUNK = 1 << 20


def _digests(path: Path) -> tuple[str, str]:
    sha256, md5 = hashlib.sha256(), hashlib.md5()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            sha256.update(chunk)
            md5.update(chunk)
    return sha256.hexdigest(), md5.hexdigest()


def _load(path: Path) -> npt.NDArray[Any]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            if archive.files != ["arr_0"]:
                msg = f"Invalid {path}: expected one array arr_0, found {', '.join(archive.files) or 'none'}"
                raise SourceFormatError(msg)
            array: npt.NDArray[Any] = archive["arr_0"]
            return array
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        text = " ".join(str(exc).split())
        msg = f"Cannot read {path} as npz: {text}"
        raise SourceFormatError(msg) from None


def read_class_map(path: Path) -> dict[int, str]:
    """``index,codepoint,char`` rows (KMNIST's ``*_classmap.csv``) to index -> char."""
    names: dict[int, str] = {}
    try:
        with path.open(encoding="utf-8", newline="") as stream:
            for number, row in enumerate(csv.DictReader(stream), start=2):
                index, char = (row.get("index") or "").strip(), (row.get("char") or "").strip()
                if not index.isdigit() or not char:
                    msg = f"{path} line {number}: expected index,codepoint,char, found {row}"
                    raise SourceFormatError(msg)
                names[int(index)] = char
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


def read_kuzushiji(path: Path) -> Decoded:
    """Read ``kmnist-*.npz`` or ``k49-*.npz`` files (a folder, or one images file).

    Raises
    ------
    SourceFormatError
        For a missing pair, an array that is not ``arr_0``, wrong shapes or
        dtypes, lengths that disagree, or a negative label.
    """
    name, found = _files(path)
    splits: dict[str, tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]] = {}
    files: list[SourceFile] = []
    for split in ("train", "test"):
        roles = found.get(split)
        if roles is None:
            continue
        if set(roles) != {"imgs", "labels"}:
            have = next(iter(roles.values()))
            msg = f"Found {have.name} but not its {'labels' if 'imgs' in roles else 'imgs'} file beside it"
            raise SourceFormatError(msg)
        x, y = _load(roles["imgs"]), _load(roles["labels"])
        if x.dtype != np.uint8 or x.ndim != 3:
            msg = f"Invalid {roles['imgs']}: expected uint8 images (n, height, width), found {x.dtype} {x.shape}"
            raise SourceFormatError(msg)
        if y.dtype.kind not in "iu" or y.shape != (len(x),):
            msg = f"Invalid {roles['labels']}: expected {len(x)} integer labels, found {y.dtype} {y.shape}"
            raise SourceFormatError(msg)
        labels = y.astype(np.int64)
        if labels.size and labels.min() < 0:
            i = int(np.flatnonzero(labels < 0)[0])
            msg = f"Invalid {roles['labels']}: label {labels[i]} at index {i}, expected 0 or more"
            raise SourceFormatError(msg)
        splits[split] = (x, labels)
        for role, file in (("images", roles["imgs"]), ("labels", roles["labels"])):
            sha256, md5 = _digests(file)
            files.append(
                SourceFile(
                    uri=str(file.resolve()), format="kmnist-npz", size=file.stat().st_size,
                    sha256=sha256, md5=md5, role=f"{split} {role}", split=split,
                    file_md5=md5, file_sha256=sha256,
                )
            )  # fmt: skip
    class_map = (path if path.is_dir() else path.parent) / f"{name}_classmap.csv"
    names = read_class_map(class_map) if class_map.is_file() else None
    return Decoded(
        format="kmnist-npz",
        counts={split: len(x) for split, (x, _) in splits.items()},
        batches=split_batches(splits),
        files=files,
        label_names=names,
        dataset=name,
    )
