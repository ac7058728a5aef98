"""The Python API: :class:`Catalog` and the selections it makes.

>>> from catalog import Catalog
>>> catalog = Catalog.open(":memory:")  # doctest: +SKIP
>>> x, y = catalog.select(split="train", labels=[3, 5]).arrays()  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine

from catalog import db, decision_log, decisions, query
from catalog.api_selection import CatalogSelection
from catalog.audit import AuditReport
from catalog.audit.runs import StoredRun
from catalog.decision_log import DecisionRecord
from catalog.decisions import Change, Summary
from catalog.identity.result import IdentityResult
from catalog.query import DatasetSummary, ImageRow, Selection
from catalog.sources import Decoded
from catalog.store import IngestResult, ingest

__all__ = ["Catalog", "CatalogSelection"]


class Catalog:
    """A catalog opened by path or SQLAlchemy URL, upgraded to the newest schema."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(
        cls, location: str | Path | None = None, *, on_wait: Callable[[str], None] | None = None
    ) -> Catalog:
        """Open the catalog at ``location`` (see :mod:`catalog.schema` for what
        opening does to a new, older or newer schema).

        ``location`` is a file path or a SQLAlchemy URL; default
        ``$MNIST_CATALOG_DB`` or ``./catalog.db``. ``on_wait`` is called with a
        message when another client's upgrade holds the migration lock.
        """
        from catalog.schema import open_engine

        return cls(open_engine(location, on_wait=on_wait))

    @property
    def writable(self) -> bool:
        """Whether this client may write (its role may, and it knows the schema)."""
        return not self.engine.get_execution_options().get(db.READ_ONLY_OPTION)

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
    ) -> IngestResult:
        """Decode ``source`` into the catalog in one transaction (see :func:`catalog.store.ingest`).

        ``decoded`` is ``source`` already opened by :func:`catalog.store.decode_source`
        (whose ``total`` can size a progress bar), so it is not decoded twice.
        ``subset`` picks one dataset of a source that holds several (an EMNIST split).
        ``on_wait`` is called with a message when another ingest of the same
        dataset holds its lock; this one then waits for it to finish.
        """
        with db.session_scope(self.engine, write=True) as session:
            return ingest(
                session, Path(source), dataset=dataset, replace=replace, progress=progress,
                decoded=decoded, subset=subset, on_wait=on_wait,
            )  # fmt: skip

    def datasets(self, *, counts: bool = True) -> list[DatasetSummary]:
        """Every dataset, its splits and sources; ``counts=False`` leaves out the counts."""
        with db.session_scope(self.engine) as session:
            return query.list_datasets(session, counts=counts)

    def image(
        self, split: str, index: int, *, dataset: str | None = None
    ) -> tuple[ImageRow, npt.NDArray[np.uint8]]:
        """One image's row and pixels."""
        with db.session_scope(self.engine) as session:
            return query.get_image(session, dataset, split, index)

    def exports(self) -> list[dict[str, Any]]:
        with db.session_scope(self.engine) as session:
            return query.list_exports(session)

    def audit(
        self,
        *,
        dataset: str | None = None,
        splits: Sequence[str] = (),
        checks: Sequence[str] | None = None,
        seed: int = 0,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> AuditReport:
        """Audit one dataset or all (see :mod:`catalog.audit`).

        ``progress(check, done, total)`` is called as each check advances.
        """
        from catalog.audit import CHECKS, audit

        with db.session_scope(self.engine) as session:
            return audit(
                session, dataset=dataset, splits=splits, checks=checks or CHECKS, seed=seed,
                progress=progress,
            )  # fmt: skip

    def identify(
        self,
        dataset: str | None = None,
        *,
        against: str = "mnist",
        store: bool = True,
        progress: Callable[[int], None] | None = None,
    ) -> IdentityResult:
        """Say which image of ``against`` each image of ``dataset`` is (see
        :func:`catalog.identity.identify`).

        With ``store``, the result is kept per image as metadata (``match``,
        ``canonical_dataset``, ``canonical_split``, ``canonical_index``,
        ``max_error``), replacing what an earlier identify stored for them, so
        ``select(where={"canonical_split": "test"})`` and export manifests use it.
        """
        from catalog.identity import identify_session, store_identity

        with db.session_scope(self.engine, write=store) as session:
            result = identify_session(session, dataset, against, progress)
            if store:
                store_identity(session, result)
            return result

    def record_audit(self, report: AuditReport) -> int:
        """Store ``report`` as an audit run (see :mod:`catalog.audit.runs`); return its id."""
        from catalog.audit.runs import record_run

        with db.session_scope(self.engine, write=True) as session:
            return record_run(session, report)

    def latest_audit(
        self, dataset: str | None = None, *, findings: bool = True
    ) -> StoredRun | None:
        """The latest stored audit run (that covered ``dataset``, if given), or None;
        ``findings=False`` reads only its header, summaries and counts."""
        from catalog.audit.runs import latest_run

        with db.session_scope(self.engine) as session:
            return latest_run(session, dataset, findings=findings)

    def audit_text(self, report: AuditReport) -> str:
        """``report`` as the plain text ``mnist-catalog audit`` prints."""
        from catalog.audit.report import render_text

        return render_text(report)

    def audit_html(self, report: AuditReport) -> str:
        """The HTML page for ``report``, with its contact sheets."""
        from catalog.audit.html_report import render_html

        with db.session_scope(self.engine) as session:
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
    ) -> CatalogSelection:
        """A selection of images; nothing is read until you ask for rows, arrays or files.

        Labels are the current ones (after relabel decisions) unless
        ``original_labels``; excluded images are left out unless ``excluded`` is
        ``"include"`` or ``"only"``; ``tag`` and ``without_tag`` filter by tags.
        ``labels`` are numbers or class names (``"Trouser"``); ``unlabeled``
        selects the images published without a label; ``where`` filters on
        per-image metadata (``{"writer": 123}``); ``per_group`` images of each
        ``group_by`` value are drawn at random.
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
        )  # fmt: skip
        return CatalogSelection(self, selection)

    # --- curation -----------------------------------------------------------

    def decide(
        self,
        images: str | Sequence[str],
        make: Callable[[Any, int], list[Change]],
        *,
        dataset: str | None = None,
        by: str | None = None,
        dry_run: bool = False,
    ) -> Summary:
        """Record the changes ``make(session, image_id)`` returns for each image named."""
        refs = [decisions.parse_ref(text) for text in _names(images)]
        with db.session_scope(self.engine, write=True) as session:
            decisions.lock(session)
            ids = decisions.resolve(session, dataset, refs)
            changes = [change for image in ids for change in make(session, image)]
            return decisions.record(session, changes, author=by, dry_run=dry_run)

    def relabel(
        self, image: str, label: int | str, *, dataset: str | None = None,
        note: str | None = None, by: str | None = None,
    ) -> Summary:  # fmt: skip
        """Record that image ``SPLIT:INDEX`` is really ``label`` (a number or class name)."""

        def make(session: Any, image_id: int) -> list[Change]:
            number = decisions.check_label(session, image_id, label)
            return [Change(image_id, "relabel", label=number, note=note)]

        return self.decide(image, make, dataset=dataset, by=by)

    def exclude(
        self, images: str | Sequence[str], *, reason: str, dataset: str | None = None,
        by: str | None = None,
    ) -> Summary:  # fmt: skip
        """Leave images out of every selection, export and array from now on."""
        return self.decide(
            images, lambda _s, i: [Change(i, "exclude", note=reason)], dataset=dataset, by=by
        )

    def include(
        self, images: str | Sequence[str], *, note: str | None = None,
        dataset: str | None = None, by: str | None = None,
    ) -> Summary:  # fmt: skip
        """Take excluded images back in."""
        return self.decide(
            images, lambda _s, i: [Change(i, "include", note=note)], dataset=dataset, by=by
        )

    def tag(
        self, name: str, images: str | Sequence[str], *, note: str | None = None,
        dataset: str | None = None, by: str | None = None,
    ) -> Summary:  # fmt: skip
        """Put tag ``name`` on images ``SPLIT:INDEX``."""
        decisions.check_tag(name)
        return self.decide(
            images, lambda _s, i: [Change(i, "tag", tag=name, note=note)], dataset=dataset, by=by
        )

    def untag(
        self, name: str, images: str | Sequence[str], *, note: str | None = None,
        dataset: str | None = None, by: str | None = None,
    ) -> Summary:  # fmt: skip
        """Take tag ``name`` off images ``SPLIT:INDEX`` (an error if none carries it)."""
        refs = [decisions.parse_ref(text) for text in _names(images)]
        with db.session_scope(self.engine, write=True) as session:
            decisions.lock(session)
            ids = decisions.resolve(session, dataset, refs)
            changes = decision_log.untag_changes(session, ids, name, note)
            return decisions.record(session, changes, author=by)

    def undo(self, decision: int, *, note: str | None = None, by: str | None = None) -> Summary:
        """Revert decision ``decision`` with a new decision (nothing is deleted)."""
        with db.session_scope(self.engine, write=True) as session:
            decisions.lock(session)
            change = decision_log.undo_change(session, decision, note)
            return decisions.record(session, [change], author=by)

    def apply(
        self, path: str | Path, *, dataset: str | None = None, by: str | None = None,
        dry_run: bool = False,
    ) -> Summary:  # fmt: skip
        """Apply the decisions of a CSV file, all or nothing (see :mod:`catalog.decision_log`)."""
        with db.session_scope(self.engine, write=True) as session:
            decisions.lock(session)
            changes = decision_log.read_decisions(session, Path(path).expanduser(), dataset)
            return decisions.record(session, changes, author=by, dry_run=dry_run)

    def tag_findings(
        self, report: AuditReport, name: str, *, note: str | None = None, by: str | None = None
    ) -> Summary:
        """Tag every image named in a finding of ``report``, to review them later."""
        decisions.check_tag(name)
        refs = sorted({(r.dataset, r.split, r.index) for f in report.findings for r in f.images})
        with db.session_scope(self.engine, write=True) as session:
            decisions.lock(session)
            changes: list[Change] = []
            for dataset in sorted({ref[0] for ref in refs}):
                mine = [(split, index) for ds, split, index in refs if ds == dataset]
                ids = decisions.resolve(session, dataset, mine)
                changes += [Change(i, "tag", tag=name, note=note or "audit finding") for i in ids]
            return decisions.record(session, changes, author=by)

    def history(self, image: str, *, dataset: str | None = None) -> list[DecisionRecord]:
        """Every decision about image ``SPLIT:INDEX``, oldest first."""
        split, index = decisions.parse_ref(image)
        with db.session_scope(self.engine) as session:
            return decision_log.image_history(session, dataset, split, index)

    def decisions(
        self, *, dataset: str | None = None, since: datetime | str | None = None,
        by: str | None = None,
    ) -> list[DecisionRecord]:  # fmt: skip
        """The decision log, oldest first."""
        when = decision_log.parse_since(since) if isinstance(since, str) else since
        with db.session_scope(self.engine) as session:
            return decision_log.list_decisions(session, dataset=dataset, since=when, by=by)


def _names(value: str | Sequence[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)
