"""Audit: what is really in a dataset.

Seven checks, each producing :class:`Finding` s with a severity, one module each:

``identity`` (:mod:`~catalog.audit.identity`)
    Sources against the genuine MNIST/Fashion-MNIST/KMNIST fingerprints; split
    sizes, per-label counts and content digests against the known ones when
    the dataset claims to be one of them.
``balance`` (:mod:`~catalog.audit.balance`)
    Counts per split x label, smallest/largest class ratio, missing labels.
``exact-duplicates`` (:mod:`~catalog.audit.exact_duplicates`)
    Byte-identical images within and across splits (leakage); groups whose
    members disagree on the label are flagged separately.
``near-duplicates`` (:mod:`~catalog.audit.near_duplicates`)
    Pairs that are nearly identical (the measure: :mod:`catalog.audit.pair_distance`).
``odd-images`` (:mod:`~catalog.audit.odd_images`)
    Blank, inverted, wrong size, ink on the border, unusual ink mass or
    centroid (robust z-scores).
``label-errors`` (:mod:`~catalog.audit.label_errors`)
    Images whose label is probably wrong, judged out of sample
    (the model: :mod:`catalog.audit.label_model`).
``files`` (:mod:`~catalog.audit.files`)
    Exported files: missing, changed, unreadable, decoding to other pixels,
    and files in export folders the catalog does not know.

Severities: ``info`` (worth knowing), ``warning`` (a problem to look at),
``error`` (the data or the files are not what they should be).

What an audit writes
--------------------
An audit never changes an image, a label or a decision. To be faster the next time,
it keeps work that depends on pixels alone, each piece committed as soon as it is
done (:func:`catalog.db.engine.write_if_allowed`): per-image embeddings
(``embeddings``), ink measures and identity matches (``image_measures``), and the
near-duplicate search and label model fit of each dataset (``kept_states``). A
catalog that refuses the write (a read-only file or role) gets the same report,
computed in memory. ``mnist-catalog audit`` then records the report as an audit
run (``--no-store``: it does not), and with ``--tag NAME`` tags every image named
in a finding, as decisions.

Adding a check is adding a module with ``run(context) -> (findings, summary)`` (the
:class:`~catalog.audit.context.Check` protocol) and one line in :data:`REGISTRY`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.audit import (
    balance,
    exact_duplicates,
    files,
    identity,
    label_errors,
    near_duplicates,
    odd_images,
)
from catalog.audit.balance import BALANCE_WARNING_RATIO, check_balance
from catalog.audit.context import AuditContext, Check, Outcome, Progress
from catalog.audit.exact_duplicates import check_exact_duplicates
from catalog.audit.features import BLANK_INK_FRACTION, INVERTED_BORDER_MEAN
from catalog.audit.files import LIST_FILES, check_files
from catalog.audit.findings import REPORT_VERSION, SEVERITIES, AuditReport, Finding, ImageRef
from catalog.audit.identity import check_identity
from catalog.audit.images import DEFAULT_MEMORY, DatasetImages, load_images
from catalog.audit.label_cnn import import_torch
from catalog.audit.label_errors import (
    LABEL_ERROR_LIST,
    LABEL_ERROR_METHOD,
    LABEL_ERROR_SCORE,
    check_label_errors,
)
from catalog.audit.label_model import DEFAULT_METHOD, METHODS, Method
from catalog.audit.near_duplicates import check_near_duplicates
from catalog.audit.odd_images import ROBUST_Z, check_odd_images, robust_z
from catalog.db.models.images import Dataset, Image
from catalog.db.types import bytewise
from catalog.errors import SelectionError
from catalog.select.filters import dataset_id, selection_dataset
from catalog.select.versioned import check_pinned
from catalog.selection import Selection

__all__ = [
    "BALANCE_WARNING_RATIO",
    "BLANK_INK_FRACTION",
    "CATALOG_WIDE",
    "CHECKS",
    "DEFAULT_MEMORY",
    "INVERTED_BORDER_MEAN",
    "LABEL_ERROR_LIST",
    "LABEL_ERROR_METHOD",
    "LABEL_ERROR_SCORE",
    "LIST_FILES",
    "REGISTRY",
    "REPORT_VERSION",
    "ROBUST_Z",
    "SEVERITIES",
    "AuditContext",
    "AuditReport",
    "Check",
    "DatasetImages",
    "Finding",
    "ImageRef",
    "Outcome",
    "Progress",
    "audit",
    "check_balance",
    "check_exact_duplicates",
    "check_files",
    "check_identity",
    "check_label_errors",
    "check_near_duplicates",
    "check_odd_images",
    "load_images",
    "robust_z",
]

#: The checks, in the order they run: per dataset the cheap ones first, then the whole
#: catalog's.
REGISTRY: dict[str, Check] = {
    "identity": identity.run,
    "balance": balance.run,
    "exact-duplicates": exact_duplicates.run,
    "odd-images": odd_images.run,
    "near-duplicates": near_duplicates.run,
    "label-errors": label_errors.run,
    "files": files.run,
}
#: Checks that look at all audited datasets at once, after the per-dataset ones.
CATALOG_WIDE = frozenset({"files"})
#: The checks in the order reports list them.
CHECKS = (
    "identity",
    "balance",
    "exact-duplicates",
    "near-duplicates",
    "odd-images",
    "label-errors",
    "files",
)


def audit(
    session: Session,
    *,
    dataset: str | None = None,
    splits: Sequence[str] = (),
    checks: Sequence[str] = CHECKS,
    seed: int = 0,
    progress: Progress | None = None,
    memory: int = DEFAULT_MEMORY,
    full: bool = False,
    version: str | None = None,
    method: Method = DEFAULT_METHOD,
) -> AuditReport:
    """Run the ``checks`` on one dataset (or every dataset) and return the report.

    Parameters
    ----------
    session
        An open session (only read).
    dataset
        A dataset name; None audits every dataset in the catalog.
    splits
        Only these splits (default all).
    checks
        Any of :data:`CHECKS`.
    seed
        Seed of the label-error model's folds.
    progress
        Called as ``progress(check, done, total)``.
    memory
        Memory budget in bytes (default 1 GiB): pixels are read and worked on in blocks
        sized by it. Per-image state (metadata, embeddings, the neighbour index: about
        700 bytes an image) comes on top.
    full
        Search every image for near duplicates and fit the label model again, instead of
        building on what the last audit kept (which the new result then replaces).
    version
        Audit only this version's images, with the labels it froze (its dataset; refused
        if a pixel it froze changed since).
    method
        The label-error scorer, one of :data:`catalog.audit.label_model.METHODS` (default
        ``deskew-mlp``; ``deskew-cnn`` is ``audit --thorough``: it and ``cnn`` need the
        ``thorough`` extra).

    Raises
    ------
    SelectionError
        If a check, split or method is unknown.
    MissingExtraError
        If ``method`` is a network (``cnn``, ``deskew-cnn``) and PyTorch is not installed.
    """
    unknown = [c for c in checks if c not in CHECKS]
    if unknown:
        msg = f"Unknown check {unknown[0]!r}: expected any of {', '.join(CHECKS)}"
        raise SelectionError(msg)
    if method not in METHODS:
        msg = f"Unknown label-error method {method!r}: expected one of {', '.join(METHODS)}"
        raise SelectionError(msg)
    if method in ("cnn", "deskew-cnn") and "label-errors" in checks:
        import_torch()  # a missing extra is an error now, not after the other checks
    if version is not None:
        within = Selection(dataset=dataset, version=version)
        ds = selection_dataset(session, within)
        check_pinned(session, within, ds)
        names = [session.scalar(select(Dataset.name).where(Dataset.id == ds))]
    elif dataset is not None:
        names = [
            session.scalar(select(Dataset.name).where(Dataset.id == dataset_id(session, dataset)))
        ]
    else:
        names = list(session.scalars(select(Dataset.name).order_by(bytewise(Dataset.name))))
    report = AuditReport(
        datasets=[str(n) for n in names], splits=list(splits), checks=list(checks),
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )  # fmt: skip
    per_dataset = [c for c in REGISTRY if c in checks and c not in CATALOG_WIDE]
    shared: dict[str, Any] = {}
    for name in report.datasets:
        if splits:
            Selection(dataset=name, splits=tuple(splits))  # validates
            _check_splits(session, name, splits)
        context = AuditContext(
            session,
            tuple(report.datasets),
            name,
            tuple(splits),
            seed,
            progress,
            shared,
            memory,
            full,
            version,
            method,
        )
        _audit_one(context, per_dataset, "label-errors" in checks, report)
    catalog_wide = [c for c in REGISTRY if c in checks and c in CATALOG_WIDE]
    for check in catalog_wide if report.datasets else []:
        started = datetime.now(UTC)
        context = AuditContext(
            session,
            tuple(report.datasets),
            None,
            tuple(splits),
            seed,
            progress,
            shared,
            memory,
            full,
            version,
        )
        findings, summary = REGISTRY[check](context)
        report.findings += findings
        report.summary[check] = summary
        report.seconds[check] = (datetime.now(UTC) - started).total_seconds()
    return report


def _check_splits(session: Session, name: str, splits: Sequence[str]) -> None:
    present = set(
        session.scalars(
            select(Image.split).where(Image.dataset_id == dataset_id(session, name)).distinct()
        )
    )
    missing = [s for s in splits if s not in present]
    if missing:
        msg = f"Unknown split {missing[0]!r}: expected one of {', '.join(sorted(present))}"
        raise SelectionError(msg)


def _audit_one(
    context: AuditContext, checks: Sequence[str], needs_whole: bool, report: AuditReport
) -> None:
    name = str(context.dataset)
    started = datetime.now(UTC)
    # Loaded up front, so their time is the load's and not the first check's.
    _ = context.data
    if needs_whole:  # label errors are judged by models fitted on the whole train split
        _ = context.whole
    report.seconds[f"{name}:load"] = round((datetime.now(UTC) - started).total_seconds(), 3)
    for check in checks:
        started = datetime.now(UTC)
        findings, summary = REGISTRY[check](context)
        report.findings += findings
        if summary:
            report.summary.setdefault(check, {})[name] = summary
        report.seconds[f"{name}:{check}"] = round((datetime.now(UTC) - started).total_seconds(), 3)
