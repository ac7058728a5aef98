"""The versions half of :class:`catalog.Catalog`: freeze, list, diff, move between catalogs.

>>> from catalog import Catalog
>>> catalog = Catalog.open("catalog.db")  # doctest: +SKIP
>>> catalog.freeze("v1", catalog.select(split="train")).content_id  # doctest: +SKIP
>>> x, y = catalog.version("v1").arrays()  # doctest: +SKIP
>>> catalog.diff("v1", "current").relabelled  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from catalog.api.selection import CatalogSelection
from catalog.db.engine import session_scope
from catalog.selection import Selection

if TYPE_CHECKING:
    from catalog.versions.diff import VersionDiff
    from catalog.versions.freeze import VersionInfo


class VersionsMixin:
    """freeze, versions, version, diff, export_version, import_version."""

    engine: Engine

    def freeze(
        self,
        name: str,
        selection: CatalogSelection | Selection | None = None,
        *,
        note: str | None = None,
        by: str | None = None,
    ) -> VersionInfo:
        """Freeze ``selection`` (default: the only dataset, as it stands) as version
        ``name``: its images, their labels now, who and when; never edited after.
        Returns the version, with its ``content_id``."""
        from catalog.curation.decisions import default_author
        from catalog.curation.log import latest_decision
        from catalog.versions.freeze import freeze_version

        if isinstance(selection, CatalogSelection):
            selection = selection.selection
        with session_scope(self.engine, write=True) as session:
            return freeze_version(
                session, selection or Selection(), name, note=note,
                author=by or default_author(), decision_id=latest_decision(session),
            )  # fmt: skip

    def versions(self) -> list[VersionInfo]:
        """Every version, oldest first."""
        from catalog.versions.freeze import list_versions

        with session_scope(self.engine) as session:
            return list_versions(session)

    def version(self, name: str, selection: Selection | None = None) -> CatalogSelection:
        """The images of version ``name`` with their frozen labels (``.arrays()``,
        ``.dataset()``, ``.export()``, ``.to_hf()`` ...); ``selection``'s filters narrow
        it. Refuses an unknown name at once."""
        from catalog.versions.freeze import get_version

        with session_scope(self.engine) as session:
            get_version(session, name)
        return CatalogSelection(self.engine, replace(selection or Selection(), version=name))

    def diff(self, a: str, b: str) -> VersionDiff:
        """Images added, removed and relabelled from version ``a`` to ``b`` (either may
        be ``"current"``: the other's selection as it stands now)."""
        from catalog.versions.diff import diff_versions

        with session_scope(self.engine) as session:
            return diff_versions(session, a, b)

    def export_version(self, name: str, path: str | Path) -> int:
        """Write version ``name`` to a JSON (``.json``) or JSONL file; returns its images."""
        from catalog.versions.files import write_version_file

        with session_scope(self.engine) as session:
            return write_version_file(session, name, Path(path))

    def import_version(self, path: str | Path) -> VersionInfo:
        """Add the version in a file written by :meth:`export_version`, checked against
        this catalog's images by digest."""
        from catalog.versions.files import read_version_file

        with session_scope(self.engine, write=True) as session:
            return read_version_file(session, Path(path))
