"""The curation half of :class:`catalog.Catalog`: decisions about images.

Every method appends decisions through :mod:`catalog.curation.decisions` in one
transaction; nothing is overwritten (see :mod:`catalog.curation.log`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from catalog.curation import decisions
from catalog.curation import log as decision_log
from catalog.curation import sets as decision_sets
from catalog.curation.decisions import Change, Summary
from catalog.curation.log import DecisionRecord
from catalog.curation.seen import UNCHECKED, Seen, check_seen, latest_open_by
from catalog.db.engine import session_scope
from catalog.errors import DecisionError

if TYPE_CHECKING:  # the audit package loads every check: not for a count
    from catalog.audit.findings import AuditReport


class CurationMixin:
    """Relabel, exclude, include, tag, untag, undo, apply, history, decisions."""

    engine: Engine

    def decide(
        self,
        images: str | Sequence[str],
        make: Callable[[Any, int], list[Change]],
        *,
        dataset: str | None = None,
        by: str | None = None,
        dry_run: bool = False,
        seen: Seen = UNCHECKED,
    ) -> Summary:
        """Record the changes ``make(session, image_id)`` returns for each image named.

        With ``seen`` (the latest decision id the author saw about these images, None
        for none), a newer decision raises :class:`~catalog.errors.StaleDecisionError`
        and nothing is recorded.
        """
        refs = [decisions.parse_ref(text) for text in _names(images)]
        with session_scope(self.engine, write=True) as session:
            decisions.lock(session)
            ids = decisions.resolve(session, dataset, refs)
            check_seen(session, ids, seen)
            changes = [change for image in ids for change in make(session, image)]
            return decisions.record(session, changes, author=by, dry_run=dry_run)

    def relabel(
        self, image: str, label: int | str, *, dataset: str | None = None,
        note: str | None = None, by: str | None = None, seen: Seen = UNCHECKED,
    ) -> Summary:  # fmt: skip
        """Record that image ``SPLIT:INDEX`` is really ``label`` (a number or class name)."""

        def make(session: Any, image_id: int) -> list[Change]:
            number = decisions.check_label(session, image_id, label)
            return [Change(image_id, "relabel", label=number, note=note)]

        return self.decide(image, make, dataset=dataset, by=by, seen=seen)

    def exclude(
        self, images: str | Sequence[str], *, reason: str, dataset: str | None = None,
        by: str | None = None, seen: Seen = UNCHECKED,
    ) -> Summary:  # fmt: skip
        """Leave images out of every selection, export and array from now on."""
        return self.decide(
            images, lambda _s, i: [Change(i, "exclude", note=reason)], dataset=dataset, by=by,
            seen=seen,
        )  # fmt: skip

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
        dataset: str | None = None, by: str | None = None, seen: Seen = UNCHECKED,
    ) -> Summary:  # fmt: skip
        """Put tag ``name`` on images ``SPLIT:INDEX``."""
        decisions.check_tag(name)
        return self.decide(
            images, lambda _s, i: [Change(i, "tag", tag=name, note=note)], dataset=dataset, by=by,
            seen=seen,
        )  # fmt: skip

    def untag(
        self, name: str, images: str | Sequence[str], *, note: str | None = None,
        dataset: str | None = None, by: str | None = None,
    ) -> Summary:  # fmt: skip
        """Take tag ``name`` off images ``SPLIT:INDEX`` (an error if none carries it)."""
        refs = [decisions.parse_ref(text) for text in _names(images)]
        with session_scope(self.engine, write=True) as session:
            decisions.lock(session)
            ids = decisions.resolve(session, dataset, refs)
            changes = decision_log.untag_changes(session, ids, name, note)
            return decisions.record(session, changes, author=by)

    def undo(self, decision: int, *, note: str | None = None, by: str | None = None) -> Summary:
        """Revert decision ``decision`` with a new decision (nothing is deleted)."""
        with session_scope(self.engine, write=True) as session:
            decisions.lock(session)
            change = decision_log.undo_change(session, decision, note)
            return decisions.record(session, [change], author=by)

    def decide_set(
        self, action: str, images: Sequence[str], *, dataset: str | None = None,
        label: int | str | None = None, tag: str | None = None, note: str | None = None,
        by: str | None = None,
    ) -> Summary:  # fmt: skip
        """Record ``action`` (tag, untag, exclude, include, relabel) on every image named,
        as one decision set; ``Summary.set_id`` names it for :meth:`undo_set`.

        Images that already are so are left out (``Summary.unchanged``); the rest land
        all or nothing.
        """
        refs = [decisions.parse_ref(text) for text in _names(images)]
        with session_scope(self.engine, write=True) as session:
            decisions.lock(session)
            ids = decisions.resolve(session, dataset, refs)
            changes = decision_sets.set_changes(
                session, ids, action, label=label, tag=tag, note=note
            )
            return decisions.record(session, changes, author=by, as_set=True)

    def undo_set(self, set_id: int, *, note: str | None = None, by: str | None = None) -> Summary:
        """Revert every decision of decision set ``set_id`` (new decisions, one new set)."""
        with session_scope(self.engine, write=True) as session:
            decisions.lock(session)
            changes = decision_sets.undo_set_changes(session, set_id, note)
            return decisions.record(session, changes, author=by, as_set=True)

    def undo_latest(
        self, image: str, *, by: str, dataset: str | None = None, note: str | None = None,
        seen: Seen = UNCHECKED,
    ) -> Summary:  # fmt: skip
        """Undo ``by``'s latest decision about image ``SPLIT:INDEX`` that is not undone
        yet (another author's decisions are left alone).

        Raises
        ------
        DecisionError
            If ``by`` has no such decision about the image.
        StaleDecisionError
            With ``seen``, if a decision newer than ``seen`` exists.
        """
        ref = decisions.parse_ref(image)
        with session_scope(self.engine, write=True) as session:
            decisions.lock(session)
            (image_id,) = decisions.resolve(session, dataset, [ref])
            check_seen(session, [image_id], seen)
            target = latest_open_by(session, image_id, by)
            if target is None:
                msg = f"Nothing of yours to undo on {ref[0]}:{ref[1]}: {by} has no decision about it that is not undone"
                raise DecisionError(msg)
            change = decision_log.undo_change(session, target, note)
            return decisions.record(session, [change], author=by)

    def apply(
        self, path: str | Path, *, dataset: str | None = None, by: str | None = None,
        dry_run: bool = False,
    ) -> Summary:  # fmt: skip
        """Apply the decisions of a CSV file, all or nothing (see :mod:`catalog.curation.log`)."""
        with session_scope(self.engine, write=True) as session:
            decisions.lock(session)
            changes = decision_log.read_decisions(session, Path(path).expanduser(), dataset)
            return decisions.record(session, changes, author=by, dry_run=dry_run)

    def tag_findings(
        self, report: AuditReport, name: str, *, note: str | None = None, by: str | None = None
    ) -> Summary:
        """Tag every image named in a finding of ``report``, to review them later."""
        decisions.check_tag(name)
        refs = sorted({(r.dataset, r.split, r.index) for f in report.findings for r in f.images})
        with session_scope(self.engine, write=True) as session:
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
        with session_scope(self.engine) as session:
            return decision_log.image_history(session, dataset, split, index)

    def decisions(
        self, *, dataset: str | None = None, since: datetime | str | None = None,
        by: str | None = None,
    ) -> list[DecisionRecord]:  # fmt: skip
        """The decision log, oldest first."""
        when = decision_log.parse_since(since) if isinstance(since, str) else since
        with session_scope(self.engine) as session:
            return decision_log.list_decisions(session, dataset=dataset, since=when, by=by)


def _names(value: str | Sequence[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)
