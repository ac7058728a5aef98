"""The label-error suspects of the latest stored audit run, by image, for badges and
the grid's ``sort=suspect``: read once per stored run and kept (a run never changes)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from catalog.api.handle import Catalog

#: The check whose findings carry a suspect's score.
CHECK = "label-errors"


@dataclass(frozen=True)
class Suspect:
    """A likely label error: the audit's score, the label it suggests, the label it saw."""

    score: float
    suggested: int
    given: int


@dataclass(frozen=True)
class Suspects:
    """The suspects of one stored run: (dataset, split, index) -> :class:`Suspect`."""

    run: int | None
    by_image: dict[tuple[str, str, int], Suspect]

    def ranked(self, dataset: str) -> list[tuple[str, int]]:
        """``dataset``'s suspects as (split, index), highest score first."""
        mine = [(key, s.score) for key, s in self.by_image.items() if key[0] == dataset]
        return [(key[1], key[2]) for key, _ in sorted(mine, key=lambda p: (-p[1], p[0]))]


_kept: dict[tuple[int, int], Suspects] = {}
_lock = threading.Lock()


def suspects_of(catalog: Catalog) -> Suspects:
    """The suspects of ``catalog``'s latest stored audit run (none without a run)."""
    header = catalog.latest_audit(findings=False)
    if header is None:
        return Suspects(None, {})
    key = (id(catalog), header.id)
    with _lock:
        if key in _kept:
            return _kept[key]
    run = catalog.latest_audit(findings=True)
    found: dict[tuple[str, str, int], Suspect] = {}
    for finding in run.report.findings if run is not None else ():
        details = finding.details
        if finding.check != CHECK or not finding.images or "score" not in details:
            continue
        ref = finding.images[0]
        found[(ref.dataset, ref.split, ref.index)] = Suspect(
            float(details["score"]), int(details["suggested"]), int(details["given"])
        )
    kept = Suspects(header.id, found)
    with _lock:
        _kept.clear()  # the newest run only
        _kept[key] = kept
    return kept
