"""The identity check's findings from :func:`catalog.identity.identify`.

For a dataset not ingested from genuine files alone, identify names the genuine
MNIST image each image is. That turns what a size and digest comparison can
only call "different" into what it is:

- a re-split of MNIST (the classic pickle's train 50,000 + val 10,000) is
  ``known-resplit``, info;
- genuine images mixed with others are ``genuine-images``, info;
- lossy copies (the old recipe's JPEG folder) are ``lossy-copies``, a warning
  that says what they went through and what to do;
- an image whose label is not its canonical image's is ``label-differs-from-canonical``,
  a warning per image;
- train-like images that are copies of a test image (the reference's, or an
  audited dataset's) are ``canonical-leak``, an error.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import func, select

from catalog.audit.context import AuditContext
from catalog.audit.findings import Finding, ImageRef
from catalog.audit.images import DatasetImages
from catalog.db.models.images import Image, Source
from catalog.identity.columns import ImageColumns
from catalog.identity.leaks import Leak, describe_leak, find_leakage
from catalog.identity.match import identify_session
from catalog.identity.result import IdentityResult
from catalog.identity.sampling import SAMPLE, sampled_note
from catalog.select.filters import dataset_id

CHECK = "identity"
#: The reference the audit identifies against.
REFERENCE = "mnist"
#: Label disagreements listed one finding each; the rest are counted in one more.
DISAGREEMENT_LIST = 100


def needs_identify(context: AuditContext, name: str) -> bool:
    """Whether identify can tell more about ``name``: not when every source is a genuine file."""
    session = context.session
    sources = session.scalars(
        select(Source.genuine).where(Source.dataset_id == dataset_id(session, name))
    ).all()
    return not sources or not all(sources)


def identified(context: AuditContext, name: str) -> IdentityResult | None:
    """``name`` identified against MNIST, once per audit run; None when not needed."""
    cache: dict[str, IdentityResult | None] = context.shared.setdefault("identity", {})
    if name not in cache:
        result = None
        if needs_identify(context, name):
            session = context.session
            total = session.scalar(
                select(func.count()).where(Image.dataset_id == dataset_id(session, name))
            )
            tick = context.ticker(CHECK, int(total or 0))
            # The audited dataset's images, read once for every check, when they are all.
            whole = context.data if name == context.dataset and not context.splits else None
            result = identify_session(
                context.session, name, REFERENCE, tick, sample=SAMPLE, reuse=True,
                images=None if whole is None else image_columns(whole),
            )  # fmt: skip
        cache[name] = result
    return cache[name]


def image_columns(data: DatasetImages) -> ImageColumns:
    """``data``'s images as identify reads them: ordered by split name, then index."""
    order = np.lexsort((data.indices, data.splits))
    return ImageColumns(
        data.ids[order], data.splits[order], data.indices[order], data.labels[order],
        data.digests[order], data.shapes[order, 0], data.shapes[order, 1],
    )  # fmt: skip


def identity_findings(context: AuditContext, data: DatasetImages) -> tuple[list[Finding], set[str]]:
    """Findings from identifying ``data``'s dataset, and the splits they account for
    (every image matched, in a re-split or a lossy copy), whose size and digest
    comparison they replace."""
    result = identified(context, data.name)
    if result is None:
        return [], set()
    sampled = _sampled(data, result)
    if not result.matched().any():
        return sampled, set()
    findings: list[Finding] = []
    counts = result.counts()
    mapping = result.summary()[0]
    details = {"reference": result.reference, "counts": counts, "mapping": mapping}
    exact, lossy, total = counts["exact"], counts["lossy"], len(result)
    if lossy:
        how = " + ".join(result.transforms())
        error = result.max_error()
        measured = f", max error {error:.0f} levels" if error is not None else ""
        findings.append(
            Finding(CHECK, "lossy-copies", "warning",
                    f"{data.name}: {lossy:,} of {total:,} images are lossy copies of "
                    f"{result.reference} ({how}{measured}): {mapping}; re-ingest the originals "
                    f"with `mnist-catalog ingest {result.reference}`",
                    details=details | {"max_error": error, "transforms": result.transforms()})
        )  # fmt: skip
    elif exact == total and _whole_reference(result) and _resplit(result):
        findings.append(
            Finding(CHECK, "known-resplit", "info",
                    f"{data.name}: a re-split of {result.reference}, every image genuine: "
                    f"{mapping}", details=details)
        )  # fmt: skip
    else:
        findings.append(
            Finding(CHECK, "genuine-images", "info",
                    f"{data.name}: {exact:,} of {total:,} images are genuine "
                    f"{result.reference} images: {mapping}", details=details)
        )  # fmt: skip
    # A re-split or a lossy copy replaces the size comparison of the splits it names in
    # full; genuine images that are not all of the reference leave it to say what is missing.
    accounted: set[str] = set()
    if findings[0].code != "genuine-images":
        accounted = {
            str(split) for split in np.unique(result.splits)
            if result.matched()[result.splits == split].all()
        }  # fmt: skip
    findings += sampled
    findings += _disagreements(data, result)
    findings += _leaks(context, data, result)
    return findings, accounted


def summary_of(context: AuditContext, name: str) -> dict[str, int]:
    """How much identify searched for ``name`` in this audit, and what it reused."""
    result = identified(context, name)
    if result is None:
        return {}
    return result.counts() | {"searched": result.searched_now, "reused": result.reused,
                              "unsearched": 0 if result.sampled is None
                              else result.sampled.unsearched}  # fmt: skip


def _sampled(data: DatasetImages, result: IdentityResult) -> list[Finding]:
    """``not-derived`` when only a sample of the images no digest matched was searched."""
    sampled = result.sampled
    if sampled is None:
        return []
    return [
        Finding(CHECK, "not-derived", "info",
                f"{data.name}: {sampled_note(sampled, result.reference)}",
                details={"reference": result.reference, "pending": sampled.pending,
                         "sampled": sampled.searched, "matched": sampled.matched,
                         "unsearched": sampled.unsearched})
    ]  # fmt: skip


def _whole_reference(result: IdentityResult) -> bool:
    """Whether the images are every image of the reference, each once."""
    from catalog.identity.registry import load_shipped

    size = len(load_shipped(result.reference))
    return len(result) == size and not result.repeated()


def _resplit(result: IdentityResult) -> bool:
    """Whether the splits are not the reference's own (names or sizes differ)."""
    from catalog.sources.fingerprints import KNOWN_SPLITS

    whole = {k.split: k.size for k in KNOWN_SPLITS if k.dataset == result.reference}
    names, sizes = np.unique(result.splits, return_counts=True)
    return dict(zip(names.tolist(), sizes.tolist(), strict=True)) != whole


def _refs(data: DatasetImages, result: IdentityResult, rows: np.ndarray) -> list[ImageRef]:
    """Refs of ``result``'s rows among the audited images (those of the audited splits)."""
    order = np.argsort(data.ids)
    at = np.searchsorted(data.ids[order], result.image_ids[rows])
    at = np.minimum(at, len(order) - 1)
    found = data.ids[order][at] == result.image_ids[rows]
    return data.refs(order[at[found]].tolist())


def _disagreements(data: DatasetImages, result: IdentityResult) -> list[Finding]:
    rows = np.flatnonzero(result.disagreeing())
    rows = rows[np.isin(result.image_ids[rows], data.ids)]
    findings = []
    for i in rows[:DISAGREEMENT_LIST].tolist():
        m = result.record(i)
        findings.append(
            Finding(CHECK, "label-differs-from-canonical", "warning",
                    f"{data.name} {m.split} {m.index:,}: labelled {m.label}, but it is "
                    f"{result.reference} {m.canonical_split} {m.canonical_index:,}, labelled "
                    f"{m.canonical_label}", images=_refs(data, result, np.array([i])),
                    details={"given": m.label, "canonical_label": m.canonical_label,
                             "canonical": [m.canonical_split, m.canonical_index],
                             "match": m.kind})
        )  # fmt: skip
    if len(rows) > DISAGREEMENT_LIST:
        findings.append(
            Finding(CHECK, "label-differs-from-canonical", "warning",
                    f"{data.name}: {len(rows) - DISAGREEMENT_LIST:,} more labels differ from "
                    f"their canonical image's", details={"count": len(rows)})
        )  # fmt: skip
    return findings


def _leaks(context: AuditContext, data: DatasetImages, result: IdentityResult) -> list[Finding]:
    """Train-like images of ``data`` that are copies of a test image of the reference
    or of another audited dataset."""
    others = [identified(context, n) for n in context.datasets if n != data.name]
    results = [result, *(r for r in others if r is not None)]
    findings = []
    for leak in find_leakage(results):
        if leak.dataset != data.name or (context.splits and leak.split not in context.splits):
            continue
        findings.append(
            Finding(CHECK, "canonical-leak", "error", describe_leak(leak),
                    images=_refs(data, result, _leak_rows(result, leak)),
                    details={"split": leak.split, "test_dataset": leak.test_dataset,
                             "test_split": leak.test_split, "count": leak.count,
                             "examples": [list(e) for e in leak.examples]})
        )  # fmt: skip
    return findings


def _leak_rows(result: IdentityResult, leak: Leak) -> np.ndarray:
    """Rows of ``result`` for the leak's examples (the images in the train-like split)."""
    wanted = [a for a, _ in leak.examples]
    rows: np.ndarray = np.flatnonzero(
        (result.splits == leak.split) & np.isin(result.indices, wanted)
    )
    return rows
