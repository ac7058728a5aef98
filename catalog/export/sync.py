"""Keeping an export folder in step with the decisions when an export is re-run.

A relabel changes where an image goes (``000018_3.png`` becomes
``000018_8.png``), and an exclusion takes an image out. When an export runs
again into the same folder with the same layout and format, the files that
earlier runs wrote under a name the image no longer has, and the files of
images that are now excluded, are removed from disk and from the catalog's
file records, so the folder holds exactly what the catalog says (``audit
--check files`` is clean afterwards).
"""

from __future__ import annotations

import os

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from catalog.db.models.decisions import ImageState
from catalog.db.models.exports import Export, ExportedFile
from catalog.errors import ExportError
from catalog.selection import Selection

CHUNK = 4000


def remove_stale(
    session: Session, record: Export, selection: Selection, exported: dict[int, str]
) -> tuple[int, int]:
    """Remove what earlier runs into ``record``'s folder wrote that this run replaces.

    ``exported`` maps each image this run wrote or kept to its relative path.
    Returns ``(renamed, removed)``: old names of relabelled images, and files of
    now-excluded images. Each file goes from disk, then its row from the catalog.
    """
    same_folder = select(Export.id).where(
        Export.root == record.root, Export.layout == record.layout, Export.format == record.format
    )
    rows = session.execute(
        select(ExportedFile.id, ExportedFile.image_id, ExportedFile.path, ImageState.excluded)
        .outerjoin(ImageState, ImageState.image_id == ExportedFile.image_id)
        .where(ExportedFile.export_id.in_(same_folder))
    ).all()
    prefix = record.root.rstrip("/") + "/"
    renamed: list[tuple[int, str]] = []
    removed: list[tuple[int, str]] = []
    for file_id, image_id, path, excluded in rows:
        now = exported.get(image_id)
        if now is not None and prefix + now != path:
            renamed.append((file_id, path))
        elif now is None and excluded and selection.excluded == "omit":
            removed.append((file_id, path))
    stale = renamed + removed
    for _, path in stale:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            msg = f"Cannot remove stale export file {path}: {exc.strerror}"
            raise ExportError(msg) from None
    ids = [file_id for file_id, _ in stale]
    for start in range(0, len(ids), CHUNK):
        session.execute(delete(ExportedFile).where(ExportedFile.id.in_(ids[start : start + CHUNK])))
    return len(renamed), len(removed)
