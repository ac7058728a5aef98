"""The Python API: :class:`Catalog` and the selections it makes.

>>> from catalog import Catalog
>>> catalog = Catalog.open(":memory:")  # doctest: +SKIP
>>> x, y = catalog.select(split="train", labels=[3, 5]).arrays()  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from sqlalchemy import Engine

from catalog.api.browse import BrowseMixin
from catalog.api.curation import CurationMixin, _names
from catalog.api.selection import CatalogSelection
from catalog.api.versions import VersionsMixin
from catalog.db.engine import READ_ONLY_OPTION, session_scope
from catalog.selection import Selection

if TYPE_CHECKING:  # imported where used: a count needs none of them (tests/test_cli_startup.py)
    from catalog.audit import AuditReport
    from catalog.audit.label_model import Method
    from catalog.audit.runs import StoredRun
    from catalog.budget import ReadBudget
    from catalog.db.backup import Backup
    from catalog.identity.result import IdentityResult
    from catalog.ingest.transaction import IngestResult
    from catalog.integrity.report import IntegrityReport
    from catalog.select.listings import DatasetSummary
    from catalog.sources import Decoded

__all__ = ["Catalog", "CatalogSelection"]


class Catalog(BrowseMixin, CurationMixin, VersionsMixin):
    """A catalog opened by path or SQLAlchemy URL, upgraded to the newest schema."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(
        cls, location: str | Path | None = None, *, on_wait: Callable[[str], None] | None = None
    ) -> Catalog:
        """Open the catalog at ``location`` (see :mod:`catalog.db.schema` for what
        opening does to a new, older or newer schema).

        ``location`` is a file path or a SQLAlchemy URL; default
        ``$MNIST_CATALOG_DB`` or ``./catalog.db``. ``on_wait`` is called with a
        message when another client's upgrade holds the migration lock.
        """
        from catalog.db.schema import open_engine

        return cls(open_engine(location, on_wait=on_wait))

    @property
    def writable(self) -> bool:
        """Whether this client may write (its role may, and it knows the schema)."""
        return not self.engine.get_execution_options().get(READ_ONLY_OPTION)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def ingest(
        self,
        source: str | Path,
        *,
        dataset: str | None = None,
        replace: bool = False,
        progress: Callable[[int], None] | None = None,
        decoded: Decoded | None = None,
        subset: str | None = None,
        on_wait: Callable[[str], None] | None = None,
        budget: ReadBudget | None = None,
    ) -> IngestResult:
        """Decode ``source`` into the catalog in one transaction (see
        :func:`catalog.ingest.transaction.ingest`).

        ``source`` is a path, or the name of a known dataset (``"mnist"``,
        ``"fashion-mnist"`` ...): its verified files, from the download cache or
        downloaded into it (:func:`catalog.ingest.locate.locate_source`).
        ``decoded`` is ``source`` already opened by
        :func:`catalog.ingest.transaction.decode_source` (whose ``total`` can size a
        progress bar), so it is not decoded twice. ``subset`` picks one dataset of a
        source that holds several (an EMNIST split). ``on_wait`` is called with a
        message when another ingest of the same dataset holds its lock; this one then
        waits for it to finish. ``budget`` (:class:`~catalog.budget.ReadBudget`) is what
        the reader may hold and read; a source over it is refused in one line.
        """
        from catalog.ingest.locate import locate_source
        from catalog.ingest.transaction import ingest

        path = Path(source)
        if isinstance(source, str):
            located = locate_source(source)
            path, dataset = located.path, dataset or located.dataset
        with session_scope(self.engine, write=True) as session:
            return ingest(
                session, path.expanduser(), dataset=dataset, replace=replace, progress=progress,
                decoded=decoded, subset=subset, on_wait=on_wait, budget=budget,
            )  # fmt: skip

    def check(
        self,
        *,
        files: bool = False,
        progress: Callable[[int], None] | None = None,
        on_total: Callable[[int], None] | None = None,
    ) -> IntegrityReport:
        """Check the catalog as ``git fsck`` checks a repository (see :mod:`catalog.integrity`):
        every image's pixels against its sha256, the decision log against the stored state,
        the label counts against the images, and with ``files`` every exported file on
        record. Reads one snapshot; writes nothing. ``report.ok`` when nothing is broken.
        """
        from catalog.audit.recorded_files import broken_files
        from catalog.integrity import check_catalog

        with session_scope(self.engine) as session:
            return check_catalog(
                session, files=broken_files if files else None, progress=progress,
                on_total=on_total,
            )  # fmt: skip

    def backup(
        self, out: str | Path, *, progress: Callable[[int, int], None] | None = None
    ) -> Backup:
        """Write a consistent copy of the catalog to the new file ``out`` while others read
        and write it (see :mod:`catalog.db.backup`): SQLite's online backup, or ``pg_dump``
        on PostgreSQL. ``progress(done, total)`` counts SQLite's pages."""
        from catalog.db.backup import backup_catalog

        return backup_catalog(self.engine, Path(out), progress)

    def datasets(self, *, counts: bool = True) -> list[DatasetSummary]:
        """Every dataset, its splits and sources; ``counts=False`` leaves out the counts."""
        from catalog.select.listings import list_datasets

        with session_scope(self.engine) as session:
            return list_datasets(session, counts=counts)

    def exports(self) -> list[dict[str, Any]]:
        from catalog.select.listings import list_exports

        with session_scope(self.engine) as session:
            return list_exports(session)

    def audit(
        self,
        *,
        dataset: str | None = None,
        splits: Sequence[str] = (),
        checks: Sequence[str] | None = None,
        seed: int = 0,
        progress: Callable[[str, int, int], None] | None = None,
        memory: int = 1 << 30,
        full: bool = False,
        version: str | None = None,
        method: Method = "deskew-mlp",
    ) -> AuditReport:
        """Audit one dataset or all (see :mod:`catalog.audit`).

        ``progress(check, done, total)`` is called as each check advances; ``memory`` is the
        budget in bytes that sets how many images are read and worked on at a time;
        ``full`` searches and fits from scratch instead of building on the last audit;
        ``version`` audits only that version's images, with its frozen labels.
        ``method`` is the label-error scorer (``deskew-mlp``, ``mlp``, ``knn``, ``softmax``,
        or ``deskew-cnn`` / ``cnn``: ``audit --thorough``'s, which need
        ``pip install "mnist-catalog[thorough]"``).
        """
        from catalog.audit import CHECKS, audit

        with session_scope(self.engine) as session:
            return audit(
                session, dataset=dataset, splits=splits, checks=checks or CHECKS, seed=seed,
                progress=progress, memory=memory, full=full, version=version,
                method=method,
            )  # fmt: skip

    def identify(
        self,
        dataset: str | None = None,
        *,
        against: str = "mnist",
        store: bool = True,
        progress: Callable[[int], None] | None = None,
        version: str | None = None,
    ) -> IdentityResult:
        """Say which image of ``against`` each image of ``dataset`` is (see
        :func:`catalog.identity.identify`).

        With ``store``, the result is kept per image as metadata (``match``,
        ``canonical_dataset``, ``canonical_split``, ``canonical_index``,
        ``max_error``), replacing what an earlier identify stored for them, so
        ``select(where={"canonical_split": "test"})`` and export manifests use it.
        With ``version``, only that version's images (with its frozen labels).
        """
        from catalog.identity.as_metadata import store_identity
        from catalog.identity.columns import version_columns
        from catalog.identity.match import identify_session

        with session_scope(self.engine, write=store) as session:
            images = None
            if version is not None:
                dataset, images = version_columns(session, dataset, version)
            result = identify_session(session, dataset, against, progress, images=images)
            if store:
                store_identity(session, result)
            return result

    def record_audit(self, report: AuditReport) -> int:
        """Store ``report`` as an audit run (see :mod:`catalog.audit.runs`); return its id."""
        from catalog.audit.runs import record_run

        with session_scope(self.engine, write=True) as session:
            return record_run(session, report)

    def latest_audit(
        self, dataset: str | None = None, *, findings: bool = True
    ) -> StoredRun | None:
        """The latest stored audit run (that covered ``dataset``, if given), or None;
        ``findings=False`` reads only its header, summaries and counts."""
        from catalog.audit.runs import latest_run

        with session_scope(self.engine) as session:
            return latest_run(session, dataset, findings=findings)

    def audit_text(self, report: AuditReport) -> str:
        """``report`` as the plain text ``mnist-catalog audit`` prints."""
        from catalog.audit.report import render_text

        return render_text(report)

    def audit_html(self, report: AuditReport) -> str:
        """The HTML page for ``report``, with its contact sheets."""
        from catalog.audit.html_report import render_html

        with session_scope(self.engine) as session:
            return render_html(report, session)

    def select(
        self,
        *,
        dataset: str | None = None,
        split: str | Sequence[str] | None = None,
        labels: int | str | Iterable[int | str] | None = None,
        index: tuple[int, int] | None = None,
        sample: int | None = None,
        per_label: int | None = None,
        seed: int = 0,
        order: str = "index",
        limit: int | None = None,
        offset: int = 0,
        tag: str | Sequence[str] = (),
        without_tag: str | Sequence[str] = (),
        relabelled: bool = False,
        excluded: str = "omit",
        original_labels: bool = False,
        unlabeled: bool = False,
        where: Mapping[str, object] | None = None,
        group_by: str | None = None,
        per_group: int | None = None,
        version: str | None = None,
    ) -> CatalogSelection:
        """A selection of images; nothing is read until you ask for rows, arrays or files.

        Labels are the current ones (after relabel decisions) unless
        ``original_labels``; excluded images are left out unless ``excluded`` is
        ``"include"`` or ``"only"``; ``tag`` and ``without_tag`` filter by tags.
        ``labels`` are numbers or class names (``"Trouser"``); ``unlabeled``
        selects the images published without a label; ``where`` filters on
        per-image metadata (``{"writer": 123}``); ``per_group`` images of each
        ``group_by`` value are drawn at random; ``version`` selects within a frozen
        version, with its frozen labels.
        """
        splits = (split,) if isinstance(split, str) else tuple(split or ())
        label_tuple = (labels,) if isinstance(labels, int | str) else tuple(labels or ())
        pairs = tuple((key, str(value)) for key, value in (where or {}).items())
        selection = Selection(
            dataset=dataset, splits=splits, labels=label_tuple, index_range=index,
            sample=sample, per_label=per_label, seed=seed, order=order, limit=limit, offset=offset,
            tags=_names(tag), without_tags=_names(without_tag), relabelled=relabelled,
            excluded=excluded, original_labels=original_labels,
            unlabeled=unlabeled, where=pairs, group_by=group_by, per_group=per_group,
            version=version,
        )  # fmt: skip
        return CatalogSelection(self.engine, selection)

    def selected(self, selection: Selection) -> CatalogSelection:
        """The images a :class:`~catalog.selection.Selection` describes (as the command
        line and the web view build it from their options)."""
        return CatalogSelection(self.engine, selection)
