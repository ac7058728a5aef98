"""Identity: is the dataset what it claims to be?

Sources against the genuine MNIST/Fashion-MNIST/KMNIST fingerprints; split sizes,
per-label counts and content digests against the known ones when the dataset claims
to be one of them. A dataset not ingested from genuine files alone is identified
image by image against MNIST (:mod:`catalog.audit.identified`): a re-split is info,
lossy copies a warning, labels differing from the canonical image's and copies of
test images in train-like splits are listed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.audit.context import AuditContext, Outcome
from catalog.audit.findings import Finding
from catalog.audit.identified import identity_findings, summary_of
from catalog.audit.images import DatasetImages
from catalog.db.models.images import Source
from catalog.select.filters import dataset_id
from catalog.sources.fingerprints import KNOWN_DATASETS, known_split


def run(context: AuditContext) -> Outcome:
    found, accounted = identity_findings(context, context.data)
    findings = check_identity(context.session, context.data, accounted)
    if any(f.code != "not-derived" for f in found):
        # identify said what the images are; "not a known dataset" would mislead
        findings = [f for f in findings if f.code != "unknown-dataset"]
    return findings + found, summary_of(context, str(context.dataset))


def check_identity(
    session: Session, data: DatasetImages, accounted: Collection[str] = ()
) -> list[Finding]:
    """Sources against the known fingerprints, and splits against the known sizes.

    Splits in ``accounted`` are left out of the size comparison: identify named
    every image of them (a re-split or a lossy copy), and says so itself.
    """
    findings: list[Finding] = []
    ds = dataset_id(session, data.name)
    sources = session.scalars(select(Source).where(Source.dataset_id == ds)).all()
    genuine = sorted({s.genuine.split("/")[0] for s in sources if s.genuine})
    claimed = set(genuine)
    if data.name in KNOWN_DATASETS:
        claimed.add(data.name)
    unknown_sources = [s.uri for s in sources if not s.genuine]
    if genuine and not unknown_sources:
        title = ", ".join(KNOWN_DATASETS[g].title for g in genuine)
        findings.append(
            Finding("identity", "genuine-sources", "info",
                    f"{data.name}: every source file is a genuine {title} file",
                    details={"sources": [s.uri for s in sources]})
        )  # fmt: skip
    for claim in sorted(claimed):
        findings += _compare_to_known(data, claim, accounted)
    if not claimed:
        findings.append(
            Finding("identity", "unknown-dataset", "info",
                    f"{data.name}: not a known dataset (no source matches a genuine "
                    "MNIST, Fashion-MNIST or KMNIST file)",
                    details={"sources": [s.uri for s in sources]})
        )  # fmt: skip
    return findings


def _compare_to_known(data: DatasetImages, claim: str, accounted: Collection[str]) -> list[Finding]:
    findings: list[Finding] = []
    for split in sorted(set(data.splits.tolist())):
        known = known_split(claim, split)
        if known is None or split in accounted:
            continue
        mask = data.splits == split
        size = int(mask.sum())
        known_labels = data.original_labels[mask]
        digits = known_labels[(known_labels >= 0) & (known_labels < 10)]  # not 0..max: sparse
        counts = np.bincount(digits, minlength=10).tolist()
        problems = []
        if size != known.size:
            problems.append(f"{size:,} images where {known.size:,} are expected")
        if tuple(counts) != known.label_counts:
            problems.append(f"per-label counts {counts} differ from {list(known.label_counts)}")
        content = None
        if known.pixels_sha256 and data.shape is not None and not problems:
            order = np.flatnonzero(mask)[np.argsort(data.indices[mask], kind="stable")]
            digest = hashlib.sha256()
            for _, block in data.blocks(order):  # streamed, in index order
                digest.update(np.ascontiguousarray(block).tobytes())
            pixels_ok = digest.hexdigest() == known.pixels_sha256
            labels_bytes = data.original_labels[order].astype(np.uint8).tobytes()
            labels_ok = hashlib.sha256(labels_bytes).hexdigest() == known.labels_sha256
            content = pixels_ok and labels_ok
            if not pixels_ok:
                problems.append("pixels differ from the genuine ones")
            if not labels_ok:
                problems.append("labels differ from the genuine ones")
        title = KNOWN_DATASETS[claim].title
        if problems:
            findings.append(
                Finding("identity", "differs-from-known", "warning",
                        f"{data.name} {split}: claims to be {title} but " + "; ".join(problems),
                        details={"split": split, "size": size, "label_counts": counts,
                                 "expected_size": known.size,
                                 "expected_label_counts": list(known.label_counts)})
            )  # fmt: skip
        else:
            verified = " (pixels and labels identical)" if content else ""
            findings.append(
                Finding("identity", "matches-known", "info",
                        f"{data.name} {split}: size and per-label counts are {title}'s{verified}",
                        details={"split": split, "size": size, "content_identical": content})
            )  # fmt: skip
    return findings
