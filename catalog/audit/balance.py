"""Balance: counts per split x label, smallest/largest class ratio, missing labels."""

from __future__ import annotations

import numpy as np

from catalog.audit.context import AuditContext, Outcome
from catalog.audit.findings import Finding
from catalog.audit.images import DatasetImages

#: A class smaller than this fraction of the largest one is a warning.
BALANCE_WARNING_RATIO = 0.5


def run(context: AuditContext) -> Outcome:
    return check_balance(context.data)


def check_balance(data: DatasetImages) -> Outcome:
    findings: list[Finding] = []
    table: dict[str, list[int]] = {}
    # Every label the set names or an image has; unlabeled images are left out.
    seen = set(data.labels[data.labels >= 0].tolist())
    numbers = np.array(sorted(set(data.label_numbers) | seen), dtype=np.int64)
    for split in sorted(set(data.splits.tolist())):
        labelled = data.labels[(data.splits == split) & (data.labels >= 0)]
        # Labels are sparse (0 and 2,147,483,647 may be the only two): count by position.
        counts = np.bincount(np.searchsorted(numbers, labelled), minlength=len(numbers))
        table[split] = counts.tolist()
        present = counts[counts > 0]
        if not present.size:
            continue  # no labels in this split (a test set published without them)
        ratio = float(present.min() / present.max())
        missing = [int(label) for label, n in zip(numbers, counts, strict=True) if n == 0]
        if missing:
            findings.append(
                Finding("balance", "missing-labels", "warning",
                        f"{data.name} {split}: no images of label(s) {', '.join(map(str, missing))}",
                        details={"split": split, "missing": missing})
            )  # fmt: skip
        low = int(np.argmin(np.where(counts > 0, counts, counts.max() + 1)))
        high = int(np.argmax(counts))
        smallest, largest = int(numbers[low]), int(numbers[high])
        severity = "warning" if ratio < BALANCE_WARNING_RATIO else "info"
        findings.append(
            Finding("balance", "class-ratio", severity,
                    f"{data.name} {split}: smallest/largest class ratio {ratio:.2f} "
                    f"(label {smallest}: {counts[low]:,}, label {largest}: {counts[high]:,})",
                    details={"split": split, "ratio": round(ratio, 4), "counts": counts.tolist()})
        )  # fmt: skip
    return findings, {"counts": table, "labels": numbers.tolist()}
