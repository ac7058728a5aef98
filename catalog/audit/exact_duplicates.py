"""Exact duplicates: byte-identical images within and across splits (leakage).

Groups whose members disagree on the label are flagged separately.
"""

from __future__ import annotations

import numpy as np

from catalog.audit.context import AuditContext, Outcome
from catalog.audit.findings import Finding
from catalog.audit.images import DatasetImages
from catalog.sources import UNLABELED


def run(context: AuditContext) -> Outcome:
    return check_exact_duplicates(context.data)


def check_exact_duplicates(data: DatasetImages) -> Outcome:
    """Groups of byte-identical images (same pixel digest)."""
    findings: list[Finding] = []
    _, inverse, counts = np.unique(data.sha256, return_inverse=True, return_counts=True)
    groups = np.flatnonzero(counts > 1)
    within = across = conflicting = 0
    order = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)])
    for group in groups.tolist():
        members = order[starts[group] : starts[group + 1]]
        splits = sorted(set(data.splits[members].tolist()))
        labels = sorted(set(data.labels[members].tolist()) - {UNLABELED})
        refs = data.refs(members)
        where = "across splits " + "/".join(splits) if len(splits) > 1 else f"within {splits[0]}"
        if len(splits) > 1:
            across += 1
            code, severity = "leak-across-splits", "error"
        else:
            within += 1
            code, severity = "duplicate-within-split", "warning"
        findings.append(
            Finding("exact-duplicates", code, severity,
                    f"{len(members)} identical images {where}: "
                    + ", ".join(f"{r.split}:{r.index}" for r in refs[:6])
                    + (" ..." if len(refs) > 6 else ""),
                    refs, {"splits": splits, "labels": labels})
        )  # fmt: skip
        if len(labels) > 1:
            conflicting += 1
            findings.append(
                Finding("exact-duplicates", "label-conflict", "error",
                        f"{len(members)} identical images disagree on the label "
                        f"({', '.join(f'{r.split}:{r.index}={r.label}' for r in refs[:6])})",
                        refs, {"labels": labels})
            )  # fmt: skip
    summary = {
        "groups": len(groups),
        "within_split_groups": within,
        "across_split_groups": across,
        "label_conflict_groups": conflicting,
        "images_in_groups": int(counts[groups].sum()),
    }
    return findings, summary
