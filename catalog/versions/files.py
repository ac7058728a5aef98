"""A version as a file, to move it between catalogs: ``versions export`` / ``versions import``.

JSON (``.json``): one object, the header's fields and ``images``, a list of
``[split, index, sha256, label]``. JSONL (any other name, e.g. ``.jsonl``): the
header object on the first line, then one ``[split, index, sha256, label]`` per line.
The header holds ``format`` (:data:`FORMAT`), ``name``, ``dataset``, ``content_id``,
``count``, ``note``, ``by``, ``created_at``, ``label_names`` and ``selection``.

An import checks the file against itself (its images give its content id) and
against the catalog: the dataset exists, and every image is there with the same
pixel sha256; else it is refused in one line and nothing is written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.db.models.images import Dataset, Image
from catalog.db.models.versions import Version
from catalog.errors import VersionError
from catalog.select.versioned import sources_key
from catalog.versions.content import check_version_name, content_id
from catalog.versions.freeze import (
    VersionInfo,
    check_free,
    get_version,
    store_version,
    version_images,
)

FORMAT = "mnist-catalog-version/1"


def write_version_file(session: Session, name: str, path: Path) -> int:
    """Write version ``name`` to ``path`` (JSON if it ends in ``.json``, else JSONL);
    returns the number of images. The file appears whole or not at all."""
    row = get_version(session, name)
    header = {
        "format": FORMAT, "name": row.name, "dataset": row.dataset,
        "content_id": row.content_id, "count": row.count, "note": row.note, "by": row.author,
        "created_at": row.created_at.isoformat(), "label_names": row.label_names,
        "selection": row.selection,
    }  # fmt: skip
    images = [list(image) for image in version_images(session, row)]
    temp = path.with_name(f".{path.name}.part-{os.getpid()}")
    try:
        with temp.open("w", encoding="utf-8") as out:
            if path.suffix == ".json":
                json.dump({**header, "images": images}, out)
            else:
                out.write(json.dumps(header) + "\n")
                out.writelines(json.dumps(image) + "\n" for image in images)
        temp.replace(path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        msg = f"Cannot write version file {path}: {exc.strerror}"
        raise VersionError(msg) from None
    return len(images)


def _read(path: Path) -> tuple[dict[str, Any], list[Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"Cannot read version file {path}: {getattr(exc, 'strerror', None) or exc}"
        raise VersionError(msg) from None
    try:
        if text.lstrip().startswith("{") and "\n{" not in text and path.suffix == ".json":
            data = json.loads(text)
            return data, data.pop("images", None)
        lines = text.splitlines()
        return json.loads(lines[0]) if lines else {}, [
            json.loads(line) for line in lines[1:] if line
        ]
    except (json.JSONDecodeError, AttributeError) as exc:
        msg = f"Version file {path} is not JSON or JSONL: {exc}"
        raise VersionError(msg) from None


def _images(path: Path, images: Any) -> Iterator[tuple[str, int, str, int | None]]:
    if not isinstance(images, list):
        msg = f"Version file {path} has no list of images"
        raise VersionError(msg)
    for n, image in enumerate(images):
        ok = (
            isinstance(image, list) and len(image) == 4 and isinstance(image[0], str)
            and isinstance(image[1], int) and isinstance(image[2], str)
            and (image[3] is None or isinstance(image[3], int))
        )  # fmt: skip
        if not ok:
            msg = f"Version file {path}: image {n} is not [split, index, sha256, label]"
            raise VersionError(msg)
        yield image[0], image[1], image[2], image[3]


def read_version_file(session: Session, path: Path) -> VersionInfo:
    """Add the version in file ``path`` to the catalog, checked against its images.

    Raises
    ------
    VersionError
        If the file cannot be read, its name is bad or taken, its images do not give
        its content id, or an image is not in the catalog with the same pixels.
    """
    header, listed = _read(path)
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        msg = f"Version file {path} is not a version file (format {FORMAT!r})"
        raise VersionError(msg)
    name = str(header.get("name"))
    check_version_name(name)
    check_free(session, name)
    dataset = str(header.get("dataset"))
    rows = list(_images(path, listed))
    found = content_id(dataset, rows)
    if found != header.get("content_id"):
        msg = f"Version file {path}: its images give content id {found[:12]}, not {str(header.get('content_id'))[:12]}"
        raise VersionError(msg)
    ds = session.scalar(select(Dataset.id).where(Dataset.name == dataset))
    if ds is None:
        msg = f"Version {name!r} is of dataset {dataset!r}, which this catalog does not hold"
        raise VersionError(msg)
    here = {
        (split, index): (image_id, sha256)
        for image_id, split, index, sha256 in session.execute(
            select(Image.id, Image.split, Image.index, Image.sha256).where(Image.dataset_id == ds)
        )
    }
    images = []
    for split, index, sha256, label in rows:
        image_id, digest = here.get((split, index), (None, None))
        if digest != sha256:
            state = "is missing" if digest is None else f"has pixels {digest[:12]}"
            msg = (
                f"Version {name!r}: image {dataset}/{split}/{index} has pixels {sha256[:12]} "
                f"in {path.name} but {state} in this catalog"
            )
            raise VersionError(msg)
        assert image_id is not None
        images.append((split, index, image_id, sha256, label, None))
    version = Version(
        name=name, dataset_id=ds, dataset=dataset, content_id=found,  # checked again
        label_names=header.get("label_names") or {}, selection=header.get("selection") or {},
        decision_id=None, note=header.get("note"), author=str(header.get("by") or ""),
        imported=True, sources_key=sources_key(session, ds),
    )  # fmt: skip
    created = header.get("created_at")
    try:
        if isinstance(created, str):
            version.created_at = datetime.fromisoformat(created)
    except ValueError:
        pass  # the import's time stands
    return store_version(session, version, images)
