"""Near duplicates: pairs that are nearly identical (see :mod:`catalog.audit.neighbours`)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from catalog.audit.context import AuditContext, Outcome
from catalog.audit.findings import Finding
from catalog.audit.images import DatasetImages
from catalog.audit.neighbours import DEFAULT_THRESHOLD, find_near_duplicates


def run(context: AuditContext) -> Outcome:
    data = context.data
    return check_near_duplicates(data, context.ticker("near-duplicates", len(data.ids)))


def check_near_duplicates(
    data: DatasetImages, progress: Callable[[int], None] | None = None
) -> Outcome:
    if data.pixels is None or len(data.pixels) < 2:
        return [], {
            "pairs": 0,
            "skipped": "images of different sizes" if data.pixels is None else None,
        }
    # One representative per exact-duplicate group: those are reported already.
    _, first = np.unique(data.sha256, return_index=True)
    first = np.sort(first)
    pairs = find_near_duplicates(data.pixels[first], progress=progress)
    findings: list[Finding] = []
    across = 0
    for pair in pairs:
        a, b = int(first[pair.first]), int(first[pair.second])
        refs = data.refs([a, b])
        cross = refs[0].split != refs[1].split
        across += cross
        conflict = refs[0].label != refs[1].label
        findings.append(
            Finding("near-duplicates", "near-duplicate-across-splits" if cross else "near-duplicate",
                    "warning",
                    f"{refs[0].split}:{refs[0].index} and {refs[1].split}:{refs[1].index} are "
                    f"nearly identical (distance {pair.distance:.1f})"
                    + (f"; labels differ ({refs[0].label} vs {refs[1].label})" if conflict else ""),
                    refs, {"distance": round(float(pair.distance), 3), "label_conflict": conflict})
        )  # fmt: skip
    return findings, {"pairs": len(pairs), "across_splits": across, "threshold": DEFAULT_THRESHOLD}
