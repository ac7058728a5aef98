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
    for split in sorted(set(data.splits.tolist())):
        counts = np.bincount(data.labels[data.splits == split], minlength=10)[:10]
        table[split] = counts.tolist()
        present = counts[counts > 0]
        ratio = float(present.min() / present.max()) if present.size else 0.0
        missing = [label for label in range(10) if counts[label] == 0]
        if missing:
            findings.append(
                Finding("balance", "missing-labels", "warning",
                        f"{data.name} {split}: no images of label(s) {', '.join(map(str, missing))}",
                        details={"split": split, "missing": missing})
            )  # fmt: skip
        smallest, largest = (
            int(np.argmin(np.where(counts > 0, counts, counts.max() + 1))),
            int(np.argmax(counts)),
        )
        severity = "warning" if ratio < BALANCE_WARNING_RATIO else "info"
        findings.append(
            Finding("balance", "class-ratio", severity,
                    f"{data.name} {split}: smallest/largest class ratio {ratio:.2f} "
                    f"(label {smallest}: {counts[smallest]:,}, label {largest}: {counts[largest]:,})",
                    details={"split": split, "ratio": round(ratio, 4), "counts": counts.tolist()})
        )  # fmt: skip
    return findings, {"counts": table}
